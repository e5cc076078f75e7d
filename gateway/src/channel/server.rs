//! The channel server: SSE and socket.io long-polling as hyper on a private Unix socket, reached
//! only through the proxy, which has already checked the `Origin` and put the verified session in
//! [`SESSION_HEADER`]; and the WebSockets whose 101 the proxy answered itself
//! ([`ChannelServer::serve_upgraded`]), which never pass through that socket.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::UnixListener;
use tokio::sync::watch;

use super::admission::{ChannelAdmission, EntryPermit};
use super::socketio::{Query, SocketIo};
use super::{sse, websocket, Hub, SignedIn, CLIENT_HEADER, SESSION_HEADER};
use super::{ChannelRefusal, EngineIoError};
use crate::config::ChannelConfig;
use crate::metrics::{Limit, Metrics};
use crate::respond::Answer;
use crate::session::SessionId;

/// `GET /_gateway/events`: WebSocket when asked to upgrade, else SSE.
pub const EVENTS_PATH: &str = "/_gateway/events";
/// Keep-alive comment interval on SSE streams.
const SSE_KEEP_ALIVE: Duration = Duration::from_secs(15);

type Body = BoxBody<Bytes, std::convert::Infallible>;

/// What the channel server serves.
pub struct ChannelServer {
    hub: Arc<Hub>,
    signed_in: Arc<dyn SignedIn>,
    socketio: Option<(String, Arc<SocketIo>)>,
    ping: Duration,
    admission: Arc<ChannelAdmission>,
}

impl ChannelServer {
    /// Serves native events and, when `config.socketio_path` is set, socket.io, within the
    /// channel's limits; `metrics` counts refusals.
    pub fn new(
        hub: Arc<Hub>,
        signed_in: Arc<dyn SignedIn>,
        config: &ChannelConfig,
        metrics: Option<Metrics>,
    ) -> Arc<Self> {
        let ping = config.ping_interval.get();
        let admission =
            ChannelAdmission::new(config.max_sockets_per_client, config.max_sockets_per_session, metrics.clone());
        let socketio = config.socketio_path.clone().map(|p| {
            let engine = super::socketio::EngineLimits {
                max_sessions: config.max_sockets,
                join_timeout: config.join_timeout.get(),
                metrics,
            };
            (p, SocketIo::new(Arc::clone(&hub), Arc::clone(&signed_in), ping, engine))
        });
        Arc::new(Self { hub, signed_in, socketio, ping, admission })
    }

    /// A place for one more entry (socket, stream, Engine.IO session) of `client` and
    /// `session`, or the limit it is over.
    pub fn enter(&self, client: Option<std::net::IpAddr>, session: Option<SessionId>) -> Result<EntryPermit, Limit> {
        self.admission.enter(client, session)
    }

    /// The permit a WebSocket handshake on `path?query` needs before its 101: one for a native
    /// status socket (counted per client; per session when it joins the hub) or a new Engine.IO
    /// session (per client and per session), none for the upgrade of an Engine.IO session that
    /// already holds one.
    pub fn admit_upgrade(
        &self,
        path: &str,
        query: Option<&str>,
        client: Option<std::net::IpAddr>,
        session: Option<SessionId>,
    ) -> Result<Option<EntryPermit>, Limit> {
        if path == EVENTS_PATH {
            // Native sockets count per session when they join the hub (close 4429 past the limit).
            return self.enter(client, None).map(Some);
        }
        if Query::parse(query).sid.is_some() {
            return Ok(None);
        }
        self.enter(client, session).map(Some)
    }

    /// Whether a WebSocket upgrade on `path?query` asks for a transport this server runs: any on
    /// the native path; `EIO` 3 or 4 with `transport=websocket` on socket.io's. Else the JSON
    /// body of the 400 sent before any 101 (socket.io's error shape, as its polling refusals).
    pub fn check_upgrade(&self, path: &str, query: Option<&str>) -> Result<(), ChannelRefusal> {
        if path == EVENTS_PATH {
            return Ok(());
        }
        let q = Query::parse(query);
        if q.version().is_none() {
            return Err(ChannelRefusal::EngineIo(EngineIoError::UnsupportedVersion));
        }
        if self.socketio.is_none() || q.transport.as_deref() != Some("websocket") {
            return Err(ChannelRefusal::EngineIo(EngineIoError::TransportUnknown));
        }
        Ok(())
    }

