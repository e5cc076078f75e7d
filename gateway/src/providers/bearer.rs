//! Entra access tokens sent as `Authorization: Bearer` by Office and Teams single sign-on (NAA,
//! `Office.auth.getAccessToken`, Teams `getAuthToken`, API-based message extensions): validated
//! here so the request counts as signed in, and the add-in server validates nothing.
//!
//! ```text
//!  token ─ unverified tid ─▶ tenant allowed? ─▶ keys of {authority}/{tid}/discovery/v2.0/keys
//!        ─▶ RS256 signature, exp/nbf (5 min skew) ─▶ iss v1 or v2 of that tid ─▶ aud ─▶ scp
//!        ─▶ identity (oid, email, name), cached by the token's hash until it expires
//! ```
//!
//! # Invariants
//! The algorithm is RS256 only, whatever the token says; keys come only from the authority's
//! JWKS of a tenant the provider admits (so a token cannot make the gateway fetch keys of
//! arbitrary tenants); every refusal is a [`BearerError`] and never a fall-through to the cookie.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use moka::future::Cache;
use secrecy::SecretString;
use serde::Deserialize;
use url::Url;

use super::http_client::HttpClient;
use super::id_token::{string_list, Audience};
use super::jwks::JwksCache;
use crate::config::types::ProviderName;
use crate::config::{BearerConfig, SignInRules};
use crate::identity::Identity;
use crate::store::StoredTokens;

/// Clock skew tolerated on `exp` and `nbf`, as Microsoft's libraries do.
pub const SKEW: Duration = Duration::from_secs(300);
/// Longest bearer looked at; Entra access tokens are a few KiB.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;
/// Validated tokens remembered (by hash) at most.
const CACHE_CAPACITY: u64 = 100_000;
/// Tenants whose key caches are kept at most (multi-tenant providers with `allowed_tenants = ["*"]`).
const MAX_TENANT_KEYS: usize = 1024;

/// Why a bearer token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BearerError {
    /// Not a JWS, too long, or unreadable claims.
    #[error("the bearer token is malformed")]
    Malformed,
    /// Not RS256, or no key id.
    #[error("the bearer token uses a refused signature algorithm")]
    AlgorithmRefused,
    /// The token's tenant is not one the provider admits.
    #[error("the bearer token's tenant is not allowed")]
    TenantNotAllowed,
    /// No key of the tenant has the token's key id.
    #[error("the bearer token is signed with an unknown key")]
    UnknownKey,
    /// The tenant's keys could not be fetched.
    #[error("the identity provider's keys are unavailable")]
    KeysUnavailable,
    /// The signature does not verify.
    #[error("the bearer token's signature does not verify")]
    BadSignature,
    /// Past `exp` or before `nbf` (beyond the skew).
    #[error("the bearer token has expired or is not valid yet")]
    Expired,
    /// `iss` is neither the v1 nor the v2 issuer of the token's tenant.
    #[error("the bearer token comes from another issuer")]
    WrongIssuer,
    /// `aud` is none of `api_audiences`.
    #[error("the bearer token was issued for another API")]
    WrongAudience,
    /// `scp` holds none of `bearer_scopes`.
    #[error("the bearer token lacks the required scope")]
    MissingScope,
}

#[derive(Deserialize)]
struct TenantOnly {
    tid: Option<String>,
}

#[derive(Deserialize)]
struct AccessClaims {
    iss: String,
    tid: Option<String>,
    oid: Option<String>,
    sub: Option<String>,
    #[serde(default)]
    aud: Audience,
    scp: Option<String>,
    exp: u64,
    name: Option<String>,
    preferred_username: Option<String>,
    upn: Option<String>,
    email: Option<String>,
    #[serde(default)]
    groups: serde_json::Value,
    #[serde(default)]
    roles: serde_json::Value,
}

/// Validates the bearer tokens of one `accept_bearer` provider.
pub struct BearerVerifier {
    provider: ProviderName,
    authority: String,
    /// The configured tenant when it is one tenant; `None` for common/organizations/consumers.
    single_tenant: Option<String>,
    tenants: Option<Vec<String>>,
    config: BearerConfig,
    http: Arc<dyn HttpClient>,
    keys: std::sync::Mutex<HashMap<String, Arc<JwksCache>>>,
    verified: Cache<[u8; 32], Arc<StoredTokens>>,
}

