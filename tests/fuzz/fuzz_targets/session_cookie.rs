//! Session cookie decoding: `Cookie` headers → `read_session_cookie` (parse, HMAC verify,
//! session id, generation, expiry, two different values), and the signed-value format itself.
//!
//! Input: first byte picks the mode, the rest is its data.
//! - even: raw `Cookie` header values, separated by `0x00`;
//! - odd: a payload the harness signs with the real keyring, then sends as the cookie.
//!
//! Invariants: nothing panics; a value that verifies re-signs to exactly itself (one encoding
//! per payload); a cookie read round-trips through `set_cookie`; a value signed for the cookie
//! is refused by a keyring without its key and by the handoff-code purpose.
#![no_main]

use std::time::{SystemTime, UNIX_EPOCH};

use gateway::config::types::SameSite;
use gateway::session::cookie::{read_session_cookie, set_cookie, CookieRead, CookieSettings};
use gateway::session::signing::MAX_SIGNED_LEN;
use gateway::session::{Purpose, SESSION_ID_LEN};
use gateway_fuzz::{keyring, COOKIE_NAME, OTHER_SECRET, SECRET};
use http::header::COOKIE;
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;

fn headers<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> HeaderMap {
    let mut h = HeaderMap::new();
    for v in values {
        if let Ok(v) = HeaderValue::from_bytes(v) {
            h.append(COOKIE, v);
        }
    }
    h
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let keys = keyring(&[SECRET, OTHER_SECRET]);
    let settings =
        CookieSettings { name: COOKIE_NAME.to_owned(), secure: true, same_site: SameSite::None, partitioned: true };
    if mode % 2 == 0 {
        let h = headers(rest.split(|b| *b == 0));
        if let CookieRead::One(c) = read_session_cookie(&h, COOKIE_NAME, &keys) {
            let set = set_cookie(&c, &settings, &keys);
            let pair = set.split(';').next().unwrap_or_default();
            let back = read_session_cookie(&headers([pair.as_bytes()]), COOKIE_NAME, &keys);
            assert_eq!(back, CookieRead::One(c), "a session cookie must survive set_cookie → Cookie");
        }
        // Every name=value piece: a value that verifies has exactly one encoding.
        let text = String::from_utf8_lossy(rest);
        for piece in text.split([';', '\0']) {
            let value = piece.split_once('=').map_or(piece, |(_, v)| v).trim();
            if let Ok(payload) = keys.verify(Purpose::SessionCookie, value) {
                // Signed by the old key verifies too; only the newest reproduces it byte for byte.
                let resigned = keys.sign(Purpose::SessionCookie, &payload);
                let old = keyring(&[OTHER_SECRET]).sign(Purpose::SessionCookie, &payload);
                assert!(value == resigned || value == old, "a verified cookie value re-encodes to itself");
            }
        }
    } else {
        let signed = keys.sign(Purpose::SessionCookie, rest);
        let h = headers([format!("{COOKIE_NAME}={signed}").as_bytes()]);
        let read = read_session_cookie(&h, COOKIE_NAME, &keys);
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if rest.len() == SESSION_ID_LEN + 12 && signed.len() <= MAX_SIGNED_LEN {
            let expires = u64::from_be_bytes(rest[SESSION_ID_LEN + 4..].try_into().unwrap_or_default());
            if expires.abs_diff(now) > 2 {
                assert_eq!(matches!(read, CookieRead::One(_)), expires >= now, "expiry decides");
            }
        } else {
            assert_eq!(read, CookieRead::Absent, "a payload of another length is no cookie");
        }
        let verified = keys.verify(Purpose::SessionCookie, &signed).ok();
        if signed.len() <= MAX_SIGNED_LEN {
            assert_eq!(verified.as_deref(), Some(rest), "a signed value verifies to its payload");
        } else {
            assert!(verified.is_none(), "values longer than MAX_SIGNED_LEN are refused");
        }
        assert!(keyring(&[OTHER_SECRET]).verify(Purpose::SessionCookie, &signed).is_err(), "another secret refuses it");
        assert!(keys.verify(Purpose::HandoffCode, &signed).is_err(), "a cookie is never a handoff code");
    }
});
