//! `TestIdp`: an in-process OpenID provider for integration tests, with a knob for every fault.
//!
//! ```text
//!  GET  /.well-known/openid-configuration ─▶ discovery JSON (issuer = http://127.0.0.1:PORT)
//!  GET  /authorize?client_id&response_type=code&redirect_uri&state&code_challenge(S256)[&nonce&scope]
//!         ─▶ 302 redirect_uri?code&state&iss      (no login page: the user is `set_user`'s login)
//!         ─▶ 302 redirect_uri?error&error_description&state&iss   after `deny_next`
//!  POST /token  authorization_code (PKCE S256, single-use code) | refresh_token;
//!               client_secret_basic (RFC 6749 §2.3.1, form-urlencoded id:secret) or client_secret_post
//!         ─▶ {access_token, token_type, expires_in, refresh_token, id_token} | RFC 6749 §5.2 error
//!  GET  /jwks ─▶ RSA key kid "a"        GET|POST /userinfo (Bearer) ─▶ {sub, email, name, …}
//!  POST /revoke (RFC 7009, client auth) ─▶ 200, token recorded and no longer accepted
//!  any path given to `unreachable` ─▶ no answer: the connection is closed
//! ```
//! Every knob is sticky until [`TestIdp::reset`], except the one-shot [`TestIdp::deny_next`].

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use ring::rand::{SecureRandom, SystemRandom};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::watch;
use url::Url;

use crate::ports;

#[path = "idp_tokens.rs"]
mod tokens;

/// The only client this IdP knows (`client_id`).
pub const CLIENT_ID: &str = "gateway-test-client";
/// That client's secret. Its `:` and `+` check that Basic credentials are form-urlencoded first
/// (RFC 6749 §2.3.1), as the `oauth2` crate does; a raw `id:secret` pair is refused.
pub const CLIENT_SECRET: &str = "test-secret:with+special/chars";
/// The login signed in when [`TestIdp::set_user`] was never called (or after [`TestIdp::reset`]).
pub const DEFAULT_LOGIN: &str = "alice";
/// Lifetime of ID tokens, in seconds (`exp = iat + 300`).
pub const ID_TOKEN_TTL_SECS: u64 = 300;
/// `expires_in` of access tokens, in seconds.
pub const ACCESS_TOKEN_TTL_SECS: u64 = 3600;
/// Longest [`TestIdp::token_delay`] honoured; longer delays are cut to this.
pub const MAX_TOKEN_DELAY: Duration = Duration::from_secs(120);

/// `kid` of the signing key in the JWKS.
const KID: &str = "a";
/// How many binds [`TestIdp::try_start`] tries before giving up.
const BIND_ATTEMPTS: u32 = 50;

/// Modulus (base64url) of the signing key, published in the JWKS; see `tests/fixtures/keys/README.md`.
const RSA_A_MODULUS: &str = include_str!("../fixtures/keys/rsa-a.n");

type RespBody = BoxBody<Bytes, Infallible>;

/// How the next ID tokens are spoiled; set with [`TestIdp::set_id_token_fault`] (sticky).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum IdTokenFault {
    /// A valid ID token.
    #[default]
    None,
    /// RS256 with kid "a", but signed by `fixtures/keys/rsa-b.der`, which is not in the JWKS.
    WrongSignature,
    /// `iss` is not this IdP's issuer.
    WrongIssuer,
    /// `aud` is another client.
    WrongAudience,
    /// `nonce` is not the one sent to `/authorize` (present even when none was sent).
    WrongNonce,
    /// `exp` and `iat` lie 10 and 15 minutes in the past (beyond any sane leeway).
    Expired,
    /// Header `alg` is `"none"` and the signature is empty (`header.claims.`).
    AlgNone,
    /// HS256, keyed with the PEM text of the public key `fixtures/keys/rsa-a.pub.pem`
    /// (the classic RS256→HS256 key-confusion attack).
    Hs256WithPublicKey,
    /// Signed by the right key, but the header names a `kid` the JWKS does not hold.
    UnknownKid,
}

/// The identity the IdP reports for a login, in ID tokens and at `/userinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestUser {
    /// `sub`: `sub-{login}`.
    pub sub: String,
    /// `email`: `{login}@idp.test` (always `email_verified: true`).
    pub email: String,
    /// `name`: the login capitalised plus ` Example`, e.g. `Alice Example`.
    pub name: String,
    /// `preferred_username`: the login itself.
    pub preferred_username: String,
}