struct UntilExpiry;

impl moka::Expiry<[u8; 32], Arc<StoredTokens>> for UntilExpiry {
    fn expire_after_create(&self, _k: &[u8; 32], v: &Arc<StoredTokens>, _now: std::time::Instant) -> Option<Duration> {
        Some(v.access_expires_at.and_then(|t| t.duration_since(SystemTime::now()).ok()).unwrap_or_default())
    }
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl BearerVerifier {
    /// For `provider` at `authority` (tenant as configured; `sign_in` holds `allowed_tenants`).
    pub fn new(
        provider: ProviderName,
        authority: &Url,
        tenant: &str,
        sign_in: &SignInRules,
        config: BearerConfig,
        http: Arc<dyn HttpClient>,
    ) -> Self {
        let multi = ["common", "organizations", "consumers"].contains(&tenant.to_ascii_lowercase().as_str());
        Self {
            provider,
            authority: authority.as_str().trim_end_matches('/').to_owned(),
            single_tenant: (!multi).then(|| tenant.to_ascii_lowercase()),
            tenants: sign_in.tenants.clone(),
            config,
            http,
            keys: std::sync::Mutex::new(HashMap::new()),
            verified: Cache::builder().max_capacity(CACHE_CAPACITY).expire_after(UntilExpiry).build(),
        }
    }

    /// The scopes one of which a token must carry.
    pub fn scopes(&self) -> &[String] {
        &self.config.scopes
    }

    /// The signed-in user of `token`, from the cache when it was validated before; the flag
    /// says whether it was validated just now (for metrics).
    pub async fn verify(&self, token: &str) -> Result<(Arc<StoredTokens>, bool), BearerError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(BearerError::Malformed);
        }
        let hash: [u8; 32] = ring::digest::digest(&ring::digest::SHA256, token.as_bytes())
            .as_ref()
            .try_into()
            .map_err(|_| BearerError::Malformed)?;
        if let Some(hit) = self.verified.get(&hash).await {
            return Ok((hit, false));
        }
        let tokens = Arc::new(self.validate(token).await?);
        self.verified.insert(hash, Arc::clone(&tokens)).await;
        Ok((tokens, true))
    }

    async fn validate(&self, token: &str) -> Result<StoredTokens, BearerError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| BearerError::Malformed)?;
        if header.alg != Algorithm::RS256 {
            return Err(BearerError::AlgorithmRefused);
        }
        let kid = header.kid.ok_or(BearerError::AlgorithmRefused)?;
        let tid = unverified_tenant(token)?;
        if !self.admits(&tid) {
            return Err(BearerError::TenantNotAllowed);
        }
        let jwk = self.tenant_keys(&tid)?.key(Some(&kid), self.http.as_ref()).await.map_err(|e| {
            if e.is_outage() {
                BearerError::KeysUnavailable
            } else {
                BearerError::UnknownKey
            }
        })?;
        let key = DecodingKey::from_jwk(&jwk).map_err(|_| BearerError::AlgorithmRefused)?;
        let mut v = Validation::new(Algorithm::RS256);
        v.algorithms = vec![Algorithm::RS256];
        v.leeway = SKEW.as_secs();
        v.validate_nbf = true;
        v.validate_aud = false; // checked below against api_audiences
        v.set_required_spec_claims(&["exp", "iss"]);
        let claims = jsonwebtoken::decode::<AccessClaims>(token, &key, &v)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind;
                match e.kind() {
                    ErrorKind::InvalidSignature => BearerError::BadSignature,
                    ErrorKind::ExpiredSignature | ErrorKind::ImmatureSignature => BearerError::Expired,
                    ErrorKind::InvalidAlgorithm | ErrorKind::InvalidKeyFormat => BearerError::AlgorithmRefused,
                    _ => BearerError::Malformed,
                }
            })?
            .claims;
        let token_tid = claims.tid.as_deref().map(str::to_ascii_lowercase);
        if token_tid.as_deref() != Some(tid.as_str()) {
            return Err(BearerError::WrongIssuer);
        }
        let v1 = format!("https://sts.windows.net/{tid}/");
        let v2 = format!("{}/{tid}/v2.0", self.authority);
        if !claims.iss.eq_ignore_ascii_case(&v1) && !claims.iss.eq_ignore_ascii_case(&v2) {
            return Err(BearerError::WrongIssuer);
        }
        if !self.config.audiences.iter().any(|a| claims.aud.contains(a)) {
            return Err(BearerError::WrongAudience);
        }
        let scopes = claims.scp.as_deref().unwrap_or_default();
        if !scopes.split(' ').any(|s| self.config.scopes.iter().any(|want| want == s)) {
            return Err(BearerError::MissingScope);
        }
        let subject = claims.oid.or(claims.sub).ok_or(BearerError::Malformed)?;
        let email = claims.preferred_username.clone().or(claims.upn.clone()).or(claims.email);
        Ok(StoredTokens {
            identity: Identity {
                provider: self.provider.clone(),
                subject,
                email,
                preferred_username: claims.preferred_username.or(claims.upn),
                name: claims.name,
                tenant: Some(tid),
                groups: string_list(&claims.groups),
                roles: string_list(&claims.roles),
            },
            access_token: SecretString::from(token.to_owned()),
            refresh_token: None,
            access_expires_at: Some(UNIX_EPOCH + Duration::from_secs(claims.exp.max(now_secs()))),
            signed_in_at: SystemTime::now(),
            header_values: Default::default(),
        })
    }

    /// Whether the provider admits tenant `tid` (lower-case).
    fn admits(&self, tid: &str) -> bool {
        if let Some(only) = &self.single_tenant {
            return only == tid;
        }
        self.tenants.as_ref().is_none_or(|list| list.iter().any(|t| t == tid))
    }

    fn tenant_keys(&self, tid: &str) -> Result<Arc<JwksCache>, BearerError> {
        let mut keys = self.keys.lock().map_err(|_| BearerError::KeysUnavailable)?;
        if let Some(cache) = keys.get(tid) {
            return Ok(Arc::clone(cache));
        }
        if keys.len() >= MAX_TENANT_KEYS {
            keys.clear();
        }
        let uri = Url::parse(&format!("{}/{tid}/discovery/v2.0/keys", self.authority))
            .map_err(|_| BearerError::TenantNotAllowed)?;
        let cache = Arc::new(JwksCache::new(uri));
        keys.insert(tid.to_owned(), Arc::clone(&cache));
        Ok(cache)
    }
}

