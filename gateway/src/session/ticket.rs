//! Connect tickets: a signed, short-lived reference to a session, carried in popup and channel URLs.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{Keyring, Purpose, SessionId, SESSION_ID_LEN};

/// Why a ticket was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    /// Not signed by this gateway, or damaged.
    #[error("ticket is not valid")]
    Invalid,
    /// Signed, but past its lifetime.
    #[error("ticket has expired")]
    Expired,
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Issues a ticket for `session`, valid for `ttl`.
pub fn issue_ticket(keys: &Keyring, session: &SessionId, ttl: Duration) -> String {
    let mut payload = Vec::with_capacity(SESSION_ID_LEN + 8);
    payload.extend_from_slice(session.as_bytes());
    payload.extend_from_slice(&(now_secs() + ttl.as_secs()).to_be_bytes());
    keys.sign(Purpose::Ticket, &payload)
}

/// The session a ticket refers to, if it is genuine and unexpired.
pub fn verify_ticket(keys: &Keyring, ticket: &str) -> Result<SessionId, TicketError> {
    let payload = keys.verify(Purpose::Ticket, ticket).map_err(|_| TicketError::Invalid)?;
    if payload.len() != SESSION_ID_LEN + 8 {
        return Err(TicketError::Invalid);
    }
    let (id, exp) = payload.split_at(SESSION_ID_LEN);
    let exp = u64::from_be_bytes(exp.try_into().map_err(|_| TicketError::Invalid)?);
    if exp < now_secs() {
        return Err(TicketError::Expired);
    }
    SessionId::from_bytes(id).ok_or(TicketError::Invalid)
}
