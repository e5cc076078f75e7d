//! Operations (docs/architecture.md#operations): readiness on the main and admin listeners.

mod ready;
