//! ID-token checks against real signatures: RS256 and ES256 keys, a JWKS served by a
//! function-shaped client, and one test per refusal.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use super::*;
use crate::providers::http_client::{HttpError, HttpRequest, HttpResponse};
use crate::providers::IssuerRule;

const RSA_A: &[u8] = include_bytes!("../../../../tests/fixtures/keys/rsa-a.der");
const RSA_A_N: &str = include_str!("../../../../tests/fixtures/keys/rsa-a.n");
const RSA_A_PUB: &str = include_str!("../../../../tests/fixtures/keys/rsa-a.pub.pem");
const RSA_B: &[u8] = include_bytes!("../../../../tests/fixtures/keys/rsa-b.der");
const ISS: &str = "https://idp.test";
const CLIENT: &str = "client-1";
const NONCE: &str = "nonce-1";

/// Serves a JWKS and counts fetches.
struct Keys {
    jwks: Value,
    fetches: AtomicUsize,
}

#[async_trait]
impl HttpClient for Keys {
    async fn send(&self, _req: HttpRequest) -> Result<HttpResponse, HttpError> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        Ok(http::Response::builder().status(200).body(self.jwks.to_string().into_bytes()).unwrap())
    }
}

fn keys() -> Keys {
    let jwks = json!({"keys": [{"kty": "RSA", "kid": "a", "use": "sig", "n": RSA_A_N.trim(), "e": "AQAB"}]});
    Keys { jwks, fetches: AtomicUsize::new(0) }
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn claims() -> Value {
    json!({"iss": ISS, "sub": "u1", "aud": CLIENT, "exp": now() + 300, "iat": now(), "nonce": NONCE,
           "email": "u1@example.test", "email_verified": true, "name": "User One"})
}

fn sign(alg: Algorithm, kid: Option<&str>, key: &EncodingKey, claims: &Value) -> String {
    let mut h = Header::new(alg);
    h.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&h, claims, key).unwrap()
}

fn rsa(der: &[u8]) -> EncodingKey {
    EncodingKey::from_rsa_der(der)
}

async fn check(token: &str, k: &Keys) -> Result<IdClaims, IdTokenError> {
    let cache = JwksCache::new(url::Url::parse("https://idp.test/jwks").unwrap());
    let issuer = IssuerRule::OneOf(vec![ISS.to_owned()]);
    verify(token, &cache, k, &Expectations { issuer: &issuer, client_id: CLIENT, nonce: NONCE }).await
}

#[tokio::test]
async fn valid_rs256_and_ps256_tokens_pass() {
    let k = keys();
    let c = check(&sign(Algorithm::RS256, Some("a"), &rsa(RSA_A), &claims()), &k).await.unwrap();
    assert_eq!((c.sub.as_str(), c.name.as_deref()), ("u1", Some("User One")));
    check(&sign(Algorithm::PS256, Some("a"), &rsa(RSA_A), &claims()), &k).await.unwrap();
}

#[tokio::test]
async fn valid_es256_token_passes() {
    use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    let p = pair.public_key().as_ref();
    let jwks = json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "e", "x": URL_SAFE_NO_PAD.encode(&p[1..33]),
                                "y": URL_SAFE_NO_PAD.encode(&p[33..65])}]});
    let k = Keys { jwks, fetches: AtomicUsize::new(0) };
    let token = sign(Algorithm::ES256, Some("e"), &EncodingKey::from_ec_der(pkcs8.as_ref()), &claims());
    check(&token, &k).await.unwrap();
}

#[tokio::test]
async fn signature_by_another_key_is_refused() {
    let token = sign(Algorithm::RS256, Some("a"), &rsa(RSA_B), &claims());
    assert!(matches!(check(&token, &keys()).await, Err(IdTokenError::BadSignature)));
}

#[tokio::test]
async fn tampered_payload_is_refused() {
    let token = sign(Algorithm::RS256, Some("a"), &rsa(RSA_A), &claims());
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut c = claims();
    c["sub"] = json!("admin");
    parts[1] = URL_SAFE_NO_PAD.encode(c.to_string());
    assert!(matches!(check(&parts.join("."), &keys()).await, Err(IdTokenError::BadSignature)));
}

