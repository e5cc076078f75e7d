//! OIDC discovery (OpenID Connect Discovery 1.0 §4): fetched on first use, cached on success.

use serde::Deserialize;
use url::Url;

use super::http_client::{HttpClient, HttpError};
use super::{Endpoints, IssuerRule, UserSource};

/// Why discovery failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DiscoveryError {
    /// The document could not be fetched.
    #[error("cannot fetch the discovery document: {0}")]
    Fetch(#[source] HttpError),
    /// Not a usable document.
    #[error("the discovery document is not usable: {0}")]
    Invalid(String),
}

#[derive(Deserialize)]
struct Document {
    issuer: String,
    authorization_endpoint: Url,
    token_endpoint: Url,
    userinfo_endpoint: Option<Url>,
    jwks_uri: Url,
    revocation_endpoint: Option<Url>,
}

/// Fetches `{issuer}/.well-known/openid-configuration` and checks it names the same issuer.
pub async fn discover(issuer: &Url, http: &dyn HttpClient) -> Result<Endpoints, DiscoveryError> {
    let base = issuer.as_str().trim_end_matches('/');
    let req = http::Request::get(format!("{base}/.well-known/openid-configuration"))
        .header(http::header::ACCEPT, "application/json")
        .body(Vec::new())
        .map_err(|e| DiscoveryError::Invalid(e.to_string()))?;
    let resp = http.send(req).await.map_err(DiscoveryError::Fetch)?;
    if resp.status() != 200 {
        return Err(DiscoveryError::Invalid(format!("status {}", resp.status().as_u16())));
    }
    let doc: Document = serde_json::from_slice(resp.body()).map_err(|e| DiscoveryError::Invalid(format!("{e}")))?;
    // Discovery §4.3: the issuer in the document must be the one configured.
    if doc.issuer.trim_end_matches('/') != base {
        return Err(DiscoveryError::Invalid(format!("it names issuer {}", doc.issuer)));
    }
    Ok(Endpoints {
        authorization: doc.authorization_endpoint,
        token: doc.token_endpoint,
        userinfo: doc.userinfo_endpoint,
        jwks: Some(doc.jwks_uri),
        revocation: doc.revocation_endpoint,
        issuer: IssuerRule::OneOf(vec![doc.issuer]),
        user: UserSource::IdToken,
    })
}
