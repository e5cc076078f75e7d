//! `EchoUpstream`: a stand-in add-in server that answers every request with a JSON picture of it.
//!
//! ```text
//!  any request ──▶ 200 {"method","path","query","headers","body_len","body_sha256","conn_id","instance"}
//!  GET /slow?ms=N ─▶ the same, after N ms (at most 30 s)
//!  Upgrade: websocket ─▶ 101, then every text/binary message is sent back
//! ```
//! HTTP/1.1 only, keep-alive on. The body is hashed frame by frame, never held whole, so a
//! 100 MB upload costs no memory here. `conn_id` numbers accepted TCP connections (from 1), so a
//! test can see whether the proxy reused one. Every request is also recorded as it arrives
//! ([`EchoUpstream::seen`]: target and headers, WebSocket handshakes included), so a test can
//! assert what never reached the upstream. [`EchoUpstream::stop`] closes the listener and every
//! open connection; [`EchoUpstream::start_on`] brings a server back on the same port.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::header::{HeaderValue, CONNECTION, CONTENT_TYPE, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, UPGRADE};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::ports;

/// Longest wait, in milliseconds, that `GET /slow?ms=N` honours.
pub const MAX_SLOW_MS: u64 = 30_000;

/// How many binds [`EchoUpstream::start`] and [`EchoUpstream::start_on`] try before giving up.
const BIND_ATTEMPTS: u32 = 50;

/// The echo upstream's answer: the request as it arrived there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Echo {
    /// Request method, e.g. `GET`.
    pub method: String,
    /// Request path, without the query.
    pub path: String,
    /// Raw query string (no `?`), `None` when the target had none.
    pub query: Option<String>,
    /// Every header as received: lower-case name → values in arrival order.
    pub headers: BTreeMap<String, Vec<String>>,
    /// Body length in bytes.
    pub body_len: u64,
    /// Lower-case hex SHA-256 of the body.
    pub body_sha256: String,
    /// Number of the TCP connection the request came on (1 = the first accepted).
    pub conn_id: u64,
    /// Name of the [`EchoUpstream`] that answered.
    pub instance: String,
}

impl Echo {
    /// Parses an echo answer from its JSON body.
    pub fn parse(body: &[u8]) -> anyhow::Result<Self> {
        serde_json::from_slice(body).with_context(|| format!("not an echo answer: {}", String::from_utf8_lossy(body)))
    }

    /// All values the upstream received for `name` (any case); empty when absent.
    pub fn header_values(&self, name: &str) -> &[String] {
        self.headers.get(&name.to_ascii_lowercase()).map_or(&[], Vec::as_slice)
    }

    /// The values of `name` joined by `", "`, or `None` when the header was absent.
    pub fn header(&self, name: &str) -> Option<String> {
        let values = self.header_values(name);
        (!values.is_empty()).then(|| values.join(", "))
    }
}

/// Lower-case hex SHA-256 of `bytes`, as [`Echo::body_sha256`] reports it.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Counters shared by the server tasks.
struct Shared {
    name: String,
    connections: AtomicU64,
    requests: AtomicU64,
    seen: Mutex<Vec<Seen>>,
}

/// One request as it arrived, recorded before it is answered (WebSocket upgrades included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// `METHOD target`, the target as received (path and query).
    pub target: String,
    /// Every header: lower-case name → values in arrival order.
    pub headers: BTreeMap<String, Vec<String>>,
}

/// A running echo server on `127.0.0.1`, stopped by [`EchoUpstream::stop`] or on drop.
pub struct EchoUpstream {
    shared: Arc<Shared>,
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    server: Option<JoinHandle<()>>,
}

