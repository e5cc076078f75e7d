//! The one module that touches a client's raw connection: WebSocket upgrades leave Pingora's
//! HTTP session here, status-channel sockets and relayed upstream WebSockets alike.
//!
//! ```text
//! status:   check (WebSocket 13, socket.io EIO 3/4 + transport, admission) ─▶ 400/429/503 JSON
//!             └─▶ hand_over(101) ─▶ spawned: ChannelServer::serve_upgraded(stream)
//! upstream: proxy::tunnel connects and gets the upstream's 101
//!             └─▶ hand_over(101) ─▶ spawned: proxy::tunnel's relay(stream, upstream)
//! hand_over: placeholder session built ─▶ 101 written ─▶ stream detached, placeholder in its place
//! ```
//! Everything that can refuse does so before the 101: after it, a refusal could only be a close.
//! Detaching matters for memory: a status socket stays open for as long as its task pane, and a
//! Pingora session kept alive for it holds its 64 KiB body-read buffer and the proxy's request
//! future (≈ 80 KB resident per idle socket, `benches/run --memory --only sockets`).
//! A detached socket is outside Pingora's connection tracking, so it takes part in a graceful
//! stop through the channel hub instead: the hub's `going_away` closes each with 1001.
//!
//! Upgrades do not go through Pingora's upstream upgrade proxying, which can end a tunnel whose
//! 101 arrives before the request's end-of-body (cloudflare/pingora#946); the channel server
//! answers its 101 at once, which made that ordering common.

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::FutureExt;
use pingora::http::ResponseHeader;
use pingora::protocols::http::ServerSession;
use pingora::protocols::Stream;
use pingora::proxy::Session;
use pingora::{Error, ErrorType};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use crate::channel::server::ChannelServer;
use crate::channel::ChannelRefusal;
use crate::respond;
use crate::session::SessionId;

/// Checks a status-channel WebSocket handshake, answers it, and hands the connection to the
/// channel server, which runs the socket on a task of its own. The status written: 101, or the
/// 400 / 429 / 503 of a handshake refused before it.
pub(super) async fn serve(
    session: &mut Session,
    server: Arc<ChannelServer>,
    sid: Option<SessionId>,
    client: Option<std::net::IpAddr>,
) -> pingora::Result<u16> {
    let req = session.req_header();
    let Some(accept) = accept_key(&req.headers) else {
        return refuse(session, ChannelRefusal::NotWebSocket13).await;
    };
    let path = req.uri.path().to_owned();
    let query = req.uri.query().map(str::to_owned);
    if let Err(refusal) = server.check_upgrade(&path, query.as_deref()) {
        return refuse(session, refusal).await;
    }
    let permit = match server.admit_upgrade(&path, query.as_deref(), client, sid) {
        Ok(permit) => permit,
        Err(limit) => return refuse(session, ChannelRefusal::OverLimit(limit)).await,
    };
    let mut resp = ResponseHeader::build(101, Some(3))?;
    resp.insert_header(http::header::UPGRADE, "websocket")?;
    resp.insert_header(http::header::CONNECTION, "Upgrade")?;
    resp.insert_header(http::header::SEC_WEBSOCKET_ACCEPT, accept)?;
    hand_over(session, resp, move |upgraded| async move {
        server.serve_upgraded(upgraded, &path, query.as_deref(), sid, permit).await;
    })
    .await
}

/// Answers `refusal` instead of upgrading; returns its status.
async fn refuse(session: &mut Session, refusal: ChannelRefusal) -> pingora::Result<u16> {
    let answer = respond::Answer::from(refusal);
    let status = answer.status();
    respond::write(session, answer).await?;
    Ok(status)
}

/// `Sec-WebSocket-Accept` for a WebSocket 13 handshake (RFC 6455 §4.2.2), else `None`.
fn accept_key(headers: &http::HeaderMap) -> Option<String> {
    let version_ok = headers.get(http::header::SEC_WEBSOCKET_VERSION).map(|v| v.as_bytes()) == Some(b"13");
    let key = headers.get(http::header::SEC_WEBSOCKET_KEY)?;
    version_ok.then(|| derive_accept_key(key.as_bytes()))
}

