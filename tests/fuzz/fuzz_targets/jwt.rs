//! JWT header and payload parsing of the two token checks: `providers::id_token::verify` (ID
//! tokens at the callback, keys from the provider's JWKS) and `BotTokenVerifier::verify` (the
//! Bot Framework bearer token on `bot_path`).
//!
//! Input: first byte picks the mode, the rest is its data.
//! - 0: a compact JWS as received, given to both checks;
//! - other: `header JSON 0x00 payload JSON`, which the harness signs with the provider's
//!   ES256 key whatever the header says, so the checks after the signature see them.
//!
//! Invariants: nothing panics; an accepted ID token says ES256 (the only key that signs here),
//! and its claims are the expected issuer, audience, authorised party and nonce.
#![no_main]

use std::sync::Arc;

use gateway::providers::id_token::{verify, Audience, Expectations};
use gateway::providers::jwks::JwksCache;
use gateway::providers::IssuerRule;
use gateway::teams::bot_token::BotTokenVerifier;
use gateway_fuzz::{block_on, split_nul, Idp, BOT_APP_ID, BOT_METADATA, CLIENT_ID, ISSUER, NONCE};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let idp = Idp::get();
    let (Ok(jwks_uri), Ok(metadata)) = ("https://idp.fuzz.test/jwks".parse(), BOT_METADATA.parse()) else { return };
    let token = if mode == 0 {
        let Ok(text) = std::str::from_utf8(rest) else { return };
        let bot = BotTokenVerifier::new(metadata, BOT_APP_ID.to_owned(), None, Arc::clone(idp) as _);
        let _ = block_on(bot.verify(Some(&format!("Bearer {text}")), Some("https://smba.trafficmanager.net/amer/")));
        text.to_owned()
    } else {
        let (header, payload) = split_nul(rest);
        idp.sign_es256(header, payload)
    };
    let keys = JwksCache::new(jwks_uri);
    let issuer = IssuerRule::OneOf(vec![ISSUER.to_owned()]);
    let expect = Expectations { issuer: &issuer, client_id: CLIENT_ID, nonce: NONCE };
    if let Ok(claims) = block_on(verify(&token, &keys, idp.as_ref(), &expect)) {
        if mode != 0 {
            let header = jsonwebtoken::decode_header(&token).map(|h| h.alg);
            assert_eq!(header.ok(), Some(jsonwebtoken::Algorithm::ES256));
        }
        assert_eq!(claims.iss, ISSUER);
        assert_eq!(claims.nonce.as_deref(), Some(NONCE));
        assert!(claims.azp.as_deref().is_none_or(|a| a == CLIENT_ID));
        let aud_ok = match &claims.aud {
            Audience::One(a) => a == CLIENT_ID,
            Audience::Many(list) => list.iter().any(|a| a == CLIENT_ID) && (list.len() == 1 || claims.azp.is_some()),
            Audience::None => false,
        };
        assert!(aud_ok, "accepted audience {:?}", claims.aud);
    }
});
