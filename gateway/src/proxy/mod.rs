//! The request path: the one `impl ProxyHttp` of the gateway.
//!
//! | Pingora phase | what the gateway does, in order | calls |
//! |---|---|---|
//! | `new_ctx` | empty [`RequestCtx`] | `proxy::ctx` |
//! | (accept) | admission: connection limits overall and per client address, TLS handshake, head and body deadlines on the stream | `proxy::admission`, `proxy::deadline` |
//! | `request_filter` | 0 the head is complete (its deadline ends; a body's minimum rate starts); a head over 64 KiB → 431, the idle time before the next request capped at `server.idle_timeout`; 1 strip identity and untrusted forwarding headers; 2 `Host` check → 421; 3 classify the route: a gateway route is answered here (`Ok(true)`); 4 route rule: a foreign page (`Origin`, `Sec-Fetch-Site`) gets no identity (403 on a protected route), protected without live tokens → 401 JSON, else the identity goes in ctx; an upgrade loses the idle read timeout, and a WebSocket is relayed here (one carrying an identity until its tokens go away) | `identity`, `proxy::forwarded`, `proxy::route`, `proxy::rules`, `auth`, `respond`, `proxy::tunnel` |
//! | `upstream_peer` | next healthy upstream, else 502 | `proxy::upstream` |
//! | `upstream_request_filter` | set `X-Forwarded-For/-Proto/-Host`; inject the identity headers; `traceparent` | `proxy::forwarded`, `identity`, `proxy::trace` |
//! | `fail_to_connect` | count the failure | `metrics` |
//! | `request_body_filter` | the body's end ends its minimum rate | `proxy::deadline` |
//! | `fail_to_proxy` | 408 for a body cut by its deadline; 502/504 page or JSON by `Accept`, naming no internal address | `respond` |
//! | `logging` | one access line naming the trace id; metrics; the connection waits for its next head | `metrics`, `proxy::deadline` |

mod access;
pub mod admission;
mod bot;
pub mod cross_site;
pub mod ctx;
pub mod deadline;
pub mod forwarded;
mod headers;
pub mod limits;
mod local;
pub mod ready;
pub mod route;
pub mod rules;
mod status_channel;
pub mod trace;
mod tunnel;
mod upgrade;
pub mod upstream;

use std::sync::Arc;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::prelude::HttpPeer;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::{Error, ErrorSource, ErrorType, Result};

use crate::auth::AuthService;
use crate::config::types::AllowedHost;
use crate::config::Config;
use crate::identity::{HeaderPolicy, WireNames};
use crate::metrics::Metrics;
use crate::providers::dev::DevIdp;
use crate::respond;
use crate::teams::TeamsService;
pub use ctx::RequestCtx;
use route::Route;
use rules::RouteRules;
use upstream::Upstreams;

/// The gateway's proxy logic; one instance serves every request.
pub struct Gateway {
    /// What a config reload replaces; each request reads one snapshot.
    live: Arc<ArcSwap<Live>>,
    https: bool,
    /// `server.idle_timeout` in whole seconds: the keep-alive bound of client connections.
    idle_secs: u64,
    upstreams: Upstreams,
    channel: ChannelRouting,
    metrics: Metrics,
    readiness: Arc<ready::Readiness>,
    /// Connects the WebSockets this gateway relays itself (`proxy::tunnel`).
    ws_connector: pingora::connectors::TransportConnector,
    /// The open client connections and their deadline clocks.
    admission: Arc<admission::Admission>,
}

/// What a configuration reload (SIGHUP) replaces: everything the request path reads from the
/// config except the listeners, the upstreams, the token store and the channel server.
pub struct Live {
    headers: HeaderPolicy,
    identity_names: WireNames,
    allowed_hosts: Vec<AllowedHost>,
    trusted_proxies: Vec<ipnet::IpNet>,
    rules: RouteRules,
    auth: Arc<AuthService>,
    dev_idp: Option<Arc<DevIdp>>,
    teams: Option<Arc<TeamsService>>,
    allowed_origins: Vec<String>,
}

impl Live {
    /// The request path's view of `config`, with the services built from it.
    pub fn new(
        config: &Config,
        auth: Arc<AuthService>,
        dev_idp: Option<Arc<DevIdp>>,
        teams: Option<Arc<TeamsService>>,
    ) -> Self {
        Self {
            headers: HeaderPolicy::from_config(&config.identity),
            identity_names: WireNames::new(&config.identity),
            allowed_hosts: config.server.allowed_hosts.clone(),
            trusted_proxies: config.server.trusted_proxies.clone(),
            rules: RouteRules::new(config.routes.clone()),
            auth,
            dev_idp,
            teams,
            allowed_origins: config.channel.allowed_origins.clone(),
        }
    }

