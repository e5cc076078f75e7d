//! Status-channel clients behind one interface, [`StatusFeed`], for every transport the gateway
//! serves: native WebSocket and SSE on `/_gateway/events` (here) and socket.io ([`crate::socketio`]).
//!
//! ```text
//! channel::open(&endpoint, Transport::Sse, &Join::Cookie(cookie), None).await?
//!     Opened::Joined(feed)   feed.next_event(T).await? → StatusEvent { name: "init", data }
//!     Opened::Refused(r)     Http(401 | 403 | 429) | Close(4401 | 4429) | ConnectError("44…")
//! ```
//! `open` returns once the join is decided: the first event (`init`) or the refusal has arrived;
//! the events already received stay queued for `next_event`.

use std::collections::VecDeque;
use std::time::Duration;

use anyhow::{bail, Context};
use async_trait::async_trait;
use futures_util::StreamExt;
use http::{HeaderName, HeaderValue};
use serde_json::Value;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::client::WebSocket;
use crate::gateway::Endpoint;
use crate::socketio;

/// Path of the native status channel (docs/architecture.md#routes).
pub const EVENTS_PATH: &str = "/_gateway/events";

/// How long a join may take to be decided, and the default wait for one event.
pub const EVENT_WAIT: Duration = Duration::from_secs(10);

/// One status event: `{"event": name, "data": data}` natively, `42[name, data]` in socket.io.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusEvent {
    /// `init`, `auth_success`, `auth_failure` or `auth_expired`.
    pub name: String,
    /// Its payload.
    pub data: Value,
}

impl StatusEvent {
    /// From the native JSON object.
    pub fn from_native(text: &str) -> anyhow::Result<Self> {
        let v: Value = serde_json::from_str(text).with_context(|| format!("event is not JSON: {text}"))?;
        let name = v["event"].as_str().with_context(|| format!("no \"event\" in {text}"))?.to_owned();
        Ok(Self { name, data: v["data"].clone() })
    }
}

/// How a socket says which session it belongs to.
#[derive(Debug, Clone)]
pub enum Join {
    /// A `Cookie` header value (e.g. `gw_session=…`).
    Cookie(String),
    /// Whatever a browser's jar holds at each request.
    Jar(crate::signin::CookieJar),
    /// `?ticket=` from `/_gateway/session`.
    Ticket(String),
    /// Neither.
    Nothing,
}

impl Join {
    /// The query parameter this join adds (`ticket=…`), URL-encoded.
    pub fn query(&self) -> Option<String> {
        match self {
            Join::Ticket(t) => Some(format!("ticket={}", form_encode(t))),
            _ => None,
        }
    }

    /// Request headers: the cookie, and `Origin` when given.
    pub fn headers(&self, origin: Option<&str>) -> Vec<(String, String)> {
        let mut headers = Vec::new();
        match self {
            Join::Cookie(c) => headers.push(("cookie".to_owned(), c.clone())),
            Join::Jar(jar) => headers.extend(jar.header().map(|c| ("cookie".to_owned(), c))),
            Join::Ticket(_) | Join::Nothing => {}
        }
        if let Some(o) = origin {
            headers.push(("origin".to_owned(), o.to_owned()));
        }
        headers
    }

    /// `path` with this join's query appended to `query` (which may be empty).
    pub fn target(&self, path: &str, query: &str) -> String {
        let parts: Vec<String> =
            [(!query.is_empty()).then(|| query.to_owned()), self.query()].into_iter().flatten().collect();
        if parts.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?{}", parts.join("&"))
        }
    }
}

/// A transport of the status channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Native WebSocket on `/_gateway/events`.
    WebSocket,
    /// Server-Sent Events on `/_gateway/events`.
    Sse,
    /// Engine.IO 4 long-polling.
    Eio4Polling,
    /// Engine.IO 4 polling handshake, then the websocket upgrade (`2probe`/`3probe`/`5`).
    Eio4Upgrade,
    /// Engine.IO 4 websocket only (no `sid`: the first frame is the open packet).
    Eio4WebSocket,
    /// Engine.IO 3 long-polling with `b64=1` (`len:packet` text framing).
    Eio3PollingText,
    /// Engine.IO 3 long-polling without `b64` (XHR2 binary framing).
    Eio3PollingBinary,
    /// Engine.IO 3 websocket only.
    Eio3WebSocket,
}

impl Transport {
    /// Whether this is one of the socket.io (Engine.IO 3 or 4) transports.
    pub fn is_engine_io(self) -> bool {
        !matches!(self, Transport::WebSocket | Transport::Sse)
    }

