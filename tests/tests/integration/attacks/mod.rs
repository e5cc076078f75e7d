//! The attack suite: what worked against other authentication proxies (their advisories), one
//! test per attack class, each asserting the exact refusal and what the upstream saw (or that it
//! saw nothing). Classes already asserted elsewhere are listed at the top of their file.
//!
//! # Layout
//! - [`open_redirect`]: every place a URL, an origin or a host is taken from a request
//! - [`route_bypass`]: route rules and the Teams bot path, matched on the normalised path only
//! - [`header_trust`]: identity and forwarding headers a client may not set, in any shape
//! - [`session`]: fixation, retired and foreign keys, gateway-route variants, secrets in pages and logs
//! - [`tokens`]: client-sent bearer tokens, identity bounded by `token_ttl`
//! - [`smuggling`]: framing attacks over raw TCP, header limits, idle and slow connections
//! - [`binding`]: a sign-in reaches only the task pane that started it; who may sign in and pass
//! - [`channel`]: cross-site WebSocket hijacking, hostile socket.io traffic, join floods
//! - [`cross_site`]: cross-site requests without `Origin` (Fetch Metadata), no identity
//! - [`dos`]: one client denying service to others: connection floods, slow heads and bodies,
//!   Engine.IO handshake floods, each with a bystander served throughout

mod binding;
mod channel;
mod cross_site;
mod dos;
mod header_trust;
mod open_redirect;
mod route_bypass;
mod session;
mod smuggling;
mod tokens;

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use gateway_tests::signin::dev_config;
use gateway_tests::{EchoUpstream, GatewayConfig, RawRequest, RawResponse, TestGateway};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The identity headers (`docs/architecture.md#identity-headers`, default names): never accepted from a client.
pub(crate) const IDENTITY_HEADERS: [&str; 6] = [
    "x-forwarded-user",
    "x-forwarded-email",
    "x-forwarded-name",
    "x-forwarded-preferred-username",
    "x-forwarded-provider",
    "x-forwarded-access-token",
];

/// A gateway with the built-in `dev` provider (`/api/` requires it, socket.io on) in front of an
/// echo upstream that lives as long as it.
pub(crate) struct Target {
    pub(crate) echo: EchoUpstream,
    pub(crate) gw: TestGateway,
}

impl Target {
    /// [`dev_config`] with `adjust` applied (extra tables, keys).
    pub(crate) async fn start(adjust: impl FnOnce(GatewayConfig) -> GatewayConfig) -> anyhow::Result<Self> {
        let echo = EchoUpstream::start("app").await?;
        let gw = TestGateway::with_toml(adjust(dev_config(echo.addr(), &[])?)).start().await?;
        Ok(Self { echo, gw })
    }

    /// [`Target::start`] with `[channel]` lines added to the table [`dev_config`] writes.
    pub(crate) async fn start_with_channel(
        channel: &[&str],
        adjust: impl FnOnce(GatewayConfig) -> GatewayConfig,
    ) -> anyhow::Result<Self> {
        let echo = EchoUpstream::start("app").await?;
        let gw = TestGateway::with_toml(adjust(dev_config(echo.addr(), channel)?)).start().await?;
        Ok(Self { echo, gw })
    }

    /// The `Host` a browser sends to this gateway.
    pub(crate) fn authority(&self) -> String {
        self.gw.endpoint().authority().to_owned()
    }

    /// A raw `METHOD target` with this gateway's `Host` and `headers`, sent byte for byte.
    pub(crate) async fn raw(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<RawResponse> {
        let mut request = RawRequest::new(method, target).header("Host", &self.authority());
        for (name, value) in headers {
            request = request.header(name, value);
        }
        request.send(self.gw.addr()).await.with_context(|| format!("{method} {target}"))
    }

    /// What the upstream received since `before` (an earlier length of [`EchoUpstream::targets`]).
    pub(crate) fn targets_since(&self, before: usize) -> Vec<String> {
        self.echo.targets().get(before..).map(<[String]>::to_vec).unwrap_or_default()
    }
}

/// What came back on a raw connection: every byte read, and whether the peer closed it.
pub(crate) struct Exchange {
    pub(crate) bytes: Vec<u8>,
    pub(crate) closed: bool,
}

impl Exchange {
    /// The status codes of the responses read, in order.
    pub(crate) fn statuses(&self) -> Vec<u16> {
        let text = String::from_utf8_lossy(&self.bytes);
        let mut out = Vec::new();
        let mut rest = text.as_ref();
        while let Some(at) = rest.find("HTTP/1.") {
            let line = &rest[at..];
            if let Some(code) = line.get(9..12).and_then(|c| c.parse().ok()) {
                out.push(code);
            }
            rest = &rest[at + 8..];
        }
        out
    }

    /// The bytes as text (lossy), for failure messages.
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

/// Writes `bytes` to `addr`, then reads until the peer closes or `within` has passed.
pub(crate) async fn exchange(addr: SocketAddr, bytes: &[u8], within: Duration) -> anyhow::Result<Exchange> {
    let mut stream = TcpStream::connect(addr).await.with_context(|| format!("connect to {addr}"))?;
    stream.write_all(bytes).await.context("write the request bytes")?;
    read_until_closed(&mut stream, within).await
}

/// Reads from `stream` until the peer closes it or `within` has passed.
pub(crate) async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> anyhow::Result<Exchange> {
    let mut bytes = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    let mut buf = [0u8; 16 * 1024];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return Ok(Exchange { bytes, closed: false }),
            Ok(Ok(0)) | Ok(Err(_)) => return Ok(Exchange { bytes, closed: true }),
            Ok(Ok(n)) => bytes.extend_from_slice(&buf[..n]),
        }
    }
}

/// At most the first 300 characters of `text`, for failure messages about large answers.
pub(crate) fn short(text: &str) -> String {
    match text.char_indices().nth(300) {
        Some((at, _)) => format!("{}… ({} bytes)", &text[..at], text.len()),
        None => text.to_owned(),
    }
}
