//! Bearer tokens of Office and Teams single sign-on: `Authorization` header values through
//! `bearer_of` and `BearerVerifier::verify` (unverified tenant, key look-up, RS256 signature,
//! issuer, audience, scope, lifetime).
//!
//! Input: first byte picks the mode, the rest is its data.
//! - 0: the `Authorization` header value;
//! - other: `header 0x00 claims`, signed RS256 with the test key (kid `a`), so the checks after
//!   the signature see arbitrary headers and claims.
//!
//! Invariants: nothing panics; an accepted token names an admitted tenant, the v1 or v2 issuer of
//! that tenant, the configured audience and scope, and an `exp` not in the past (beyond the skew).
#![no_main]

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use gateway::config::types::ProviderName;
use gateway::config::{BearerConfig, SignInRules};
use gateway::providers::bearer::{bearer_of, BearerVerifier};
use gateway_fuzz::{block_on, split_nul, Idp, RSA_DER};
use jsonwebtoken::{Algorithm, EncodingKey};
use libfuzzer_sys::fuzz_target;

const AUTHORITY: &str = "https://login.fuzz.test";
const CLIENT: &str = "fuzz-api";

fn verifier() -> &'static BearerVerifier {
    static V: std::sync::OnceLock<BearerVerifier> = std::sync::OnceLock::new();
    V.get_or_init(|| {
        let (Ok(name), Ok(authority)) = (ProviderName::parse("entra"), AUTHORITY.parse()) else {
            std::process::abort()
        };
        let config = BearerConfig { audiences: vec![CLIENT.to_owned()], scopes: vec!["access_as_user".to_owned()] };
        let rules = SignInRules { tenants: Some(vec!["t1".to_owned(), "t2".to_owned()]), ..SignInRules::default() };
        BearerVerifier::new(name, &authority, "organizations", &rules, config, Arc::clone(Idp::get()) as _)
    })
}

fn sign_rs256(header: &[u8], claims: &[u8]) -> String {
    let mut token = URL_SAFE_NO_PAD.encode(header);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(claims, &mut token);
    let key = EncodingKey::from_rsa_der(RSA_DER);
    let signature = jsonwebtoken::crypto::sign(token.as_bytes(), &key, Algorithm::RS256).unwrap_or_default();
    token.push('.');
    token.push_str(&signature);
    token
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let token = if mode == 0 {
        let Ok(value) = std::str::from_utf8(rest) else { return };
        let Some(token) = bearer_of(value) else { return };
        token.to_owned()
    } else {
        let (header, claims) = split_nul(rest);
        sign_rs256(header, claims)
    };
    let Ok((tokens, _)) = block_on(verifier().verify(&token)) else { return };
    let claims: serde_json::Value = token
        .split('.')
        .nth(1)
        .and_then(|p| URL_SAFE_NO_PAD.decode(p).ok())
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let tid = tokens.identity.tenant.clone().unwrap_or_default();
    assert!(tid == "t1" || tid == "t2", "a token of tenant {tid:?} was accepted");
    let iss = claims["iss"].as_str().unwrap_or_default().to_ascii_lowercase();
    assert!(iss == format!("https://sts.windows.net/{tid}/") || iss == format!("{AUTHORITY}/{tid}/v2.0"), "issuer {iss}");
    let aud_ok = match &claims["aud"] {
        serde_json::Value::String(a) => a == CLIENT,
        serde_json::Value::Array(list) => list.iter().any(|a| a == CLIENT),
        _ => false,
    };
    assert!(aud_ok, "audience {}", claims["aud"]);
    let scp = claims["scp"].as_str().unwrap_or_default();
    assert!(scp.split(' ').any(|s| s == "access_as_user"), "scope {scp:?}");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    assert!(claims["exp"].as_u64().is_some_and(|exp| exp + 300 >= now), "expired: {}", claims["exp"]);
});
