//! Operations (docs/architecture.md#operations): readiness on the main and admin listeners, trace context, the deploy/ files.

mod deploy;
mod otlp;
mod ready;
mod trace;
