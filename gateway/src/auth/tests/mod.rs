//! The sign-in layer driven end to end: a real [`AuthService`] over the built-in dev identity
//! provider (in-process, through the same routed client the server uses), the memory store and
//! a status-channel hub.

mod callback;
mod connect;
mod flow_errors;
mod guard;
mod handoff;
mod harness;
mod logout;
mod refresh;
mod session_info;