/// Writes the 101 `head`, takes the client's connection out of Pingora's HTTP/1 session and runs
/// `run` on it in a task of its own. Returns 101 (what the access line records) also when the
/// client has already gone, in which case `run` is not started.
pub(super) async fn hand_over<F, Fut>(session: &mut Session, head: ResponseHeader, run: F) -> pingora::Result<u16>
where
    F: FnOnce(Upgraded) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    // Built first: nothing between the 101 and the detach may fail.
    let placeholder = placeholder(session.req_header().uri.path()).await?;
    session.write_response_header(Box::new(head), false).await?;
    if let Some(upgraded) = detach(session, placeholder).await? {
        tokio::spawn(run(upgraded));
    }
    Ok(101)
}

/// The client's connection after the 101, taken out of Pingora's HTTP/1 session (`placeholder`
/// is left in its place, so Pingora logs and finishes as for any answered request, then drops
/// it). Bytes the client sent early, already read by Pingora, come first. `None` when the
/// client has already gone.
async fn detach(session: &mut Session, placeholder: ServerSession) -> pingora::Result<Option<Upgraded>> {
    // Anything already buffered as upgraded body (a client that did not wait for the 101) is
    // ready at once; otherwise the poll finds nothing and consumes nothing.
    let early = match session.read_request_body().now_or_never() {
        Some(Ok(Some(bytes))) => bytes,
        Some(Ok(None)) => return Ok(None),
        Some(Err(e)) => return Err(e),
        None => Bytes::new(),
    };
    let detached = std::mem::replace(&mut session.downstream_session, Box::new(placeholder));
    let ServerSession::H1(h1) = *detached else {
        // Upgrades are HTTP/1.1 only (Pingora has no RFC 8441 WebSockets over HTTP/2).
        return Error::e_explain(ErrorType::InternalError, "a WebSocket upgrade outside HTTP/1.1");
    };
    let mut stream = h1.into_inner();
    stream.flush().await.map_err(|e| Error::because(ErrorType::WriteError, "flushing the 101", e))?;
    Ok(Some(Upgraded { early: std::io::Cursor::new(early), stream }))
}

/// An HTTP/1 session that has read `GET path` and keeps no connection alive: what Pingora
/// finishes and logs in place of the detached one. It reads from a complete in-memory buffer
/// (whatever the head's length, nothing waits for a reader) and what Pingora writes to it
/// afterwards lands in that buffer and is dropped with it.
async fn placeholder(path: &str) -> pingora::Result<ServerSession> {
    let head = format!("GET {path} HTTP/1.1\r\nhost: gateway\r\n\r\n").into_bytes();
    let mut session = ServerSession::new_http1(Box::new(std::io::Cursor::new(head)));
    if !session.read_request().await? {
        return Error::e_explain(ErrorType::InternalError, "the placeholder session read no request");
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_placeholder_for_a_head_longer_than_any_pipe_is_built_without_waiting() {
        // The old placeholder wrote its head into a 256-byte pipe before anything read it.
        let path = format!("/_gateway/events/{}", "a".repeat(8 * 1024));
        let built = tokio::time::timeout(std::time::Duration::from_secs(5), placeholder(&path)).await;
        let session = built.expect("the placeholder is built at once").expect("the head parses");
        assert_eq!(session.req_header().uri.path(), path);
        assert_eq!(session.req_header().method, http::Method::GET);
    }

    #[test]
    fn only_a_websocket_13_handshake_gets_an_accept_key() {
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::SEC_WEBSOCKET_KEY, http::HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ=="));
        assert_eq!(accept_key(&headers), None, "no version");
        headers.insert(http::header::SEC_WEBSOCKET_VERSION, http::HeaderValue::from_static("8"));
        assert_eq!(accept_key(&headers), None, "an old version");
        headers.insert(http::header::SEC_WEBSOCKET_VERSION, http::HeaderValue::from_static("13"));
        // RFC 6455 §1.3's example.
        assert_eq!(accept_key(&headers).as_deref(), Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
        headers.remove(http::header::SEC_WEBSOCKET_KEY);
        assert_eq!(accept_key(&headers), None, "no key");
    }
}