impl EchoUpstream {
    /// Starts a server named `name` on an ephemeral port (on the current tokio runtime).
    ///
    /// A port the [`ports`] registry already handed out (probed, not yet bound by its owner) is
    /// skipped, a bounded number of times.
    pub async fn start(name: &str) -> anyhow::Result<Self> {
        for _ in 0..BIND_ATTEMPTS {
            let listener = bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))?;
            let addr = listener.local_addr().context("echo listener has no address")?;
            if ports::reserve(addr.port()) {
                return Ok(Self::serve(name, listener, addr));
            }
        }
        anyhow::bail!("echo upstream {name}: every port the system offered was already handed out")
    }

    /// Starts a server named `name` on `port` again, e.g. after [`EchoUpstream::stop`].
    ///
    /// Retries the bind a bounded number of times while the old socket is being released.
    pub async fn start_on(name: &str, port: u16) -> anyhow::Result<Self> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        ports::reserve(port);
        let mut last_error = None;
        for _ in 0..BIND_ATTEMPTS {
            match bind(addr) {
                Ok(listener) => return Ok(Self::serve(name, listener, addr)),
                Err(e) => last_error = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("no bind attempt made")))
            .with_context(|| format!("cannot restart echo upstream {name} on {addr}"))
    }

    fn serve(name: &str, listener: TcpListener, addr: SocketAddr) -> Self {
        let shared = Arc::new(Shared {
            name: name.to_owned(),
            connections: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            seen: Mutex::new(Vec::new()),
        });
        let (shutdown, stop) = watch::channel(false);
        let server = tokio::spawn(accept_loop(listener, Arc::clone(&shared), stop));
        Self { shared, addr, shutdown, server: Some(server) }
    }

    /// The listening address, `127.0.0.1:PORT`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The listening port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The name reported as `instance` in every answer.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Requests whose handling has started so far (counted before any `/slow` wait).
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// `METHOD target` of every request whose handling has started, in arrival order
    /// (the target as received: path and query).
    pub fn targets(&self) -> Vec<String> {
        self.seen().into_iter().map(|s| s.target).collect()
    }

    /// Every request whose handling has started, with its headers, in arrival order.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Closes the listener and every open connection, and waits until they are closed.
    pub async fn stop(mut self) {
        self.shutdown.send_replace(true);
        if let Some(server) = self.server.take() {
            // A panic in the server task has already been reported by tokio; nothing to add.
            let _ = server.await;
        }
    }
}

impl Drop for EchoUpstream {
    fn drop(&mut self) {
        self.shutdown.send_replace(true);
    }
}

/// A listening socket with `SO_REUSEADDR`, so a stopped server's port can be bound again at once.
fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    let socket = TcpSocket::new_v4().context("cannot create a socket")?;
    socket.set_reuseaddr(true).context("cannot set SO_REUSEADDR")?;
    socket.bind(addr).with_context(|| format!("cannot bind {addr}"))?;
    socket.listen(1024).with_context(|| format!("cannot listen on {addr}"))
}

