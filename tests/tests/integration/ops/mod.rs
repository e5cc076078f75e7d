//! Operations (docs/architecture.md#operations): readiness on the main and admin listeners, trace context.

mod ready;
mod trace;