impl TestUser {
    /// The claims reported for `login`.
    pub fn for_login(login: &str) -> Self {
        let mut chars = login.chars();
        let capitalised: String = chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default();
        Self {
            sub: format!("sub-{login}"),
            email: format!("{login}@idp.test"),
            name: format!("{capitalised} Example"),
            preferred_username: login.to_owned(),
        }
    }

    fn claims(&self) -> Value {
        json!({
            "sub": self.sub, "email": self.email, "email_verified": true,
            "name": self.name, "preferred_username": self.preferred_username,
        })
    }
}

/// What `/token` answers instead of a real exchange.
#[derive(Debug, Clone, Copy, Default)]
enum TokenBody {
    #[default]
    Normal,
    Garbage,
    Huge(usize),
}

/// Fault knobs; `Default` is a well-behaved IdP.
#[derive(Debug, Clone, Default)]
struct Knobs {
    login: Option<String>,
    deny_next: Option<String>,
    token_status: Option<u16>,
    token_delay: Duration,
    token_body: TokenBody,
    omit_id_token: bool,
    id_token_fault: IdTokenFault,
    userinfo_status: Option<u16>,
    unreachable: Vec<String>,
    extra_claims: serde_json::Map<String, Value>,
}

/// What one authorization (a code, then its tokens) was granted for.
#[derive(Debug, Clone)]
struct Grant {
    redirect_uri: String,
    code_challenge: String,
    nonce: Option<String>,
    scope: Option<String>,
    login: String,
}

/// Codes and tokens handed out, and what tests may assert on.
#[derive(Debug, Default)]
struct Records {
    codes: HashMap<String, Grant>,
    access_tokens: HashMap<String, Grant>,
    refresh_tokens: HashMap<String, Grant>,
    issued_access_tokens: Vec<String>,
    issued_secrets: Vec<String>,
    revoked: Vec<String>,
    last_authorize: Option<HashMap<String, String>>,
}

/// State shared by the server tasks and the [`TestIdp`] handle.
struct Shared {
    issuer: String,
    knobs: Mutex<Knobs>,
    records: Mutex<Records>,
    token_requests: AtomicU64,
    userinfo_requests: AtomicU64,
    jwks_requests: AtomicU64,
    rng: SystemRandom,
}

impl Shared {
    fn knobs(&self) -> MutexGuard<'_, Knobs> {
        self.knobs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn records(&self) -> MutexGuard<'_, Records> {
        self.records.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A fresh unguessable value, `{prefix}-` then 32 random bytes base64url.
    fn random(&self, prefix: &str) -> String {
        let mut bytes = [0u8; 32];
        // ring's RNG fails only when the OS has none; the clock then keeps values unique.
        if self.rng.fill(&mut bytes).is_err() {
            bytes[..16].copy_from_slice(
                &SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos().to_le_bytes(),
            );
        }
        format!("{prefix}-{}", URL_SAFE_NO_PAD.encode(bytes))
    }
}

/// A running test OpenID provider on `127.0.0.1:PORT`; the server stops when this is dropped.
pub struct TestIdp {
    shared: Arc<Shared>,
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
}

impl TestIdp {
    /// Starts the IdP on an ephemeral port of the current tokio runtime.
    #[allow(clippy::expect_used)] // a test cannot go on without its IdP; the message says why it failed
    pub async fn start() -> Self {
        Self::try_start().await.expect("cannot start the test IdP")
    }

    /// Starts the IdP on an ephemeral port; fails when `127.0.0.1:0` cannot be bound.
    ///
    /// A port the [`ports`] registry already handed out to someone else is skipped (bounded retries).
    pub async fn try_start() -> anyhow::Result<Self> {
        for _ in 0..BIND_ATTEMPTS {
            let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                .await
                .context("cannot bind 127.0.0.1:0 for the test IdP")?;
            let addr = listener.local_addr().context("test IdP listener has no address")?;
            if ports::reserve(addr.port()) {
                let shared = Arc::new(Shared {
                    issuer: format!("http://{addr}"),
                    knobs: Mutex::default(),
                    records: Mutex::default(),
                    token_requests: AtomicU64::new(0),
                    userinfo_requests: AtomicU64::new(0),
                    jwks_requests: AtomicU64::new(0),
                    rng: SystemRandom::new(),
                });
                let (shutdown, stop) = watch::channel(false);
                tokio::spawn(accept_loop(listener, Arc::clone(&shared), stop));
                return Ok(Self { shared, addr, shutdown });
            }
        }
        anyhow::bail!("test IdP: every port the system offered was already handed out")
    }

