//! Integration tests of the gateway: one binary (Pingora links into each test binary, so one
//! link, not one per file), one module per area. The harness is the `gateway_tests` library.
//!
//! The CLI, shutdown, upgrade and memory tests run the built binary: `cargo build -p gateway` first.

mod attacks;
mod channel_socketio;
mod channel_ws_sse;
mod cli;
mod entra_standin;
mod faults;
mod headers;
mod load_balancing;
mod ops;
mod popup_flow;
mod provider_faults;
mod proxy;
mod real_oidc_provider;
mod redis_store;
mod reload;
mod shutdown;
mod sso;
mod teams;
mod tls;
mod upgrade;
mod upstream_websocket;
