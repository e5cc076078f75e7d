//! Status-channel WebSockets served by the gateway itself: the 101 is written here and the
//! upgraded bytes are pumped between the Pingora session and the channel's WebSocket stack.
//!
//! Channel upgrades do not go through Pingora's upstream upgrade proxying, which can end a
//! tunnel whose 101 arrives before the request's end-of-body (cloudflare/pingora#946); the
//! channel server answers its 101 at once, which made that ordering common.

use std::sync::Arc;

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use super::respond;
use crate::channel::server::ChannelServer;
use crate::session::SessionId;

/// Bytes buffered between the Pingora session and the WebSocket stack, each way.
const PIPE_BYTES: usize = 16 * 1024;

enum Step {
    FromClient(pingora::Result<Option<Bytes>>),
    ToClient(std::io::Result<usize>),
}

/// Answers the WebSocket handshake (RFC 6455 §4.2.2) and runs the status socket until either side closes.
pub(super) async fn serve(
    session: &mut Session,
    server: Arc<ChannelServer>,
    sid: Option<SessionId>,
) -> pingora::Result<()> {
    let req = session.req_header();
    let key = req.headers.get(http::header::SEC_WEBSOCKET_KEY).map(|k| derive_accept_key(k.as_bytes()));
    let version_ok = req.headers.get(http::header::SEC_WEBSOCKET_VERSION).map(|v| v.as_bytes()) == Some(b"13");
    let (Some(accept), true) = (key, version_ok) else {
        let body =
            serde_json::json!({"error": "bad_request", "message": "a WebSocket version 13 handshake is required"});
        return respond::write(session, respond::LocalResponse::json(400, &body)).await;
    };
    let path = req.uri.path().to_owned();
    let query = req.uri.query().map(str::to_owned);
    let mut resp = ResponseHeader::build(101, Some(3))?;
    resp.insert_header(http::header::UPGRADE, "websocket")?;
    resp.insert_header(http::header::CONNECTION, "Upgrade")?;
    resp.insert_header(http::header::SEC_WEBSOCKET_ACCEPT, accept)?;
    session.write_response_header(Box::new(resp), false).await?;

    let (ours, theirs) = pipe();
    let task = tokio::spawn(async move { server.serve_upgraded(theirs, &path, query.as_deref(), sid).await });
    pump(session, ours).await;
    task.abort();
    Ok(())
}

/// A duplex pipe whose far end speaks WebSocket for the client of `session` (after its 101).
pub(super) fn pipe() -> (tokio::io::DuplexStream, tokio::io::DuplexStream) {
    tokio::io::duplex(PIPE_BYTES)
}

/// Moves the upgraded bytes between the Pingora `session` and `ours` until either side ends.
pub(super) async fn pump(session: &mut Session, ours: tokio::io::DuplexStream) {
    let (mut from_ws, mut to_ws) = tokio::io::split(ours);
    let mut buf = vec![0u8; 8 * 1024];
    loop {
        let step = tokio::select! {
            r = session.read_request_body() => Step::FromClient(r),
            n = from_ws.read(&mut buf) => Step::ToClient(n),
        };
        match step {
            Step::FromClient(Ok(Some(bytes))) => {
                if to_ws.write_all(&bytes).await.is_err() {
                    break;
                }
            }
            Step::FromClient(_) => break,
            Step::ToClient(Ok(n)) if n > 0 => {
                let chunk = Bytes::copy_from_slice(&buf[..n]);
                if session.write_response_body(Some(chunk), false).await.is_err() {
                    break;
                }
            }
            Step::ToClient(_) => break,
        }
    }
}
