//! Rooms of status-channel sockets keyed by session; publishing fans an event out to a room.
//!
//! # Invariants
//! Each socket has a bounded queue; a socket whose queue is full is dropped from its room,
//! never allowed to grow memory. A room holds at most `max_sockets_per_session` sockets.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, watch};

use super::event::StatusEvent;
use crate::metrics::Metrics;
use crate::session::SessionId;
use crate::store::{Removal, RemovalCause};

/// Events queued per socket before it counts as too slow.
pub const SOCKET_QUEUE: usize = 32;

/// Why a socket could not join.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JoinError {
    /// The session already has `max_sockets_per_session` sockets.
    #[error("too many sockets for this session")]
    TooManySockets,
}

/// One member of a room.
struct Member {
    id: u64,
    /// Counts against `max_sockets_per_session` (status sockets do; watchers do not).
    counted: bool,
    tx: mpsc::Sender<StatusEvent>,
}

/// The members of one session's room.
type Room = Vec<Member>;

/// Carries events to every gateway instance (Redis pub/sub); each delivers to its own rooms.
pub trait Relay: Send + Sync {
    /// Sends `event` for `session` to all instances; `false` if it could not (then deliver locally).
    fn relay(&self, session: &SessionId, event: &StatusEvent) -> bool;
}

/// The rooms.
pub struct Hub {
    rooms: Mutex<HashMap<SessionId, Room>>,
    next_id: std::sync::atomic::AtomicU64,
    max_per_session: usize,
    metrics: Option<Metrics>,
    relay: std::sync::OnceLock<Arc<dyn Relay>>,
    /// Turns true once when the server stops (shutdown or upgrade): every socket says goodbye.
    closing: watch::Sender<bool>,
}

/// A socket's membership; leaving the room happens on drop.
pub struct Membership {
    hub: Arc<Hub>,
    session: SessionId,
    id: u64,
    transport: &'static str,
    /// The socket's event queue.
    pub events: mpsc::Receiver<StatusEvent>,
    /// The sign-ins this socket was last told of: the join's look-up of the current sign-ins and a
    /// sign-in finishing at that moment would otherwise both announce the same list (seen once in
    /// 525 sign-ins by `benches/run --soak`).
    announced: Option<Vec<(String, String)>>,
}

impl Membership {
    /// The next event to send: an `auth_success` repeating the list this socket was last told is
    /// skipped. `None` when the hub dropped the socket. Cancel-safe (for `select!`).
    pub async fn next_event(&mut self) -> Option<StatusEvent> {
        loop {
            let event = self.events.recv().await?;
            if let Some(event) = self.tell(event) {
                return Some(event);
            }
        }
    }

    /// `event` if this socket has not been told it already (recording it), else `None`.
    pub fn tell(&mut self, event: StatusEvent) -> Option<StatusEvent> {
        match &event {
            StatusEvent::AuthSuccess(list) if self.announced.as_ref() == Some(list) => return None,
            StatusEvent::AuthSuccess(list) => self.announced = Some(list.clone()),
            StatusEvent::AuthExpired(_) => self.announced = None,
            _ => {}
        }
        Some(event)
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.hub.leave(&self.session, self.id);
        if let Some(m) = &self.hub.metrics {
            m.add_socket(self.transport, -1);
        }
    }
}

impl Hub {
    /// An empty hub; `metrics` counts sockets, events and refusals.
    pub fn new(max_per_session: usize, metrics: Option<Metrics>) -> Self {
        Self {
            rooms: Mutex::new(HashMap::new()),
            next_id: 0.into(),
            max_per_session,
            metrics,
            relay: Default::default(),
            closing: watch::Sender::new(false),
        }
    }

    /// The server is stopping: every status socket closes with 1001 ("going away"), streams and
    /// long-polls end, relayed WebSockets close, so clients reconnect to the next instance.
    pub fn going_away(&self) {
        self.closing.send_replace(true);
    }

    /// A view of [`Self::going_away`]; await it with [`until_going_away`].
    pub fn closing(&self) -> watch::Receiver<bool> {
        self.closing.subscribe()
    }

    /// Sends future [`Self::announce`]s through `relay` (set once, at start-up).
    pub fn set_relay(&self, relay: Arc<dyn Relay>) {
        let _ = self.relay.set(relay);
    }

    /// Sends `event` to `session`'s sockets on every instance (locally when there is no relay).
    pub fn announce(&self, session: &SessionId, event: &StatusEvent) {
        if let Some(r) = self.relay.get() {
            if r.relay(session, event) {
                return;
            }
        }
        self.publish(session, event);
    }

    /// Tells `removal`'s session that its sign-in ended (`auth_expired`). A lifetime end is seen
    /// by every instance (each tells its own sockets); a logout happens on one, which tells them
    /// all; a replaced sign-in is no news.
    pub fn removed(&self, removal: &Removal) {
        let event = StatusEvent::AuthExpired(vec![removal.provider.to_string()]);
        match removal.cause {
            RemovalCause::Expired => self.publish(&removal.session, &event),
            RemovalCause::LoggedOut => self.announce(&removal.session, &event),
            RemovalCause::Replaced => {}
        }
    }

    /// Records a join refused before it reached the hub (no session, bad origin).
    pub fn refuse(&self, reason: &'static str) {
        if let Some(m) = &self.metrics {
            m.refuse_join(reason);
        }
    }

