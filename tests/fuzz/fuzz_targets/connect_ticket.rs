//! Ticket decoding, as `/connect/{provider}/{ticket}` and the status channel do it: a `t.` Teams
//! user reference goes to `verify_reference`, anything else is opened as a sealed connect or
//! channel ticket.
//!
//! Input: first byte picks the mode, the rest is its data.
//! - 0: the ticket text from the URL;
//! - 1: a session id (32 bytes) and a provider name the harness issues a connect ticket for;
//! - 2: a payload the harness signs as a Teams user reference;
//! - other: a session id the harness issues a channel ticket for.
//!
//! Invariants: nothing panics; an issued ticket opens to exactly what it was issued for, under
//! its own kind only; a ticket of another keyring never opens.
#![no_main]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gateway::session::signing::MAX_SIGNED_LEN;
use gateway::session::ticket::{TicketError, Tickets};
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
    let tickets = Tickets::new(&keys, Duration::from_secs(300));
    let foreign = Tickets::new(&keyring(&[OTHER_SECRET]), Duration::from_secs(300));
    match mode {
        0 => {
            let Ok(text) = std::str::from_utf8(rest) else { return };
            if text.starts_with(TEAMS_TICKET_PREFIX) {
                let _ = TeamsService::verify_reference(&keys, text);
            } else if let Ok(t) = tickets.open_connect(text) {
                assert!(tickets.open_channel(text).is_err(), "a connect ticket opened as a channel ticket");
                assert!(t.expires_at >= now(), "an expired ticket opened");
            } else {
                let _ = tickets.open_channel(text);
            }
        }
        1 => {
            let Some((id, provider)) = rest.split_at_checked(SESSION_ID_LEN) else { return };
            let Some(session) = SessionId::from_bytes(id) else { return };
            let provider = String::from_utf8_lossy(provider);
            let Some(text) = tickets.issue_connect(&session, &provider) else { return };
            match tickets.open_connect(&text) {
                Ok(t) => assert_eq!((t.session, t.provider.as_str()), (session, provider.as_ref())),
                // Long provider names make a ticket too long to be looked at; nothing else fails.
                Err(e) => assert!(e == TicketError::Invalid && text.len() > 512, "{e:?} for a fresh ticket"),
            }
            assert!(foreign.open_connect(&text).is_err(), "another keyring opened a ticket");
            assert!(tickets.open_channel(&text).is_err(), "a connect ticket is not a channel ticket");
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
            assert!(tickets.open_connect(&reference).is_err(), "a Teams reference is not a ticket");
        }
        _ => {
            let Some(session) = SessionId::from_bytes(rest) else { return };
            let Some(text) = tickets.issue_channel(&session) else { return };
            assert_eq!(tickets.open_channel(&text), Ok(session));
            assert!(tickets.open_connect(&text).is_err(), "a channel ticket started a sign-in");
            assert!(foreign.open_channel(&text).is_err(), "another keyring opened a ticket");
        }
    }
});
