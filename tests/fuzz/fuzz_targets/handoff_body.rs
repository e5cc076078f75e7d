//! `POST /_gateway/handoff` bodies: `auth::handoff::parse_body`.
//!
//! Invariants: nothing panics; an accepted body is a JSON object whose `code` string, of 1 to 128
//! characters, is exactly the code returned.
#![no_main]

use gateway::auth::handoff::parse_body;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(code) = parse_body(data) {
        assert!(!code.is_empty() && code.len() <= 128, "a code of {} bytes was accepted", code.len());
        let value: serde_json::Value = serde_json::from_slice(data).unwrap_or_default();
        assert!(value.is_object(), "a body that is not a JSON object was accepted");
        assert_eq!(value["code"].as_str(), Some(code.as_str()), "the code is not the body's");
    }
});
