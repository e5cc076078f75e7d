//! A socket.io client written from the wire protocol (not from the gateway's code), for
//! Engine.IO 3 and 4 over polling and websocket, behind [`crate::channel::StatusFeed`].
//!
//! ```text
//!  EIO=4 polling     GET ?EIO=4&transport=polling → 0{sid,upgrades,pingInterval,pingTimeout,maxPayload}
//!                    POST 40 → "ok";  GET ?sid → 40{"sid"} ␞ 42["init",…];  server "2" → client POST "3"
//!  EIO=4 upgrade     the same, then WS ?sid: "2probe" → "3probe", "5"; packets become text frames
//!  EIO=4 websocket   WS without sid: 0{…}; client "40" → 40{"sid"}, 42[…]
//!  EIO=3 polling     GET ?EIO=3&transport=polling&b64=1 → "len:0{…}len:40len:42[…]" (implicit connect);
//!                    without b64, XHR2 binary: 0x00 <len digits as bytes> 0xFF <packet>; client "2" → "3"
//!  EIO=3 websocket   WS: 0{…}, 40, 42[…]
//! ```

use std::collections::VecDeque;
use std::time::Duration;

use anyhow::{bail, ensure, Context};
use async_trait::async_trait;
use futures_util::SinkExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use crate::channel::{self, Frame, Join, Refusal, StatusEvent, StatusFeed, Transport, EVENT_WAIT};
use crate::client::WebSocket;
use crate::gateway::Endpoint;

/// The socket.io path the suites configure (`channel.socketio_path`).
pub const SOCKETIO_PATH: &str = "/socket.io/";

/// Engine.IO's record separator between v4 polling packets.
pub const RECORD_SEPARATOR: char = '\u{1e}';

/// Engine.IO protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// socket.io 1.x/2.x.
    V3,
    /// socket.io 3.x/4.x.
    V4,
}

impl Version {
    fn eio(self) -> &'static str {
        match self {
            Version::V3 => "3",
            Version::V4 => "4",
        }
    }
}

/// v4 polling payload: packets joined by the record separator.
pub fn encode_v4(packets: &[&str]) -> String {
    packets.join(&RECORD_SEPARATOR.to_string())
}

/// Splits a v4 polling payload.
pub fn decode_v4(body: &str) -> Vec<String> {
    body.split(RECORD_SEPARATOR).filter(|p| !p.is_empty()).map(str::to_owned).collect()
}

/// v3 text payload: `<length in UTF-16 units>:<packet>` per packet.
pub fn encode_v3_text(packets: &[&str]) -> String {
    packets.iter().map(|p| format!("{}:{p}", p.encode_utf16().count())).collect()
}

/// Splits a v3 text payload.
pub fn decode_v3_text(mut body: &str) -> anyhow::Result<Vec<String>> {
    let mut packets = Vec::new();
    while !body.is_empty() {
        let (len, rest) = body.split_once(':').with_context(|| format!("no length prefix in {body:?}"))?;
        let len: usize = len.parse().with_context(|| format!("bad length {len:?}"))?;
        let (mut units, mut end) = (0, 0);
        for c in rest.chars() {
            if units >= len {
                break;
            }
            units += c.len_utf16();
            end += c.len_utf8();
        }
        ensure!(units == len, "packet shorter than its length {len} in {body:?}");
        packets.push(rest[..end].to_owned());
        body = &rest[end..];
    }
    Ok(packets)
}

/// v3 XHR2 binary payload of string packets: `0x00`, the length's decimal digits as bytes, `0xFF`, the packet.
pub fn encode_v3_binary(packets: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in packets {
        out.push(0);
        out.extend(p.len().to_string().bytes().map(|d| d - b'0'));
        out.push(0xFF);
        out.extend_from_slice(p.as_bytes());
    }
    out
}

/// Splits a v3 XHR2 binary payload of string packets.
pub fn decode_v3_binary(mut body: &[u8]) -> anyhow::Result<Vec<String>> {
    let mut packets = Vec::new();
    while let Some((&kind, rest)) = body.split_first() {
        ensure!(kind == 0, "binary payload packet of kind {kind} (only strings expected)");
        let sep = rest.iter().position(|b| *b == 0xFF).context("no 0xFF after the length digits")?;
        ensure!(sep > 0 && rest[..sep].iter().all(|d| *d <= 9), "bad length digits {:?}", &rest[..sep]);
        let len = rest[..sep].iter().fold(0usize, |acc, d| acc * 10 + usize::from(*d));
        let data = rest.get(sep + 1..sep + 1 + len).context("binary packet shorter than its length")?;
        packets.push(String::from_utf8(data.to_vec()).context("binary-framed string packet is not UTF-8")?);
        body = &rest[sep + 1 + len..];
    }
    Ok(packets)
}

