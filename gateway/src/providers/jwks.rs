//! A provider's signing keys (JWKS), cached, refetched on an unknown `kid` at most once a minute.

use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{Jwk, JwkSet};
use tokio::sync::Mutex;
use url::Url;

use super::http_client::{HttpClient, HttpError};

/// Least time between two JWKS fetches caused by unknown key ids.
pub const REFETCH_INTERVAL: Duration = Duration::from_secs(60);

/// Why no key could be found.
#[derive(Debug, Clone, thiserror::Error)]
pub enum JwksError {
    /// The JWKS endpoint failed.
    #[error("cannot fetch the provider's keys: {0}")]
    Fetch(#[source] HttpError),
    /// It answered, but not a JWKS.
    #[error("the provider's key set is not valid JSON Web Keys (status {0})")]
    Invalid(u16),
    /// No key has this id (after a refetch, if one was allowed).
    #[error("no provider key has the token's key id")]
    UnknownKid,
}

struct Cached {
    set: Option<JwkSet>,
    fetched_at: Option<Instant>,
}

/// The key cache of one provider.
pub struct JwksCache {
    uri: Url,
    state: Mutex<Cached>,
}

impl JwksCache {
    /// An empty cache for the keys at `uri`; nothing is fetched until a token needs a key.
    pub fn new(uri: Url) -> Self {
        Self { uri, state: Mutex::new(Cached { set: None, fetched_at: None }) }
    }

    /// The key for `kid` (or the only key, when the token names none).
    pub async fn key(&self, kid: Option<&str>, http: &dyn HttpClient) -> Result<Jwk, JwksError> {
        let mut state = self.state.lock().await;
        if let Some(k) = state.set.as_ref().and_then(|s| find(s, kid)) {
            return Ok(k);
        }
        let may_fetch = state.fetched_at.is_none_or(|t| t.elapsed() >= REFETCH_INTERVAL);
        if !may_fetch {
            return Err(JwksError::UnknownKid);
        }
        state.fetched_at = Some(Instant::now());
        let req = http::Request::get(self.uri.as_str())
            .header(http::header::ACCEPT, "application/json")
            .body(Vec::new())
            .map_err(|e| JwksError::Fetch(HttpError::Transport(e.to_string())))?;
        let resp = http.send(req).await.map_err(JwksError::Fetch)?;
        let status = resp.status().as_u16();
        if status != 200 {
            return Err(JwksError::Invalid(status));
        }
        let set: JwkSet = serde_json::from_slice(resp.body()).map_err(|_| JwksError::Invalid(status))?;
        let found = find(&set, kid);
        state.set = Some(set);
        found.ok_or(JwksError::UnknownKid)
    }
}

fn find(set: &JwkSet, kid: Option<&str>) -> Option<Jwk> {
    match kid {
        Some(kid) => set.find(kid).cloned(),
        None if set.keys.len() == 1 => set.keys.first().cloned(),
        None => None,
    }
}
