//! The browser's end of a native status-channel WebSocket (`/_gateway/events?ticket=`): open it
//! from a chosen loopback source address, wait for `init`, then keep it idle or wait for one event.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures_util::StreamExt;
use http::HeaderValue;
use serde_json::Value;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::client::Gateway;

/// Path of the native status channel (docs/architecture.md#routes).
const EVENTS_PATH: &str = "/_gateway/events";
/// The client's read buffer: the gateway sends small JSON frames. tungstenite's default
/// (128 KiB, zero-filled on the first read) would cost this process 2.5 GiB for 20,000 sockets.
const CLIENT_READ_BUFFER: usize = 4 * 1024;

/// An open status socket that has received `init`.
pub(crate) struct StatusSocket {
    ws: WebSocketStream<TcpStream>,
}

impl StatusSocket {
    /// Opens `/_gateway/events?ticket=TICKET` from `source` (any 127.0.0.0/8 address) with the
    /// gateway's own `Origin`, and waits up to `within` for `init`.
    pub(crate) async fn open(
        gateway: &Gateway,
        ticket: &str,
        source: IpAddr,
        within: Duration,
    ) -> anyhow::Result<Self> {
        let open = async {
            let target: SocketAddr = gateway.authority().parse().context("the gateway address")?;
            let socket = TcpSocket::new_v4()?;
            socket.bind(SocketAddr::new(source, 0)).with_context(|| format!("binding {source}"))?;
            let tcp = socket.connect(target).await.with_context(|| format!("connecting from {source}"))?;
            tcp.set_nodelay(true)?;
            let query = url::form_urlencoded::Serializer::new(String::new()).append_pair("ticket", ticket).finish();
            let mut req = format!("ws://{}{EVENTS_PATH}?{query}", gateway.authority()).into_client_request()?;
            req.headers_mut().insert(http::header::ORIGIN, HeaderValue::from_str(gateway.origin())?);
            let config = WebSocketConfig::default().read_buffer_size(CLIENT_READ_BUFFER).write_buffer_size(0);
            let (ws, _) = tokio_tungstenite::client_async_with_config(req, tcp, Some(config))
                .await
                .context("the WebSocket handshake")?;
            let mut socket = Self { ws };
            let first = socket.next_event().await?;
            if first != "init" {
                bail!("the first event was {first:?}, not init");
            }
            Ok(socket)
        };
        tokio::time::timeout(within, open).await.context("no init in time")?
    }

    /// The name of the next status event (pings are answered by tungstenite on the next read).
    pub(crate) async fn next_event(&mut self) -> anyhow::Result<String> {
        loop {
            match self.ws.next().await {
                Some(Ok(Message::Text(text))) => {
                    let v: Value = serde_json::from_str(&text).with_context(|| format!("event is not JSON: {text}"))?;
                    return v["event"].as_str().map(str::to_owned).with_context(|| format!("no event in {text}"));
                }
                Some(Ok(Message::Close(frame))) => bail!("the gateway closed the socket: {frame:?}"),
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(e).context("reading the socket"),
                None => bail!("the socket ended"),
            }
        }
    }

    /// Waits up to `within` for `name`; the moment it was read.
    pub(crate) async fn wait_for(&mut self, name: &str, within: Duration) -> anyhow::Result<Instant> {
        let wait = async {
            loop {
                let event = self.next_event().await?;
                if event == name {
                    return Ok(Instant::now());
                }
            }
        };
        tokio::time::timeout(within, wait).await.with_context(|| format!("no {name} within {within:?}"))?
    }

    /// Reads (and so answers the gateway's pings) until the socket ends; the reason it ended.
    pub(crate) async fn idle(mut self) -> String {
        loop {
            match self.next_event().await {
                Ok(_) => continue,
                Err(e) => return format!("{e:#}"),
            }
        }
    }
}
