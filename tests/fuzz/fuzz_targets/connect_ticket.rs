//! Connect ticket decoding, as `/connect/{provider}/{ticket}` does it: a `t.` Teams user
//! reference goes to `verify_reference`, anything else to `verify_ticket`.
//!
//! Input: first byte picks the mode, the rest is its data.
//! - 0: the ticket text from the URL;
//! - 1: a payload the harness signs as a ticket (reaches the decoding after the HMAC);
//! - 2: a payload the harness signs as a Teams user reference;
//! - other: the text, signed as a ticket, checked against the cookie and Teams purposes.
//!
//! Invariants: nothing panics; the outcome of a signed payload is exactly what its layout says
//! (32-byte id + big-endian expiry; expiry + UTF-8 user); a verified ticket re-encodes to itself.
#![no_main]

use std::time::{SystemTime, UNIX_EPOCH};

use gateway::session::signing::MAX_SIGNED_LEN;
use gateway::session::ticket::{verify_ticket, TicketError};
use gateway::session::{Purpose, SessionId, SESSION_ID_LEN};
use gateway::teams::{TeamsService, TEAMS_TICKET_PREFIX};
use gateway_fuzz::{keyring, OTHER_SECRET, SECRET};
use libfuzzer_sys::fuzz_target;

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Expiries this close to the clock may flip while the check runs; their outcome is not asserted.
fn near_now(exp: u64) -> bool {
    exp.abs_diff(now()) <= 2
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let keys = keyring(&[SECRET, OTHER_SECRET]);
    match mode {
        0 => {
            let Ok(text) = std::str::from_utf8(rest) else { return };
            if text.starts_with(TEAMS_TICKET_PREFIX) {
                let _ = TeamsService::verify_reference(&keys, text);
            } else if let Ok(id) = verify_ticket(&keys, text) {
                let payload = keys.verify(Purpose::Ticket, text).unwrap_or_default();
                assert_eq!(&payload[..SESSION_ID_LEN], id.as_bytes());
                let resigned = keys.sign(Purpose::Ticket, &payload);
                let old = keyring(&[OTHER_SECRET]).sign(Purpose::Ticket, &payload);
                assert!(text == resigned || text == old, "a verified ticket re-encodes to itself");
            }
        }
        1 => {
            let signed = keys.sign(Purpose::Ticket, rest);
            let got = verify_ticket(&keys, &signed);
            if signed.len() > MAX_SIGNED_LEN || rest.len() != SESSION_ID_LEN + 8 {
                assert_eq!(got, Err(TicketError::Invalid));
                return;
            }
            let (id, exp) = rest.split_at(SESSION_ID_LEN);
            let exp = u64::from_be_bytes(exp.try_into().unwrap_or_default());
            if near_now(exp) {
                return;
            }
            let want = if exp < now() {
                Err(TicketError::Expired)
            } else {
                SessionId::from_bytes(id).ok_or(TicketError::Invalid)
            };
            assert_eq!(got, want);
        }
        2 => {
            let reference = format!("{TEAMS_TICKET_PREFIX}{}", keys.sign(Purpose::TeamsUser, rest));
            let got = TeamsService::verify_reference(&keys, &reference);
            let want = match rest.split_at_checked(8) {
                _ if reference.len() - TEAMS_TICKET_PREFIX.len() > MAX_SIGNED_LEN => None,
                Some((exp, user)) => {
                    let exp = u64::from_be_bytes(exp.try_into().unwrap_or_default());
                    if near_now(exp) {
                        return;
                    }
                    (exp >= now()).then(|| String::from_utf8(user.to_vec()).ok()).flatten()
                }
                None => None,
            };
            assert_eq!(got, want);
            assert!(verify_ticket(&keys, &reference).is_err(), "a Teams reference is not a ticket");
        }
        _ => {
            let signed = keys.sign(Purpose::Ticket, rest);
            assert!(keys.verify(Purpose::SessionCookie, &signed).is_err(), "a ticket is never a cookie");
            assert!(keys.verify(Purpose::TeamsUser, &signed).is_err(), "a ticket is never a Teams reference");
            assert!(TeamsService::verify_reference(&keys, &format!("{TEAMS_TICKET_PREFIX}{signed}")).is_none());
        }
    }
});
