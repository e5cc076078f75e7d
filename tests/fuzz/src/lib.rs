//! What the fuzz targets and the seed writer share: keyrings on fixed test-only secrets, a
//! one-thread runtime for the async checks, and an in-memory identity provider whose keys the
//! ID-token and bot-token checks fetch.
//!
//! # Layout
//! - `fuzz_targets/`: one libFuzzer target per parser, each calling the gateway's own function
//! - `examples/seed.rs`: writes the seed corpora of `corpus/` with the gateway's real encoders
//! - `run`: builds every target and runs each for a bounded time (see the repository README)

use std::future::Future;
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use gateway::config::SessionSecret;
use gateway::providers::http_client::{HttpClient, HttpError, HttpRequest, HttpResponse};
use gateway::session::Keyring;
use jsonwebtoken::{Algorithm, EncodingKey};
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use secrecy::SecretString;
use serde_json::{json, Value};

/// The signing secret of the fuzz keyrings (test-only, protects nothing).
pub const SECRET: &str = "fuzz-only-secret-0123456789-abcdefghijklmnop";
/// A second secret: signs "another gateway's" values and plays the retired key.
pub const OTHER_SECRET: &str = "fuzz-only-other-secret-0123456789-abcdefghij";
/// The session cookie name the targets look for (the default).
pub const COOKIE_NAME: &str = gateway::config::defaults::DEFAULT_COOKIE_NAME;

/// Issuer of the in-memory identity provider.
pub const ISSUER: &str = "https://idp.fuzz.test";
/// The client id ID tokens must be issued to.
pub const CLIENT_ID: &str = "fuzz-client";
/// The nonce ID tokens must carry.
pub const NONCE: &str = "fuzz-nonce";
/// Key id of the provider's fresh ES256 key (signs the fuzzed header/payload pairs).
pub const EC_KID: &str = "ec";
/// Key id of the fixed RSA test key (`tests/fixtures/keys/rsa-a`), for seed tokens.
pub const RSA_KID: &str = "a";
/// The RSA test key (PKCS#1 DER), so seeds can carry genuinely signed RS256 tokens.
pub const RSA_DER: &[u8] = include_bytes!("../../fixtures/keys/rsa-a.der");
const RSA_N: &str = include_str!("../../fixtures/keys/rsa-a.n");
/// Bot Framework app id the bot-token check expects.
pub const BOT_APP_ID: &str = "fuzz-bot-app";
/// Where the bot-token check fetches the Bot Framework OpenID metadata from (answered in memory).
pub const BOT_METADATA: &str = "https://bot.fuzz.test/openid";
const BOT_JWKS: &str = "https://bot.fuzz.test/keys";

/// A keyring with `secrets`, newest first.
pub fn keyring(secrets: &[&str]) -> Keyring {
    let secrets: Vec<SessionSecret> =
        secrets.iter().filter_map(|s| SessionSecret::parse(SecretString::from((*s).to_owned())).ok()).collect();
    Keyring::from_secrets(&secrets)
}

/// Runs `f` to completion on a current-thread runtime shared by the whole process.
pub fn block_on<F: Future>(f: F) -> F::Output {
    static RUNTIME: OnceLock<Option<tokio::runtime::Runtime>> = OnceLock::new();
    let rt = RUNTIME.get_or_init(|| tokio::runtime::Builder::new_current_thread().enable_time().build().ok());
    match rt {
        Some(rt) => rt.block_on(f),
        None => std::process::abort(),
    }
}

/// The in-memory identity provider: an ES256 key made at start-up, the fixed RSA test key, and
/// the Bot Framework metadata and keys (the RSA key, endorsed for `msteams`).
pub struct Idp {
    ec: EncodingKey,
    jwks: Value,
}

impl Idp {
    /// The process-wide provider.
    pub fn get() -> &'static Arc<Idp> {
        static IDP: OnceLock<Arc<Idp>> = OnceLock::new();
        IDP.get_or_init(|| Arc::new(Idp::new()))
    }

    fn new() -> Self {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng);
        let pair = pkcs8
            .as_ref()
            .ok()
            .and_then(|p| EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, p.as_ref(), &rng).ok());
        let (Ok(pkcs8), Some(pair)) = (pkcs8, pair) else { std::process::abort() };
        let point = pair.public_key().as_ref();
        let ec_jwk = json!({"kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": EC_KID,
                            "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..65])});
        let rsa_jwk = json!({"kty": "RSA", "use": "sig", "kid": RSA_KID, "n": RSA_N.trim(), "e": "AQAB",
                             "endorsements": ["msteams"]});
        Self { ec: EncodingKey::from_ec_der(pkcs8.as_ref()), jwks: json!({"keys": [ec_jwk, rsa_jwk]}) }
    }

    /// `base64url(header).base64url(payload).signature`, signed with the ES256 key whatever the
    /// header says, so the checks after the signature see arbitrary headers and claims.
    pub fn sign_es256(&self, header: &[u8], payload: &[u8]) -> String {
        let mut token = URL_SAFE_NO_PAD.encode(header);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(payload, &mut token);
        let signature = jsonwebtoken::crypto::sign(token.as_bytes(), &self.ec, Algorithm::ES256).unwrap_or_default();
        token.push('.');
        token.push_str(&signature);
        token
    }
}

#[async_trait]
impl HttpClient for Idp {
    async fn send(&self, req: HttpRequest) -> Result<HttpResponse, HttpError> {
        let body = match req.uri().to_string().as_str() {
            BOT_METADATA => json!({"issuer": "https://api.botframework.com", "jwks_uri": BOT_JWKS}),
            _ => self.jwks.clone(),
        };
        http::Response::builder()
            .status(200)
            .body(body.to_string().into_bytes())
            .map_err(|e| HttpError::Transport(e.to_string()))
    }
}

/// Splits `data` at the first `0x00` into two parts (the second empty when there is none).
pub fn split_nul(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}
