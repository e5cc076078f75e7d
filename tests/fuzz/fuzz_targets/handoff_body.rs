//! `POST /_gateway/handoff` bodies: `auth::handoff::parse_body`.
//!
//! Invariants: nothing panics; an accepted body yields a code of 1 to 128 characters that is
//! exactly the `code` string of the JSON object it came from (checked where the whole body is
//! valid JSON: fields other than `code` are skipped unread, even if not UTF-8).
#![no_main]

use gateway::auth::handoff::parse_body;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(code) = parse_body(data) {
        assert!(!code.is_empty() && code.len() <= 128, "a code of {} bytes was accepted", code.len());
        if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
            assert_eq!(value["code"].as_str(), Some(code.as_str()), "the code is not the body's");
        }
    }
});
