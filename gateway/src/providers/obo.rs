//! The on-behalf-of grant (Microsoft identity platform, `urn:ietf:params:oauth:grant-type:jwt-bearer`
//! with `requested_token_use=on_behalf_of`): an access token for the add-in's own API becomes a
//! token for a downstream API (Microsoft Graph) on behalf of the same user.
//!
//! oauth2-rs has no grant of this type and drops the `claims` and `suberror` fields Entra adds to
//! its errors, which the client needs to fall back to an interactive sign-in; so the request is
//! one form POST through the provider's HTTP client, and its answer is read here.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::http_client::HttpClient;

/// The grant type of the on-behalf-of flow.
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// A token obtained on behalf of the user.
#[derive(Debug)]
pub struct OboToken {
    /// The downstream access token.
    pub access_token: SecretString,
    /// Its lifetime as Entra reported it.
    pub expires_in: Duration,
}

/// Why no token was obtained.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OboError {
    /// The user must act (consent, MFA, conditional access): `interaction_required`,
    /// `consent_required` or `invalid_grant` (AADSTS65001). `claims` is Entra's claims
    /// challenge, passed on to the client for its interactive request.
    #[error("the user must sign in interactively ({error})")]
    UserActionRequired {
        /// Entra's error code.
        error: String,
        /// Entra's claims challenge, if any.
        claims: Option<String>,
    },
    /// Entra refused for another reason (a misconfigured app, usually).
    #[error("the on-behalf-of exchange was refused ({error})")]
    Refused {
        /// Entra's error code.
        error: String,
    },
    /// Entra could not be reached, timed out, or failed.
    #[error("the identity provider is unavailable")]
    Unavailable,
}

#[derive(Deserialize)]
struct Success {
    access_token: String,
    expires_in: Option<u64>,
}

#[derive(Deserialize)]
struct Failure {
    error: String,
    claims: Option<String>,
}

/// What one exchange sends.
pub struct OboRequest<'a> {
    /// `{authority}/{tenant}/oauth2/v2.0/token` of the user's tenant.
    pub token_url: &'a str,
    /// The provider's client id.
    pub client_id: &'a str,
    /// The provider's client secret.
    pub client_secret: &'a SecretString,
    /// The user's access token for the add-in's API.
    pub assertion: &'a SecretString,
    /// The downstream scopes.
    pub scopes: &'a [String],
}

/// Exchanges the assertion for a token of `scopes`.
pub async fn exchange(http: &dyn HttpClient, req: &OboRequest<'_>) -> Result<OboToken, OboError> {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", GRANT_TYPE)
        .append_pair("client_id", req.client_id)
        .append_pair("client_secret", req.client_secret.expose_secret())
        .append_pair("assertion", req.assertion.expose_secret())
        .append_pair("scope", &req.scopes.join(" "))
        .append_pair("requested_token_use", "on_behalf_of")
        .finish();
    let request = http::Request::post(req.token_url)
        .header(http::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(http::header::ACCEPT, "application/json")
        .body(body.into_bytes())
        .map_err(|_| OboError::Unavailable)?;
    let resp = http.send(request).await.map_err(|_| OboError::Unavailable)?;
    read_answer(resp.status().as_u16(), resp.body())
}

/// The token, or the error, of a token endpoint's answer.
pub fn read_answer(status: u16, body: &[u8]) -> Result<OboToken, OboError> {
    if status == 200 {
        let ok: Success = serde_json::from_slice(body).map_err(|_| OboError::Unavailable)?;
        return Ok(OboToken {
            access_token: SecretString::from(ok.access_token),
            expires_in: Duration::from_secs(ok.expires_in.unwrap_or(3600)),
        });
    }
    if status >= 500 {
        return Err(OboError::Unavailable);
    }
    let failure: Failure = serde_json::from_slice(body).map_err(|_| OboError::Unavailable)?;
    // Only bounded, printable values go back to clients.
    let error: String = failure.error.chars().filter(|c| c.is_ascii_graphic()).take(64).collect();
    let claims = failure.claims.map(|c| c.chars().filter(|c| !c.is_control()).take(4096).collect());
    match error.as_str() {
        "interaction_required" | "consent_required" | "invalid_grant" => {
            Err(OboError::UserActionRequired { error, claims })
        }
        "temporarily_unavailable" | "server_error" => Err(OboError::Unavailable),
        _ => Err(OboError::Refused { error }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(status: u16, body: &[u8]) -> OboError {
        read_answer(status, body).err().unwrap()
    }

    #[test]
    fn entra_answers_are_read_as_entra_words_them() {
        let ok = read_answer(200, br#"{"token_type":"Bearer","expires_in":3599,"access_token":"eyJ0"}"#).unwrap();
        assert_eq!((ok.access_token.expose_secret(), ok.expires_in.as_secs()), ("eyJ0", 3599));
        let consent = br#"{"error":"invalid_grant","error_description":"AADSTS65001: The user or administrator has not consented to use the application","error_codes":[65001],"suberror":"consent_required"}"#;
        assert_eq!(err(400, consent), OboError::UserActionRequired { error: "invalid_grant".into(), claims: None });
        let mfa = br#"{"error":"interaction_required","error_description":"AADSTS50076: ...","claims":"{\"access_token\":{\"capolids\":{\"essential\":true,\"values\":[\"a\"]}}}"}"#;
        match err(400, mfa) {
            OboError::UserActionRequired { error, claims: Some(c) } => {
                assert_eq!(error, "interaction_required");
                assert!(c.contains("capolids"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(err(400, br#"{"error":"invalid_client"}"#), OboError::Refused { error: "invalid_client".into() });
        assert_eq!(err(503, b"down"), OboError::Unavailable);
        assert_eq!(err(400, b"<html>"), OboError::Unavailable);
    }
}
