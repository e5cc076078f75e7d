//! Classifies a request path into the gateway's own routes or the upstream.

/// `GET /_gateway/health`: liveness of the gateway.
pub const HEALTH_PATH: &str = "/_gateway/health";

/// What a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// The gateway's health answer.
    Health,
    /// Anything else: forwarded to an upstream.
    Upstream,
}

impl Route {
    /// The metrics and log label of this route class.
    pub fn label(self) -> &'static str {
        match self {
            Route::Health => "health",
            Route::Upstream => "upstream",
        }
    }
}

/// Which route `path` (without the query) is.
pub fn classify(path: &str) -> Route {
    match path {
        HEALTH_PATH => Route::Health,
        _ => Route::Upstream,
    }
}
