//! Engine.IO sessions: queues, heartbeats, hub membership, and the websocket transport.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{watch, Notify};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::engine_io::{parse_packet, PacketType, Version};
use super::packet::{self, ClientPacket};
use crate::channel::admission::EntryPermit;
use crate::channel::{websocket::ws_config, Hub, SignedIn, StatusEvent};
use crate::metrics::{Limit, Metrics};
use crate::session::{random_token, SessionId};

/// Packets queued for one client before it counts as too slow and is dropped.
const MAX_QUEUE: usize = 64;
/// Limits of the Engine.IO session table.
#[derive(Clone)]
pub struct EngineLimits {
    /// Sessions alive at once, all clients together (`channel.max_sockets`).
    pub max_sessions: usize,
    /// Time a session has to join before it is closed (`channel.join_timeout`).
    pub join_timeout: Duration,
    /// Counts refusals and sessions closed unjoined.
    pub metrics: Option<Metrics>,
}
/// pingTimeout advertised (v4: the client's allowance for our ping; v3: ours for its ping).
const PING_TIMEOUT: Duration = Duration::from_secs(20);
/// maxPayload advertised and enforced on POST bodies and frames.
pub(super) const MAX_PAYLOAD: usize = 64 * 1024;

pub(super) struct State {
    pub(super) queue: VecDeque<String>,
    pub(super) polling: bool,
    pub(super) upgraded: bool,
    pub(super) connected: bool,
    /// The client came back after the handshake (a poll, a POST, or a websocket).
    pub(super) returned: bool,
    pub(super) last_seen: Instant,
}

/// One Engine.IO session.
pub(super) struct EngineSession {
    pub(super) sid: String,
    pub(super) version: Version,
    pub(super) binary: bool,
    pub(super) owner: Option<SessionId>,
    pub(super) state: Mutex<State>,
    pub(super) notify: Notify,
    closed: watch::Sender<bool>,
    /// This session's place among its client's and session's channel entries.
    _permit: Option<EntryPermit>,
}

impl EngineSession {
    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a packet; a client that lets the queue fill up is closed.
    pub(super) fn push(&self, packet: String) {
        let overflow = {
            let mut s = self.lock();
            s.queue.push_back(packet);
            s.queue.len() > MAX_QUEUE
        };
        if overflow {
            self.close();
        }
        self.notify.notify_waiters();
    }

    pub(super) fn close(&self) {
        let _ = self.closed.send(true);
        self.notify.notify_waiters();
    }

    pub(super) fn is_closed(&self) -> bool {
        *self.closed.borrow()
    }

    pub(super) fn take_all(&self) -> Vec<String> {
        self.lock().queue.drain(..).collect()
    }
}

/// The socket.io endpoint's sessions and settings.
pub struct SocketIo {
    sessions: Mutex<HashMap<String, Arc<EngineSession>>>,
    hub: Arc<Hub>,
    signed_in: Arc<dyn SignedIn>,
    pub(super) ping_interval: Duration,
    limits: EngineLimits,
}

impl SocketIo {
    /// An endpoint publishing `hub`'s events.
    pub fn new(
        hub: Arc<Hub>,
        signed_in: Arc<dyn SignedIn>,
        ping_interval: Duration,
        limits: EngineLimits,
    ) -> Arc<Self> {
        Arc::new(Self { sessions: Mutex::new(HashMap::new()), hub, signed_in, ping_interval, limits })
    }