/// The `tid` claim, read before the signature is checked: it only chooses whose keys to try.
fn unverified_tenant(token: &str) -> Result<String, BearerError> {
    let payload = token.split('.').nth(1).ok_or(BearerError::Malformed)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).map_err(|_| BearerError::Malformed)?;
    let claims: TenantOnly = serde_json::from_slice(&bytes).map_err(|_| BearerError::Malformed)?;
    let tid = claims.tid.ok_or(BearerError::Malformed)?.to_ascii_lowercase();
    // A tenant id is a GUID (or, for a few Microsoft tenants, a domain); nothing else reaches a URL.
    if tid.is_empty() || tid.len() > 64 || !tid.chars().all(|c| c.is_ascii_alphanumeric() || "-.".contains(c)) {
        return Err(BearerError::Malformed);
    }
    Ok(tid)
}

/// The token of an `Authorization: Bearer` header value (scheme case-insensitive, RFC 6750 §2.1).
pub fn bearer_of(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_values_and_tenants_parse_strictly() {
        assert_eq!(bearer_of("Bearer abc.def.ghi"), Some("abc.def.ghi"));
        assert_eq!(bearer_of("bearer  abc "), Some("abc"));
        assert_eq!(bearer_of("Basic abc"), None);
        assert_eq!(bearer_of("Bearer "), None);
        assert_eq!(bearer_of("Bearer"), None);
        let token = |claims: &str| format!("e30.{}.sig", URL_SAFE_NO_PAD.encode(claims));
        assert_eq!(unverified_tenant(&token(r#"{"tid":"AbC-1"}"#)), Ok("abc-1".to_owned()));
        for bad in [r#"{"tid":"../x"}"#, r#"{"tid":"a/b"}"#, r#"{}"#, r#"{"tid":""}"#, "not json"] {
            assert_eq!(unverified_tenant(&token(bad)), Err(BearerError::Malformed), "{bad}");
        }
    }
}
