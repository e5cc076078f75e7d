//! Tickets: opaque, sealed, short-lived references to a session that travel in URLs.
//!
//! Two kinds, never interchangeable (the kind is the sealed value's associated data):
//! - a **connect ticket** (`/connect/{provider}/{ticket}`) names the session that *asked* for a
//!   sign-in, the provider and a random id; it starts at most one sign-in (the id is claimed in
//!   the token store on first use). It proves nothing about who finishes the sign-in: that is
//!   the job of the binding in `auth::handoff`.
//! - a **channel ticket** (`?ticket=` on the status channel, logout) lets a page whose requests
//!   carry no cookie join its session's channel.
//!
//! # Invariants
//! A ticket is AES-256-GCM under a key derived from `session.secret`: nobody can read the
//! session id out of it or make one; any change to it makes it invalid.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::rand::{SecureRandom, SystemRandom};

use super::sealing::Sealer;
use super::{Keyring, SessionId, SESSION_ID_LEN};

/// Key-derivation label of the ticket sealing keys.
const LABEL: &[u8] = b"gateway/ticket-seal/v1";
/// Associated data of connect tickets.
const CONNECT: &str = "connect-ticket";
/// Associated data of channel tickets.
const CHANNEL: &str = "channel-ticket";
/// Longest ticket text looked at, so a hostile one costs nothing to refuse.
pub const MAX_TICKET_LEN: usize = 512;
/// Bytes of a connect ticket's random id.
pub const TICKET_ID_LEN: usize = 16;

/// Why a ticket was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    /// Not sealed by this gateway, of another kind, or damaged.
    #[error("ticket is not valid")]
    Invalid,
    /// Genuine, but past its lifetime.
    #[error("ticket has expired")]
    Expired,
    /// A connect ticket that already started a sign-in.
    #[error("ticket was already used")]
    Used,
}

/// What a genuine connect ticket says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectTicket {
    /// The session that asked for the sign-in.
    pub session: SessionId,
    /// The provider it was issued for.
    pub provider: String,
    /// Its random id (claimed once in the store).
    pub id: [u8; TICKET_ID_LEN],
    /// Expiry, seconds since the Unix epoch.
    pub expires_at: u64,
}

impl ConnectTicket {
    /// The store key that records this ticket's first use.
    pub fn claim_key(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.id)
    }

    /// Time left before it expires (at least one second, for store lifetimes).
    pub fn remaining(&self) -> Duration {
        Duration::from_secs(self.expires_at.saturating_sub(now_secs()).max(1))
    }
}

/// Issues and opens tickets; built once from the keys.
pub struct Tickets {
    sealer: Sealer,
    ttl: Duration,
}

impl std::fmt::Debug for Tickets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tickets(redacted)")
    }
}

