//! A provider's signing keys (JWKS), cached, refetched on an unknown `kid` at most once a minute;
//! after a failed fetch, retried after [`RETRY_AFTER_FAILURE`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{Jwk, JwkSet};
use tokio::sync::Mutex;
use url::Url;

use super::http_client::{HttpClient, HttpError};

/// Least time between two JWKS fetches caused by unknown key ids.
pub const REFETCH_INTERVAL: Duration = Duration::from_secs(60);
/// Least time between a failed JWKS fetch and the next attempt (the keys are needed to sign
/// anyone in, so an outage must not block sign-ins for a whole [`REFETCH_INTERVAL`]).
pub const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(5);

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

impl JwksError {
    /// True when the key set could not be had (the provider is failing), false when it was had
    /// and holds no key for the token.
    pub fn is_outage(&self) -> bool {
        matches!(self, JwksError::Fetch(_) | JwksError::Invalid(_))
    }
}

struct Cached {
    set: Option<JwkSet>,
    fetched_at: Option<Instant>,
    /// Why the last fetch failed; `None` after a successful one.
    failure: Option<JwksError>,
}

/// The key cache of one provider.
pub struct JwksCache {
    uri: Url,
    state: Mutex<Cached>,
    /// Set once a key set has been fetched (readiness reads it without the lock).
    loaded: AtomicBool,
}

impl JwksCache {
    /// An empty cache for the keys at `uri`; nothing is fetched until a token needs a key.
    pub fn new(uri: Url) -> Self {
        Self {
            uri,
            state: Mutex::new(Cached { set: None, fetched_at: None, failure: None }),
            loaded: AtomicBool::new(false),
        }
    }

    /// True once a key set has been fetched.
    pub fn is_loaded(&self) -> bool {
        self.loaded.load(Ordering::Relaxed)
    }

    /// Fetches the key set unless one is held (the warm-up before readiness); a failure is
    /// remembered like any fetch's, so a token check meanwhile waits [`RETRY_AFTER_FAILURE`].
    pub async fn prefetch(&self, http: &dyn HttpClient) -> Result<(), JwksError> {
        let mut state = self.state.lock().await;
        if state.set.is_some() {
            return Ok(());
        }
        state.fetched_at = Some(Instant::now());
        match self.fetch(http).await {
            Ok(set) => {
                state.failure = None;
                state.set = Some(set);
                self.loaded.store(true, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                state.failure = Some(e.clone());
                Err(e)
            }
        }
    }

    /// The key for `kid` (or the only key, when the token names none).
    pub async fn key(&self, kid: Option<&str>, http: &dyn HttpClient) -> Result<Jwk, JwksError> {
        let mut state = self.state.lock().await;
        if let Some(k) = state.set.as_ref().and_then(|s| find(s, kid)) {
            return Ok(k);
        }
        let wait = if state.failure.is_some() { RETRY_AFTER_FAILURE } else { REFETCH_INTERVAL };
        if state.fetched_at.is_some_and(|t| t.elapsed() < wait) {
            // Until the next attempt, a failed fetch is the reason, not the token's key id.
            return Err(state.failure.clone().unwrap_or(JwksError::UnknownKid));
        }
        state.fetched_at = Some(Instant::now());
        let set = match self.fetch(http).await {
            Ok(set) => set,
            Err(e) => {
                state.failure = Some(e.clone());
                return Err(e);
            }
        };
        state.failure = None;
        let found = find(&set, kid);
        state.set = Some(set);
        self.loaded.store(true, Ordering::Relaxed);
        found.ok_or(JwksError::UnknownKid)
    }

    async fn fetch(&self, http: &dyn HttpClient) -> Result<JwkSet, JwksError> {
        let req = http::Request::get(self.uri.as_str())
            .header(http::header::ACCEPT, "application/json")
            .body(Vec::new())
            .map_err(|e| JwksError::Fetch(HttpError::Transport(e.to_string())))?;
        let resp = http.send(req).await.map_err(JwksError::Fetch)?;
        let status = resp.status().as_u16();
        if status != 200 {
            return Err(JwksError::Invalid(status));
        }
        serde_json::from_slice(resp.body()).map_err(|_| JwksError::Invalid(status))
    }
}

fn find(set: &JwkSet, kid: Option<&str>) -> Option<Jwk> {
    match kid {
        Some(kid) => set.find(kid).cloned(),
        None if set.keys.len() == 1 => set.keys.first().cloned(),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use async_trait::async_trait;

    use super::*;
    use crate::providers::http_client::{HttpRequest, HttpResponse};

    /// Serves a one-key JWKS, or fails to connect while `down`; counts requests.
    struct Provider {
        down: AtomicBool,
        requests: AtomicUsize,
    }

    #[async_trait]
    impl HttpClient for Provider {
        async fn send(&self, _req: HttpRequest) -> Result<HttpResponse, HttpError> {
            self.requests.fetch_add(1, Ordering::SeqCst);
            if self.down.load(Ordering::SeqCst) {
                return Err(HttpError::Connect);
            }
            let jwks = r#"{"keys":[{"kty":"RSA","kid":"a","n":"AQAB","e":"AQAB"}]}"#;
            Ok(http::Response::builder().status(200).body(jwks.as_bytes().to_vec()).unwrap())
        }
    }

    /// Moves the last fetch `by` into the past, as if that much time had gone by.
    async fn age(cache: &JwksCache, by: Duration) {
        let mut state = cache.state.lock().await;
        state.fetched_at = state.fetched_at.map(|t| t - by);
    }

    #[tokio::test]
    async fn a_failed_fetch_is_reported_as_an_outage_and_retried_soon() {
        let provider = Provider { down: AtomicBool::new(true), requests: AtomicUsize::new(0) };
        let cache = JwksCache::new(Url::parse("https://idp.test/jwks").unwrap());
        assert!(matches!(cache.key(Some("a"), &provider).await, Err(JwksError::Fetch(HttpError::Connect))));
        // Within the retry pause: the same outage, without asking the provider again.
        let again = cache.key(Some("a"), &provider).await.unwrap_err();
        assert!(again.is_outage(), "{again:?}");
        assert_eq!(provider.requests.load(Ordering::SeqCst), 1);

        provider.down.store(false, Ordering::SeqCst);
        age(&cache, RETRY_AFTER_FAILURE).await;
        assert!(cache.key(Some("a"), &provider).await.is_ok(), "no retry after the failure pause");
        assert_eq!(provider.requests.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn after_a_good_fetch_unknown_key_ids_still_wait_the_full_interval() {
        let provider = Provider { down: AtomicBool::new(false), requests: AtomicUsize::new(0) };
        let cache = JwksCache::new(Url::parse("https://idp.test/jwks").unwrap());
        assert!(matches!(cache.key(Some("rotated"), &provider).await, Err(JwksError::UnknownKid)));
        age(&cache, RETRY_AFTER_FAILURE).await;
        assert!(matches!(cache.key(Some("rotated"), &provider).await, Err(JwksError::UnknownKid)));
        assert_eq!(provider.requests.load(Ordering::SeqCst), 1, "an unknown kid refetched before the interval");
        assert!(cache.key(Some("a"), &provider).await.is_ok());
    }
}
