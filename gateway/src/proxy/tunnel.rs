//! WebSockets to the upstream, relayed by the gateway itself. One that carries a signed-in
//! identity ends with it: when its tokens go away (lifetime, logout) both sides get a close
//! frame with code 1008 (policy violation) and reason `session expired`. When the gateway
//! stops (SIGTERM, or the hand-over of an upgrade) both sides get 1001 ("going away").
//!
//! ```text
//! client ══ detached stream (proxy::upgrade) ══ WebSocket (server role) ┐
//!                                                                       ├ relay ◀── hub watch (auth_expired), going away
//! upstream ═════ Pingora TransportConnector stream ═ WebSocket (client role) ┘
//! ```
//! Pingora's own upgrade proxying has no hook to end a tunnel from outside (and can end one
//! whose 101 beats the request's end-of-body, cloudflare/pingora#946), so these upgrades are
//! relayed message by message here. Anonymous upgrades still go through Pingora untouched.
//! `Sec-WebSocket-Extensions` is not forwarded: the relay does not speak permessage-deflate,
//! so the two sides agree on no extension. Ping and pong stay on their own hop.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use pingora::connectors::TransportConnector;
use pingora::http::ResponseHeader;
use pingora::prelude::HttpPeer;
use pingora::proxy::Session;
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use pingora::{Error, ErrorType, Result};

use super::{upgrade, Gateway, Live, RequestCtx};
use crate::channel::event::StatusEvent;
use crate::channel::hub::{until_going_away, Membership};
use crate::config::types::ProviderName;
use crate::respond;

/// Longest wait for the upstream's answer to the upgrade request.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The close reason both sides read when the identity's tokens are gone.
const EXPIRED_REASON: &str = "session expired";

/// What ends a relay.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// Either side closed or failed.
    Closed,
    /// The identity's tokens were removed.
    Expired,
    /// The gateway is stopping.
    GoingAway,
}

/// Connects to `peer`, sends `request` (the client's upgrade with the gateway's headers), and
/// relays the WebSocket until either side closes, `watch`, when given, reports the end of its
/// provider's tokens, or `closing` reports that the gateway stops. The status answered.
pub(super) async fn serve(
    session: &mut Session,
    connector: &TransportConnector,
    peer: &HttpPeer,
    request: http::Request<()>,
    watch: Option<(Membership, ProviderName)>,
    closing: watch::Receiver<bool>,
) -> pingora::Result<u16> {
    let connected = tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
        let stream = connector.new_stream(peer).await.map_err(|e| e.to_string())?;
        tokio_tungstenite::client_async(request, stream).await.map_err(|e| match e {
            WsError::Http(response) => format!("upstream answered the upgrade with {}", response.status()),
            other => other.to_string(),
        })
    })
    .await
    .unwrap_or_else(|_| Err("no upgrade answer from the upstream in time".to_owned()));
    let (upstream, response) = match connected {
        Ok(pair) => pair,
        Err(reason) => {
            tracing::warn!(%reason, "upstream websocket failed");
            let status = if reason.starts_with("no upgrade answer") { 504 } else { 502 };
            respond::write(session, respond::proxy_failure(status, true)).await?;
            return Ok(status);
        }
    };
    let mut head = ResponseHeader::build(101, Some(response.headers().len()))?;
    for (name, value) in response.headers() {
        head.append_header(name.clone(), value.clone())?;
    }
    upgrade::hand_over(session, head, move |stream| async move {
        let client = WebSocketStream::from_raw_socket(stream, Role::Server, None).await;
        match relay(client, upstream, watch, closing).await {
            End::Expired => tracing::info!("upstream websocket closed: session expired"),
            End::GoingAway => tracing::debug!("upstream websocket closed: the gateway is stopping"),
            End::Closed => {}
        }
    })
    .await
}

