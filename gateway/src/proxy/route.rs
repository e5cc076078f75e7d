//! Classifies a request path into the gateway's own routes or the upstream.
//!
//! Gateway routes are matched on the raw path, exactly: a variant (`/_gateway/health/../x`)
//! is not a gateway route and goes through the route rules like any upstream request. The Teams
//! bot path is the exception: it guards an upstream, so it is matched like a route rule.

use crate::auth::handoff::HANDOFF_PATH;
use crate::auth::{CONNECT_PREFIX, LOGOUT_PATH, SESSION_PATH};
use crate::channel::server::EVENTS_PATH;
use crate::providers::dev::DEV_PREFIX;

/// `GET /_gateway/client.js`.
pub const CLIENT_JS_PATH: &str = "/_gateway/client.js";

/// `GET /_gateway/health`: liveness of the gateway.
pub const HEALTH_PATH: &str = "/_gateway/health";
/// `GET /_gateway/ready`: readiness (store, providers, upstream).
pub const READY_PATH: &str = "/_gateway/ready";
/// Everything under this prefix belongs to the gateway and never reaches the upstream.
pub const GATEWAY_PREFIX: &str = "/_gateway/";

/// What a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route<'a> {
    /// Health answer.
    Health,
    /// Readiness answer.
    Ready,
    /// Session JSON.
    Session,
    /// Popup start.
    Connect {
        /// Provider name from the path.
        provider: &'a str,
        /// Signed ticket from the path.
        ticket: &'a str,
    },
    /// OAuth redirect URI.
    Callback {
        /// Provider name from the path.
        provider: &'a str,
    },
    /// Logout.
    Logout,
    /// A task pane redeeming a handoff code.
    Handoff,
    /// The status channel (WebSocket or SSE).
    Events,
    /// The socket.io status channel.
    SocketIo,
    /// The client script.
    ClientJs,
    /// The Teams bot endpoint (`teams.bot_path`).
    Bot,
    /// The built-in dev provider (path after its prefix).
    DevIdp(&'a str),
    /// Under `/_gateway/` or `/connect/` but nothing the gateway serves.
    NotFound,
    /// Forwarded to an upstream.
    Upstream,
}

impl Route<'_> {
    /// The metrics and log label of this route class.
    pub fn label(self) -> &'static str {
        match self {
            Route::Health => "health",
            Route::Ready => "ready",
            Route::Session => "session",
            Route::Connect { .. } => "connect",
            Route::Callback { .. } => "callback",
            Route::Logout => "logout",
            Route::Handoff => "handoff",
            Route::Events => "events",
            Route::SocketIo => "socketio",
            Route::ClientJs => "client_js",
            Route::Bot => "teams_bot",
            Route::DevIdp(_) => "dev_idp",
            Route::NotFound => "not_found",
            Route::Upstream => "upstream",
        }
    }
}

/// Which route `path` (without the query) is; `socketio` is the configured socket.io path.
pub fn classify<'a>(path: &'a str, socketio: Option<&str>) -> Route<'a> {
    classify_with(path, socketio, None)
}

/// [`classify`], plus the Teams bot path when configured.
pub fn classify_with<'a>(path: &'a str, socketio: Option<&str>, bot: Option<&str>) -> Route<'a> {
    // Every spelling the bot service could route to its handler has its bot token checked.
    if bot.is_some_and(|b| super::rules::is_same_path(path, b)) {
        return Route::Bot;
    }
    match path {
        HEALTH_PATH => return Route::Health,
        READY_PATH => return Route::Ready,
        SESSION_PATH => return Route::Session,
        LOGOUT_PATH => return Route::Logout,
        HANDOFF_PATH => return Route::Handoff,
        EVENTS_PATH => return Route::Events,
        CLIENT_JS_PATH => return Route::ClientJs,
        _ => {}
    }
    if let Some(sio) = socketio {
        if path == sio || path == sio.trim_end_matches('/') {
            return Route::SocketIo;
        }
    }
    if let Some(rest) = path.strip_prefix(DEV_PREFIX) {
        if rest.starts_with('/') {
            return Route::DevIdp(rest);
        }
    }
    if path.starts_with(GATEWAY_PREFIX) {
        return Route::NotFound;
    }
    if let Some(rest) = path.strip_prefix(CONNECT_PREFIX) {
        let mut parts = rest.split('/');
        return match (parts.next(), parts.next(), parts.next()) {
            (Some(p), Some("callback"), None) if !p.is_empty() => Route::Callback { provider: p },
            (Some(p), Some(t), None) if !p.is_empty() && !t.is_empty() => Route::Connect { provider: p, ticket: t },
            _ => Route::NotFound,
        };
    }
    Route::Upstream
}

/// `path` as logs may show it: a connect ticket or Teams user reference (a credential for a
/// sign-in) is replaced by `-`.
pub fn loggable_path(path: &str) -> std::borrow::Cow<'_, str> {
    if let Some(rest) = path.strip_prefix(CONNECT_PREFIX) {
        if let Some((provider, ticket)) = rest.split_once('/') {
            if !ticket.is_empty() && ticket != "callback" {
                return format!("{CONNECT_PREFIX}{provider}/-").into();
            }
        }
    }
    path.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_routes_are_exact() {
        let classify = |p| classify(p, Some("/socket.io/"));
        assert_eq!(classify("/socket.io/"), Route::SocketIo);
        assert_eq!(classify("/_gateway/events"), Route::Events);
        assert_eq!(super::classify("/socket.io/", None), Route::Upstream);
        assert_eq!(classify("/connect/entra/callback"), Route::Callback { provider: "entra" });
        assert_eq!(classify("/connect/entra/abc.def"), Route::Connect { provider: "entra", ticket: "abc.def" });
        assert_eq!(classify("/connect/logout"), Route::Logout);
        assert_eq!(classify("/_gateway/handoff"), Route::Handoff);
        assert_eq!(classify("/_gateway/ready"), Route::Ready);
        assert_eq!(classify("/_gateway/ready/"), Route::NotFound);
        assert_eq!(classify("/_gateway/handoff/"), Route::NotFound);
        assert_eq!(classify("/connect//x"), Route::NotFound);
        assert_eq!(classify("/connect/a/b/c"), Route::NotFound);
        assert_eq!(classify("/_gateway/health/../api"), Route::NotFound);
        assert_eq!(classify("/_gateway/dev/authorize"), Route::DevIdp("/authorize"));
        assert_eq!(classify("/api/x"), Route::Upstream);
        assert_eq!(classify("/_gatewayx"), Route::Upstream);
    }

    #[test]
    fn logs_never_show_a_ticket() {
        assert_eq!(loggable_path("/connect/entra/abc.def"), "/connect/entra/-");
        assert_eq!(loggable_path("/connect/entra/t.abc/x"), "/connect/entra/-");
        assert_eq!(loggable_path("/connect/entra/callback"), "/connect/entra/callback");
        assert_eq!(loggable_path("/connect/logout"), "/connect/logout");
        assert_eq!(loggable_path("/api/x"), "/api/x");
    }

    #[test]
    fn the_bot_path_is_matched_like_a_route_rule() {
        let bot = Some("/api/messages");
        for path in ["/api/messages", "/api/messages/", "/API//Messages", "/api/x/../messages", "/api/%6dessages"] {
            assert_eq!(classify_with(path, None, bot), Route::Bot, "{path}");
        }
        assert_eq!(classify_with("/api/messages/x", None, bot), Route::Upstream);
        assert_eq!(classify_with("/api/messages", None, None), Route::Upstream);
    }
}
