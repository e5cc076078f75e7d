//! Test support for the gateway's integration tests: the gateway under test, a stand-in upstream,
//! clients, ports and bounded waits. The tests themselves are one binary, `tests/integration/`.
//!
//! # Layout
//! - [`gateway`]: [`TestGateway`], in-process (own thread, test-controlled shutdown) or the built binary
//! - [`process`]: [`GatewayProcess`], the binary as a child: signals, exit status, memory, logs
//! - [`config`]: [`GatewayConfig`], the text of a small valid gateway TOML file
//! - [`upstream`]: [`EchoUpstream`], answers every request with a JSON [`Echo`] of it; WebSocket echo
//! - [`client`]: reqwest clients (rustls, trusting a given CA), a byte-exact HTTP/1.1 client, WebSocket
//! - [`signin`]: [`signin::Browser`], one browser's cookies and transcript; the `dev` popup sign-in step by step
//! - [`channel`]: status-channel clients behind [`channel::StatusFeed`]: native WebSocket, SSE, socket.io
//! - [`socketio`]: a hand-written Engine.IO 3/4 client (polling, websocket, upgrade) and its framing
//! - [`limits`]: raising the open-files limit a load test needs
//! - [`load`]: [`load::Load`], a bounded background load that keeps every answer, and its [`load::Tally`]
//! - [`metrics`]: the admin listener's Prometheus text, and one sample by name and labels
//! - [`entra`]: [`entra::EntraStandIn`], a local Entra ID: tenant metadata, rotating keys, minted tokens, on-behalf-of
//! - [`idp`]: [`idp::TestIdp`], an in-repo OpenID provider with a knob for every fault
//! - [`oidc_provider`]: the real OpenID provider (npm `oidc-provider`) as a child, and its login driver
//! - [`otlp`]: [`otlp::OtlpReceiver`], a stand-in OpenTelemetry collector (OTLP/HTTP, protobuf)
//! - [`ports`]: probe-and-hold registry of free `127.0.0.1` ports
//! - [`redis_server`]: [`redis_server::RedisServer`], a real `redis-server` child on a free port
//! - [`retry`]: [`eventually`], bounded retries instead of sleeps
//! - [`teams_fixtures`]: Teams activities, a recording bot service, a local Bot Framework token issuer
//! - [`tempdir`]: [`TempDir`], removed on drop
#![warn(missing_docs)]

pub mod channel;
pub mod client;
pub mod config;
pub mod entra;
pub mod gateway;
pub mod http_serve;
pub mod idp;
pub mod limits;
pub mod load;
pub mod metrics;
pub mod oidc_provider;
pub mod otlp;
pub mod ports;
pub mod process;
pub mod redis_server;
pub mod retry;
pub mod signin;
pub mod socketio;
pub mod teams_fixtures;
pub mod tempdir;
pub mod upstream;

pub use client::{RawRequest, RawResponse};
pub use config::GatewayConfig;
pub use gateway::{Endpoint, TestGateway};
pub use process::GatewayProcess;
pub use retry::eventually;
pub use tempdir::TempDir;
pub use upstream::{Echo, EchoUpstream};
