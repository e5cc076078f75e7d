//! Fixtures shared by the criterion benches in `benches/benches/`: one validated config, its keys,
//! a signed-in session in a memory store, the headers a browser sends, and an in-process JWKS.
//!
//! # Layout
//! - `benches/*.rs`: one criterion target per measured function (`cargo bench -p gateway-benches`)
//! - `run`: the load harness (wrk against the upstream, nginx, the gateway and mod_auth_openidc)
//! - `results/`: the harness's reports, one file per run
#![allow(clippy::expect_used, reason = "fixtures: a broken fixture must stop the bench at once, loudly")]

use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use gateway::auth::AuthService;
use gateway::channel::Hub;
use gateway::config::types::ProviderName;
use gateway::config::Config;
use gateway::identity::Identity;
use gateway::metrics::Metrics;
use gateway::providers::http_client::{HttpClient, HttpError, HttpRequest, HttpResponse};
use gateway::providers::ProviderRegistry;
use gateway::session::cookie::{set_cookie, CookieSettings, SessionCookie};
use gateway::session::{Keyring, SessionId};
use gateway::store::memory::MemoryStore;
use gateway::store::{StoredTokens, TokenStore};
use http::header::{HeaderName, HeaderValue};
use http::HeaderMap;
use secrecy::SecretString;

/// The session secret of [`CONFIG`] (48 bytes, as `gateway demo` makes).
pub const SECRET: &str = "bench-secret-0123456789-abcdefghijklmnopqrstuvwx";

/// The gateway's public origin in [`CONFIG`]; requests carry it as `Host`.
pub const HOST: &str = "127.0.0.1:3001";

/// A plain-HTTP config with the `dev` provider and one protected prefix, as the load harness runs.
pub const CONFIG: &str = r#"
[server]
listen = "127.0.0.1:3001"
public_url = "http://127.0.0.1:3001"

[upstream]
addrs = ["127.0.0.1:3000"]

[session]
secret = "env:GATEWAY_SECRET"
token_ttl = "1h"
cookie_secure = false
cookie_same_site = "lax"
cookie_partitioned = false

[providers.dev]
kind = "dev"

[[routes]]
prefix = "/api/"
require = ["dev"]
"#;

/// [`CONFIG`], validated.
pub fn config() -> Config {
    let env = |name: &str| (name == "GATEWAY_SECRET").then(|| SECRET.to_owned());
    gateway::config::load_str(CONFIG, "benches/src/lib.rs", &env).expect("the bench config is valid")
}

/// The keyring the gateway builds from `config`.
pub fn keyring(config: &Config) -> Keyring {
    Keyring::from_secrets(&config.session.secrets)
}

/// A keyring of two keys where the value to verify was signed by the second (a rotation in
/// progress: verification tries the new key first, then the old one).
pub fn rotated_keyring() -> (Keyring, Keyring) {
    let secret = |s: &str| gateway::config::SessionSecret::parse(SecretString::from(s.to_owned())).expect("48 bytes");
    let new = "n".repeat(48);
    (Keyring::from_secrets(&[secret(&new), secret(SECRET)]), Keyring::from_secrets(&[secret(SECRET)]))
}

/// The `dev` provider's name.
pub fn provider() -> ProviderName {
    ProviderName::parse("dev").expect("a valid provider name")
}

/// Tokens as an OIDC sign-in stores them: every identity field set and a JWT-sized access token.
pub fn tokens(provider: &ProviderName) -> StoredTokens {
    StoredTokens {
        identity: Identity {
            provider: provider.clone(),
            subject: "00000000-0000-0000-66f3-3332eca7ea81".to_owned(),
            email: Some("adele.vance@contoso.example".to_owned()),
            preferred_username: Some("AdeleV@contoso.example".to_owned()),
            name: Some("Adele Vance".to_owned()),
            tenant: Some("72f988bf-86f1-41af-91ab-2d7cd011db47".to_owned()),
            groups: vec!["b4c1f2a0-5d3e-4f6a-9b8c-7d6e5f4a3b2c".to_owned()],
            roles: Vec::new(),
        },
        access_token: SecretString::from("eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.".repeat(30)),
        refresh_token: Some(SecretString::from("0.AAAA".repeat(100))),
        access_expires_at: None,
        signed_in_at: SystemTime::now(),
        header_values: Default::default(),
    }
}

/// The `Cookie` pair (`gw_session=...`) that the gateway would set for `session`.
pub fn session_cookie(config: &Config, keys: &Keyring, session: &SessionId) -> String {
    let cookie = SessionCookie::new(*session, 0, config.session.lifetime.get());
    let full = set_cookie(&cookie, &CookieSettings::from_config(&config.session), keys);
    full.split(';').next().unwrap_or_default().to_owned()
}

