//! Per-request state carried across the Pingora phases.

use std::net::IpAddr;
use std::time::Instant;

use std::sync::Arc;

use crate::store::StoredTokens;

/// What one phase learns and a later phase needs.
#[derive(Debug)]
pub struct RequestCtx {
    /// When the request arrived.
    pub started: Instant,
    /// Its route class label.
    pub route: &'static str,
    /// The downstream peer's IP.
    pub client_ip: Option<IpAddr>,
    /// The client's address: the peer's, or the one a trusted proxy named (`proxy::forwarded`).
    pub client: Option<IpAddr>,
    /// The connection's deadline clock (`proxy::deadline`).
    pub clock: Option<Arc<super::deadline::ConnClock>>,
    /// Whether the peer is a trusted proxy.
    pub trusted_peer: bool,
    /// The `Host` the client used (checked against the allow-list).
    pub host: Option<http::HeaderValue>,
    /// Whether the request asks for a protocol upgrade (WebSocket).
    pub upgrade: bool,
    /// The upstream chosen, for the access line (formatted only there).
    pub upstream: Option<Upstream>,
    /// The signed-in user's tokens, whose identity goes upstream.
    pub tokens: Option<Arc<StoredTokens>>,
    /// Whether the route forwards the access token.
    pub forward_token: bool,
    /// Whether the request goes to the in-process channel server instead of an upstream.
    pub channel: bool,
    /// A replacement request body for the upstream (a Teams activity without `value.state`).
    pub body_override: Option<bytes::Bytes>,
    /// The config snapshot this request was decided with (a reload does not change it midway).
    pub live: Option<Arc<super::Live>>,
    /// The status of an answer Pingora's session does not record: a status socket's 101,
    /// written before its connection left the session (`proxy::upgrade`).
    pub answered: Option<u16>,
    /// This request's W3C trace context (`proxy::trace`), set on arrival.
    pub trace: Option<super::trace::TraceContext>,
}

impl RequestCtx {
    /// An empty context, at arrival.
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
            route: "upstream",
            client_ip: None,
            client: None,
            clock: None,
            trusted_peer: false,
            host: None,
            upgrade: false,
            upstream: None,
            tokens: None,
            forward_token: false,
            channel: false,
            body_override: None,
            live: None,
            answered: None,
            trace: None,
        }
    }
}

impl Default for RequestCtx {
    fn default() -> Self {
        Self::new()
    }
}

/// Where a request went, as the access line names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upstream {
    /// The in-process status-channel server.
    Channel,
    /// An upstream server at this address.
    Peer(std::net::SocketAddr),
}

impl std::fmt::Display for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Upstream::Channel => f.write_str("channel"),
            Upstream::Peer(addr) => addr.fmt(f),
        }
    }
}
