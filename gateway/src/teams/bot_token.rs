//! Bot Framework request checks: the `Authorization: Bearer` JWT of every request to `bot_path`,
//! against the Bot Framework OpenID metadata (keys cached, refetched on an unknown key id at most
//! once a minute; RS256 family only; issuer, audience = app id, 5 minutes skew, `serviceurl`
//! equal to the activity's, key endorsed for `msteams`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use tokio::sync::Mutex;
use url::Url;

use crate::providers::http_client::HttpClient;

/// The issuer of Bot Framework tokens.
pub const BOT_FRAMEWORK_ISSUER: &str = "https://api.botframework.com";
/// Clock skew allowed.
pub const SKEW: Duration = Duration::from_secs(300);
/// The channel a key must be endorsed for.
pub const ENDORSEMENT: &str = "msteams";
const KEYS_MAX_AGE: Duration = Duration::from_secs(24 * 3600);
const REFETCH_INTERVAL: Duration = Duration::from_secs(60);
/// After a failed fetch, the next one may come this soon (the keys are needed to serve anyone).
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(5);

/// Why a bot request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BotTokenError {
    /// No bearer token.
    #[error("missing bearer token")]
    Missing,
    /// Not a JWT, or an algorithm outside the RS256 family.
    #[error("malformed bot token")]
    Malformed,
    /// No Bot Framework key has its key id.
    #[error("unknown signing key")]
    UnknownKey,
    /// The key is not endorsed for Teams.
    #[error("signing key not endorsed for msteams")]
    NotEndorsed,
    /// Signature, issuer, audience or lifetime wrong.
    #[error("bot token refused: {0}")]
    Invalid(&'static str),
    /// `serviceurl` differs from the activity's `serviceUrl`.
    #[error("bot token serviceurl does not match the activity")]
    ServiceUrlMismatch,
    /// The metadata or keys could not be fetched.
    #[error("Bot Framework keys unavailable")]
    KeysUnavailable,
}

struct BotKey {
    jwk: Jwk,
    kid: String,
    endorsements: Vec<String>,
}

struct Keys {
    keys: Vec<BotKey>,
    fetched: Option<Instant>,
    failed: bool,
}

/// Verifies bot tokens for one app id.
pub struct BotTokenVerifier {
    metadata: Url,
    app_id: String,
    http: Arc<dyn HttpClient>,
    keys: Mutex<Keys>,
}

#[derive(Deserialize)]
struct Claims {
    serviceurl: Option<String>,
}

impl BotTokenVerifier {
    /// For `app_id`, with keys from the OpenID metadata at `metadata`.
    pub fn new(metadata: Url, app_id: String, http: Arc<dyn HttpClient>) -> Self {
        Self { metadata, app_id, http, keys: Mutex::new(Keys { keys: Vec::new(), fetched: None, failed: false }) }
    }

    /// Checks the `Authorization` header value for an activity from `service_url`.
    pub async fn verify(&self, authorization: Option<&str>, service_url: Option<&str>) -> Result<(), BotTokenError> {
        let token = authorization
            .and_then(|a| a.strip_prefix("Bearer ").or_else(|| a.strip_prefix("bearer ")))
            .ok_or(BotTokenError::Missing)?;
        let header = jsonwebtoken::decode_header(token).map_err(|_| BotTokenError::Malformed)?;
        if !matches!(header.alg, Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512) {
            return Err(BotTokenError::Malformed);
        }
        let kid = header.kid.ok_or(BotTokenError::Malformed)?;
        let (jwk, endorsed) = self.key(&kid).await?;
        if !endorsed {
            return Err(BotTokenError::NotEndorsed);
        }
        let key = DecodingKey::from_jwk(&jwk).map_err(|_| BotTokenError::Malformed)?;
        let mut v = Validation::new(header.alg);
        v.leeway = SKEW.as_secs();
        // A token not valid yet (`nbf` beyond the skew) is refused like an expired one.
        v.validate_nbf = true;
        v.set_issuer(&[BOT_FRAMEWORK_ISSUER]);
        v.set_audience(&[self.app_id.as_str()]);
        v.set_required_spec_claims(&["exp", "iss", "aud"]);
        let data = jsonwebtoken::decode::<Claims>(token, &key, &v).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            BotTokenError::Invalid(match e.kind() {
                ErrorKind::InvalidSignature => "bad signature",
                ErrorKind::ExpiredSignature | ErrorKind::ImmatureSignature => "expired",
                ErrorKind::InvalidIssuer => "wrong issuer",
                ErrorKind::InvalidAudience => "wrong audience",
                _ => "malformed claims",
            })
        })?;
        let norm = |u: &str| u.trim_end_matches('/').to_ascii_lowercase();
        match (data.claims.serviceurl.as_deref(), service_url) {
            (Some(claim), Some(activity)) if norm(claim) == norm(activity) => Ok(()),
            _ => Err(BotTokenError::ServiceUrlMismatch),
        }
    }

    async fn key(&self, kid: &str) -> Result<(Jwk, bool), BotTokenError> {
        let mut keys = self.keys.lock().await;
        let fresh = keys.fetched.is_some_and(|t| t.elapsed() < KEYS_MAX_AGE);
        if fresh {
            if let Some(k) = keys.keys.iter().find(|k| k.kid == kid) {
                return Ok((k.jwk.clone(), k.endorsements.iter().any(|e| e == ENDORSEMENT)));
            }
        }
        let wait = if keys.failed { RETRY_AFTER_FAILURE } else { REFETCH_INTERVAL };
        if keys.fetched.is_some_and(|t| t.elapsed() < wait) {
            return Err(if keys.failed { BotTokenError::KeysUnavailable } else { BotTokenError::UnknownKey });
        }
        keys.fetched = Some(Instant::now());
        match self.fetch().await {
            Ok(k) => {
                keys.keys = k;
                keys.failed = false;
            }
            Err(e) => {
                keys.failed = true;
                return Err(e);
            }
        }
        keys.keys
            .iter()
            .find(|k| k.kid == kid)
            .map(|k| (k.jwk.clone(), k.endorsements.iter().any(|e| e == ENDORSEMENT)))
            .ok_or(BotTokenError::UnknownKey)
    }

    async fn fetch(&self) -> Result<Vec<BotKey>, BotTokenError> {
        let get = |url: &str| http::Request::get(url).body(Vec::new()).map_err(|_| BotTokenError::KeysUnavailable);
        let meta = self.http.send(get(self.metadata.as_str())?).await.map_err(|_| BotTokenError::KeysUnavailable)?;
        let meta: serde_json::Value =
            serde_json::from_slice(meta.body()).map_err(|_| BotTokenError::KeysUnavailable)?;
        let jwks_uri = meta["jwks_uri"].as_str().ok_or(BotTokenError::KeysUnavailable)?;
        let set = self.http.send(get(jwks_uri)?).await.map_err(|_| BotTokenError::KeysUnavailable)?;
        let set: serde_json::Value = serde_json::from_slice(set.body()).map_err(|_| BotTokenError::KeysUnavailable)?;
        let mut out = Vec::new();
        for k in set["keys"].as_array().ok_or(BotTokenError::KeysUnavailable)? {
            let Ok(jwk) = serde_json::from_value::<Jwk>(k.clone()) else { continue };
            let Some(kid) = k["kid"].as_str() else { continue };
            let endorsements = k["endorsements"]
                .as_array()
                .map(|a| a.iter().filter_map(|e| e.as_str().map(str::to_owned)).collect())
                .unwrap_or_default();
            out.push(BotKey { jwk, kid: kid.to_owned(), endorsements });
        }
        Ok(out)
    }
}