    /// The refusal a socket with no (or a forged) session meets on this transport.
    pub fn no_session_refusal(self) -> Refusal {
        match self {
            Transport::WebSocket => Refusal::Close(4401),
            Transport::Sse => Refusal::Http(401),
            Transport::Eio4Polling | Transport::Eio4Upgrade | Transport::Eio4WebSocket => {
                Refusal::ConnectError("44{\"message\":\"unauthorized\"}".to_owned())
            }
            Transport::Eio3PollingText | Transport::Eio3PollingBinary | Transport::Eio3WebSocket => {
                Refusal::ConnectError("44\"unauthorized\"".to_owned())
            }
        }
    }
}

/// How a join was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// An HTTP status instead of a stream or upgrade.
    Http(u16),
    /// The WebSocket was accepted, then closed with this code before any event.
    Close(u16),
    /// socket.io's connect error packet (`44…`).
    ConnectError(String),
}

/// A receiver of status events, whatever the transport.
#[async_trait]
pub trait StatusFeed: Send {
    /// The next status event (heartbeats answered and skipped), failing after `within`.
    async fn next_event(&mut self, within: Duration) -> anyhow::Result<StatusEvent>;
}

/// What [`open`] found.
pub enum Opened {
    /// Joined; `init` (and whatever came with it) is queued.
    Joined(Box<dyn StatusFeed>),
    /// Refused.
    Refused(Refusal),
}

impl Opened {
    /// The feed, or an error naming the refusal.
    pub fn joined(self) -> anyhow::Result<Box<dyn StatusFeed>> {
        match self {
            Opened::Joined(feed) => Ok(feed),
            Opened::Refused(r) => bail!("the join was refused: {r:?}"),
        }
    }

    /// The refusal, or an error when it joined (with the first event).
    pub async fn refused(self) -> anyhow::Result<Refusal> {
        match self {
            Opened::Refused(r) => Ok(r),
            Opened::Joined(mut feed) => {
                let first = feed.next_event(Duration::from_millis(500)).await;
                bail!("the join was accepted (first event: {first:?})")
            }
        }
    }
}

/// Opens the status channel on `transport` for `join`, sending `Origin: origin` when given.
pub async fn open(
    endpoint: &Endpoint,
    transport: Transport,
    join: &Join,
    origin: Option<&str>,
) -> anyhow::Result<Opened> {
    let opened = match transport {
        Transport::WebSocket => NativeWebSocket::open(endpoint, join, origin).await?.map(boxed),
        Transport::Sse => SseFeed::open(endpoint, join, origin).await?.map(boxed),
        other => socketio::SocketIoClient::open(endpoint, other, join, origin).await?.map(boxed),
    };
    Ok(match opened {
        Ok(feed) => Opened::Joined(feed),
        Err(refusal) => Opened::Refused(refusal),
    })
}

fn boxed<F: StatusFeed + 'static>(feed: F) -> Box<dyn StatusFeed> {
    Box::new(feed)
}

/// Opens a WebSocket to `url` with `headers`: the socket, or the HTTP status of a refused upgrade.
pub async fn websocket(url: &str, headers: &[(String, String)]) -> anyhow::Result<Result<WebSocket, u16>> {
    let mut request = url.into_client_request().with_context(|| format!("bad WebSocket URL {url}"))?;
    for (name, value) in headers {
        request.headers_mut().append(HeaderName::from_bytes(name.as_bytes())?, HeaderValue::from_str(value)?);
    }
    let connect = tokio_tungstenite::connect_async(request);
    match tokio::time::timeout(EVENT_WAIT, connect)
        .await
        .with_context(|| format!("WebSocket connect to {url} timed out"))?
    {
        Ok((ws, _)) => Ok(Ok(ws)),
        Err(tungstenite::Error::Http(resp)) => Ok(Err(resp.status().as_u16())),
        Err(e) => Err(e).with_context(|| format!("WebSocket connect to {url} failed")),
    }
}

/// What a WebSocket delivered next.
pub enum Frame {
    /// A text message.
    Text(String),
    /// A close frame with this code (1005 when none).
    Closed(u16),
}

/// The next text message or close of `ws` within `within` (pings are answered by tungstenite).
pub async fn next_frame(ws: &mut WebSocket, within: Duration) -> anyhow::Result<Frame> {
    let read = async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => return Ok(Frame::Text(t.as_str().to_owned())),
                Some(Ok(Message::Close(frame))) => return Ok(Frame::Closed(frame.map_or(1005, |f| u16::from(f.code)))),
                Some(Ok(_)) => {}
                Some(Err(e)) => bail!("WebSocket error: {e}"),
                None => bail!("WebSocket ended without a close frame"),
            }
        }
    };
    tokio::time::timeout(within, read).await.with_context(|| format!("no WebSocket message within {within:?}"))?
}