// Guards against CVE-2015-9235 (alg=none accepted by JWT libraries).
#[tokio::test]
async fn alg_none_is_refused() {
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let token = format!("{header}.{}.", URL_SAFE_NO_PAD.encode(claims().to_string()));
    assert!(matches!(check(&token, &keys()).await, Err(IdTokenError::Malformed | IdTokenError::AlgorithmRefused)));
}

// Guards against CVE-2016-10555 (HS256 signed with the provider's RSA public key).
#[tokio::test]
async fn hs256_with_the_public_key_as_secret_is_refused() {
    let token = sign(Algorithm::HS256, Some("a"), &EncodingKey::from_secret(RSA_A_PUB.as_bytes()), &claims());
    assert!(matches!(check(&token, &keys()).await, Err(IdTokenError::AlgorithmRefused)));
}

#[tokio::test]
async fn wrong_issuer_audience_azp_and_nonce_are_refused() {
    let key = rsa(RSA_A);
    let k = keys();
    let mut c = claims();
    c["iss"] = json!("https://evil.test");
    assert!(matches!(check(&sign(Algorithm::RS256, Some("a"), &key, &c), &k).await, Err(IdTokenError::WrongIssuer)));
    let mut c = claims();
    c["aud"] = json!("other-client");
    assert!(matches!(check(&sign(Algorithm::RS256, Some("a"), &key, &c), &k).await, Err(IdTokenError::WrongAudience)));
    let mut c = claims();
    c["aud"] = json!([CLIENT, "other"]);
    assert!(matches!(check(&sign(Algorithm::RS256, Some("a"), &key, &c), &k).await, Err(IdTokenError::WrongAudience)));
    c["azp"] = json!(CLIENT);
    check(&sign(Algorithm::RS256, Some("a"), &key, &c), &k).await.unwrap();
    let mut c = claims();
    c["nonce"] = json!("replayed-nonce");
    assert!(matches!(check(&sign(Algorithm::RS256, Some("a"), &key, &c), &k).await, Err(IdTokenError::NonceMismatch)));
    c.as_object_mut().unwrap().remove("nonce");
    assert!(matches!(check(&sign(Algorithm::RS256, Some("a"), &key, &c), &k).await, Err(IdTokenError::NonceMismatch)));
}

#[tokio::test]
async fn expired_and_future_tokens_are_refused() {
    let key = rsa(RSA_A);
    let mut c = claims();
    c["exp"] = json!(now() - 3600);
    assert!(matches!(check(&sign(Algorithm::RS256, Some("a"), &key, &c), &keys()).await, Err(IdTokenError::Expired)));
    let mut c = claims();
    c["iat"] = json!(now() + 3600);
    assert!(matches!(
        check(&sign(Algorithm::RS256, Some("a"), &key, &c), &keys()).await,
        Err(IdTokenError::IssuedInFuture)
    ));
}

#[tokio::test]
async fn unknown_kid_refetches_once_then_is_refused() {
    let k = keys();
    let cache = JwksCache::new(url::Url::parse("https://idp.test/jwks").unwrap());
    let issuer = IssuerRule::OneOf(vec![ISS.to_owned()]);
    let e = Expectations { issuer: &issuer, client_id: CLIENT, nonce: NONCE };
    let token = sign(Algorithm::RS256, Some("rotated"), &rsa(RSA_A), &claims());
    assert!(matches!(verify(&token, &cache, &k, &e).await, Err(IdTokenError::Key(JwksError::UnknownKid))));
    assert!(matches!(verify(&token, &cache, &k, &e).await, Err(IdTokenError::Key(JwksError::UnknownKid))));
    assert_eq!(k.fetches.load(Ordering::SeqCst), 1, "a second unknown kid within a minute must not refetch");
    verify(&sign(Algorithm::RS256, Some("a"), &rsa(RSA_A), &claims()), &cache, &k, &e).await.unwrap();
}
