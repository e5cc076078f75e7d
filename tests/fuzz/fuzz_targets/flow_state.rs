//! Login-state decoding on the callback: the `state` (and `code`, `error`) query parameters as
//! `AuthRequest::query_param` reads them, the sealed Redis value, and the login transaction
//! it holds (`store::redis::decode_flow`).
//!
//! Input: first byte picks the mode, the rest is its data.
//! - 0: the callback query string;
//! - 1: a sealed value as read from Redis (must never open: the fuzzer holds no key);
//! - other: the transaction's JSON, sealed by the harness with the real sealer and opened back.
//!
//! Invariants: nothing panics; a sealed value opens only under its own key name; a decoded
//! transaction re-encodes to JSON that decodes to the same transaction.
#![no_main]

use gateway::auth::AuthRequest;
use gateway::store::redis::{decode_flow, encode_flow};
use gateway::store::sealed::Sealer;
use gateway::auth::flow::FlowRecord;
use gateway_fuzz::{keyring, OTHER_SECRET, SECRET};
use http::{HeaderMap, Method};
use libfuzzer_sys::fuzz_target;
use secrecy::ExposeSecret;

const KEY_NAME: &str = "gw:f:state";

fn same(a: &FlowRecord, b: &FlowRecord) -> bool {
    a.session == b.session
        && a.provider == b.provider
        && a.pkce_verifier.expose_secret() == b.pkce_verifier.expose_secret()
        && a.nonce == b.nonce
        && a.opener == b.opener
        && a.teams_user == b.teams_user
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let sealer = Sealer::from_keyring(&keyring(&[SECRET]));
    match mode {
        0 => {
            let Ok(query) = std::str::from_utf8(rest) else { return };
            let headers = HeaderMap::new();
            let req =
                AuthRequest { method: &Method::GET, query: Some(query), headers: &headers, body: Default::default() };
            for name in ["state", "code", "error", "error_description", "iss"] {
                if let Some(v) = req.query_param(name) {
                    let _ = sealer.open(&format!("gw:f:{v}"), rest);
                }
            }
        }
        1 => assert!(sealer.open(KEY_NAME, rest).is_none(), "a value the fuzzer made up never opens"),
        _ => {
            let Some(sealed) = sealer.seal(KEY_NAME, rest) else { return };
            assert!(sealer.open("gw:f:other", &sealed).is_none(), "sealed values are bound to their key");
            assert!(Sealer::from_keyring(&keyring(&[OTHER_SECRET])).open(KEY_NAME, &sealed).is_none());
            let plain = sealer.open(KEY_NAME, &sealed);
            assert_eq!(plain.as_deref(), Some(rest));
            if let Some(flow) = decode_flow(rest) {
                let again = encode_flow(&flow).ok().and_then(|json| decode_flow(&json));
                assert!(again.is_some_and(|b| same(&flow, &b)), "a transaction survives encode → decode");
            }
        }
    }
});