/// The native WebSocket transport.
pub struct NativeWebSocket {
    ws: WebSocket,
    pending: VecDeque<StatusEvent>,
}

impl NativeWebSocket {
    /// Connects and waits for the first event (joined) or a close / HTTP refusal.
    pub async fn open(endpoint: &Endpoint, join: &Join, origin: Option<&str>) -> anyhow::Result<Result<Self, Refusal>> {
        let url = endpoint.ws_url(&join.target(EVENTS_PATH, ""));
        let mut ws = match websocket(&url, &join.headers(origin)).await? {
            Ok(ws) => ws,
            Err(status) => return Ok(Err(Refusal::Http(status))),
        };
        let first = next_frame(&mut ws, EVENT_WAIT)
            .await
            .with_context(|| format!("the first message after the 101 of {url}"))?;
        match first {
            Frame::Text(t) => Ok(Ok(Self { ws, pending: VecDeque::from([StatusEvent::from_native(&t)?]) })),
            Frame::Closed(code) => Ok(Err(Refusal::Close(code))),
        }
    }
}

#[async_trait]
impl StatusFeed for NativeWebSocket {
    async fn next_event(&mut self, within: Duration) -> anyhow::Result<StatusEvent> {
        if let Some(e) = self.pending.pop_front() {
            return Ok(e);
        }
        match next_frame(&mut self.ws, within).await? {
            Frame::Text(t) => StatusEvent::from_native(&t),
            Frame::Closed(code) => bail!("the status WebSocket closed with {code}"),
        }
    }
}

/// The Server-Sent Events transport.
pub struct SseFeed {
    body: futures_util::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buffer: Vec<u8>,
    /// The `retry:` value seen, in ms.
    pub retry_ms: Option<u64>,
    /// Comment lines seen (`: keep-alive`).
    pub comments: usize,
    /// The `Content-Type` of the stream.
    pub content_type: String,
}

impl SseFeed {
    /// Opens the stream: the feed on 200, else the status.
    pub async fn open(endpoint: &Endpoint, join: &Join, origin: Option<&str>) -> anyhow::Result<Result<Self, Refusal>> {
        let client = endpoint.client_builder()?.timeout(Duration::from_secs(3600)).build()?;
        let mut request = client.get(endpoint.url(&join.target(EVENTS_PATH, ""))).header("accept", "text/event-stream");
        for (name, value) in join.headers(origin) {
            request = request.header(name, value);
        }
        let resp = tokio::time::timeout(EVENT_WAIT, request.send()).await.context("SSE request timed out")??;
        if resp.status() != reqwest::StatusCode::OK {
            return Ok(Err(Refusal::Http(resp.status().as_u16())));
        }
        let content_type =
            resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        Ok(Ok(Self {
            body: resp.bytes_stream().boxed(),
            buffer: Vec::new(),
            retry_ms: None,
            comments: 0,
            content_type,
        }))
    }

    /// The next `data:` event; `retry:` and comment lines are recorded on the way.
    async fn read_event(&mut self) -> anyhow::Result<StatusEvent> {
        loop {
            while let Some(end) = self.buffer.windows(2).position(|w| w == b"\n\n") {
                let bytes: Vec<u8> = self.buffer.drain(..end + 2).collect();
                let block = String::from_utf8(bytes).context("SSE block is not UTF-8")?;
                let mut data = Vec::new();
                for line in block.lines() {
                    if let Some(d) = line.strip_prefix("data:") {
                        data.push(d.trim_start().to_owned());
                    } else if let Some(r) = line.strip_prefix("retry:") {
                        self.retry_ms = Some(r.trim().parse().with_context(|| format!("bad retry line {line:?}"))?);
                    } else if line.starts_with(':') {
                        self.comments += 1;
                    }
                }
                if !data.is_empty() {
                    return StatusEvent::from_native(&data.join("\n"));
                }
            }
            match self.body.next().await {
                Some(chunk) => self.buffer.extend_from_slice(&chunk.context("SSE stream failed")?),
                None => bail!("the SSE stream ended"),
            }
        }
    }
}

#[async_trait]
impl StatusFeed for SseFeed {
    async fn next_event(&mut self, within: Duration) -> anyhow::Result<StatusEvent> {
        tokio::time::timeout(within, self.read_event())
            .await
            .with_context(|| format!("no SSE event within {within:?}"))?
    }
}

/// `application/x-www-form-urlencoded` encoding of one value.
pub fn form_encode(value: &str) -> String {
    reqwest::Url::parse_with_params("http://x/", [("v", value)])
        .ok()
        .and_then(|u| u.query().map(|q| q.trim_start_matches("v=").to_owned()))
        .unwrap_or_default()
}
