//! Per-request state carried across the Pingora phases.

use std::net::IpAddr;
use std::time::Instant;

use super::route::Route;

/// What one phase learns and a later phase needs.
#[derive(Debug)]
pub struct RequestCtx {
    /// When the request arrived.
    pub started: Instant,
    /// Its route class.
    pub route: Route,
    /// The downstream peer's IP.
    pub client_ip: Option<IpAddr>,
    /// Whether the peer is a trusted proxy.
    pub trusted_peer: bool,
    /// The `Host` the client used (checked against the allow-list).
    pub host: Option<String>,
    /// Whether the request asks for a protocol upgrade (WebSocket).
    pub upgrade: bool,
    /// The upstream chosen, for the access line.
    pub upstream: Option<String>,
}

impl RequestCtx {
    /// An empty context, at arrival.
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
            route: Route::Upstream,
            client_ip: None,
            trusted_peer: false,
            host: None,
            upgrade: false,
            upstream: None,
        }
    }
}

impl Default for RequestCtx {
    fn default() -> Self {
        Self::new()
    }
}
