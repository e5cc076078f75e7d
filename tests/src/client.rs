//! Clients for talking to the gateway: reqwest (rustls, HTTP/2 by ALPN, no redirects, no cookies),
//! a byte-exact HTTP/1.1 client for hostile requests, and a WebSocket client.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use http::{HeaderName, HeaderValue};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::upstream::Echo;

/// Whole-request timeout of harness clients (a 100 MB upload on a busy 2-core machine included).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// Connect timeout of harness clients.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest answer [`RawRequest::send`] reads.
const MAX_RAW_RESPONSE: usize = 16 * 1024 * 1024;

/// A WebSocket connection opened by [`websocket_connect`].
pub type WebSocket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The harness's client settings: rustls, HTTP/2 offered by ALPN over TLS, redirects not
/// followed (tests see 302s), no cookie store, bounded timeouts.
pub fn builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(CONNECT_TIMEOUT)
        .use_rustls_tls()
}

/// A [`builder`] that trusts only the CA certificate in the PEM file `ca_pem`.
pub fn builder_trusting(ca_pem: &Path) -> anyhow::Result<reqwest::ClientBuilder> {
    let pem = std::fs::read(ca_pem).with_context(|| format!("cannot read CA {}", ca_pem.display()))?;
    let ca = reqwest::Certificate::from_pem(&pem)
        .with_context(|| format!("{} is not a PEM certificate", ca_pem.display()))?;
    Ok(builder().tls_built_in_root_certs(false).add_root_certificate(ca))
}

