//! The status channel: a hub of rooms by session, and its transports.
//!
//! ```text
//!  browser ──/_gateway/events (WS | SSE)──┐   proxy: Origin check, session from signed
//!  browser ──/socket.io/ (EIO 3/4)────────┤   cookie or ?ticket=, header below set
//!                                         ▼
//!                         channel::server (hyper on a private Unix socket)
//!                          ├─ websocket.rs  native JSON frames, server pings, idle timeout
//!                          ├─ sse.rs        text/event-stream with keep-alive comments
//!                          └─ socketio/     Engine.IO 3 and 4, polling and websocket
//!                                         ▲
//!  auth::callback / store expiry ──publish──┘ hub.rs (bounded queue per socket)
//! ```
//! Entries are limited per client address and per session (`admission.rs`); an Engine.IO
//! session that never joins closes after `channel.join_timeout`.
//! SSE and long-polling run as a second in-process service that the proxy forwards to, so
//! Pingora does the streaming; the proxy answers WebSocket upgrades itself (`proxy::upgrade`)
//! and hands the detached connection to [`server::ChannelServer::serve_upgraded`]. Nothing here
//! names a Pingora type. When the server stops, [`Hub::going_away`] closes every socket (1001)
//! and ends every stream and long-poll, so clients reconnect to the next instance.

pub mod admission;
pub mod event;
pub mod hub;
mod refusal;
pub mod server;
pub mod socketio;
pub mod sse;
pub mod websocket;

use async_trait::async_trait;

pub use event::StatusEvent;
pub use hub::Hub;
pub use refusal::{ChannelRefusal, EngineIoError};

use crate::session::SessionId;

/// Set by the proxy on requests it forwards to the channel server: the verified session's
/// storage key. Clients can never send it (the proxy strips every `x-gateway-*` header).
pub const SESSION_HEADER: &str = "x-gateway-channel-session";

/// Set by the proxy on requests it forwards to the channel server: the client address it trusts
/// (the peer, or the client a trusted proxy names), for the per-client entry limit.
pub const CLIENT_HEADER: &str = "x-gateway-channel-client";

/// Who the session is signed in as, for `auth_success` right after `init`.
#[async_trait]
pub trait SignedIn: Send + Sync {
    /// `(providerName, displayName)` of every live sign-in of `session`.
    async fn signed_in(&self, session: &SessionId) -> Vec<(String, String)>;
}

/// True when `origin` may open a channel: the gateway's own origin or one in `allowed`.
/// A request without `Origin` (not from a browser page) is allowed: cookies and tickets still bind it.
pub fn origin_allowed(origin: Option<&str>, own: &str, allowed: &[String]) -> bool {
    match origin {
        None => true,
        Some(o) => o == own || allowed.iter().any(|a| a == o),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cross_site_origins_are_refused() {
        let allowed = vec!["https://addin.example.com".to_owned()];
        assert!(origin_allowed(Some("https://gw.example.com"), "https://gw.example.com", &allowed));
        assert!(origin_allowed(Some("https://addin.example.com"), "https://gw.example.com", &allowed));
        assert!(!origin_allowed(Some("https://evil.example"), "https://gw.example.com", &allowed));
        assert!(!origin_allowed(Some("null"), "https://gw.example.com", &allowed));
    }
}