    /// The listening address, `127.0.0.1:PORT`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The issuer, `http://127.0.0.1:PORT` (no trailing slash); discovery is at
    /// `{issuer}/.well-known/openid-configuration`.
    pub fn issuer(&self) -> String {
        self.shared.issuer.clone()
    }

    /// The client id to configure, [`CLIENT_ID`].
    pub fn client_id(&self) -> String {
        CLIENT_ID.to_owned()
    }

    /// The client secret to configure, [`CLIENT_SECRET`].
    pub fn client_secret(&self) -> String {
        CLIENT_SECRET.to_owned()
    }

    /// The authorization endpoint, `{issuer}/authorize`.
    pub fn authorize_url(&self) -> String {
        format!("{}/authorize", self.shared.issuer)
    }

    /// The token endpoint, `{issuer}/token`.
    pub fn token_url(&self) -> String {
        format!("{}/token", self.shared.issuer)
    }

    /// The userinfo endpoint, `{issuer}/userinfo`.
    pub fn userinfo_url(&self) -> String {
        format!("{}/userinfo", self.shared.issuer)
    }

    /// The RFC 7009 revocation endpoint, `{issuer}/revoke`.
    pub fn revocation_url(&self) -> String {
        format!("{}/revoke", self.shared.issuer)
    }

    /// The JWKS endpoint, `{issuer}/jwks`.
    pub fn jwks_url(&self) -> String {
        format!("{}/jwks", self.shared.issuer)
    }

    /// The claims of the user the next authorization signs in (see [`TestIdp::set_user`]).
    pub fn user(&self) -> TestUser {
        TestUser::for_login(self.shared.knobs().login.as_deref().unwrap_or(DEFAULT_LOGIN))
    }

    /// Sticky: later authorizations sign in `login` (default [`DEFAULT_LOGIN`]); tokens already
    /// issued keep their user.
    pub fn set_user(&self, login: &str) {
        self.shared.knobs().login = Some(login.to_owned());
    }

    /// One-shot: the next `/authorize` with a valid client and redirect URI redirects back with
    /// `error={error}&error_description=..&state=..&iss=..` (e.g. `access_denied`) and issues no code.
    pub fn deny_next(&self, error: &str) {
        self.shared.knobs().deny_next = Some(error.to_owned());
    }

    /// Sticky: `/token` answers `status` (500 if not a valid status code) with an RFC 6749 §5.2
    /// body, before looking at the request (no code is spent). The `error` is `invalid_client` (with
    /// `WWW-Authenticate`) for 401, `invalid_grant` for other 4xx, `temporarily_unavailable` for
    /// 503, else `server_error`.
    pub fn token_status(&self, status: u16) {
        self.shared.knobs().token_status = Some(status);
    }

    /// Sticky: `/token` waits `delay` (at most [`MAX_TOKEN_DELAY`]) before anything else, then
    /// answers as the other knobs say. hyper may finish a request whose client already gave up,
    /// so a code sent with a delayed request may or may not be spent: use a fresh one afterwards.
    pub fn token_delay(&self, delay: Duration) {
        self.shared.knobs().token_delay = delay.min(MAX_TOKEN_DELAY);
    }

    /// Sticky: `/token` answers 200, `Content-Type: application/json`, with a body that is not JSON
    /// (the request is not looked at; no code is spent).
    pub fn token_body_garbage(&self) {
        self.shared.knobs().token_body = TokenBody::Garbage;
    }

    /// Sticky: `/token` answers 200 with a JSON token response of exactly `bytes` bytes (at least
    /// its ~70-byte skeleton; the `access_token` is padded), streamed chunked in 64 KiB pieces
    /// without `Content-Length`, generated lazily so the IdP holds no copy (no code is spent).
    pub fn token_body_huge(&self, bytes: usize) {
        self.shared.knobs().token_body = TokenBody::Huge(bytes);
    }

    /// Sticky: claims added to every ID token (e.g. Entra's `tid`, `groups`, `roles`).
    pub fn set_extra_claims(&self, claims: Value) {
        self.shared.knobs().extra_claims = claims.as_object().cloned().unwrap_or_default();
    }

    /// Sticky: token responses (both grants) carry no `id_token`.
    pub fn omit_id_token(&self) {
        self.shared.knobs().omit_id_token = true;
    }

    /// Sticky: ID tokens issued from now on are spoiled as `fault` says.
    pub fn set_id_token_fault(&self, fault: IdTokenFault) {
        self.shared.knobs().id_token_fault = fault;
    }