/// The headers of a browser's `fetch` from an Office task pane (Chrome, 14 headers), with
/// `cookie` placed among analytics and preference cookies.
pub fn browser_headers(session_cookie: Option<&str>) -> HeaderMap {
    let mut h = HeaderMap::new();
    let mut put = |name: &'static str, value: &str| {
        h.append(HeaderName::from_static(name), HeaderValue::from_str(value).expect("a valid header value"));
    };
    put("host", HOST);
    put("connection", "keep-alive");
    put("sec-ch-ua", "\"Chromium\";v=\"130\", \"Google Chrome\";v=\"130\", \"Not?A_Brand\";v=\"99\"");
    put("sec-ch-ua-mobile", "?0");
    put("sec-ch-ua-platform", "\"Windows\"");
    put(
        "user-agent",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36",
    );
    put("accept", "application/json, text/plain, */*");
    put("sec-fetch-site", "same-origin");
    put("sec-fetch-mode", "cors");
    put("sec-fetch-dest", "empty");
    put("referer", "http://127.0.0.1:3001/taskpane.html?_host_Info=Outlook$Win32$16.02$en-US");
    put("accept-encoding", "gzip, deflate, br, zstd");
    put("accept-language", "en-US,en;q=0.9");
    let cookies = match session_cookie {
        Some(c) => format!("_ga=GA1.1.1234567890.1700000000; theme=dark; {c}; _ga_XYZ=GS1.1.1700000000.1.0"),
        None => "_ga=GA1.1.1234567890.1700000000; theme=dark; _ga_XYZ=GS1.1.1700000000.1.0".to_owned(),
    };
    put("cookie", &cookies);
    h
}

/// Adds what an attacker sends to impersonate a user: identity headers in two spellings and
/// forwarding headers, all of which the gateway must remove.
pub fn add_spoofed_identity(headers: &mut HeaderMap) {
    for (name, value) in [
        ("x-forwarded-user", "admin"),
        ("x_forwarded_email", "admin@contoso.example"),
        ("x-forwarded-for", "10.0.0.1"),
        ("x-real-ip", "10.0.0.1"),
    ] {
        headers.append(
            HeaderName::from_bytes(name.as_bytes()).expect("a valid header name"),
            HeaderValue::from_static(value),
        );
    }
}

/// An HTTP client that answers every request with `body` (status 200): a provider's JWKS, served
/// in-process so ID-token benches measure no network.
pub struct StaticResponse {
    /// The response body.
    pub body: Vec<u8>,
}

#[async_trait]
impl HttpClient for StaticResponse {
    async fn send(&self, _req: HttpRequest) -> Result<HttpResponse, HttpError> {
        http::Response::builder().status(200).body(self.body.clone()).map_err(|e| HttpError::Transport(e.to_string()))
    }
}

/// The gateway's auth service over a memory store holding one signed-in session, plus that
/// session's cookie pair.
pub struct SignedIn {
    /// The service the proxy's `request_filter` calls (`authorize`).
    pub auth: Arc<AuthService>,
    /// The store behind it.
    pub store: Arc<MemoryStore>,
    /// The signed-in session.
    pub session: SessionId,
    /// Its `gw_session=...` cookie pair.
    pub cookie: String,
}

/// Builds [`SignedIn`] from `config`, with `others` more signed-in sessions in the store so
/// lookups do not run on a one-entry cache.
pub async fn signed_in(config: &Config, others: usize) -> SignedIn {
    let store = Arc::new(MemoryStore::new(config.session.token_ttl.get()));
    let provider = provider();
    for _ in 0..others {
        let s = SessionId::generate().expect("the OS random source works");
        store.put_tokens(&s, tokens(&provider)).await.expect("the memory store accepts tokens");
    }
    let session = SessionId::generate().expect("the OS random source works");
    store.put_tokens(&session, tokens(&provider)).await.expect("the memory store accepts tokens");
    store.run_maintenance().await;
    let http: Arc<dyn HttpClient> = Arc::new(StaticResponse { body: b"{}".to_vec() });
    let providers = ProviderRegistry::from_config(config, http);
    let metrics = Metrics::new().expect("the metrics registry builds");
    let hub = Arc::new(Hub::new(config.channel.max_sockets_per_session, None));
    let dyn_store: Arc<dyn TokenStore> = Arc::clone(&store) as Arc<dyn TokenStore>;
    let keys = gateway::session::Keyring::from_secrets(&config.session.secrets);
    let auth = Arc::new(AuthService::new(config, keys, providers, dyn_store, hub, metrics));
    let cookie = session_cookie(config, auth.keys(), &session);
    SignedIn { auth, store, session, cookie }
}

