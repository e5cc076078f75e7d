//! ID-token checks (OpenID Connect Core §3.1.3.7): signature by a provider key with an allowed
//! algorithm, then `iss`, `aud`, `azp`, `exp`, `iat` and `nonce`.
//!
//! # Invariants
//! The algorithm is never taken from the token alone: it must be in [`ALLOWED_ALGORITHMS`] and
//! match the key's type, so `alg=none` and HMAC-with-a-public-key are refused.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::jwk::{AlgorithmParameters, Jwk};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use super::http_client::HttpClient;
use super::jwks::{JwksCache, JwksError};

/// Signature algorithms accepted on ID tokens.
pub const ALLOWED_ALGORITHMS: [Algorithm; 3] = [Algorithm::RS256, Algorithm::PS256, Algorithm::ES256];
/// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds.
pub const LEEWAY_SECS: u64 = 60;

/// Why an ID token was refused.
#[derive(Debug, Clone, thiserror::Error)]
pub enum IdTokenError {
    /// Not a JWS, or its header is unreadable (this includes `alg=none`).
    #[error("the ID token is malformed")]
    Malformed,
    /// An algorithm outside the allow-list, or one that does not fit the key.
    #[error("the ID token uses a refused signature algorithm")]
    AlgorithmRefused,
    /// The key could not be found or fetched.
    #[error(transparent)]
    Key(#[from] JwksError),
    /// The signature does not verify.
    #[error("the ID token signature does not verify")]
    BadSignature,
    /// `iss` is not the provider's.
    #[error("the ID token issuer is not the provider's")]
    WrongIssuer,
    /// `aud` lacks the client id, or `azp` names another client.
    #[error("the ID token was issued to another client")]
    WrongAudience,
    /// Past `exp` (or before `nbf`).
    #[error("the ID token has expired")]
    Expired,
    /// `iat` in the future.
    #[error("the ID token is issued in the future")]
    IssuedInFuture,
    /// `nonce` missing or not the one sent.
    #[error("the ID token nonce does not match")]
    NonceMismatch,
}

/// The strings of a claim that should be a list of strings (anything else counts as empty, so
/// an odd `groups` claim, such as Entra's overage marker, grants nothing and refuses nothing).
pub fn string_list(claim: &serde_json::Value) -> Vec<String> {
    match claim {
        serde_json::Value::Array(items) => {
            items.iter().filter_map(|v| v.as_str().map(str::to_owned)).take(512).collect()
        }
        _ => Vec::new(),
    }
}

/// The claims the gateway reads.
#[derive(Debug, Clone, Deserialize)]
pub struct IdClaims {
    /// Subject.
    pub sub: String,
    /// Issuer.
    pub iss: String,
    /// Issued at (seconds).
    pub iat: Option<u64>,
    /// Nonce.
    pub nonce: Option<String>,
    /// Authorized party.
    pub azp: Option<String>,
    /// Email.
    pub email: Option<String>,
    /// Whether the provider verified the email.
    pub email_verified: Option<serde_json::Value>,
    /// Display name.
    pub name: Option<String>,
    /// Preferred user name.
    pub preferred_username: Option<String>,
    /// Entra tenant id.
    pub tid: Option<String>,
    /// Group ids (Entra `groups`, or any provider's list of group names).
    #[serde(default)]
    pub groups: serde_json::Value,
    /// App roles (Entra `roles`).
    #[serde(default)]
    pub roles: serde_json::Value,
    /// Audience(s).
    #[serde(default)]
    pub aud: Audience,
}

/// `aud`: one string or a list.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    /// Absent.
    #[default]
    None,
    /// One.
    One(String),
    /// Several.
    Many(Vec<String>),
}

impl Audience {
    /// Whether `id` is one of the audiences.
    pub fn contains(&self, id: &str) -> bool {
        match self {
            Audience::None => false,
            Audience::One(a) => a == id,
            Audience::Many(list) => list.iter().any(|a| a == id),
        }
    }

    fn is_multiple(&self) -> bool {
        matches!(self, Audience::Many(l) if l.len() > 1)
    }
}

/// What an ID token must satisfy.
pub struct Expectations<'a> {
    /// Accepts the `iss` (and `tid`) of a token.
    pub issuer: &'a super::IssuerRule,
    /// The gateway's client id.
    pub client_id: &'a str,
    /// The nonce sent in the authorization request.
    pub nonce: &'a str,
}

fn key_fits(alg: Algorithm, jwk: &Jwk) -> bool {
    let kty_ok = matches!(
        (&jwk.algorithm, alg),
        (AlgorithmParameters::RSA(_), Algorithm::RS256 | Algorithm::PS256)
            | (AlgorithmParameters::EllipticCurve(_), Algorithm::ES256)
    );
    let declared_ok = jwk.common.key_algorithm.is_none_or(|a| format!("{a:?}") == format!("{alg:?}"));
    kty_ok && declared_ok
}

/// Verifies `token` with the provider's keys and returns its claims.
pub async fn verify(
    token: &str,
    keys: &JwksCache,
    http: &dyn HttpClient,
    expect: &Expectations<'_>,
) -> Result<IdClaims, IdTokenError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| IdTokenError::Malformed)?;
    if !ALLOWED_ALGORITHMS.contains(&header.alg) {
        return Err(IdTokenError::AlgorithmRefused);
    }
    let jwk = keys.key(header.kid.as_deref(), http).await?;
    if !key_fits(header.alg, &jwk) {
        return Err(IdTokenError::AlgorithmRefused);
    }
    let key = DecodingKey::from_jwk(&jwk).map_err(|_| IdTokenError::AlgorithmRefused)?;
    let mut validation = Validation::new(header.alg);
    validation.algorithms = vec![header.alg];
    validation.leeway = LEEWAY_SECS;
    validation.validate_nbf = true;
    validation.validate_aud = false; // checked below, with azp
    validation.set_required_spec_claims(&["exp", "sub", "iss"]);
    let data = jsonwebtoken::decode::<IdClaims>(token, &key, &validation).map_err(|e| {
        use jsonwebtoken::errors::ErrorKind;
        match e.kind() {
            ErrorKind::InvalidSignature => IdTokenError::BadSignature,
            ErrorKind::ExpiredSignature | ErrorKind::ImmatureSignature => IdTokenError::Expired,
            ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName | ErrorKind::InvalidKeyFormat => {
                IdTokenError::AlgorithmRefused
            }
            _ => IdTokenError::Malformed,
        }
    })?;
    let claims = data.claims;
    if !expect.issuer.accepts(&claims.iss, claims.tid.as_deref()) {
        return Err(IdTokenError::WrongIssuer);
    }
    if !claims.aud.contains(expect.client_id) {
        return Err(IdTokenError::WrongAudience);
    }
    match &claims.azp {
        Some(azp) if azp != expect.client_id => return Err(IdTokenError::WrongAudience),
        None if claims.aud.is_multiple() => return Err(IdTokenError::WrongAudience),
        _ => {}
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    if claims.iat.is_some_and(|iat| iat > now + LEEWAY_SECS) {
        return Err(IdTokenError::IssuedInFuture);
    }
    // The nonce is not a secret (it travelled through the browser); plain comparison is enough.
    if claims.nonce.as_deref() != Some(expect.nonce) {
        return Err(IdTokenError::NonceMismatch);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests;
