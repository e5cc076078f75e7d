//! The built-in `dev` identity provider, for the demo and tests: a login form that takes a user
//! name, real single-use codes bound to PKCE, real ES256-signed ID tokens and its own JWKS, and
//! single-use refresh tokens that rotate on every use (RFC 6749 §6).
//!
//! The browser reaches it under [`DEV_PREFIX`] on the gateway; the gateway's own token and key
//! requests reach it in-process (it implements [`HttpClient`]).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use moka::future::Cache;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::json;

use crate::providers::http_client::{HttpClient, HttpError, HttpRequest, HttpResponse};
use crate::respond::{html_escape, Answer};
use crate::session::random_token;

/// Path prefix of the dev provider on the gateway.
pub const DEV_PREFIX: &str = "/_gateway/dev";
const CODE_TTL: Duration = Duration::from_secs(60);
const REQUEST_TTL: Duration = Duration::from_secs(600);
const REFRESH_TTL: Duration = Duration::from_secs(86_400);
/// Lifetime of an access token unless [`DevIdp::with_access_lifetime`] sets another.
pub const DEFAULT_ACCESS_LIFETIME: Duration = Duration::from_secs(3600);

/// One registered client of the dev provider (one per `kind = "dev"` provider).
#[derive(Debug, Clone)]
pub struct DevClient {
    /// Its client id.
    pub client_id: String,
    /// Its one redirect URI.
    pub redirect_uri: String,
}

#[derive(Clone)]
struct Pending {
    client_id: String,
    redirect_uri: String,
    state: String,
    challenge: String,
    nonce: Option<String>,
}

#[derive(Clone)]
struct Grant {
    pending: Pending,
    username: String,
}

/// What a refresh token stands for: one client's sign-in of one user.
#[derive(Clone)]
struct RefreshGrant {
    client_id: String,
    username: String,
}

/// Why the dev provider could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot create the dev provider's signing key")]
pub struct DevIdpError;

/// The dev provider.
pub struct DevIdp {
    issuer: String,
    clients: Vec<DevClient>,
    pkcs8: Vec<u8>,
    kid: String,
    jwk: serde_json::Value,
    requests: Cache<String, Pending>,
    codes: Cache<String, Grant>,
    refresh_tokens: Cache<String, RefreshGrant>,
    access_lifetime: Duration,
}

