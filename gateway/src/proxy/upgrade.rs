//! Status-channel WebSockets served by the gateway itself: the 101 is written here, then the
//! connection leaves Pingora's HTTP session and the channel's WebSocket stack owns it.
//!
//! ```text
//! request_filter ─▶ serve: 101 ─▶ detach: the session's stream, a placeholder left in its place
//!                                   └─▶ spawned: ChannelServer::serve_upgraded(stream) until close
//! ```
//! Detaching matters for memory: a status socket stays open for as long as its task pane, and a
//! Pingora session kept alive for it holds its 64 KiB body-read buffer and the proxy's request
//! future (≈ 80 KB resident per idle socket, `benches/run --memory --only sockets`).
//!
//! Channel upgrades do not go through Pingora's upstream upgrade proxying, which can end a
//! tunnel whose 101 arrives before the request's end-of-body (cloudflare/pingora#946); the
//! channel server answers its 101 at once, which made that ordering common.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::FutureExt;
use pingora::http::ResponseHeader;
use pingora::protocols::http::ServerSession;
use pingora::protocols::Stream;
use pingora::proxy::Session;
use pingora::{Error, ErrorType};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use crate::channel::server::ChannelServer;
use crate::respond;
use crate::session::SessionId;

/// Bytes buffered between the Pingora session and the WebSocket stack, each way.
const PIPE_BYTES: usize = 16 * 1024;

enum Step {
    FromClient(pingora::Result<Option<Bytes>>),
    ToClient(std::io::Result<usize>),
}

/// Answers the WebSocket handshake (RFC 6455 §4.2.2) and hands the connection to the channel
/// server, which runs the status socket on a task of its own. The status written: 101, or the
/// 400 of a handshake that is not WebSocket 13 (Pingora's session knows only of the latter).
pub(super) async fn serve(
    session: &mut Session,
    server: Arc<ChannelServer>,
    sid: Option<SessionId>,
    client: Option<std::net::IpAddr>,
) -> pingora::Result<u16> {
    let req = session.req_header();
    let key = req.headers.get(http::header::SEC_WEBSOCKET_KEY).map(|k| derive_accept_key(k.as_bytes()));
    let version_ok = req.headers.get(http::header::SEC_WEBSOCKET_VERSION).map(|v| v.as_bytes()) == Some(b"13");
    let (Some(accept), true) = (key, version_ok) else {
        let refusal = respond::Answer::error(400, "bad_request", "a WebSocket version 13 handshake is required");
        respond::write(session, refusal).await?;
        return Ok(400);
    };
    let path = req.uri.path().to_owned();
    let query = req.uri.query().map(str::to_owned);
    let permit = match server.admit_upgrade(&path, query.as_deref(), client, sid) {
        Ok(permit) => permit,
        Err(limit) => {
            let refusal = respond::Answer::from(limit);
            let status = refusal.status();
            respond::write(session, refusal).await?;
            return Ok(status);
        }
    };
    let mut resp = ResponseHeader::build(101, Some(3))?;
    resp.insert_header(http::header::UPGRADE, "websocket")?;
    resp.insert_header(http::header::CONNECTION, "Upgrade")?;
    resp.insert_header(http::header::SEC_WEBSOCKET_ACCEPT, accept)?;
    session.write_response_header(Box::new(resp), false).await?;

    if let Some(upgraded) = detach(session, &path).await? {
        tokio::spawn(async move { server.serve_upgraded(upgraded, &path, query.as_deref(), sid, permit).await });
    }
    Ok(101)
}

/// The client's connection after the 101, taken out of Pingora's HTTP/1 session (a placeholder
/// session for `path` is left in its place, so Pingora logs and finishes as for any answered
/// request, then drops it). Bytes the client sent early, already read by Pingora, come first.
/// `None` when the client has already gone.
async fn detach(session: &mut Session, path: &str) -> pingora::Result<Option<Upgraded>> {
    // Anything already buffered as upgraded body (a client that did not wait for the 101) is
    // ready at once; otherwise the poll finds nothing and consumes nothing.
    let early = match session.read_request_body().now_or_never() {
        Some(Ok(Some(bytes))) => bytes,
        Some(Ok(None)) => return Ok(None),
        Some(Err(e)) => return Err(e),
        None => Bytes::new(),
    };
    let placeholder = placeholder(path).await?;
    let detached = std::mem::replace(&mut session.downstream_session, Box::new(placeholder));
    let ServerSession::H1(h1) = *detached else {
        // Upgrades are HTTP/1.1 only (Pingora has no RFC 8441 WebSockets over HTTP/2).
        return Error::e_explain(ErrorType::InternalError, "a WebSocket upgrade outside HTTP/1.1");
    };
    let mut stream = h1.into_inner();
    stream.flush().await.map_err(|e| Error::because(ErrorType::WriteError, "flushing the 101", e))?;
    Ok(Some(Upgraded { early: std::io::Cursor::new(early), stream }))
}

/// An HTTP/1 session that has read `GET path` from nothing and keeps no connection alive: what
/// Pingora finishes and logs in place of the detached one.
async fn placeholder(path: &str) -> pingora::Result<ServerSession> {
    let (ours, mut theirs) = tokio::io::duplex(256);
    let head = format!("GET {path} HTTP/1.1\r\nhost: gateway\r\n\r\n");
    theirs.write_all(head.as_bytes()).await.map_err(|e| Error::because(ErrorType::InternalError, "placeholder", e))?;
    let mut session = ServerSession::new_http1(Box::new(ours));
    session.read_request().await?;
    session.set_keepalive(None);
    Ok(session)
}

/// A detached client connection: the bytes Pingora had already read, then the stream itself.
pub(crate) struct Upgraded {
    early: std::io::Cursor<Bytes>,
    stream: Stream,
}

impl AsyncRead for Upgraded {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let this = &mut *self;
        if (this.early.position() as usize) < this.early.get_ref().len() {
            return std::pin::Pin::new(&mut this.early).poll_read(cx, buf);
        }
        std::pin::Pin::new(&mut this.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Upgraded {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_shutdown(cx)
    }
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