    /// Sticky: `/userinfo` answers `status` (e.g. 503 = down; 500 if not a valid status code) with a
    /// JSON error body and no `sub`, whatever the token, even for 200; a 401 carries
    /// `WWW-Authenticate: Bearer error="invalid_token"`.
    pub fn userinfo_status(&self, status: u16) {
        self.shared.knobs().userinfo_status = Some(status);
    }

    /// Sticky: requests to `path` (e.g. `/token`, `/jwks`) get no answer at all: the connection is
    /// closed as soon as the request head is read, as by a crashed backend behind the IdP's front.
    /// Nothing else is looked at or counted (no code is spent).
    pub fn unreachable(&self, path: &str) {
        self.shared.knobs().unreachable.push(path.to_owned());
    }

    /// Clears every knob (the user goes back to [`DEFAULT_LOGIN`]); counters, issued codes and
    /// tokens and the records below are kept.
    pub fn reset(&self) {
        *self.shared.knobs() = Knobs::default();
    }

    /// Requests that reached `/token` (counted before any knob acts).
    pub fn token_requests(&self) -> u64 {
        self.shared.token_requests.load(Ordering::SeqCst)
    }

    /// Requests that reached `/userinfo` (counted before any knob acts).
    pub fn userinfo_requests(&self) -> u64 {
        self.shared.userinfo_requests.load(Ordering::SeqCst)
    }

    /// Requests that reached `/jwks`.
    pub fn jwks_requests(&self) -> u64 {
        self.shared.jwks_requests.load(Ordering::SeqCst)
    }

    /// Every `token` value posted to `/revoke` with valid client authentication, in order.
    pub fn revoked_tokens(&self) -> Vec<String> {
        self.shared.records().revoked.clone()
    }

    /// The query parameters of the last `/authorize` request, valid or not (`None` before the
    /// first), so tests can assert `code_challenge_method=S256`, `nonce`, `scope`, `state`.
    pub fn last_authorize_params(&self) -> Option<HashMap<String, String>> {
        self.shared.records().last_authorize.clone()
    }

    /// Every access token issued so far, in order (revoked ones included), to grep for leaks.
    pub fn issued_access_tokens(&self) -> Vec<String> {
        self.shared.records().issued_access_tokens.clone()
    }

    /// Every secret handed out so far, in order: codes, access, refresh and ID tokens, to assert
    /// that none of them reaches a browser or a log.
    pub fn issued_secrets(&self) -> Vec<String> {
        self.shared.records().issued_secrets.clone()
    }
}

impl Drop for TestIdp {
    fn drop(&mut self) {
        self.shutdown.send_replace(true);
    }
}

/// Accepts until told to stop, then drops the listener and aborts every connection task.
async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, stop: watch::Receiver<bool>) {
    crate::http_serve::serve(listener, stop, || {
        let shared = Arc::clone(&shared);
        service_fn(move |req: Request<Incoming>| {
            let shared = Arc::clone(&shared);
            async move {
                // A service error makes hyper close the connection without an answer.
                if shared.knobs().unreachable.iter().any(|p| p == req.uri().path()) {
                    return Err(std::io::Error::other("unreachable (test IdP knob)"));
                }
                Ok(handle(req, &shared).await)
            }
        })
    })
    .await;
}

async fn handle(req: Request<Incoming>, shared: &Shared) -> Response<RespBody> {
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/.well-known/openid-configuration") => discovery(shared),
        (&Method::GET, "/authorize") => authorize(shared, req.uri().query().unwrap_or_default()),
        (&Method::POST, "/token") => tokens::token(shared, req).await,
        (&Method::GET, "/jwks") => {
            shared.jwks_requests.fetch_add(1, Ordering::SeqCst);
            let jwk =
                json!({"kty": "RSA", "use": "sig", "alg": "RS256", "kid": KID, "n": RSA_A_MODULUS.trim(), "e": "AQAB"});
            json_response(StatusCode::OK, &json!({ "keys": [jwk] }))
        }
        (&Method::GET | &Method::POST, "/userinfo") => tokens::userinfo(shared, req.headers()),
        (&Method::POST, "/revoke") => tokens::revoke(shared, req).await,
        _ => oauth_error(StatusCode::NOT_FOUND, "not_found", "no such endpoint at the test IdP"),
    }
}