/// A current-thread tokio runtime for async benches: one request at a time, no scheduler noise.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime builds")
}

/// An ID token as a provider's token endpoint returns it, with everything needed to verify it
/// the way the callback does: the JWKS (served in-process), the key cache and the expectations.
pub struct IdTokenCase {
    /// The compact JWS.
    pub token: String,
    /// Serves the provider's JWKS.
    pub jwks: StaticResponse,
    /// The gateway's key cache for that provider (filled on first use).
    pub cache: gateway::providers::jwks::JwksCache,
    /// The accepted issuers.
    pub issuer: gateway::providers::IssuerRule,
}

/// Issuer, client id and nonce of every [`IdTokenCase`].
pub const ID_TOKEN_ISS: &str = "https://idp.bench.example";
/// The client id the token is issued to.
pub const ID_TOKEN_CLIENT: &str = "client-bench";
/// The nonce the login transaction holds.
pub const ID_TOKEN_NONCE: &str = "n-0S6_WzA2Mj";

const RSA_A_DER: &[u8] = include_bytes!("../../tests/fixtures/keys/rsa-a.der");
const RSA_A_N: &str = include_str!("../../tests/fixtures/keys/rsa-a.n");

impl IdTokenCase {
    /// RS256 with the 2048-bit test key `tests/fixtures/keys/rsa-a`.
    pub fn rs256() -> Self {
        let jwks = serde_json::json!({"keys": [
            {"kty": "RSA", "kid": "a", "use": "sig", "n": RSA_A_N.trim(), "e": "AQAB"}]});
        let key = jsonwebtoken::EncodingKey::from_rsa_der(RSA_A_DER);
        Self::signed(jsonwebtoken::Algorithm::RS256, "a", &key, &jwks)
    }

    /// ES256 with a fresh P-256 key (the algorithm of the built-in `dev` provider).
    pub fn es256() -> Self {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine;
        use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("a P-256 key");
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).expect("its pair");
        let point = pair.public_key().as_ref();
        let jwks = serde_json::json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "e", "use": "sig",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..65])}]});
        let key = jsonwebtoken::EncodingKey::from_ec_der(pkcs8.as_ref());
        Self::signed(jsonwebtoken::Algorithm::ES256, "e", &key, &jwks)
    }

    fn signed(
        alg: jsonwebtoken::Algorithm,
        kid: &str,
        key: &jsonwebtoken::EncodingKey,
        jwks: &serde_json::Value,
    ) -> Self {
        let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        // Claims of a typical Entra v2.0 ID token, so parsing costs what it costs in production.
        let claims = serde_json::json!({
            "iss": ID_TOKEN_ISS, "sub": "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ", "aud": ID_TOKEN_CLIENT,
            "exp": now + 3600, "iat": now, "nbf": now, "nonce": ID_TOKEN_NONCE,
            "name": "Adele Vance", "preferred_username": "AdeleV@contoso.example",
            "email": "adele.vance@contoso.example", "email_verified": true,
            "oid": "00000000-0000-0000-66f3-3332eca7ea81", "tid": "9122040d-6c67-4c5b-b112-36a304b66dad",
            "ver": "2.0", "rh": "0.AAAA", "uti": "abcdefghijklmnopqrstuv"});
        let mut header = jsonwebtoken::Header::new(alg);
        header.kid = Some(kid.to_owned());
        let token = jsonwebtoken::encode(&header, &claims, key).expect("the token signs");
        let uri = url::Url::parse(&format!("{ID_TOKEN_ISS}/keys")).expect("a valid URL");
        Self {
            token,
            jwks: StaticResponse { body: jwks.to_string().into_bytes() },
            cache: gateway::providers::jwks::JwksCache::new(uri),
            issuer: gateway::providers::IssuerRule::OneOf(vec![ID_TOKEN_ISS.to_owned()]),
        }
    }

    /// Verifies the token as the callback does.
    pub async fn verify(
        &self,
    ) -> Result<gateway::providers::id_token::IdClaims, gateway::providers::id_token::IdTokenError> {
        let expect = gateway::providers::id_token::Expectations {
            issuer: &self.issuer,
            client_id: ID_TOKEN_CLIENT,
            nonce: ID_TOKEN_NONCE,
        };
        gateway::providers::id_token::verify(&self.token, &self.cache, &self.jwks, &expect).await
    }
}