impl DevIdp {
    /// A provider at `{public_origin}/_gateway/dev` with a fresh P-256 key.
    pub fn new(public_origin: &str, clients: Vec<DevClient>) -> Result<Self, DevIdpError> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).map_err(|_| DevIdpError)?;
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .map_err(|_| DevIdpError)?;
        let point = pair.public_key().as_ref();
        if point.len() != 65 {
            return Err(DevIdpError);
        }
        let kid = random_token(8).ok_or(DevIdpError)?;
        let jwk = json!({"kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
                         "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..65])});
        Ok(Self {
            issuer: format!("{public_origin}{DEV_PREFIX}"),
            clients,
            pkcs8: pkcs8.as_ref().to_vec(),
            kid,
            jwk,
            requests: Cache::builder().max_capacity(100_000).time_to_live(REQUEST_TTL).build(),
            codes: Cache::builder().max_capacity(100_000).time_to_live(CODE_TTL).build(),
            refresh_tokens: Cache::builder().max_capacity(100_000).time_to_live(REFRESH_TTL).build(),
            access_lifetime: DEFAULT_ACCESS_LIFETIME,
        })
    }

    /// Issues access tokens that expire after `lifetime` (whole seconds, at least one), so tests
    /// can reach the refresh path without waiting an hour.
    pub fn with_access_lifetime(mut self, lifetime: Duration) -> Self {
        self.access_lifetime = lifetime.max(Duration::from_secs(1));
        self
    }

    /// The provider of `config`'s `kind = "dev"` providers, if it has any.
    pub fn from_config(config: &crate::config::Config) -> Result<Option<Self>, DevIdpError> {
        let clients = clients(config);
        if clients.is_empty() {
            return Ok(None);
        }
        Self::new(&config.server.public_url.origin(), clients).map(Some)
    }

    /// The issuer URL, as its ID tokens name it.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Serves a browser request under [`DEV_PREFIX`] (`path` is what follows it).
    pub async fn handle(&self, method: &http::Method, path: &str, query: Option<&str>, body: &[u8]) -> Answer {
        match (method.as_str(), path) {
            ("GET", "/authorize") => self.authorize_form(query.unwrap_or("")).await,
            ("POST", "/authorize") => self.authorize_submit(body).await,
            ("GET", "/jwks") => Answer::json(200, &json!({"keys": [self.jwk]})),
            _ => crate::respond::not_found(),
        }
    }

    async fn authorize_form(&self, query: &str) -> Answer {
        let q = |name: &str| {
            url::form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
        };
        let client = q("client_id").and_then(|id| self.clients.iter().find(|c| c.client_id == id).cloned());
        let Some(client) = client else { return error_page("unknown client_id") };
        // Never redirect to an unregistered URI, not even with an error (RFC 6749 §4.1.2.1).
        if q("redirect_uri").as_deref() != Some(client.redirect_uri.as_str()) {
            return error_page("redirect_uri is not registered for this client");
        }
        let (Some(state), Some(challenge)) = (q("state"), q("code_challenge")) else {
            return error_page("state and code_challenge are required");
        };
        if q("response_type").as_deref() != Some("code") || q("code_challenge_method").as_deref() != Some("S256") {
            return error_page("only response_type=code with code_challenge_method=S256 is supported");
        }
        let Some(id) = random_token(24) else { return error_page("no randomness available") };
        let pending = Pending {
            client_id: client.client_id,
            redirect_uri: client.redirect_uri,
            state,
            challenge,
            nonce: q("nonce"),
        };
        self.requests.insert(id.clone(), pending).await;
        let body = LOGIN_FORM
            .replace("{{REQUEST}}", &html_escape(&id))
            .replace("{{ACTION}}", &format!("{DEV_PREFIX}/authorize"));
        Answer::html(200, body).with_header_static(
            "content-security-policy",
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
        )
    }

    async fn authorize_submit(&self, body: &[u8]) -> Answer {
        let form: Vec<(String, String)> =
            url::form_urlencoded::parse(body).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
        let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        let Some(pending) = (match field("request") {
            Some(id) => self.requests.remove(id).await,
            None => None,
        }) else {
            return error_page("this sign-in request is unknown or expired; start again");
        };
        let mut target = match url::Url::parse(&pending.redirect_uri) {
            Ok(u) => u,
            Err(_) => return error_page("redirect_uri is not a URL"),
        };
        if field("action") == Some("deny") {
            target
                .query_pairs_mut()
                .append_pair("error", "access_denied")
                .append_pair("error_description", "The user cancelled the sign-in")
                .append_pair("state", &pending.state)
                .append_pair("iss", &self.issuer);
            return redirect(target.as_str());
        }
        let username = field("username").unwrap_or("").trim().to_owned();
        let valid = !username.is_empty()
            && username.len() <= 64
            && username.chars().all(|c| c.is_ascii_alphanumeric() || "._@-".contains(c));
        if !valid {
            return error_page("a user name is 1 to 64 of letters, digits, '.', '_', '@' and '-'");
        }
        let Some(code) = random_token(32) else { return error_page("no randomness available") };
        let state = pending.state.clone();
        self.codes.insert(code.clone(), Grant { pending, username }).await;
        target
            .query_pairs_mut()
            .append_pair("code", &code)
            .append_pair("state", &state)
            .append_pair("iss", &self.issuer);
        redirect(target.as_str())
    }

    /// An ID token for `grant`'s user; `nonce` is the authorization request's (none on refresh,
    /// OpenID Connect Core §12.2).
    fn id_token(&self, grant: &RefreshGrant, nonce: Option<&str>) -> Result<String, &'static str> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_err(|_| "clock")?.as_secs();
        let user = &grant.username;
        let mut claims = json!({
            "iss": self.issuer, "sub": user, "aud": grant.client_id, "iat": now, "exp": now + 3600,
            "email": format!("{user}@dev.example"), "email_verified": true,
            "name": format!("Dev User {user}"), "preferred_username": user,
        });
        if let Some(n) = nonce {
            claims["nonce"] = json!(n);
        }
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        let key = jsonwebtoken::EncodingKey::from_ec_der(&self.pkcs8);
        jsonwebtoken::encode(&header, &claims, &key).map_err(|_| "signing failed")
    }

    /// A token response for `grant`: an ID token, a new access token and a new single-use
    /// refresh token.
    async fn token(&self, grant: RefreshGrant, nonce: Option<&str>) -> Result<serde_json::Value, &'static str> {
        let id_token = self.id_token(&grant, nonce)?;
        let access_token = random_token(32).ok_or("no randomness")?;
        let refresh_token = random_token(32).ok_or("no randomness")?;
        self.refresh_tokens.insert(refresh_token.clone(), grant).await;
        Ok(json!({"access_token": access_token, "token_type": "Bearer", "id_token": id_token,
                  "expires_in": self.access_lifetime.as_secs(), "refresh_token": refresh_token}))
    }

    async fn token_endpoint(&self, body: &[u8]) -> (u16, serde_json::Value) {
        let form: Vec<(String, String)> =
            url::form_urlencoded::parse(body).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
        let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        let invalid_grant = (400, json!({"error": "invalid_grant"}));
        match field("grant_type") {
            Some("authorization_code") => {}
            Some("refresh_token") => return self.refresh_grant(field("refresh_token"), field("client_id")).await,
            _ => return (400, json!({"error": "unsupported_grant_type"})),
        }
        let Some(grant) = (match field("code") {
            Some(c) => self.codes.remove(c).await,
            None => None,
        }) else {
            return invalid_grant;
        };
        if field("redirect_uri") != Some(grant.pending.redirect_uri.as_str())
            || field("client_id").is_some_and(|id| id != grant.pending.client_id)
        {
            return invalid_grant;
        }
        let verifier = field("code_verifier").unwrap_or("");
        let digest = ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes());
        if URL_SAFE_NO_PAD.encode(digest.as_ref()) != grant.pending.challenge {
            return invalid_grant;
        }
        let nonce = grant.pending.nonce.clone();
        let refresh = RefreshGrant { client_id: grant.pending.client_id, username: grant.username };
        match self.token(refresh, nonce.as_deref()).await {
            Ok(body) => (200, body),
            Err(_) => (500, json!({"error": "server_error"})),
        }
    }

    /// RFC 6749 §6: a refresh token is spent by its first use (whoever presents it) and is
    /// replaced by a new one; it is `invalid_grant` when unknown, used, or another client's.
    async fn refresh_grant(&self, token: Option<&str>, client_id: Option<&str>) -> (u16, serde_json::Value) {
        let Some(grant) = (match token {
            Some(t) => self.refresh_tokens.remove(t).await,
            None => None,
        }) else {
            return (400, json!({"error": "invalid_grant"}));
        };
        if client_id != Some(grant.client_id.as_str()) {
            return (400, json!({"error": "invalid_grant"}));
        }
        match self.token(grant, None).await {
            Ok(body) => (200, body),
            Err(_) => (500, json!({"error": "server_error"})),
        }
    }
}