    /// Adds a socket of `transport` (a fixed label) to `session`'s room.
    pub fn join(self: &Arc<Self>, session: SessionId, transport: &'static str) -> Result<Membership, JoinError> {
        let mut rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        let room = rooms.entry(session).or_default();
        room.retain(|m| !m.tx.is_closed());
        if room.iter().filter(|m| m.counted).count() >= self.max_per_session {
            drop(rooms);
            self.refuse("too_many_sockets");
            return Err(JoinError::TooManySockets);
        }
        Ok(self.admit(room, session, transport, true))
    }

    /// Follows `session`'s events for a connection that is not a status socket (a proxied
    /// upstream WebSocket that must end with the session's tokens). It does not count against
    /// `max_sockets_per_session`: the add-in's own sockets are not the channel's.
    pub fn watch(self: &Arc<Self>, session: SessionId, transport: &'static str) -> Membership {
        let mut rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        let room = rooms.entry(session).or_default();
        self.admit(room, session, transport, false)
    }

    fn admit(
        self: &Arc<Self>,
        room: &mut Room,
        session: SessionId,
        transport: &'static str,
        counted: bool,
    ) -> Membership {
        let (tx, events) = mpsc::channel(SOCKET_QUEUE);
        let id = self.next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        room.push(Member { id, counted, tx });
        if let Some(m) = &self.metrics {
            m.add_socket(transport, 1);
        }
        Membership { hub: Arc::clone(self), session, id, transport, events, announced: None }
    }

    fn leave(&self, session: &SessionId, id: u64) {
        let mut rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(room) = rooms.get_mut(session) {
            room.retain(|m| m.id != id);
            if room.is_empty() {
                rooms.remove(session);
            }
        }
    }

    /// Sends `event` to every socket of `session` on this instance; slow sockets are dropped.
    pub fn publish(&self, session: &SessionId, event: &StatusEvent) {
        let mut rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        let mut sent = 0;
        if let Some(room) = rooms.get_mut(session) {
            room.retain(|m| {
                let ok = m.tx.try_send(event.clone()).is_ok();
                sent += u64::from(ok);
                ok
            });
        }
        drop(rooms);
        if let Some(m) = &self.metrics {
            m.add_events_sent(sent);
        }
    }

    /// Sockets connected, for metrics.
    pub fn socket_count(&self) -> usize {
        self.rooms.lock().map(|r| r.values().map(Vec::len).sum()).unwrap_or(0)
    }
}

/// Returns once the hub is going away. Cancel-safe (for `select!`).
pub async fn until_going_away(closing: &mut watch::Receiver<bool>) {
    // The sender lives as long as the hub; a dropped hub is gone too.
    let _ = closing.wait_for(|gone| *gone).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sid() -> SessionId {
        SessionId::generate().unwrap()
    }

    #[tokio::test]
    async fn events_reach_only_their_room_and_late_rooms_get_nothing_old() {
        let hub = Arc::new(Hub::new(16, None));
        let (a, b) = (sid(), sid());
        let mut ma = hub.join(a, "test").unwrap();
        let mut mb = hub.join(b, "test").unwrap();
        hub.publish(&a, &StatusEvent::AuthExpired(vec!["dev".into()]));
        assert_eq!(ma.events.recv().await.unwrap(), StatusEvent::AuthExpired(vec!["dev".into()]));
        assert!(mb.events.try_recv().is_err());
    }

    #[tokio::test]
    async fn a_socket_is_told_a_sign_in_list_once_until_it_expires() {
        let hub = Arc::new(Hub::new(16, None));
        let s = sid();
        let mut m = hub.join(s, "test").unwrap();
        let ada = StatusEvent::AuthSuccess(vec![("dev".into(), "Ada".into())]);
        let bob = StatusEvent::AuthSuccess(vec![("dev".into(), "Bob".into())]);
        // The join's look-up told it; the sign-in that finished meanwhile repeats the same list.
        assert_eq!(m.tell(ada.clone()), Some(ada.clone()));
        hub.publish(&s, &ada);
        hub.publish(&s, &bob);
        hub.publish(&s, &StatusEvent::AuthExpired(vec!["dev".into()]));
        hub.publish(&s, &bob);

        assert_eq!(m.next_event().await, Some(bob.clone()), "the repeated list is skipped, a new one is not");
        assert_eq!(m.next_event().await, Some(StatusEvent::AuthExpired(vec!["dev".into()])));
        assert_eq!(m.next_event().await, Some(bob), "after an expiry the same list is news again");
    }

    #[tokio::test]
    async fn room_size_is_capped_and_leaving_frees_a_place() {
        let hub = Arc::new(Hub::new(2, None));
        let s = sid();
        let m1 = hub.join(s, "test").unwrap();
        let _m2 = hub.join(s, "test").unwrap();
        assert!(matches!(hub.join(s, "test"), Err(JoinError::TooManySockets)));
        drop(m1);
        assert!(hub.join(s, "test").is_ok());
    }

    #[tokio::test]
    async fn a_slow_socket_is_dropped_not_buffered() {
        let hub = Arc::new(Hub::new(16, None));
        let s = sid();
        let mut slow = hub.join(s, "test").unwrap();
        for _ in 0..SOCKET_QUEUE + 5 {
            hub.publish(&s, &StatusEvent::Init);
        }
        assert_eq!(hub.socket_count(), 0, "the full socket left the room");
        let mut n = 0;
        while slow.events.try_recv().is_ok() {
            n += 1;
        }
        assert_eq!(n, SOCKET_QUEUE);
    }
}
