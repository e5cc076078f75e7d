//! Test support for the gateway's integration tests: the gateway under test, a stand-in upstream,
//! clients, ports and bounded waits. The tests themselves are one binary, `tests/integration/`.
//!
//! # Layout
//! - [`gateway`]: [`TestGateway`], in-process (own thread, test-controlled shutdown) or the built binary
//! - [`process`]: [`GatewayProcess`], the binary as a child: signals, exit status, memory, logs
//! - [`config`]: [`GatewayConfig`], the text of a small valid gateway TOML file
//! - [`upstream`]: [`EchoUpstream`], answers every request with a JSON [`Echo`] of it; WebSocket echo
//! - [`client`]: reqwest clients (rustls, trusting a given CA), a byte-exact HTTP/1.1 client, WebSocket
//! - [`ports`]: probe-and-hold registry of free `127.0.0.1` ports
//! - [`retry`]: [`eventually`], bounded retries instead of sleeps
//! - [`tempdir`]: [`TempDir`], removed on drop
#![warn(missing_docs)]

pub mod client;
pub mod config;
pub mod gateway;
pub mod ports;
pub mod process;
pub mod retry;
pub mod tempdir;
pub mod upstream;

pub use client::{RawRequest, RawResponse};
pub use config::GatewayConfig;
pub use gateway::{Endpoint, TestGateway};
pub use process::GatewayProcess;
pub use retry::eventually;
pub use tempdir::TempDir;
pub use upstream::{Echo, EchoUpstream};
