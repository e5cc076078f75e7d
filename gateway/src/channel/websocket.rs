//! The native WebSocket transport: JSON text frames `{"event","data"}`, server pings, idle timeout.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::{Hub, SignedIn, StatusEvent};
use crate::session::SessionId;

/// Close code for a socket with no valid session (docs/architecture.md#status-channel-events: joins nothing).
pub const CLOSE_UNAUTHORIZED: u16 = 4401;
/// Close code when the session already has its maximum of sockets.
pub const CLOSE_TOO_MANY: u16 = 4429;
/// Close code when the server stops or hands over to a new process: reconnect (RFC 6455 §7.4.1).
pub const CLOSE_GOING_AWAY: u16 = 1001;
/// Largest message accepted from a client (they have nothing to say but pongs).
pub const MAX_CLIENT_MESSAGE: usize = 4 * 1024;

/// WebSocket limits for every status socket.
/// Status sockets carry a few small JSON frames and mostly idle, so the read buffer is 1 KiB
/// instead of tungstenite's 128 KiB (which is zero-filled on the first read and stays resident:
/// 131 KiB of the ≈ 200 KB per idle socket `benches/run --memory` once measured; larger messages
/// are read in more steps) and writes go out without a write buffer.
pub fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(MAX_CLIENT_MESSAGE))
        .max_frame_size(Some(MAX_CLIENT_MESSAGE))
        .read_buffer_size(1024)
        .write_buffer_size(0)
}

/// Runs one native status socket over an upgraded connection until it closes.
pub async fn serve<S>(io: S, session: Option<SessionId>, hub: Arc<Hub>, signed_in: Arc<dyn SignedIn>, ping: Duration)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut ws = WebSocketStream::from_raw_socket(io, Role::Server, Some(ws_config())).await;
    let mut closing = hub.closing();
    let Some(session) = session else {
        hub.refuse("unauthorized");
        close(&mut ws, CLOSE_UNAUTHORIZED, "unauthorized").await;
        return;
    };
    let mut member = match hub.join(session, "websocket") {
        Ok(m) => m,
        Err(_) => {
            close(&mut ws, CLOSE_TOO_MANY, "too many sockets for this session").await;
            return;
        }
    };
    if send(&mut ws, &StatusEvent::Init).await.is_err() {
        return;
    }
    let list = signed_in.signed_in(&session).await;
    if let Some(current) = (!list.is_empty()).then(|| member.tell(StatusEvent::AuthSuccess(list))).flatten() {
        if send(&mut ws, &current).await.is_err() {
            return;
        }
    }
    let mut ticker = tokio::time::interval(ping);
    ticker.tick().await;
    let mut last_seen = Instant::now();
    loop {
        tokio::select! {
            () = super::hub::until_going_away(&mut closing) => {
                close(&mut ws, CLOSE_GOING_AWAY, "going away").await;
                return;
            }
            event = member.next_event() => match event {
                Some(e) => if send(&mut ws, &e).await.is_err() { return },
                None => { close(&mut ws, 1011, "dropped").await; return }
            },
            msg = ws.next() => match msg {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => last_seen = Instant::now(),
            },
            _ = ticker.tick() => {
                // Idle timeout: nothing from the client (not even a pong) for two intervals.
                if last_seen.elapsed() > ping * 2 {
                    close(&mut ws, 1001, "idle timeout").await;
                    return;
                }
                if ws.send(Message::Ping(Vec::new().into())).await.is_err() { return }
            }
        }
    }
}

async fn send<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
    event: &StatusEvent,
) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    ws.send(Message::Text(event.to_native_json().into())).await
}

async fn close<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>, code: u16, reason: &str) {
    let frame = CloseFrame { code: CloseCode::from(code), reason: reason.to_owned().into() };
    let _ = ws.close(Some(frame)).await;
}