/// The polling transport of one Engine.IO session.
#[derive(Clone)]
pub struct Polling {
    client: reqwest::Client,
    endpoint: Endpoint,
    version: Version,
    binary: bool,
    join: Join,
    origin: Option<String>,
    sid: String,
}

impl Polling {
    /// The handshake `GET`: the link and the packets of its answer, or the HTTP status of a refusal.
    pub async fn handshake(
        endpoint: &Endpoint,
        version: Version,
        binary: bool,
        join: &Join,
        origin: Option<&str>,
    ) -> anyhow::Result<Result<(Self, Vec<String>), u16>> {
        let client = endpoint.client_builder()?.timeout(Duration::from_secs(120)).build()?;
        let mut link = Self {
            client,
            endpoint: endpoint.clone(),
            version,
            binary,
            join: join.clone(),
            origin: origin.map(str::to_owned),
            sid: String::new(),
        };
        let (status, body) = link.get(&link.query(false)).await?;
        if status != 200 {
            return Ok(Err(status));
        }
        let packets = link.decode(&body)?;
        let open = packets.first().with_context(|| "empty handshake answer".to_owned())?;
        link.sid = open_packet(open)?["sid"].as_str().context("no sid in the open packet")?.to_owned();
        Ok(Ok((link, packets)))
    }

    /// The Engine.IO session id.
    pub fn sid(&self) -> &str {
        &self.sid
    }

    /// `EIO=…&transport=polling[&b64=1][&sid=…]`.
    fn query(&self, with_sid: bool) -> String {
        let mut q = format!("EIO={}&transport=polling", self.version.eio());
        // Without b64 a v3 client gets XHR2 binary framing.
        if self.version == Version::V3 && !self.binary {
            q.push_str("&b64=1");
        }
        if with_sid {
            q.push_str(&format!("&sid={}", self.sid));
        }
        q
    }

    /// A `GET` of the socket.io path with this link's join and `query`: status and raw body.
    pub async fn get(&self, query: &str) -> anyhow::Result<(u16, Vec<u8>)> {
        let url = self.endpoint.url(&self.join.target(SOCKETIO_PATH, query));
        let mut request = self.client.get(&url);
        for (name, value) in self.join.headers(self.origin.as_deref()) {
            request = request.header(name, value);
        }
        let resp = request.send().await.with_context(|| format!("GET {url}"))?;
        Ok((resp.status().as_u16(), resp.bytes().await?.to_vec()))
    }

    /// A `GET ?sid=` (a long-poll) for another Engine.IO session id, with this link's join: the status.
    pub async fn get_with_sid(&self, sid: &str) -> anyhow::Result<u16> {
        let mut q = self.query(false);
        q.push_str(&format!("&sid={sid}"));
        Ok(self.get(&q).await?.0)
    }

    /// A `POST ?sid=` of `packets` for another Engine.IO session id, with this link's join: the status.
    pub async fn post_with_sid(&self, sid: &str, packets: &[&str]) -> anyhow::Result<u16> {
        let mut other = self.clone();
        other.sid = sid.to_owned();
        let body = match self.version {
            Version::V4 => encode_v4(packets),
            Version::V3 => encode_v3_text(packets),
        };
        Ok(other.post_raw(body.into_bytes()).await?.0)
    }

    fn decode(&self, body: &[u8]) -> anyhow::Result<Vec<String>> {
        match self.version {
            Version::V4 => Ok(decode_v4(std::str::from_utf8(body)?)),
            Version::V3 if self.binary => decode_v3_binary(body),
            Version::V3 => decode_v3_text(std::str::from_utf8(body)?),
        }
    }

    /// `POST`s `body` as is: status and answer text.
    pub async fn post_raw(&self, body: Vec<u8>) -> anyhow::Result<(u16, String)> {
        let url = self.endpoint.url(&self.join.target(SOCKETIO_PATH, &self.query(true)));
        let mut request = self.client.post(&url).header("content-type", "text/plain;charset=UTF-8").body(body);
        for (name, value) in self.join.headers(self.origin.as_deref()) {
            request = request.header(name, value);
        }
        let resp = request.send().await.with_context(|| format!("POST {url}"))?;
        Ok((resp.status().as_u16(), resp.text().await?))
    }

    /// `POST`s packets in the version's text framing; 200 "ok" required.
    pub async fn post(&self, packets: &[&str]) -> anyhow::Result<()> {
        let body = match self.version {
            Version::V4 => encode_v4(packets),
            Version::V3 => encode_v3_text(packets),
        };
        let (status, text) = self.post_raw(body.into_bytes()).await?;
        ensure!(status == 200 && text == "ok", "POST {packets:?} answered {status}: {text}");
        Ok(())
    }

