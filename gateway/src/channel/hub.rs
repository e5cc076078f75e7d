//! Rooms of status-channel sockets keyed by session; publishing fans an event out to a room.
//!
//! # Invariants
//! Each socket has a bounded queue; a socket whose queue is full is dropped from its room,
//! never allowed to grow memory. A room holds at most `max_sockets_per_session` sockets.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use super::event::StatusEvent;
use crate::session::SessionId;

/// Events queued per socket before it counts as too slow.
pub const SOCKET_QUEUE: usize = 32;

/// Why a socket could not join.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JoinError {
    /// The session already has `max_sockets_per_session` sockets.
    #[error("too many sockets for this session")]
    TooManySockets,
}

/// The rooms.
pub struct Hub {
    rooms: Mutex<HashMap<SessionId, Vec<(u64, mpsc::Sender<StatusEvent>)>>>,
    next_id: std::sync::atomic::AtomicU64,
    max_per_session: usize,
}

/// A socket's membership; leaving the room happens on drop.
pub struct Membership {
    hub: Arc<Hub>,
    session: SessionId,
    id: u64,
    /// The socket's event queue.
    pub events: mpsc::Receiver<StatusEvent>,
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.hub.leave(&self.session, self.id);
    }
}

impl Hub {
    /// An empty hub.
    pub fn new(max_per_session: usize) -> Self {
        Self { rooms: Mutex::new(HashMap::new()), next_id: 0.into(), max_per_session }
    }

    /// Adds a socket to `session`'s room.
    pub fn join(self: &Arc<Self>, session: SessionId) -> Result<Membership, JoinError> {
        let (tx, rx) = mpsc::channel(SOCKET_QUEUE);
        let id = self.next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        let room = rooms.entry(session).or_default();
        room.retain(|(_, s)| !s.is_closed());
        if room.len() >= self.max_per_session {
            return Err(JoinError::TooManySockets);
        }
        room.push((id, tx));
        Ok(Membership { hub: Arc::clone(self), session, id, events: rx })
    }

    fn leave(&self, session: &SessionId, id: u64) {
        let mut rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(room) = rooms.get_mut(session) {
            room.retain(|(i, _)| *i != id);
            if room.is_empty() {
                rooms.remove(session);
            }
        }
    }

    /// Sends `event` to every socket of `session`; slow sockets are dropped.
    pub fn publish(&self, session: &SessionId, event: &StatusEvent) {
        let mut rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(room) = rooms.get_mut(session) {
            room.retain(|(_, tx)| tx.try_send(event.clone()).is_ok());
        }
    }

    /// Sockets connected, for metrics.
    pub fn socket_count(&self) -> usize {
        self.rooms.lock().map(|r| r.values().map(Vec::len).sum()).unwrap_or(0)
    }
}
