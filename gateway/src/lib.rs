//! `gateway`: an authentication reverse proxy for Office add-in and Teams app servers.
//!
//! # Layout
//! - [`config`]: TOML schema, defaults, validation, secret references
//! - [`identity`]: identity header names, stripping and injection
//! - [`proxy`]: the Pingora `ProxyHttp` implementation, route table, upstream selection
//! - [`session`]: session ids, signed cookies and tickets, key rotation
//! - [`store`]: the token store (moka) and login transactions
//! - [`providers`]: provider presets, discovery, code exchange, ID-token checks
//! - [`auth`]: the popup flow (connect, callback, completion, logout) and the dev provider
//! - [`channel`]: the status channel hub and its WebSocket, SSE and socket.io transports
//! - [`demo`]: `gateway demo` and its sample add-in upstream
//! - [`app`]: wiring a validated config into a Pingora server
//! - [`signals`]: SIGTERM/SIGINT drain, SIGQUIT hands the listening sockets to an upgrade
//! - [`tls`]: listener TLS checks and the dev certificate authority
//! - [`metrics`]: metric names and the admin listener
//! - [`logging`]: the tracing subscriber
//! - [`notify`]: systemd's readiness notification, which names the upgraded process the main one
#![warn(missing_docs)]

pub mod app;
pub mod auth;
pub mod channel;
pub mod config;
pub mod demo;
pub mod identity;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod providers;
pub mod proxy;
pub mod respond;
pub mod session;
pub mod signals;
pub mod store;
pub mod teams;
pub mod telemetry;
pub mod tls;
