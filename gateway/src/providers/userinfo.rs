//! Who the user is when there is no ID token: the userinfo endpoint, or GitHub's user API
//! (with the primary verified email).

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use super::http_client::{HttpClient, HttpError};
use crate::config::types::ProviderName;
use crate::identity::Identity;

/// GitHub's list of a user's email addresses.
const GITHUB_EMAILS: &str = "https://api.github.com/user/emails";

/// Why the user could not be described.
#[derive(Debug, Clone, thiserror::Error)]
pub enum UserInfoError {
    /// Transport failure.
    #[error("the user endpoint could not be reached: {0}")]
    Http(#[source] HttpError),
    /// A status other than 200.
    #[error("the user endpoint answered status {0}")]
    Status(u16),
    /// Not the expected JSON, or no subject.
    #[error("the user endpoint answered something unusable")]
    BadResponse,
}

async fn get_json<T: for<'de> Deserialize<'de>>(
    http: &dyn HttpClient,
    url: &str,
    token: &SecretString,
) -> Result<T, UserInfoError> {
    let req = http::Request::get(url)
        .header(http::header::AUTHORIZATION, format!("Bearer {}", token.expose_secret()))
        .header(http::header::ACCEPT, "application/json")
        .body(Vec::new())
        .map_err(|_| UserInfoError::BadResponse)?;
    let resp = http.send(req).await.map_err(UserInfoError::Http)?;
    if resp.status() != 200 {
        return Err(UserInfoError::Status(resp.status().as_u16()));
    }
    serde_json::from_slice(resp.body()).map_err(|_| UserInfoError::BadResponse)
}

#[derive(Deserialize)]
struct UserInfo {
    sub: Option<String>,
    id: Option<serde_json::Value>,
    email: Option<String>,
    email_verified: Option<serde_json::Value>,
    name: Option<String>,
    preferred_username: Option<String>,
    login: Option<String>,
}

/// True unless the provider says the email is not verified.
pub fn email_trusted(verified: Option<&serde_json::Value>) -> bool {
    match verified {
        None => true,
        Some(serde_json::Value::Bool(b)) => *b,
        Some(serde_json::Value::String(s)) => s == "true",
        Some(_) => false,
    }
}

/// The user from an OIDC-style userinfo endpoint.
pub async fn from_userinfo(
    http: &dyn HttpClient,
    url: &Url,
    token: &SecretString,
    provider: &ProviderName,
) -> Result<Identity, UserInfoError> {
    let info: UserInfo = get_json(http, url.as_str(), token).await?;
    let subject = match (&info.sub, &info.id) {
        (Some(s), _) if !s.is_empty() => s.clone(),
        (_, Some(serde_json::Value::String(s))) if !s.is_empty() => s.clone(),
        (_, Some(serde_json::Value::Number(n))) => n.to_string(),
        _ => return Err(UserInfoError::BadResponse),
    };
    let email = info.email.filter(|_| email_trusted(info.email_verified.as_ref()));
    Ok(Identity {
        provider: provider.clone(),
        subject,
        email,
        preferred_username: info.preferred_username.or(info.login),
        name: info.name,
        ..Identity::new(provider.clone(), String::new())
    })
}

#[derive(Deserialize)]
struct GitHubUser {
    id: u64,
    login: String,
    name: Option<String>,
}

#[derive(Deserialize)]
struct GitHubEmail {
    email: String,
    primary: bool,
    verified: bool,
}

/// The user from GitHub's API: numeric id as subject, login, name, primary verified email.
pub async fn from_github(
    http: &dyn HttpClient,
    user_url: &Url,
    token: &SecretString,
    provider: &ProviderName,
) -> Result<Identity, UserInfoError> {
    let user: GitHubUser = get_json(http, user_url.as_str(), token).await?;
    // Without the user:email scope this fails; the user simply has no email then.
    let emails: Vec<GitHubEmail> = get_json(http, GITHUB_EMAILS, token).await.unwrap_or_default();
    let email = emails.into_iter().find(|e| e.primary && e.verified).map(|e| e.email);
    Ok(Identity {
        provider: provider.clone(),
        subject: user.id.to_string(),
        email,
        preferred_username: Some(user.login),
        name: user.name,
        ..Identity::new(provider.clone(), String::new())
    })
}
