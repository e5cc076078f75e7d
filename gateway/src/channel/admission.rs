//! How many status-channel entries (Engine.IO sessions, SSE streams, WebSockets) one client
//! address and one session may hold at once.
//!
//! # Invariants
//! An entry holds an [`EntryPermit`] for as long as it lives; dropping it gives the place back.
//! The client address is the one the proxy trusts (the peer, or the client a trusted proxy
//! names), so a gateway behind a load balancer limits end users, not the balancer.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use crate::metrics::{Limit, Metrics};
use crate::session::SessionId;

/// Entries by client address and by session.
pub struct ChannelAdmission {
    per_client: usize,
    per_session: usize,
    state: Mutex<State>,
    metrics: Option<Metrics>,
}

#[derive(Default)]
struct State {
    clients: HashMap<IpAddr, usize>,
    sessions: HashMap<SessionId, usize>,
}

/// One entry's place, given back on drop.
pub struct EntryPermit {
    admission: Arc<ChannelAdmission>,
    client: Option<IpAddr>,
    session: Option<SessionId>,
}

impl std::fmt::Debug for EntryPermit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntryPermit").finish_non_exhaustive()
    }
}

impl ChannelAdmission {
    /// At most `per_client` entries per client address and `per_session` per session.
    pub fn new(per_client: usize, per_session: usize, metrics: Option<Metrics>) -> Arc<Self> {
        Arc::new(Self { per_client, per_session, state: Mutex::new(State::default()), metrics })
    }

    /// A place for an entry of `client` and `session`, or the limit it is over (counted).
    pub fn enter(self: &Arc<Self>, client: Option<IpAddr>, session: Option<SessionId>) -> Result<EntryPermit, Limit> {
        let refused = {
            let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if client.is_some_and(|c| state.clients.get(&c).copied().unwrap_or(0) >= self.per_client) {
                Some(Limit::ChannelPerClient)
            } else if session.is_some_and(|s| state.sessions.get(&s).copied().unwrap_or(0) >= self.per_session) {
                Some(Limit::ChannelPerSession)
            } else {
                if let Some(c) = client {
                    *state.clients.entry(c).or_insert(0) += 1;
                }
                if let Some(s) = session {
                    *state.sessions.entry(s).or_insert(0) += 1;
                }
                None
            }
        };
        match refused {
            Some(limit) => {
                if let Some(m) = &self.metrics {
                    m.refuse(limit);
                }
                Err(limit)
            }
            None => Ok(EntryPermit { admission: Arc::clone(self), client, session }),
        }
    }
}

fn release<K: Hash + Eq>(map: &mut HashMap<K, usize>, key: &K) {
    if let Some(n) = map.get_mut(key) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            map.remove(key);
        }
    }
}

impl Drop for EntryPermit {
    fn drop(&mut self) {
        let mut state = self.admission.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(c) = &self.client {
            release(&mut state.clients, c);
        }
        if let Some(s) = &self.session {
            release(&mut state.sessions, s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_limited_by_client_and_by_session() {
        let admission = ChannelAdmission::new(2, 3, None);
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        let first = admission.enter(Some(a), None).unwrap();
        let _second = admission.enter(Some(a), None).unwrap();
        assert_eq!(admission.enter(Some(a), None).err(), Some(Limit::ChannelPerClient));
        assert!(admission.enter(Some(b), None).is_ok());
        drop(first);
        assert!(admission.enter(Some(a), None).is_ok());
        let sid = SessionId::generate().unwrap();
        let held: Vec<_> = (0..3).map(|_| admission.enter(None, Some(sid)).unwrap()).collect();
        assert_eq!(admission.enter(None, Some(sid)).err(), Some(Limit::ChannelPerSession));
        drop(held);
        assert!(admission.enter(None, Some(sid)).is_ok());
    }
}