/// A TCP connection to `addr` from the local address `from` (any `127.0.0.0/8` address is
/// loopback on Linux), so one test can play several client addresses.
pub async fn connect_from(from: std::net::IpAddr, addr: SocketAddr) -> anyhow::Result<TcpStream> {
    let socket = match from {
        std::net::IpAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        std::net::IpAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.bind(SocketAddr::new(from, 0)).with_context(|| format!("bind {from}"))?;
    socket.connect(addr).await.with_context(|| format!("connect to {addr} from {from}"))
}

/// A client with the [`builder`] settings.
pub fn client() -> anyhow::Result<reqwest::Client> {
    builder().build().context("cannot build the HTTP client")
}

/// Reads an echo answer, failing (with the body) unless the status is 200.
pub async fn read_echo(resp: reqwest::Response) -> anyhow::Result<Echo> {
    let status = resp.status();
    let body = resp.bytes().await.context("cannot read the answer body")?;
    if status != reqwest::StatusCode::OK {
        bail!("expected 200 from the echo upstream, got {status}: {}", String::from_utf8_lossy(&body));
    }
    Echo::parse(&body)
}

/// Opens a WebSocket to `url` (`ws://` or `wss://`) with extra request `headers`.
pub async fn websocket_connect(url: &str, headers: &[(&str, &str)]) -> anyhow::Result<WebSocket> {
    let mut request = url.into_client_request().with_context(|| format!("bad WebSocket URL {url}"))?;
    for (name, value) in headers {
        request.headers_mut().append(HeaderName::from_bytes(name.as_bytes())?, HeaderValue::from_str(value)?);
    }
    let connect = tokio_tungstenite::connect_async(request);
    let (ws, _) = tokio::time::timeout(REQUEST_TIMEOUT, connect)
        .await
        .with_context(|| format!("WebSocket connect to {url} timed out"))?
        .with_context(|| format!("WebSocket connect to {url} failed"))?;
    Ok(ws)
}

/// An HTTP/1.1 request written byte for byte as given: header names keep their case and
/// spelling (`X_Forwarded_User`), which no ordinary client allows. Always `Connection: close`.
#[derive(Debug, Clone)]
pub struct RawRequest {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl RawRequest {
    /// A `GET` of `target` (path and query).
    pub fn get(target: &str) -> Self {
        Self::new("GET", target)
    }

    /// A request with any method.
    pub fn new(method: &str, target: &str) -> Self {
        Self { method: method.to_owned(), target: target.to_owned(), headers: Vec::new(), body: Vec::new() }
    }

    /// Adds a header line `name: value`, exactly as written.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sets the body (and `Content-Length`).
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// The request bytes; `Host` must be among the headers for a valid HTTP/1.1 request.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!("{} {} HTTP/1.1\r\n", self.method, self.target);
        for (name, value) in &self.headers {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        if !self.body.is_empty() {
            out.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        }
        out.push_str("Connection: close\r\n\r\n");
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }

    /// Sends the request to `addr` over plain TCP and reads the answer until the server closes.
    pub async fn send(&self, addr: SocketAddr) -> anyhow::Result<RawResponse> {
        let exchange = async {
            let mut stream = TcpStream::connect(addr).await.with_context(|| format!("cannot connect to {addr}"))?;
            stream.write_all(&self.to_bytes()).await.context("cannot write the request")?;
            let mut answer = Vec::new();
            (&mut stream)
                .take(MAX_RAW_RESPONSE as u64)
                .read_to_end(&mut answer)
                .await
                .context("cannot read the answer")?;
            RawResponse::parse(&answer)
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange).await.context("raw request timed out")?
    }
}

/// An answer read by [`RawRequest::send`].
#[derive(Debug, Clone)]
pub struct RawResponse {
    /// Status code.
    pub status: u16,
    /// Header lines, names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked when `Transfer-Encoding: chunked`.
    pub body: Vec<u8>,
}

impl RawResponse {
    /// Parses a complete HTTP/1.1 answer (head, then a body delimited by length, chunks or EOF).
    pub fn parse(bytes: &[u8]) -> anyhow::Result<Self> {
        let Some(head_end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") else {
            bail!("no complete response head in {:?}", String::from_utf8_lossy(bytes));
        };
        let head = std::str::from_utf8(&bytes[..head_end]).context("response head is not UTF-8")?;
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .with_context(|| format!("bad status line {status_line:?}"))?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
            .collect();
        let rest = &bytes[head_end + 4..];
        let mut response = Self { status, headers, body: Vec::new() };
        response.body = if response.header("transfer-encoding").is_some_and(|te| te.eq_ignore_ascii_case("chunked")) {
            dechunk(rest)?
        } else if let Some(len) = response.header("content-length").and_then(|l| l.parse::<usize>().ok()) {
            rest.get(..len).context("body shorter than content-length")?.to_vec()
        } else {
            rest.to_vec()
        };
        Ok(response)
    }

    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as an echo answer, failing unless the status is 200.
    pub fn echo(&self) -> anyhow::Result<Echo> {
        if self.status != 200 {
            bail!("expected 200 from the echo upstream, got {}: {}", self.status, self.text());
        }
        Echo::parse(&self.body)
    }
}

/// Decodes a chunked body (RFC 9112 §7.1); trailers are ignored.
fn dechunk(mut rest: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut body = Vec::new();
    for _ in 0..rest.len() + 1 {
        let line_end = rest.windows(2).position(|w| w == b"\r\n").context("chunk size line not terminated")?;
        let size_text = std::str::from_utf8(&rest[..line_end])?.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).with_context(|| format!("bad chunk size {size_text:?}"))?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        body.extend_from_slice(rest.get(..size).context("chunk shorter than its size")?);
        rest = rest.get(size + 2..).context("chunk not followed by CRLF")?;
    }
    bail!("chunked body does not end")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_response_parses_length_and_chunked_bodies() {
        let fixed = RawResponse::parse(b"HTTP/1.1 421 Misdirected Request\r\nContent-Length: 3\r\n\r\nabc").unwrap();
        assert_eq!((fixed.status, fixed.text().as_str()), (421, "abc"));
        let chunked = RawResponse::parse(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(chunked.text(), "abcde");
    }

    #[test]
    fn raw_request_keeps_header_spelling() {
        let bytes = RawRequest::get("/x").header("Host", "h").header("X_Forwarded_User", "u").to_bytes();
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.starts_with("GET /x HTTP/1.1\r\nHost: h\r\nX_Forwarded_User: u\r\n"), "{text}");
        assert!(text.ends_with("Connection: close\r\n\r\n"));
    }
}
