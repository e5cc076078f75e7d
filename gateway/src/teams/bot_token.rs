//! Bot Framework request checks: the `Authorization: Bearer` JWT of every request to `bot_path`,
//! against the Bot Framework OpenID metadata (keys cached, refetched on an unknown key id at most
//! once a minute; RS256 family only; issuer, audience = app id, 5 minutes skew on `exp` and
//! `nbf`, `serviceurl` equal to the activity's, key endorsed for `msteams`).
//!
//! A single-tenant bot (`[teams] tenant`) also gets tokens that Entra issues for its tenant
//! (`https://sts.windows.net/{tid}/` or `{authority}/{tid}/v2.0`), signed with the tenant's keys
//! (no endorsements there). The token's `iss` picks the key source; the signature must then
//! verify with that source's keys, so naming an issuer gains an attacker nothing.

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

/// Where one family of bot tokens gets its keys, and the issuers it stands for.
struct KeySource {
    metadata: Url,
    issuers: Vec<String>,
    /// Bot Framework keys say which channels they sign for; Entra keys do not.
    needs_endorsement: bool,
    keys: Mutex<Keys>,
}

impl KeySource {
    fn new(metadata: Url, issuers: Vec<String>, needs_endorsement: bool) -> Self {
        Self {
            metadata,
            issuers,
            needs_endorsement,
            keys: Mutex::new(Keys { keys: Vec::new(), fetched: None, failed: false }),
        }
    }
}

/// Verifies bot tokens for one app id.
pub struct BotTokenVerifier {
    app_id: String,
    http: Arc<dyn HttpClient>,
    sources: Vec<KeySource>,
}

#[derive(Deserialize)]
struct IssuerOnly {
    iss: Option<String>,
}

#[derive(Deserialize)]
struct Claims {
    serviceurl: Option<String>,
}

impl BotTokenVerifier {
    /// For `app_id`, with keys from the Bot Framework OpenID metadata at `metadata`, and from
    /// `tenant`'s Entra metadata at `authority` when the bot is single-tenant.
    pub fn new(metadata: Url, app_id: String, tenant: Option<&(String, Url)>, http: Arc<dyn HttpClient>) -> Self {
        let mut sources = vec![KeySource::new(metadata, vec![BOT_FRAMEWORK_ISSUER.to_owned()], true)];
        if let Some((tid, authority)) = tenant {
            let base = authority.as_str().trim_end_matches('/');
            let entra_metadata = Url::parse(&format!("{base}/{tid}/v2.0/.well-known/openid-configuration"));
            if let Ok(m) = entra_metadata {
                let issuers = vec![format!("https://sts.windows.net/{tid}/"), format!("{base}/{tid}/v2.0")];
                sources.push(KeySource::new(m, issuers, false));
            }
        }
        Self { app_id, http, sources }
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
        let source = self.source_of(token)?;
        let (jwk, endorsed) = self.key(source, &kid).await?;
        if source.needs_endorsement && !endorsed {
            return Err(BotTokenError::NotEndorsed);
        }
        let key = DecodingKey::from_jwk(&jwk).map_err(|_| BotTokenError::Malformed)?;
        let mut v = Validation::new(header.alg);
        v.leeway = SKEW.as_secs();
        // A token not valid yet (`nbf` beyond the skew) is refused like an expired one.
        v.validate_nbf = true;
        v.set_issuer(&source.issuers);
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

    /// The key source of the issuer the token names (unverified: only a choice of keys).
    fn source_of(&self, token: &str) -> Result<&KeySource, BotTokenError> {
        let payload = token.split('.').nth(1).ok_or(BotTokenError::Malformed)?;
        let bytes = base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
            .map_err(|_| BotTokenError::Malformed)?;
        let claims: IssuerOnly = serde_json::from_slice(&bytes).map_err(|_| BotTokenError::Malformed)?;
        let iss = claims.iss.unwrap_or_default();
        self.sources.iter().find(|s| s.issuers.contains(&iss)).ok_or(BotTokenError::Invalid("wrong issuer"))
    }

    async fn key(&self, source: &KeySource, kid: &str) -> Result<(Jwk, bool), BotTokenError> {
        let mut keys = source.keys.lock().await;
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
        match self.fetch(&source.metadata).await {
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

    async fn fetch(&self, metadata: &Url) -> Result<Vec<BotKey>, BotTokenError> {
        let get = |url: &str| http::Request::get(url).body(Vec::new()).map_err(|_| BotTokenError::KeysUnavailable);
        let meta = self.http.send(get(metadata.as_str())?).await.map_err(|_| BotTokenError::KeysUnavailable)?;
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