    /// One long-poll `GET ?sid=` (200 required): its packets.
    pub async fn poll(&self) -> anyhow::Result<Vec<String>> {
        let (status, body) = self.get(&self.query(true)).await?;
        ensure!(status == 200, "poll answered {status}: {}", String::from_utf8_lossy(&body));
        self.decode(&body)
    }
}

/// The JSON of an open packet `0{…}`.
pub fn open_packet(packet: &str) -> anyhow::Result<Value> {
    let json = packet.strip_prefix('0').with_context(|| format!("not an open packet: {packet}"))?;
    serde_json::from_str(json).with_context(|| format!("bad open packet {packet}"))
}

enum Link {
    Polling(Polling),
    WebSocket(WebSocket),
}

/// A connected (or refused) socket.io client.
pub struct SocketIoClient {
    link: Link,
    version: Version,
    /// The open packet's JSON (`sid`, `upgrades`, `pingInterval`, `pingTimeout`, `maxPayload`).
    pub open: Value,
    /// The `sid` of the socket.io CONNECT answer (v4 only).
    pub socket_id: Option<String>,
    pending: VecDeque<String>,
    /// Server pings (`2`) this client answered (v4).
    pub pings_answered: usize,
    /// Pongs (`3`) received for the client's pings (v3).
    pub pongs: usize,
}

impl SocketIoClient {
    /// Opens `transport` (a socket.io one) and waits until the namespace connect is decided.
    pub async fn open(
        endpoint: &Endpoint,
        transport: Transport,
        join: &Join,
        origin: Option<&str>,
    ) -> anyhow::Result<Result<Self, Refusal>> {
        let (version, polling_binary) = match transport {
            Transport::Eio4Polling | Transport::Eio4Upgrade | Transport::Eio4WebSocket => (Version::V4, false),
            Transport::Eio3PollingText | Transport::Eio3WebSocket => (Version::V3, false),
            Transport::Eio3PollingBinary => (Version::V3, true),
            Transport::WebSocket | Transport::Sse => bail!("{transport:?} is not a socket.io transport"),
        };
        let mut client = if matches!(transport, Transport::Eio4WebSocket | Transport::Eio3WebSocket) {
            let target = join.target(SOCKETIO_PATH, &format!("EIO={}&transport=websocket", version.eio()));
            let mut ws = match channel::websocket(&endpoint.ws_url(&target), &join.headers(origin)).await? {
                Ok(ws) => ws,
                Err(status) => return Ok(Err(Refusal::Http(status))),
            };
            let url = endpoint.ws_url(&target);
            let first = channel::next_frame(&mut ws, EVENT_WAIT).await;
            let Frame::Text(first) = first.with_context(|| format!("the open packet after the 101 of {url}"))? else {
                bail!("the socket.io websocket closed before its open packet");
            };
            let mut client = Self::new(Link::WebSocket(ws), version, open_packet(&first)?, Vec::new());
            if version == Version::V4 {
                client.send("40").await?;
            }
            client
        } else {
            let (link, mut packets) = match Polling::handshake(endpoint, version, polling_binary, join, origin).await? {
                Ok(found) => found,
                Err(status) => return Ok(Err(Refusal::Http(status))),
            };
            let open = open_packet(&packets.remove(0))?;
            if version == Version::V4 {
                link.post(&["40"]).await?;
            }
            let mut client = Self::new(Link::Polling(link), version, open, packets);
            if transport == Transport::Eio4Upgrade {
                client.upgrade(endpoint, join, origin).await?;
            }
            client
        };
        loop {
            let packet = client.next_packet(EVENT_WAIT).await?;
            if let Some(connected) = packet.strip_prefix("40") {
                client.socket_id =
                    serde_json::from_str::<Value>(connected).ok().and_then(|v| v["sid"].as_str().map(str::to_owned));
                return Ok(Ok(client));
            }
            if packet.starts_with("44") {
                return Ok(Err(Refusal::ConnectError(packet)));
            }
            ensure!(!packet.starts_with("42"), "event {packet} before the connect answer");
        }
    }

    fn new(link: Link, version: Version, open: Value, pending: Vec<String>) -> Self {
        Self { link, version, open, socket_id: None, pending: pending.into(), pings_answered: 0, pongs: 0 }
    }

    /// The Engine.IO session id.
    pub fn sid(&self) -> &str {
        self.open["sid"].as_str().unwrap_or_default()
    }

    /// The polling link, while the client polls.
    pub fn polling(&self) -> Option<&Polling> {
        match &self.link {
            Link::Polling(p) => Some(p),
            Link::WebSocket(_) => None,
        }
    }