#[async_trait]
impl HttpClient for DevIdp {
    async fn send(&self, req: HttpRequest) -> Result<HttpResponse, HttpError> {
        let path = req.uri().path().to_owned();
        let suffix = path.split(DEV_PREFIX).nth(1).unwrap_or("");
        let (status, body) = match (req.method().as_str(), suffix) {
            ("POST", "/token") => self.token_endpoint(req.body()).await,
            ("GET", "/jwks") => (200, json!({"keys": [self.jwk]})),
            _ => (404, json!({"error": "not_found"})),
        };
        http::Response::builder()
            .status(status)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(body.to_string().into_bytes())
            .map_err(|e| HttpError::Transport(e.to_string()))
    }
}

/// One client per `kind = "dev"` provider of `config`, with its callback URI.
pub fn clients(config: &crate::config::Config) -> Vec<DevClient> {
    config
        .providers
        .iter()
        .filter(|p| matches!(p.kind, crate::config::ProviderKind::Dev))
        .map(|p| DevClient {
            client_id: p.client_id.clone(),
            redirect_uri: config.server.public_url.join(&format!("/connect/{}/callback", p.name)),
        })
        .collect()
}

fn redirect(location: &str) -> Answer {
    Answer::redirect(location)
}

fn error_page(message: &str) -> Answer {
    let body =
        format!("<!doctype html><title>Dev sign-in</title><h1>Dev sign-in</h1><p>{}</p>\n", html_escape(message));
    Answer::html(400, body)
}

const LOGIN_FORM: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Dev sign-in</title>
<style>body{font-family:system-ui,sans-serif;max-width:24rem;margin:3rem auto}input,button{font-size:1rem;padding:.4rem;margin:.3rem 0}</style>
</head><body>
<h1>Dev sign-in</h1>
<p>The gateway's built-in development provider. Any user name signs in; no password.</p>
<form method="post" action="{{ACTION}}">
<input type="hidden" name="request" value="{{REQUEST}}">
<label>User name <input id="username" name="username" autofocus autocomplete="username"></label><br>
<button id="approve" type="submit" name="action" value="approve">Sign in</button>
<button id="deny" type="submit" name="action" value="deny">Cancel</button>
</form>
</body></html>
"#;