    /// The rooms this server's sockets join.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// Accepts connections until `shutdown` (Pingora's graceful stop: SIGTERM, or the hand-over
    /// of an upgrade) turns true; then every socket, stream and poll of the hub is told to go.
    pub async fn run(self: Arc<Self>, listener: UnixListener, mut shutdown: watch::Receiver<bool>) {
        loop {
            let stream = tokio::select! {
                _ = shutdown.changed() => {
                    self.hub.going_away();
                    return;
                }
                r = listener.accept() => match r {
                    Ok((s, _)) => s,
                    Err(e) => {
                        tracing::error!(error = %e, "channel socket accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let this = Arc::clone(&self);
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let this = Arc::clone(&this);
                    async move { Ok::<_, std::convert::Infallible>(this.handle(req).await) }
                });
                let conn = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc);
                let _ = conn.await;
            });
        }
    }

    async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Response<Body> {
        let session =
            req.headers().get(SESSION_HEADER).and_then(|v| v.to_str().ok()).and_then(SessionId::from_storage_key);
        let client = req.headers().get(CLIENT_HEADER).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
        let path = req.uri().path().to_owned();
        if path == EVENTS_PATH {
            return self.events(session, client);
        }
        if let Some((sio_path, sio)) = &self.socketio {
            if path == *sio_path || path == sio_path.trim_end_matches('/') {
                return self.socketio(Arc::clone(sio), req, session, client).await;
            }
        }
        answer(ChannelRefusal::NotFound.into())
    }

    /// Runs a status WebSocket whose handshake the proxy already checked ([`Self::check_upgrade`])
    /// and answered (101), on `io`, holding `permit` (from [`Self::admit_upgrade`]) while it lives.
    pub async fn serve_upgraded<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
        self: Arc<Self>,
        io: S,
        path: &str,
        query: Option<&str>,
        session: Option<SessionId>,
        permit: Option<EntryPermit>,
    ) {
        if path == EVENTS_PATH {
            let (hub, signed_in) = (Arc::clone(&self.hub), Arc::clone(&self.signed_in));
            websocket::serve(io, session, hub, signed_in, self.ping).await;
            drop(permit);
            return;
        }
        if let Some((_, sio)) = &self.socketio {
            let q = Query::parse(query);
            if let Some(version) = q.version() {
                Arc::clone(sio).websocket(io, version, q.sid, session, permit).await;
            }
        }
    }

    /// `GET /_gateway/events` as SSE (its WebSocket upgrades never come here).
    fn events(&self, session: Option<SessionId>, client: Option<std::net::IpAddr>) -> Response<Body> {
        // Native sockets count per session when they join the hub (4429 / 429 past the limit).
        let permit = match self.enter(client, None) {
            Ok(p) => p,
            Err(limit) => return answer(ChannelRefusal::OverLimit(limit).into()),
        };
        let Some(session) = session else {
            self.hub.refuse("unauthorized");
            return answer(ChannelRefusal::NoSession.into());
        };
        let Some(rx) = sse::open(session, &self.hub, Arc::clone(&self.signed_in), SSE_KEEP_ALIVE) else {
            return answer(ChannelRefusal::SessionFull.into());
        };
        // The stream holds the permit: the entry lasts as long as the response body.
        let stream = futures_util::stream::unfold((rx, permit), |(mut rx, permit)| async move {
            rx.recv().await.map(|chunk| (Ok::<_, std::convert::Infallible>(Frame::data(chunk)), (rx, permit)))
        });
        let mut resp = Response::new(BodyExt::boxed(StreamBody::new(stream)));
        let h = resp.headers_mut();
        h.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        h.insert(http::header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert("x-accel-buffering", HeaderValue::from_static("no"));
        resp
    }

    async fn socketio(
        &self,
        sio: Arc<SocketIo>,
        req: Request<Incoming>,
        session: Option<SessionId>,
        client: Option<std::net::IpAddr>,
    ) -> Response<Body> {
        let q = Query::parse(req.uri().query());
        let origin = req.headers().get(http::header::ORIGIN).cloned();
        // A request without `sid` opens an Engine.IO session: a new entry.
        let opening = q.sid.is_none() && req.method() == http::Method::GET;
        let permit = match opening.then(|| self.enter(client, session)) {
            Some(Err(limit)) => return answer(ChannelRefusal::OverLimit(limit).into()),
            Some(Ok(p)) => Some(p),
            None => None,
        };
        let reply = if req.method() == http::Method::OPTIONS {
            Answer::empty(204)
        } else if req.method() == http::Method::POST {
            let posted = match Limited::new(req.into_body(), 64 * 1024 + 1).collect().await {
                Ok(b) => sio.poll_post(&q, session, &b.to_bytes()),
                Err(_) => Err(EngineIoError::PayloadTooLarge),
            };
            match posted {
                // Engine.IO's answer to a post is the text `ok`.
                Ok(()) => Answer::new(200, "text/html", "ok"),
                Err(e) => ChannelRefusal::EngineIo(e).into(),
            }
        } else {
            match sio.poll_get(&q, session, permit).await {
                Ok(payload) => Answer::new(200, payload.content_type, payload.body),
                Err(e) => ChannelRefusal::EngineIo(e).into(),
            }
        };
        let mut resp = answer(reply);
        let h = resp.headers_mut();
        // The proxy only lets allowed origins through; echo them for credentialed polling.
        if let Some(o) = origin {
            h.insert(http::header::ACCESS_CONTROL_ALLOW_ORIGIN, o);
            h.insert(http::header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
            h.insert(http::header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, POST, OPTIONS"));
            h.insert(http::header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("content-type"));
            h.insert(http::header::VARY, HeaderValue::from_static("Origin"));
        }
        resp
    }
}

/// `answer` as the channel server's response.
fn answer(answer: Answer) -> Response<Body> {
    answer.into_http().map(|body| Full::new(body).boxed())
}