fn discovery(shared: &Shared) -> Response<RespBody> {
    let issuer = &shared.issuer;
    json_response(
        StatusCode::OK,
        &json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{issuer}/authorize"),
            "token_endpoint": format!("{issuer}/token"),
            "userinfo_endpoint": format!("{issuer}/userinfo"),
            "jwks_uri": format!("{issuer}/jwks"),
            "revocation_endpoint": format!("{issuer}/revoke"),
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "subject_types_supported": ["public"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "authorization_response_iss_parameter_supported": true,
        }),
    )
}

/// `GET /authorize`: RFC 6749 §4.1.1 with PKCE (RFC 7636 §4.3) and the RFC 9207 `iss` parameter.
fn authorize(shared: &Shared, query: &str) -> Response<RespBody> {
    let params: HashMap<String, String> = url::form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    shared.records().last_authorize = Some(params.clone());
    // RFC 6749 §4.1.2.1: a bad client or redirect URI is shown to the user, never redirected to.
    if param(&params, "client_id") != Some(CLIENT_ID) {
        return text_response(StatusCode::BAD_REQUEST, "unknown client_id");
    }
    let Some(mut location) = param(&params, "redirect_uri").and_then(|u| Url::parse(u).ok()).filter(is_loopback) else {
        return text_response(StatusCode::BAD_REQUEST, "redirect_uri must be an http(s) URI on 127.0.0.1 or localhost");
    };
    let (outcome, login) = {
        let mut knobs = shared.knobs();
        let outcome = match knobs.deny_next.take() {
            Some(error) => Err((error, "the test IdP was told to deny this request")),
            None => check_code_request(&params),
        };
        (outcome, knobs.login.clone().unwrap_or_else(|| DEFAULT_LOGIN.to_owned()))
    };
    let mut pairs: Vec<(&str, String)> = match outcome {
        Err((error, description)) => vec![("error", error), ("error_description", description.to_owned())],
        Ok(challenge) => {
            let code = shared.random("code");
            let grant = Grant {
                redirect_uri: params.get("redirect_uri").cloned().unwrap_or_default(),
                code_challenge: challenge.to_owned(),
                nonce: param(&params, "nonce").map(str::to_owned),
                scope: param(&params, "scope").map(str::to_owned),
                login,
            };
            let mut records = shared.records();
            records.issued_secrets.push(code.clone());
            records.codes.insert(code.clone(), grant);
            vec![("code", code)]
        }
    };
    if let Some(state) = param(&params, "state") {
        pairs.push(("state", state.to_owned()));
    }
    pairs.push(("iss", shared.issuer.clone()));
    location.query_pairs_mut().extend_pairs(pairs);
    let mut resp = Response::new(empty());
    *resp.status_mut() = StatusCode::FOUND;
    if let Ok(value) = HeaderValue::from_str(location.as_str()) {
        resp.headers_mut().insert(LOCATION, value);
    }
    resp.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// A non-empty query parameter.
fn param<'a>(params: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    params.get(name).map(String::as_str).filter(|v| !v.is_empty())
}

/// The code challenge of a well-formed code request, or the RFC 6749 §4.1.2.1 error to redirect with.
fn check_code_request(params: &HashMap<String, String>) -> Result<&str, (String, &'static str)> {
    let invalid = |description| Err(("invalid_request".to_owned(), description));
    if param(params, "response_type") != Some("code") {
        return Err(("unsupported_response_type".to_owned(), "only response_type=code is supported"));
    }
    if param(params, "state").is_none() {
        return invalid("state is required");
    }
    if param(params, "code_challenge_method") != Some("S256") {
        return invalid("code_challenge_method must be S256");
    }
    param(params, "code_challenge").map_or_else(|| invalid("code_challenge is required"), Ok)
}

/// Redirect URIs accepted: http(s) on a loopback name (the gateway under test), no fragment.
fn is_loopback(url: &Url) -> bool {
    matches!(url.scheme(), "http" | "https")
        && matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"))
        && url.fragment().is_none()
}

/// An RFC 6749 §5.2 error body.
fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response<RespBody> {
    let mut resp = json_response(status, &json!({ "error": error, "error_description": description }));
    resp.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn json_response(status: StatusCode, body: &Value) -> Response<RespBody> {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())).boxed());
    *resp.status_mut() = status;
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

fn text_response(status: StatusCode, text: &'static str) -> Response<RespBody> {
    let mut resp = Response::new(Full::new(Bytes::from_static(text.as_bytes())).boxed());
    *resp.status_mut() = status;
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    resp
}

fn empty() -> RespBody {
    Full::new(Bytes::new()).boxed()
}
