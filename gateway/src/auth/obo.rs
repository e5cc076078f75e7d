//! On-behalf-of tokens for routes with `obo_scopes`: the signed-in user's Entra access token
//! (a bearer from single sign-on, or the popup flow's) is exchanged for a downstream token that
//! is forwarded as the access token. Cached in the token store per user, tenant and scope set
//! until five minutes before it expires (sealed in Redis, so every gateway shares it); at most
//! one exchange per key is in flight in this process.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::AuthService;
use crate::providers::obo::{self, OboError, OboRequest};
use crate::session::Purpose;
use crate::store::StoredTokens;

/// A cached token is not used in its last five minutes (Entra's own margin).
pub const EXPIRY_MARGIN: Duration = Duration::from_secs(300);

#[derive(Serialize, Deserialize)]
struct Cached {
    token: String,
    expires_ms: u64,
}

/// In-flight exchanges by cache key: concurrent requests of one user wait for one exchange.
pub(crate) type OboLocks = moka::future::Cache<String, Arc<tokio::sync::Mutex<()>>>;

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl AuthService {
    /// `tokens` with its access token replaced by an on-behalf-of token for `scopes`.
    pub(crate) async fn on_behalf_of(
        &self,
        tokens: &StoredTokens,
        scopes: &[String],
    ) -> Result<StoredTokens, OboError> {
        let identity = &tokens.identity;
        let provider =
            self.providers.get(identity.provider.as_str()).ok_or(OboError::Refused { error: "not_entra".into() })?;
        let (Some(authority), Some(secret), Some(tenant)) =
            (&provider.entra_authority, provider.client_secret(), identity.tenant.as_deref())
        else {
            return Err(OboError::Refused { error: "unauthorized_client".into() });
        };
        let mut sorted: Vec<&str> = scopes.iter().map(String::as_str).collect();
        sorted.sort_unstable();
        let material = format!("obo\0{}\0{tenant}\0{}\0{}", identity.provider, identity.subject, sorted.join(" "));
        let key = self.keys.digest(Purpose::StoreKey, material.as_bytes());
        let with = |token: String| StoredTokens {
            identity: identity.clone(),
            access_token: SecretString::from(token),
            refresh_token: None,
            access_expires_at: None,
            signed_in_at: tokens.signed_in_at,
            header_values: Default::default(),
        };
        if let Some(token) = self.cached_obo(&key).await {
            return Ok(with(token));
        }
        let lock = self.obo_locks.get_with(key.clone(), async { Arc::new(tokio::sync::Mutex::new(())) }).await;
        let _one_at_a_time = lock.lock().await;
        if let Some(token) = self.cached_obo(&key).await {
            return Ok(with(token));
        }
        let token_url = format!("{authority}/{tenant}/oauth2/v2.0/token");
        let request = OboRequest {
            token_url: &token_url,
            client_id: &provider.client_id,
            client_secret: secret,
            assertion: &tokens.access_token,
            scopes,
        };
        let start = std::time::SystemTime::now();
        let result = obo::exchange(self.providers.http(), &request).await;
        let step = match &result {
            Ok(_) => "obo_exchanged",
            Err(OboError::UserActionRequired { .. }) => "obo_user_action_required",
            Err(OboError::Refused { .. }) => "obo_refused",
            Err(OboError::Unavailable) => "obo_unavailable",
        };
        self.metrics.observe_login(provider.name.as_str(), step);
        let outcome = if result.is_ok() { "ok" } else { step };
        self.note_step("signin.obo", provider.name.as_str(), outcome, start);
        let got = result?;
        if let Some(keep) = got.expires_in.checked_sub(EXPIRY_MARGIN).filter(|d| !d.is_zero()) {
            let expires_ms = now_ms().saturating_add(u64::try_from(keep.as_millis()).unwrap_or(u64::MAX));
            let value = Cached { token: got.access_token.expose_secret().to_owned(), expires_ms };
            if let Ok(bytes) = serde_json::to_vec(&value) {
                // A store outage only costs the next request another exchange.
                let _ = self.store.put_cached(&key, bytes, keep).await;
            }
        }
        Ok(with(got.access_token.expose_secret().to_owned()))
    }

    async fn cached_obo(&self, key: &str) -> Option<String> {
        let bytes = self.store.cached(key).await.ok().flatten()?;
        let cached: Cached = serde_json::from_slice(&bytes).ok()?;
        (cached.expires_ms > now_ms()).then_some(cached.token)
    }
}

#[async_trait::async_trait]
impl crate::teams::TeamsSso for AuthService {
    async fn sign_in_with_token(
        &self,
        provider: &str,
        token: &str,
        scopes: &[String],
    ) -> Result<Arc<StoredTokens>, String> {
        let verifier = self.providers.get(provider).and_then(|p| p.bearer.as_ref()).ok_or("no bearer rules")?;
        let (tokens, _) = verifier.verify(token).await.map_err(|e| e.to_string())?;
        let exchanged = self.on_behalf_of(&tokens, scopes).await.map_err(|e| e.to_string())?;
        Ok(Arc::new(exchanged))
    }
}