/// Accepts until told to stop, then drops the listener and aborts every connection task.
async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, stop: watch::Receiver<bool>) {
    let mut connections = JoinSet::new();
    let mut stopping = stop.clone();
    loop {
        tokio::select! {
            _ = stopping.wait_for(|stopped| *stopped) => break,
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted {
                    let conn_id = shared.connections.fetch_add(1, Ordering::SeqCst) + 1;
                    connections.spawn(serve_connection(stream, conn_id, Arc::clone(&shared), stop.clone()));
                }
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    connections.shutdown().await;
}

async fn serve_connection(stream: TcpStream, conn_id: u64, shared: Arc<Shared>, stop: watch::Receiver<bool>) {
    let service = service_fn(move |req| handle(req, conn_id, Arc::clone(&shared), stop.clone()));
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    // A client that goes away mid-request is not an error worth reporting here.
    let _ = connection.await;
}

async fn handle(
    mut req: Request<Incoming>,
    conn_id: u64,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    shared.requests.fetch_add(1, Ordering::SeqCst);
    let target = req.uri().path_and_query().map_or_else(|| req.uri().to_string(), ToString::to_string);
    let seen = Seen { target: format!("{} {target}", req.method()), headers: header_map(req.headers()) };
    shared.seen.lock().unwrap_or_else(PoisonError::into_inner).push(seen);
    let is_websocket = req.headers().get(UPGRADE).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"));
    if is_websocket {
        return Ok(accept_websocket(&mut req, stop));
    }
    let (parts, body) = req.into_parts();
    if parts.uri.path() == "/slow" {
        tokio::time::sleep(Duration::from_millis(slow_ms(parts.uri.query()))).await;
    }
    let headers = header_map(&parts.headers);
    let (body_len, body_sha256) = match hash_body(body).await {
        Ok(hashed) => hashed,
        Err(e) => return Ok(plain(StatusCode::BAD_REQUEST, format!("cannot read the request body: {e}"))),
    };
    let echo = Echo {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers,
        body_len,
        body_sha256,
        conn_id,
        instance: shared.name.clone(),
    };
    Ok(match serde_json::to_vec(&echo) {
        Ok(json) => {
            let mut resp = Response::new(Full::new(Bytes::from(json)));
            resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            resp
        }
        Err(e) => plain(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot encode the echo: {e}")),
    })
}

/// Lower-case name → values in arrival order (lossy UTF-8).
fn header_map(headers: &http::HeaderMap) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in headers {
        out.entry(name.as_str().to_owned()).or_default().push(String::from_utf8_lossy(value.as_bytes()).into_owned());
    }
    out
}

/// `ms=N` from the query, capped at [`MAX_SLOW_MS`]; 0 when absent or not a number.
fn slow_ms(query: Option<&str>) -> u64 {
    query
        .unwrap_or_default()
        .split('&')
        .find_map(|pair| pair.strip_prefix("ms="))
        .and_then(|ms| ms.parse().ok())
        .unwrap_or(0)
        .min(MAX_SLOW_MS)
}

/// Length and SHA-256 of the body, read frame by frame.
async fn hash_body(mut body: Incoming) -> Result<(u64, String), hyper::Error> {
    let mut hasher = Sha256::new();
    let mut len = 0u64;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            len += data.len() as u64;
            hasher.update(&data);
        }
    }
    Ok((len, hex(&hasher.finalize())))
}

/// Answers a WebSocket upgrade with 101 and echoes messages on the upgraded connection until
/// the client closes or the server stops.
fn accept_websocket(req: &mut Request<Incoming>, mut stop: watch::Receiver<bool>) -> Response<Full<Bytes>> {
    let Some(key) = req.headers().get(SEC_WEBSOCKET_KEY) else {
        return plain(StatusCode::BAD_REQUEST, "missing sec-websocket-key".to_owned());
    };
    let Ok(accept) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) else {
        return plain(StatusCode::INTERNAL_SERVER_ERROR, "bad accept key".to_owned());
    };
    let on_upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else { return };
        let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        tokio::select! {
            () = echo_messages(ws) => {}
            _ = stop.wait_for(|stopped| *stopped) => {}
        }
    });
    let mut resp = Response::new(Full::default());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    resp.headers_mut().insert(CONNECTION, HeaderValue::from_static("upgrade"));
    resp.headers_mut().insert(UPGRADE, HeaderValue::from_static("websocket"));
    resp.headers_mut().insert(SEC_WEBSOCKET_ACCEPT, accept);
    resp
}

/// Sends every text and binary message back; tungstenite answers pings and the close handshake.
async fn echo_messages<S>(mut ws: WebSocketStream<S>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    while let Some(Ok(msg)) = ws.next().await {
        if matches!(msg, Message::Text(_) | Message::Binary(_)) && ws.send(msg).await.is_err() {
            break;
        }
    }
}

fn plain(status: StatusCode, text: String) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(text)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_ms_reads_the_query_and_is_capped() {
        assert_eq!(slow_ms(Some("ms=1500")), 1500);
        assert_eq!(slow_ms(Some("a=1&ms=20")), 20);
        assert_eq!(slow_ms(Some("ms=999999999")), MAX_SLOW_MS);
        assert_eq!(slow_ms(Some("ms=x")), 0);
        assert_eq!(slow_ms(None), 0);
    }

    #[test]
    fn sha256_hex_matches_the_known_empty_digest() {
        assert_eq!(sha256_hex(b""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    }
}