async fn relay<C, U>(
    mut client: WebSocketStream<C>,
    mut upstream: WebSocketStream<U>,
    mut watch: Option<(Membership, ProviderName)>,
    mut closing: watch::Receiver<bool>,
) -> End
where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    U: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        tokio::select! {
            m = client.next() => {
                if !forward(m, &mut upstream).await {
                    let _ = upstream.close(None).await;
                    return End::Closed;
                }
            }
            m = upstream.next() => {
                if !forward(m, &mut client).await {
                    let _ = client.close(None).await;
                    return End::Closed;
                }
            }
            () = expiry(&mut watch) => {
                let frame = CloseFrame { code: CloseCode::Policy, reason: EXPIRED_REASON.into() };
                let _ = client.close(Some(frame.clone())).await;
                let _ = upstream.close(Some(frame)).await;
                let _ = client.get_mut().shutdown().await;
                return End::Expired;
            }
            () = until_going_away(&mut closing) => {
                let frame = CloseFrame { code: CloseCode::Away, reason: "going away".into() };
                let _ = client.close(Some(frame.clone())).await;
                let _ = upstream.close(Some(frame)).await;
                let _ = client.get_mut().shutdown().await;
                return End::GoingAway;
            }
        }
    }
}

/// Returns when the watched provider's tokens are gone, or the watch is lost (fail closed);
/// never without a watch. Cancel-safe: it only waits on the watch's queue.
async fn expiry(watch: &mut Option<(Membership, ProviderName)>) {
    let Some((membership, provider)) = watch else { return std::future::pending().await };
    loop {
        match membership.events.recv().await {
            Some(StatusEvent::AuthExpired(gone)) if gone.iter().any(|p| p == provider.as_str()) => return,
            Some(_) => {}
            // Dropped from the room: the session can no longer be followed.
            None => return,
        }
    }
}

/// Sends a data or close message on; `false` when the relay is over.
async fn forward<S>(message: Option<Result<Message, WsError>>, to: &mut WebSocketStream<S>) -> bool
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    match message {
        Some(Ok(Message::Ping(_) | Message::Pong(_))) => true,
        Some(Ok(Message::Close(frame))) => {
            let _ = to.close(frame).await;
            false
        }
        Some(Ok(m)) => to.send(m).await.is_ok(),
        Some(Err(_)) | None => false,
    }
}
impl Gateway {
    /// A WebSocket upgrade to the upstream, relayed by the gateway (`proxy::tunnel`); one that
    /// carries an identity is closed with 1008 when that identity's tokens go away.
    pub(super) async fn tunnel(&self, live: &Live, session: &mut Session, ctx: &mut RequestCtx) -> Result<()> {
        let status = self.tunnel_status(live, session, ctx).await?;
        // A detached session's placeholder has no response of its own: the access line reads this.
        ctx.answered = Some(status);
        Ok(())
    }

    async fn tunnel_status(&self, live: &Live, session: &mut Session, ctx: &mut RequestCtx) -> Result<u16> {
        let watch = match ctx.tokens.as_ref().map(|t| t.identity.provider.clone()) {
            None => None,
            Some(provider) => {
                let Ok(Some(sid)) = live.auth.session_of(&session.req_header().headers).await else {
                    // Tokens come only from a session cookie, so this cannot happen; refuse rather than relay unwatched.
                    respond::write(session, respond::proxy_failure(502, true)).await?;
                    return Ok(502);
                };
                let watch = self.channel.server.hub().watch(sid, "upstream_websocket");
                // Re-check after joining: an expiry between the route check and the join is not missed.
                if !matches!(live.auth.store().tokens(&sid, &provider).await, Ok(Some(_))) {
                    let expired = crate::auth::AuthRefusal::SignInRequired { links: Vec::new(), set_cookie: None };
                    respond::write(session, expired.into()).await?;
                    return Ok(401);
                }
                Some((watch, provider))
            }
        };
        let Some(peer) = self.upstreams.next_peer(true) else {
            respond::write(session, respond::proxy_failure(502, true)).await?;
            return Ok(502);
        };
        ctx.upstream = peer._address.as_inet().map(|a| super::ctx::Upstream::Peer(*a));
        let mut head = session.req_header().clone();
        self.add_upstream_headers(&mut head, ctx)?;
        head.remove_header(&http::header::SEC_WEBSOCKET_EXTENSIONS);
        if head.headers.get(http::header::HOST).is_none() {
            if let Some(host) = ctx.host.clone() {
                head.insert_header(http::header::HOST, host)?;
            }
        }
        let mut parts = head.as_owned_parts();
        // The WebSocket client wants an absolute ws:// URI; only its path and query are sent.
        let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        parts.uri = format!("ws://upstream{target}")
            .parse()
            .map_err(|_| Error::explain(ErrorType::InvalidHTTPHeader, "bad request target"))?;
        let request = http::Request::from_parts(parts, ());
        let closing = self.channel.server.hub().closing();
        serve(session, &self.ws_connector, &peer, request, watch, closing).await
    }
}