    /// Moves a polling v4 session to a websocket: `2probe` → `3probe`, then `5`.
    async fn upgrade(&mut self, endpoint: &Endpoint, join: &Join, origin: Option<&str>) -> anyhow::Result<()> {
        let query = format!("EIO={}&transport=websocket&sid={}", self.version.eio(), self.sid());
        let url = endpoint.ws_url(&join.target(SOCKETIO_PATH, &query));
        let mut ws = match channel::websocket(&url, &join.headers(origin)).await? {
            Ok(ws) => ws,
            Err(status) => bail!("the websocket upgrade of {} answered {status}", self.sid()),
        };
        ws.send(Message::Text("2probe".into())).await?;
        match channel::next_frame(&mut ws, EVENT_WAIT)
            .await
            .with_context(|| format!("3probe after the 101 of {url}"))?
        {
            Frame::Text(t) if t == "3probe" => {}
            Frame::Text(t) => bail!("expected 3probe, got {t}"),
            Frame::Closed(code) => bail!("the upgrade websocket closed with {code} instead of 3probe"),
        }
        ws.send(Message::Text("5".into())).await?;
        self.link = Link::WebSocket(ws);
        Ok(())
    }

    /// Sends one packet (a POST while polling, else a text frame).
    pub async fn send(&mut self, packet: &str) -> anyhow::Result<()> {
        match &mut self.link {
            Link::Polling(p) => p.post(&[packet]).await,
            Link::WebSocket(ws) => Ok(ws.send(Message::Text(packet.to_owned().into())).await?),
        }
    }

    /// The next packet within `within`, as received (no heartbeat handling).
    pub async fn next_raw(&mut self, within: Duration) -> anyhow::Result<String> {
        if let Some(p) = self.pending.pop_front() {
            return Ok(p);
        }
        let wait = async {
            match &mut self.link {
                Link::Polling(p) => p.poll().await,
                Link::WebSocket(ws) => match channel::next_frame(ws, within).await? {
                    Frame::Text(t) => Ok(vec![t]),
                    Frame::Closed(code) => bail!("the socket.io websocket closed with {code}"),
                },
            }
        };
        let packets =
            tokio::time::timeout(within, wait).await.with_context(|| format!("no packet within {within:?}"))??;
        self.pending.extend(packets);
        self.pending.pop_front().context("an empty payload")
    }

    /// The next packet within `within`; v4 server pings are answered (and counted) on the way,
    /// no-ops skipped and v3 pongs counted.
    pub async fn next_packet(&mut self, within: Duration) -> anyhow::Result<String> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let packet = self.next_raw(deadline.saturating_duration_since(tokio::time::Instant::now())).await?;
            match packet.as_str() {
                "2" if self.version == Version::V4 => {
                    self.send("3").await?;
                    self.pings_answered += 1;
                }
                "3" if self.version == Version::V3 => self.pongs += 1,
                "6" => {}
                _ => return Ok(packet),
            }
        }
    }
}

#[async_trait]
impl StatusFeed for SocketIoClient {
    async fn next_event(&mut self, within: Duration) -> anyhow::Result<StatusEvent> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            let packet = self.next_packet(remaining).await?;
            if let Some(array) = packet.strip_prefix("42") {
                let v: Value = serde_json::from_str(array).with_context(|| format!("bad event packet {packet}"))?;
                let name = v[0].as_str().with_context(|| format!("event without a name: {packet}"))?.to_owned();
                return Ok(StatusEvent { name, data: v[1].clone() });
            }
            ensure!(
                !packet.starts_with('1') && !packet.starts_with("41") && !packet.starts_with("44"),
                "the socket ended: {packet}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v3_text_framing_counts_utf16_units() {
        let body = encode_v3_text(&["40", "42[\"é😀\"]"]);
        assert_eq!(body, "2:409:42[\"é😀\"]");
        assert_eq!(decode_v3_text(&body).unwrap(), ["40", "42[\"é😀\"]"]);
        assert!(decode_v3_text("5:2").is_err());
    }

    #[test]
    fn v3_binary_framing_writes_length_digits_as_bytes() {
        let body = encode_v3_binary(&["0{\"sid\":\"x\"}", "40"]);
        assert_eq!(&body[..4], &[0, 1, 2, 0xFF]);
        assert_eq!(decode_v3_binary(&body).unwrap(), ["0{\"sid\":\"x\"}", "40"]);
        assert!(decode_v3_binary(&[0, 9, 0xFF, b'2']).is_err());
    }

    #[test]
    fn v4_payloads_use_the_record_separator() {
        assert_eq!(encode_v4(&["2", "40"]), "2\u{1e}40");
        assert_eq!(decode_v4("40{\"sid\":\"a\"}\u{1e}42[\"init\"]"), ["40{\"sid\":\"a\"}", "42[\"init\"]"]);
    }
}
