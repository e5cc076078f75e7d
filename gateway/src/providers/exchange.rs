//! The OAuth 2.0 parts done with the `oauth2` crate: authorization URL (PKCE S256, state, nonce),
//! code exchange and refresh; plus RFC 7009 revocation.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse, BasicTokenType,
};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet, EndpointSet,
    ExtraTokenFields, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RefreshToken, RequestTokenError, Scope,
    StandardRevocableToken, StandardTokenResponse, TokenResponse, TokenUrl,
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use url::Url;

use super::http_client::{HttpClient, HttpError};
use super::{Provider, Resolved};

/// The ID token travels as an extra field of the token response (OIDC Core §3.1.3.3).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct IdTokenField {
    /// The compact JWS.
    pub id_token: Option<String>,
}

impl ExtraTokenFields for IdTokenField {}

type OAuthTokenResponse = StandardTokenResponse<IdTokenField, BasicTokenType>;

/// The one concrete oauth2 client type: authorization and token endpoints set.
type OAuthClient = oauth2::Client<
    BasicErrorResponse,
    OAuthTokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// Tokens from a code exchange or refresh. `Debug` never shows them.
#[derive(Debug)]
pub struct TokenSet {
    /// Access token.
    pub access_token: SecretString,
    /// Refresh token.
    pub refresh_token: Option<SecretString>,
    /// ID token (compact JWS), unverified.
    pub id_token: Option<SecretString>,
    /// When the access token expires.
    pub expires_at: Option<SystemTime>,
}

/// Why the token endpoint exchange failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ExchangeError {
    /// The provider answered with an OAuth error (RFC 6749 §5.2).
    #[error("the token endpoint refused the code: {error}")]
    Refused {
        /// The OAuth error code.
        error: String,
    },
    /// Transport failure.
    #[error("the token endpoint could not be reached: {0}")]
    Http(#[source] HttpError),
    /// A status or body that is not a token response.
    #[error("the token endpoint answered something that is not a token response")]
    BadResponse,
}

fn client(provider: &Provider, resolved: &Resolved, redirect_uri: &str) -> Result<OAuthClient, ExchangeError> {
    let redirect = RedirectUrl::new(redirect_uri.to_owned()).map_err(|_| ExchangeError::BadResponse)?;
    let mut c = oauth2::Client::new(ClientId::new(provider.client_id.clone()))
        .set_auth_uri(AuthUrl::from_url(resolved.endpoints.authorization.clone()))
        .set_token_uri(TokenUrl::from_url(resolved.endpoints.token.clone()))
        .set_redirect_uri(redirect)
        .set_auth_type(AuthType::BasicAuth);
    if let Some(secret) = provider.client_secret() {
        c = c.set_client_secret(ClientSecret::new(secret.expose_secret().to_owned()));
    } else {
        c = c.set_auth_type(AuthType::RequestBody);
    }
    Ok(c)
}

/// A fresh PKCE pair (RFC 7636, S256): the challenge for the URL, the verifier to keep.
pub fn new_pkce() -> (PkceCodeChallenge, SecretString) {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    (challenge, SecretString::from(verifier.secret().to_owned()))
}

/// The authorization request URL for one login transaction.
pub fn authorization_url(
    provider: &Provider,
    resolved: &Resolved,
    redirect_uri: &str,
    state: &str,
    challenge: PkceCodeChallenge,
    nonce: &str,
) -> Result<Url, ExchangeError> {
    let c = client(provider, resolved, redirect_uri)?;
    let state = state.to_owned();
    let mut req = c
        .authorize_url(move || CsrfToken::new(state))
        .set_pkce_challenge(challenge)
        .add_scopes(provider.scopes.iter().cloned().map(Scope::new));
    if provider.wants_id_token(resolved) {
        req = req.add_extra_param("nonce", nonce.to_owned());
    }
    Ok(req.url().0)
}