pub(crate) fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl Tickets {
    /// Tickets sealed under `keys`, each alive for `ttl`.
    pub fn new(keys: &Keyring, ttl: Duration) -> Self {
        Self { sealer: Sealer::for_label(keys, LABEL), ttl }
    }

    /// A connect ticket of `session` for `provider`; `None` if the RNG fails.
    pub fn issue_connect(&self, session: &SessionId, provider: &str) -> Option<String> {
        let mut id = [0u8; TICKET_ID_LEN];
        SystemRandom::new().fill(&mut id).ok()?;
        let mut plain = Vec::with_capacity(SESSION_ID_LEN + 8 + TICKET_ID_LEN + provider.len());
        plain.extend_from_slice(session.as_bytes());
        plain.extend_from_slice(&(now_secs() + self.ttl.as_secs()).to_be_bytes());
        plain.extend_from_slice(&id);
        plain.extend_from_slice(provider.as_bytes());
        self.seal(CONNECT, &plain)
    }

    /// What a connect ticket says, if genuine and unexpired (its single use is the caller's
    /// to claim).
    pub fn open_connect(&self, text: &str) -> Result<ConnectTicket, TicketError> {
        let plain = self.open(CONNECT, text)?;
        if plain.len() < SESSION_ID_LEN + 8 + TICKET_ID_LEN {
            return Err(TicketError::Invalid);
        }
        let (session, rest) = plain.split_at(SESSION_ID_LEN);
        let (expires, rest) = rest.split_at(8);
        let (id, provider) = rest.split_at(TICKET_ID_LEN);
        let expires_at = u64::from_be_bytes(expires.try_into().map_err(|_| TicketError::Invalid)?);
        if expires_at < now_secs() {
            return Err(TicketError::Expired);
        }
        Ok(ConnectTicket {
            session: SessionId::from_bytes(session).ok_or(TicketError::Invalid)?,
            provider: String::from_utf8(provider.to_vec()).map_err(|_| TicketError::Invalid)?,
            id: id.try_into().map_err(|_| TicketError::Invalid)?,
            expires_at,
        })
    }

    /// A channel ticket of `session`; `None` if the RNG fails.
    pub fn issue_channel(&self, session: &SessionId) -> Option<String> {
        let mut plain = Vec::with_capacity(SESSION_ID_LEN + 8);
        plain.extend_from_slice(session.as_bytes());
        plain.extend_from_slice(&(now_secs() + self.ttl.as_secs()).to_be_bytes());
        self.seal(CHANNEL, &plain)
    }

    /// The session of a channel ticket, if genuine and unexpired.
    pub fn open_channel(&self, text: &str) -> Result<SessionId, TicketError> {
        let plain = self.open(CHANNEL, text)?;
        if plain.len() != SESSION_ID_LEN + 8 {
            return Err(TicketError::Invalid);
        }
        let (session, expires) = plain.split_at(SESSION_ID_LEN);
        let expires_at = u64::from_be_bytes(expires.try_into().map_err(|_| TicketError::Invalid)?);
        if expires_at < now_secs() {
            return Err(TicketError::Expired);
        }
        SessionId::from_bytes(session).ok_or(TicketError::Invalid)
    }

    fn seal(&self, kind: &str, plain: &[u8]) -> Option<String> {
        self.sealer.seal(kind, plain).map(|sealed| URL_SAFE_NO_PAD.encode(sealed))
    }

    fn open(&self, kind: &str, text: &str) -> Result<Vec<u8>, TicketError> {
        if text.len() > MAX_TICKET_LEN {
            return Err(TicketError::Invalid);
        }
        let sealed = URL_SAFE_NO_PAD.decode(text).map_err(|_| TicketError::Invalid)?;
        self.sealer.open(kind, &sealed).ok_or(TicketError::Invalid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::signing::test_keyring;

    fn tickets(secret: &str, ttl: Duration) -> Tickets {
        Tickets::new(&test_keyring(&[secret]), ttl)
    }

    #[test]
    fn a_connect_ticket_opens_to_its_session_provider_and_id_and_hides_them() {
        let t = tickets("a", Duration::from_secs(60));
        let s = SessionId::generate().unwrap();
        let text = t.issue_connect(&s, "entra").unwrap();
        let opened = t.open_connect(&text).unwrap();
        assert_eq!((opened.session, opened.provider.as_str()), (s, "entra"));
        let raw = URL_SAFE_NO_PAD.decode(&text).unwrap();
        assert!(!raw.windows(8).any(|w| w == &s.as_bytes()[..8]), "the session id is readable");
        assert!(!text.contains(&s.storage_key()[..10]));
        let again = t.open_connect(&t.issue_connect(&s, "entra").unwrap()).unwrap();
        assert_ne!(opened.claim_key(), again.claim_key(), "two tickets share an id");
    }

    #[test]
    fn kinds_keys_damage_and_expiry_are_refused() {
        let t = tickets("a", Duration::from_secs(60));
        let s = SessionId::generate().unwrap();
        let connect = t.issue_connect(&s, "dev").unwrap();
        let channel = t.issue_channel(&s).unwrap();
        assert_eq!(t.open_channel(&channel), Ok(s));
        assert_eq!(t.open_channel(&connect), Err(TicketError::Invalid));
        assert_eq!(t.open_connect(&channel), Err(TicketError::Invalid));
        assert_eq!(tickets("b", Duration::from_secs(60)).open_channel(&channel), Err(TicketError::Invalid));
        let mut damaged = channel.clone().into_bytes();
        let mid = damaged.len() / 2;
        damaged[mid] = if damaged[mid] == b'A' { b'B' } else { b'A' };
        assert_eq!(t.open_channel(&String::from_utf8(damaged).unwrap()), Err(TicketError::Invalid));
        assert_eq!(t.open_channel(&"A".repeat(MAX_TICKET_LEN + 1)), Err(TicketError::Invalid));
        assert_eq!(t.open_channel("not base64!"), Err(TicketError::Invalid));
        let expired = tickets("a", Duration::ZERO);
        let old = expired.issue_channel(&s).unwrap();
        std::thread::sleep(Duration::from_millis(1100));
        assert_eq!(expired.open_channel(&old), Err(TicketError::Expired));
    }
}