    /// The sign-in service of this snapshot.
    pub fn auth(&self) -> &Arc<AuthService> {
        &self.auth
    }

    /// Whether `peer` is in `server.trusted_proxies`.
    pub fn trusts(&self, peer: std::net::IpAddr) -> bool {
        forwarded::is_trusted(Some(peer), &self.trusted_proxies)
    }
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live").finish_non_exhaustive()
    }
}

/// Where status-channel requests go and who may open them.
pub struct ChannelRouting {
    /// The channel server's Unix socket.
    pub socket: std::path::PathBuf,
    /// The configured socket.io path.
    pub socketio_path: Option<String>,
    /// The gateway's origin.
    pub own_origin: String,
    /// The channel server, for WebSockets the proxy serves itself.
    pub server: Arc<crate::channel::server::ChannelServer>,
}

impl Gateway {
    /// Builds the request path from a validated config and its parts; `live` is shared with
    /// whatever reloads the config.
    pub fn new(
        config: &Config,
        live: Arc<ArcSwap<Live>>,
        upstreams: Upstreams,
        channel: ChannelRouting,
        metrics: Metrics,
        readiness: Arc<ready::Readiness>,
        admission: Arc<admission::Admission>,
    ) -> Self {
        Self {
            live,
            https: config.server.tls.is_some(),
            idle_secs: config.server.idle_timeout.as_secs(),
            upstreams,
            channel,
            metrics,
            readiness,
            ws_connector: pingora::connectors::TransportConnector::new(None),
            admission,
        }
    }