fn token_set(resp: OAuthTokenResponse) -> TokenSet {
    TokenSet {
        access_token: SecretString::from(resp.access_token().secret().to_owned()),
        refresh_token: resp.refresh_token().map(|r| SecretString::from(r.secret().to_owned())),
        id_token: resp.extra_fields().id_token.clone().map(SecretString::from),
        expires_at: resp.expires_in().map(|d| SystemTime::now() + d.min(Duration::from_secs(365 * 86400))),
    }
}

fn map_error(e: RequestTokenError<HttpError, BasicErrorResponse>) -> ExchangeError {
    match e {
        RequestTokenError::ServerResponse(r) => ExchangeError::Refused { error: r.error().to_string() },
        RequestTokenError::Request(h) => ExchangeError::Http(h),
        RequestTokenError::Parse(..) | RequestTokenError::Other(_) => ExchangeError::BadResponse,
    }
}

/// The oauth2 crate's HTTP client: a function returning an owned future (no borrowed client).
fn oauth_http(
    http: &Arc<dyn HttpClient>,
) -> impl Fn(
    oauth2::HttpRequest,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<oauth2::HttpResponse, HttpError>> + Send>> {
    let http = Arc::clone(http);
    move |req| {
        let http = Arc::clone(&http);
        Box::pin(async move { http.send(req).await })
    }
}

/// Exchanges an authorization code (RFC 6749 §4.1.3) with the PKCE verifier.
pub async fn exchange_code(
    provider: &Provider,
    resolved: &Resolved,
    http: &Arc<dyn HttpClient>,
    redirect_uri: &str,
    code: &str,
    verifier: &SecretString,
) -> Result<TokenSet, ExchangeError> {
    let c = client(provider, resolved, redirect_uri)?;
    let send = oauth_http(http);
    let resp = c
        .exchange_code(AuthorizationCode::new(code.to_owned()))
        .set_pkce_verifier(PkceCodeVerifier::new(verifier.expose_secret().to_owned()))
        .request_async(&send)
        .await
        .map_err(map_error)?;
    Ok(token_set(resp))
}

/// Uses a refresh token (RFC 6749 §6).
pub async fn refresh(
    provider: &Provider,
    resolved: &Resolved,
    http: &Arc<dyn HttpClient>,
    redirect_uri: &str,
    refresh_token: &SecretString,
) -> Result<TokenSet, ExchangeError> {
    let c = client(provider, resolved, redirect_uri)?;
    let send = oauth_http(http);
    let token = RefreshToken::new(refresh_token.expose_secret().to_owned());
    let resp = c.exchange_refresh_token(&token).request_async(&send).await.map_err(map_error)?;
    Ok(token_set(resp))
}

/// The RFC 7009 request body and, for confidential clients, the Basic credentials.
fn revocation_request(provider: &Provider, token: &SecretString) -> (Vec<u8>, Option<String>) {
    use base64::Engine;
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    form.append_pair("token", token.expose_secret());
    form.append_pair("token_type_hint", "access_token");
    let basic = match provider.client_secret() {
        Some(secret) => {
            let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            let pair = format!("{}:{}", enc(&provider.client_id), enc(secret.expose_secret()));
            Some(format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair)))
        }
        None => {
            form.append_pair("client_id", &provider.client_id);
            None
        }
    };
    (form.finish().into_bytes(), basic)
}

/// Revokes `token` at the provider's RFC 7009 endpoint, if it has one; best effort.
pub async fn revoke(provider: &Provider, resolved: &Resolved, http: &dyn HttpClient, token: &SecretString) {
    let Some(endpoint) = &resolved.endpoints.revocation else { return };
    let (body, basic) = revocation_request(provider, token);
    let mut builder =
        http::Request::post(endpoint.as_str()).header(http::header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(basic) = basic {
        builder = builder.header(http::header::AUTHORIZATION, basic);
    }
    let Ok(req) = builder.body(body) else { return };
    match http.send(req).await {
        Ok(r) if r.status().is_success() => tracing::debug!(provider = %provider.name, "token revoked"),
        Ok(r) => tracing::warn!(provider = %provider.name, status = r.status().as_u16(), "token revocation refused"),
        Err(e) => tracing::warn!(provider = %provider.name, error = %e, "token revocation failed"),
    }
}
