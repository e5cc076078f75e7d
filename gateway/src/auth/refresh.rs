//! Refresh tokens: used only when an access token expires within `token_ttl`, and at most one
//! refresh per session and provider at a time (concurrent requests wait for it).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use super::AuthService;
use crate::config::types::ProviderName;
use crate::providers::exchange;
use crate::session::SessionId;
use crate::store::StoredTokens;

/// An access token this close to expiry is refreshed before it is forwarded.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(30);

type RefreshLock = Arc<tokio::sync::Mutex<()>>;

/// Per-(session, provider) locks, so one refresh runs at a time.
#[derive(Default)]
pub struct RefreshLocks {
    locks: Mutex<HashMap<(SessionId, ProviderName), RefreshLock>>,
}

fn expiring(t: &StoredTokens) -> bool {
    t.refresh_token.is_some() && t.access_expires_at.is_some_and(|at| at <= SystemTime::now() + REFRESH_MARGIN)
}

impl AuthService {
    /// `tokens`, or fresher ones if the access token was about to expire and could be refreshed.
    pub async fn fresh_tokens(&self, session: &SessionId, tokens: Arc<StoredTokens>) -> Arc<StoredTokens> {
        if !expiring(&tokens) {
            return tokens;
        }
        let provider = tokens.identity.provider.clone();
        let key = (*session, provider.clone());
        let lock = {
            let mut map = self.refresh_locks.locks.lock().unwrap_or_else(|p| p.into_inner());
            Arc::clone(map.entry(key.clone()).or_default())
        };
        let guard = lock.lock().await;
        // Someone else may have refreshed while this request waited.
        let current = match self.store.tokens(session, &provider).await {
            Ok(Some(t)) => t,
            _ => return tokens,
        };
        let result = if expiring(&current) { self.refresh(session, &current).await } else { Some(current) };
        drop(guard);
        self.refresh_locks.locks.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
        result.unwrap_or(tokens)
    }

    async fn refresh(&self, session: &SessionId, old: &Arc<StoredTokens>) -> Option<Arc<StoredTokens>> {
        let p = self.providers.get(old.identity.provider.as_str())?;
        let refresh_token = old.refresh_token.as_ref()?;
        let resolved = p.resolve(self.providers.http()).await.ok()?;
        let redirect_uri = self.redirect_uri(p.name.as_str());
        match exchange::refresh(p, &resolved, self.providers.http_arc(), &redirect_uri, refresh_token).await {
            Ok(set) => {
                let new = StoredTokens {
                    identity: old.identity.clone(),
                    access_token: set.access_token,
                    refresh_token: set.refresh_token.or_else(|| old.refresh_token.clone()),
                    access_expires_at: set.expires_at,
                    // The lifetime stays anchored at the original sign-in.
                    signed_in_at: old.signed_in_at,
                    header_values: Default::default(),
                };
                self.store.put_tokens(session, new).await.ok()?;
                tracing::debug!(provider = %p.name, session = %session.log_tag(), "access token refreshed");
                self.store.tokens(session, &p.name).await.ok().flatten()
            }
            Err(e) => {
                tracing::warn!(provider = %p.name, error = %e, "token refresh failed");
                None
            }
        }
    }
}