    /// The connection outlives this request as an upgraded one: no read timeout, no deadline.
    fn keep_open(session: &mut Session, ctx: &RequestCtx) {
        // docs/architecture.md#pingora-notes: the 60 s read timeout also cuts idle upgraded connections
        session.set_read_timeout(None);
        if let Some(clock) = &ctx.clock {
            clock.open();
        }
    }
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx::new()
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        ctx.clock = self.admission.clock_of(session.client_addr().and_then(|a| a.as_inet()).copied());
        if let Some(clock) = &ctx.clock {
            clock.head_done(limits::has_body(session.req_header()));
        }
        limits::bound_keepalive(session, self.idle_secs);
        if limits::head_len(session.req_header()) > limits::MAX_REQUEST_HEAD {
            ctx.route = "oversize";
            session.set_keepalive(None);
            return local::answer(session, respond::proxy_failure(431, Self::wants_json(session))).await;
        }
        let live = self.live.load_full();
        ctx.live = Some(Arc::clone(&live));
        ctx.trace = Self::trace_context(session);
        Self::strip_headers(&live, session, ctx);
        ctx.host = Self::request_host(session);
        let default_port = if self.https { 443 } else { 80 };
        let host = ctx.host.as_ref().and_then(|h| h.to_str().ok());
        if !forwarded::is_allowed_host(host, &live.allowed_hosts, default_port) {
            ctx.route = "misdirected";
            return local::answer(session, respond::misdirected(Self::wants_json(session))).await;
        }
        let bot_path = live.teams.as_ref().map(|t| t.bot_path());
        // The route borrows the request's path; the few arms that keep a part of it while they
        // use the session copy that part (sign-in steps, not the proxied request).
        let route =
            route::classify_with(session.req_header().uri.path(), self.channel.socketio_path.as_deref(), bot_path);
        ctx.route = route.label();
        match route {
            Route::Upstream => self.upstream_request(&live, session, ctx).await,
            Route::Events | Route::SocketIo => self.status_channel(&live, session, ctx).await,
            Route::Bot => self.bot(&live, session, ctx).await,
            Route::Health => self.health(session).await,
            Route::Ready => self.ready(session).await,
            Route::Session => self.session_info(&live, session).await,
            Route::Connect { provider, ticket } => {
                let (provider, ticket) = (provider.to_owned(), ticket.to_owned());
                self.connect(&live, session, &provider, &ticket).await
            }
            Route::Callback { provider } => {
                let provider = provider.to_owned();
                self.callback(&live, session, &provider).await
            }
            Route::Logout => self.logout(&live, session).await,
            Route::Handoff => self.handoff(&live, session).await,
            Route::DevIdp(rest) => {
                let rest = rest.to_owned();
                self.dev_idp(&live, session, &rest).await
            }
            Route::ClientJs => local::answer(session, respond::client_js()).await,
            Route::NotFound => local::answer(session, respond::not_found()).await,
        }
    }

    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut RequestCtx) -> Result<Box<HttpPeer>> {
        if ctx.channel {
            let path = self.channel.socket.to_string_lossy();
            let peer = HttpPeer::new_uds(&path, false, String::new())?;
            ctx.upstream = Some(ctx::Upstream::Channel);
            return Ok(Box::new(peer));
        }
        let peer = self
            .upstreams
            .next_peer(ctx.upgrade)
            .ok_or_else(|| Error::explain(ErrorType::HTTPStatus(502), "no healthy upstream"))?;
        ctx.upstream = peer._address.as_inet().map(|a| ctx::Upstream::Peer(*a));
        Ok(peer)
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream_request: &mut pingora::http::RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        self.add_upstream_headers(upstream_request, ctx)?;
        if let Some(body) = &ctx.body_override {
            upstream_request.insert_header(http::header::CONTENT_LENGTH, body.len().to_string())?;
            upstream_request.remove_header(&http::header::TRANSFER_ENCODING);
        }
        Ok(())
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<bytes::Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if let (true, Some(clock)) = (end_of_stream, &ctx.clock) {
            clock.body_done();
        }
        if let Some(replacement) = ctx.body_override.take() {
            *body = Some(replacement);
        }
        Ok(())
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        _ctx: &mut RequestCtx,
        e: Box<Error>,
    ) -> Box<Error> {
        self.metrics.observe_connect_failure();
        e
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, _ctx: &mut RequestCtx) -> FailToProxy {
        if let Some(cut) = deadline::cut_by(e) {
            // The body was too slow: say so before closing (the head's own cut never gets here).
            session.set_keepalive(None);
            if let Err(write_err) = respond::write(session, cut.limit().into()).await {
                tracing::debug!(error = %write_err, "could not send the timeout response");
            }
            return FailToProxy { error_code: 408, can_reuse_downstream: false };
        }
        let status = respond::proxy_error_status(e);
        if status > 0 {
            // The connection is not reused after a failed proxy attempt: say so (`Connection: close`).
            session.set_keepalive(None);
            let body = respond::proxy_failure(status, Self::wants_json(session));
            if let Err(write_err) = respond::write(session, body).await {
                tracing::debug!(error = %write_err, "could not send the error response");
            }
        }
        FailToProxy { error_code: status, can_reuse_downstream: false }
    }

    /// A client that goes away mid-answer (a closed tab ending its SSE stream, a cancelled
    /// download) is not a gateway error: its access line records it, Pingora's `ERROR Fail to
    /// proxy` line would only be noise (one per closed task pane, found by `benches/run --soak`).
    fn suppress_error_log(&self, _session: &Session, _ctx: &RequestCtx, e: &Error) -> bool {
        let client_left = *e.esource() == ErrorSource::Downstream && e.etype() == &ErrorType::ConnectionClosed;
        if client_left {
            tracing::debug!(error = %e, "the client closed the connection before the answer was complete");
        }
        client_left
    }

    /// How Pingora's own error lines name a request: method and path, never the query or a
    /// ticket (docs/architecture.md#security-invariants: logs never carry a token, code, state or query value).
    fn request_summary(&self, session: &Session, _ctx: &RequestCtx) -> String {
        let req = session.req_header();
        format!("{} {}", req.method, route::loggable_path(req.uri.path()))
    }

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut RequestCtx) {
        let written = session.response_written().map(|r| r.status.as_u16());
        let status = ctx.answered.or(written).unwrap_or(0);
        let elapsed = ctx.started.elapsed();
        if let Some(clock) = &ctx.clock {
            clock.request_done();
        }
        self.metrics.observe_request(ctx.route, status, elapsed);
        let req = session.req_header();
        // Enabled as a tracing record of this target at `info` would be (`RUST_LOG`).
        if tracing::enabled!(tracing::Level::INFO) {
            let upstream = ctx.upstream.as_ref().map(|u| u as &dyn std::fmt::Display);
            let trace_id = ctx.trace.map(|t| t.trace_id());
            crate::logging::access::write(&crate::logging::access::AccessLine {
                method: req.method.as_str(),
                path: &route::loggable_path(req.uri.path()),
                status,
                route: ctx.route,
                upstream,
                trace_id: trace_id.as_ref().map(|t| t as &dyn std::fmt::Display),
                duration: elapsed,
            });
        }
        trace::export(req, ctx, status);
    }
}