    fn count(&self, limit: Limit) {
        if let Some(m) = &self.limits.metrics {
            m.refuse(limit);
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<EngineSession>>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The session `sid`, if it exists and belongs to `owner`.
    pub(super) fn find(&self, sid: &str, owner: Option<SessionId>) -> Option<Arc<EngineSession>> {
        let s = self.map().get(sid).cloned()?;
        let found = (s.owner == owner && !s.is_closed()).then_some(s)?;
        found.lock().returned = true;
        Some(found)
    }

    /// Creates a session holding `permit` and its heartbeat task; `None` when the table is full
    /// (`channel.max_sockets`, counted).
    pub(super) fn open(
        self: &Arc<Self>,
        version: Version,
        binary: bool,
        owner: Option<SessionId>,
        permit: Option<EntryPermit>,
    ) -> Option<Arc<EngineSession>> {
        let sid = random_token(15)?;
        let (closed, _) = watch::channel(false);
        let state = State {
            queue: VecDeque::new(),
            polling: false,
            upgraded: false,
            connected: false,
            returned: false,
            last_seen: Instant::now(),
        };
        let s = Arc::new(EngineSession {
            sid: sid.clone(),
            version,
            binary,
            owner,
            state: Mutex::new(state),
            notify: Notify::new(),
            closed,
            _permit: permit,
        });
        {
            let mut map = self.map();
            if map.len() >= self.limits.max_sessions {
                drop(map);
                self.count(Limit::ChannelTotal);
                return None;
            }
            map.insert(sid, Arc::clone(&s));
        }
        tokio::spawn(Arc::clone(self).heartbeat(Arc::clone(&s)));
        Some(s)
    }

    /// The handshake packet `0{...}`.
    pub(super) fn open_packet(&self, s: &EngineSession) -> String {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let mut open = serde_json::json!({"sid": s.sid, "upgrades": ["websocket"],
            "pingInterval": ms(self.ping_interval), "pingTimeout": ms(PING_TIMEOUT)});
        if s.version == Version::V4 {
            open["maxPayload"] = MAX_PAYLOAD.into();
        }
        format!("0{open}")
    }

    /// v4: ping every interval; both: close a session silent for interval + timeout, and one
    /// that has not joined (connected, and come back after the handshake) within
    /// `channel.join_timeout`, so handshakes that go nowhere free their place in seconds.
    async fn heartbeat(self: Arc<Self>, s: Arc<EngineSession>) {
        let mut closed = s.closed.subscribe();
        let mut closing = self.hub.closing();
        let mut ticker = tokio::time::interval(self.ping_interval);
        ticker.tick().await;
        let join_deadline = tokio::time::sleep(self.limits.join_timeout);
        tokio::pin!(join_deadline);
        let mut joined = false;
        loop {
            tokio::select! {
                _ = closed.changed() => break,
                // The server stops: a long-poll answers the close packet, a websocket closes 1001.
                () = crate::channel::hub::until_going_away(&mut closing) => {
                    s.close();
                    break;
                }
                _ = &mut join_deadline, if !joined => {
                    let state = s.lock();
                    joined = state.connected && state.returned;
                    drop(state);
                    if !joined {
                        self.count(Limit::JoinTimeout);
                        s.close();
                        break;
                    }
                }
                _ = ticker.tick() => {
                    let silent = s.lock().last_seen.elapsed() > self.ping_interval + PING_TIMEOUT;
                    if silent {
                        s.close();
                        break;
                    }
                    if s.version == Version::V4 {
                        s.push("2".to_owned());
                    }
                }
            }
        }
        self.map().remove(&s.sid);
    }

    /// Handles one packet from the client (POST or websocket frame).
    pub(super) fn handle_packet(self: &Arc<Self>, s: &Arc<EngineSession>, raw: &str) {
        s.lock().last_seen = Instant::now();
        let Ok((kind, data)) = parse_packet(raw) else {
            s.close();
            return;
        };
        match kind {
            PacketType::Ping if s.version == Version::V3 => s.push(format!("3{data}")),
            PacketType::Close => s.close(),
            PacketType::Message => match packet::parse(data) {
                Some(ClientPacket::Connect) if s.version == Version::V4 => self.connect(s),
                Some(ClientPacket::ConnectOther(ns)) => {
                    s.push(packet::connect_error(s.version, &ns, "Invalid namespace"))
                }
                Some(ClientPacket::Disconnect) => s.close(),
                Some(_) => {}
                None => s.close(),
            },
            _ => {}
        }
    }

    /// Joins the hub (namespace `/` connected): `40`, then `init` and current sign-ins.
    pub(super) fn connect(self: &Arc<Self>, s: &Arc<EngineSession>) {
        if std::mem::replace(&mut s.lock().connected, true) {
            return;
        }
        let Some(owner) = s.owner else {
            self.hub.refuse("unauthorized");
            s.push(packet::connect_error(s.version, "/", "unauthorized"));
            return;
        };
        let Ok(mut member) = self.hub.join(owner, "socketio") else {
            s.push(packet::connect_error(s.version, "/", "too many sockets for this session"));
            return;
        };
        let socket_id = random_token(15).unwrap_or_default();
        s.push(packet::connected(s.version, &socket_id));
        s.push(packet::event(&StatusEvent::Init));
        let signed_in = Arc::clone(&self.signed_in);
        let s = Arc::clone(s);
        tokio::spawn(async move {
            let list = signed_in.signed_in(&owner).await;
            if let Some(current) = (!list.is_empty()).then(|| member.tell(StatusEvent::AuthSuccess(list))).flatten() {
                s.push(packet::event(&current));
            }
            let mut closed = s.closed.subscribe();
            loop {
                tokio::select! {
                    _ = closed.changed() => return,
                    e = member.next_event() => match e {
                        Some(e) => s.push(packet::event(&e)),
                        None => { s.close(); return }
                    },
                }
            }
        });
    }

    /// Runs the websocket transport: a fresh session (`sid` absent) or an upgrade of a polling one.
    pub async fn websocket<S>(
        self: Arc<Self>,
        io: S,
        version: Version,
        sid: Option<String>,
        owner: Option<SessionId>,
        permit: Option<EntryPermit>,
    ) where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let mut ws = WebSocketStream::from_raw_socket(io, Role::Server, Some(ws_config_socketio())).await;
        let s = match sid {
            Some(sid) => {
                let Some(s) = self.find(&sid, owner) else {
                    let _ = ws.close(None).await;
                    return;
                };
                if !self.probe(&mut ws, &s).await {
                    return;
                }
                s
            }
            None => {
                let Some(s) = self.open(version, false, owner, permit) else { return };
                // A websocket from the start has come back by being here.
                s.lock().returned = true;
                if ws.send(Message::Text(self.open_packet(&s).into())).await.is_err() {
                    s.close();
                    return;
                }
                if version == Version::V3 {
                    self.connect(&s);
                }
                s
            }
        };
        self.pump_websocket(&mut ws, &s).await;
        s.close();
        let going_away = *self.hub.closing().borrow();
        let frame = going_away.then(|| CloseFrame { code: CloseCode::Away, reason: "going away".into() });
        let _ = ws.close(frame).await;
    }

    /// `2probe` → `3probe`, then `5`: the polling transport hands over to this websocket.
    async fn probe<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        ws: &mut WebSocketStream<S>,
        s: &Arc<EngineSession>,
    ) -> bool {
        let deadline = tokio::time::sleep(Duration::from_secs(10));
        tokio::pin!(deadline);
        loop {
            let msg = tokio::select! {
                _ = &mut deadline => return false,
                m = ws.next() => m,
            };
            match msg {
                Some(Ok(Message::Text(t))) if t.as_str() == "2probe" => {
                    if ws.send(Message::Text("3probe".into())).await.is_err() {
                        return false;
                    }
                    // The client now pauses polling, which waits for its pending long-poll; a
                    // no-op ends that poll at once (as Engine.IO's reference server does), else
                    // the upgrade waits for the ping interval before the client sends `5`.
                    s.push("6".to_owned());
                }
                Some(Ok(Message::Text(t))) if t.as_str() == "5" => {
                    let mut st = s.lock();
                    st.upgraded = true;
                    st.last_seen = Instant::now();
                    drop(st);
                    // A pending long-poll answers with a no-op and the client stops polling.
                    s.push("6".to_owned());
                    return true;
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                _ => return false,
            }
        }
    }

    async fn pump_websocket<S: AsyncRead + AsyncWrite + Unpin>(
        self: &Arc<Self>,
        ws: &mut WebSocketStream<S>,
        s: &Arc<EngineSession>,
    ) {
        let mut closed = s.closed.subscribe();
        // The no-op queued for the old long-poll must not reach the websocket.
        s.lock().queue.retain(|p| p != "6");
        loop {
            let notified = s.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            for p in s.take_all() {
                if ws.send(Message::Text(p.into())).await.is_err() {
                    return;
                }
            }
            if s.is_closed() {
                return;
            }
            tokio::select! {
                _ = &mut notified => {}
                _ = closed.changed() => return,
                m = ws.next() => match m {
                    Some(Ok(Message::Text(t))) => self.handle_packet(s, t.as_str()),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => s.lock().last_seen = Instant::now(),
                    _ => return,
                },
            }
        }
    }
}

fn ws_config_socketio() -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
    ws_config().max_message_size(Some(MAX_PAYLOAD)).max_frame_size(Some(MAX_PAYLOAD))
}
