//! The Server-Sent Events transport: `data: {"event","data"}` lines, keep-alive comments.
//! `Last-Event-ID` is ignored: events carry no ids, a reconnect gets `init` and the current state.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::{Hub, SignedIn, StatusEvent};
use crate::session::SessionId;

/// Chunks queued towards one SSE client.
const SSE_QUEUE: usize = 8;

/// One SSE frame for `event`: an unnamed message (so `EventSource.onmessage` sees it) whose
/// `data:` is the native JSON `{"event","data"}`.
pub fn frame(event: &StatusEvent) -> Bytes {
    Bytes::from(format!("data: {}\n\n", event.to_native_json()))
}

/// Starts an SSE stream for `session`; the receiver yields the body chunks and ends when the
/// client goes away (the sender notices on its next write). `None` when the room is full.
pub fn open(
    session: SessionId,
    hub: &Arc<Hub>,
    signed_in: Arc<dyn SignedIn>,
    keep_alive: Duration,
) -> Option<mpsc::Receiver<Bytes>> {
    let mut member = hub.join(session, "sse").ok()?;
    let mut closing = hub.closing();
    let (tx, rx) = mpsc::channel(SSE_QUEUE);
    tokio::spawn(async move {
        // A retry hint for EventSource, then init and the current sign-ins.
        if tx.send(Bytes::from_static(b"retry: 3000\n\n")).await.is_err() {
            return;
        }
        if tx.send(frame(&StatusEvent::Init)).await.is_err() {
            return;
        }
        let list = signed_in.signed_in(&session).await;
        if let Some(current) = (!list.is_empty()).then(|| member.tell(StatusEvent::AuthSuccess(list))).flatten() {
            if tx.send(frame(&current)).await.is_err() {
                return;
            }
        }
        let mut ticker = tokio::time::interval(keep_alive);
        ticker.tick().await;
        loop {
            let chunk = tokio::select! {
                // The stream ends (the sender drops): the client's EventSource reconnects elsewhere.
                () = super::hub::until_going_away(&mut closing) => return,
                e = member.next_event() => match e { Some(e) => frame(&e), None => return },
                _ = ticker.tick() => Bytes::from_static(b": keep-alive\n\n"),
            };
            if tx.send(chunk).await.is_err() {
                return;
            }
        }
    });
    Some(rx)
}
