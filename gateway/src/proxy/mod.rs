//! The request path: the one `impl ProxyHttp` of the gateway.
//!
//! | Pingora phase | what the gateway does, in order | calls |
//! |---|---|---|
//! | `new_ctx` | empty [`RequestCtx`] | `proxy::ctx` |
//! | (accept) | admission: connection limits overall and per client address, TLS handshake, head and body deadlines on the stream | `proxy::admission`, `proxy::deadline` |
//! | `request_filter` | 0 the head is complete (its deadline ends; a body's minimum rate starts); a head over 64 KiB → 431, the idle time before the next request capped at `server.idle_timeout`; 1 strip identity and untrusted forwarding headers; 2 `Host` check → 421; 3 classify the route: a gateway route is answered here (`Ok(true)`); 4 route rule: a foreign page (`Origin`, `Sec-Fetch-Site`) gets no identity (403 on a protected route), protected without live tokens → 401 JSON, else the identity goes in ctx; an upgrade loses the idle read timeout, and a WebSocket is relayed here (one carrying an identity until its tokens go away) | `identity`, `proxy::forwarded`, `proxy::route`, `proxy::rules`, `auth`, `proxy::respond`, `proxy::tunnel` |
//! | `upstream_peer` | next healthy upstream, else 502 | `proxy::upstream` |
//! | `upstream_request_filter` | set `X-Forwarded-For/-Proto/-Host`; inject the identity headers; `traceparent` | `proxy::forwarded`, `identity`, `proxy::trace` |
//! | `fail_to_connect` | count the failure | `metrics` |
//! | `request_body_filter` | the body's end ends its minimum rate | `proxy::deadline` |
//! | `fail_to_proxy` | 408 for a body cut by its deadline; 502/504 page or JSON by `Accept`, naming no internal address | `proxy::respond` |
//! | `logging` | one access line naming the trace id; metrics; the connection waits for its next head | `metrics`, `proxy::deadline` |

pub mod admission;
pub mod cross_site;
pub mod ctx;
pub mod deadline;
pub mod forwarded;
pub mod limits;
mod local;
pub mod ready;
pub mod respond;
pub mod route;
pub mod rules;
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

use crate::auth::dev_idp::DevIdp;
use crate::auth::guard::Access;
use crate::auth::AuthService;
use crate::channel;
use crate::config::types::AllowedHost;
use crate::config::{Config, IdentityHeaderNames};
use crate::identity::{self, HeaderPolicy};
use crate::metrics::Metrics;
use crate::teams::{BotDecision, TeamsService};
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
    identity_names: IdentityHeaderNames,
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
            identity_names: config.identity.clone(),
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

    /// A request to the Teams bot endpoint: the auth loop decides (`teams`); returns `true`
    /// when answered here, `false` to forward (with the identity and body it chose).
    async fn route_bot(&self, live: &Live, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let Some(teams) = &live.teams else { return Ok(false) };
        if session.req_header().method != http::Method::POST {
            respond::write_reply(session, respond::method_not_allowed("POST")).await?;
            return Ok(true);
        }
        // The body is read here and replayed to the upstream from Pingora's retry buffer.
        session.enable_retry_buffering();
        let Some(body) = local::read_bounded(session, crate::teams::activity::MAX_ACTIVITY_BYTES).await? else {
            respond::write(session, respond::too_large()).await?;
            return Ok(true);
        };
        let auth = session.req_header().headers.get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        let sso: &dyn crate::teams::TeamsSso = live.auth.as_ref();
        match teams.handle(auth, &body, Some(sso)).await {
            BotDecision::Reply(json) => {
                respond::write(session, respond::LocalResponse::json(200, &json)).await?;
                Ok(true)
            }
            BotDecision::Invoke { status, json } => {
                respond::write(session, respond::LocalResponse::json(status, &json)).await?;
                Ok(true)
            }
            BotDecision::Refuse { status, message } => {
                let json = serde_json::json!({"error": "bad_request", "message": message});
                respond::write(session, respond::LocalResponse::json(status, &json)).await?;
                Ok(true)
            }
            BotDecision::Forward { tokens, body } => {
                ctx.tokens = tokens;
                ctx.body_override = body.map(bytes::Bytes::from);
                Ok(false)
            }
        }
    }

    /// A status-channel request: check the `Origin`, resolve the session from the signed cookie
    /// or `?ticket=`, and hand the verified session to the channel server in a header.
    /// Returns `true` when the request was answered (403).
    async fn route_channel(&self, live: &Live, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let req = session.req_header();
        let origin = req.headers.get(http::header::ORIGIN).and_then(|v| v.to_str().ok());
        if !channel::origin_allowed(origin, &self.channel.own_origin, &live.allowed_origins) {
            self.metrics.refuse_join("bad_origin");
            respond::write(session, respond::forbidden_origin()).await?;
            return Ok(true);
        }
        let ticket = req.uri.query().and_then(|q| {
            url::form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "ticket").map(|(_, v)| v.into_owned())
        });
        // A store outage joins by ticket only: the socket still hears events of a ticket's session.
        let from_cookie = live.auth.session_of(&req.headers).await.ok().flatten();
        let sid = from_cookie.or_else(|| ticket.and_then(|t| live.auth.channel_session(&t)));
        // Channel connections idle for long by design; the channel server pings and times out.
        session.set_read_timeout(None);
        if let Some(client) = ctx.client {
            session.req_header_mut().insert_header(channel::CLIENT_HEADER, client.to_string())?;
        }
        if session.is_upgrade_req() {
            Self::keep_open(session, ctx);
            ctx.answered = Some(upgrade::serve(session, Arc::clone(&self.channel.server), sid, ctx.client).await?);
            return Ok(true);
        }
        if let Some(sid) = sid {
            session.req_header_mut().insert_header(channel::SESSION_HEADER, sid.storage_key())?;
        }
        ctx.channel = true;
        Ok(false)
    }

    /// Step 1 of the request path (`docs/architecture.md#request-path`): remove every header a client may not set.
    fn strip_headers(live: &Live, session: &mut Session, ctx: &mut RequestCtx) {
        ctx.client_ip = session.client_addr().and_then(|a| a.as_inet()).map(|a| a.ip());
        ctx.trusted_peer = forwarded::is_trusted(ctx.client_ip, &live.trusted_proxies);
        let req = session.req_header_mut();
        for name in live.headers.headers_to_strip(req.headers.keys(), ctx.trusted_peer) {
            req.remove_header(&name);
        }
        let xff = req.headers.get_all(forwarded::X_FORWARDED_FOR);
        ctx.client = forwarded::client_address(ctx.client_ip, xff.iter(), &live.trusted_proxies);
    }

    /// The connection outlives this request as an upgraded one: no read timeout, no deadline.
    fn keep_open(session: &mut Session, ctx: &RequestCtx) {
        // docs/architecture.md#pingora-notes: the 60 s read timeout also cuts idle upgraded connections
        session.set_read_timeout(None);
        if let Some(clock) = &ctx.clock {
            clock.open();
        }
    }

    /// docs/architecture.md#operations: continue the client's valid `traceparent`, else start a
    /// trace; a `tracestate` without its valid `traceparent` is dropped.
    fn trace_context(session: &mut Session) -> Option<trace::TraceContext> {
        let req = session.req_header();
        let sent = req.headers.get(trace::TRACEPARENT).map(http::HeaderValue::as_bytes);
        let single = req.headers.get_all(trace::TRACEPARENT).iter().count() <= 1;
        let context = trace::TraceContext::from_client(sent.filter(|_| single));
        if !context.is_some_and(|c| c.is_continued()) {
            session.req_header_mut().remove_header(trace::TRACESTATE);
        }
        context
    }

    /// The `Host` (HTTP/1.1) or `:authority` (HTTP/2) the client used.
    fn request_host(session: &Session) -> Option<String> {
        let req = session.req_header();
        match req.headers.get(http::header::HOST) {
            Some(h) => h.to_str().ok().map(str::to_owned),
            None => req.uri.authority().map(|a| a.as_str().to_owned()),
        }
    }

    fn wants_json(session: &Session) -> bool {
        let accept = session.req_header().headers.get(http::header::ACCEPT).and_then(|v| v.to_str().ok());
        respond::wants_json(accept)
    }

    /// The forwarding headers and, when signed in, the identity headers of an upstream request.
    fn add_upstream_headers(
        &self,
        upstream_request: &mut pingora::http::RequestHeader,
        ctx: &RequestCtx,
    ) -> Result<()> {
        let header = |name: &str| upstream_request.headers.get(name).and_then(|v| v.to_str().ok());
        let trusted = ctx.trusted_peer.then(|| forwarded::TrustedValues {
            xff: header(forwarded::X_FORWARDED_FOR),
            proto: header(forwarded::X_FORWARDED_PROTO),
            host: header(forwarded::X_FORWARDED_HOST),
        });
        let values = forwarded::forwarding_values(ctx.client_ip, self.https, ctx.host.as_deref(), trusted);
        for (name, value) in values {
            upstream_request.insert_header(name, value)?;
        }
        match &ctx.trace {
            Some(trace) => upstream_request.insert_header(trace::TRACEPARENT, trace.header_value())?,
            None => {
                upstream_request.remove_header(trace::TRACEPARENT);
            }
        }
        if let (Some(tokens), Some(live)) = (&ctx.tokens, &ctx.live) {
            for (name, value) in identity::identity_headers(&live.identity_names, tokens, ctx.forward_token) {
                upstream_request.insert_header(name, value)?;
            }
        }
        Ok(())
    }

    /// Whether the request asks for a WebSocket (not another protocol).
    fn is_websocket(session: &Session) -> bool {
        let upgrade = session.req_header().headers.get(http::header::UPGRADE);
        upgrade.is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"))
    }

    /// Step 3: the route rule for this path decides whether a live sign-in is needed.
    /// Returns `true` when the request was answered (401, 400).
    async fn guard(&self, live: &Live, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let req = session.req_header();
        let rule = if live.rules.is_empty() {
            None
        } else {
            match rules::normalize_path(req.uri.path()) {
                Ok(path) => live.rules.find_for(&path, &req.method, &req.headers, req.uri.query()),
                Err(_) => {
                    respond::write(session, respond::bad_path()).await?;
                    return Ok(true);
                }
            }
        };
        // A bearer token is no ambient credential: a page of any origin that holds one may use it.
        // (Asked only of foreign requests, so the usual one looks for bearer providers once.)
        if cross_site::is_foreign(&req.headers, &self.channel.own_origin, &live.allowed_origins)
            && live.auth.bearer_providers(&req.headers, rule).is_empty()
        {
            // The SameSite=None cookie rides along with a foreign page's request (a form, a
            // WebSocket); it says nothing of the user's intent, so it never becomes an identity,
            // and no session cookie is set in answer.
            if rule.is_some() {
                respond::write(session, respond::forbidden_origin()).await?;
                return Ok(true);
            }
            return Ok(false);
        }
        ctx.forward_token = rule.is_some_and(|r| r.forward_access_token || !r.obo_scopes.is_empty());
        match live.auth.authorize(&req.headers, rule).await {
            Access::Allowed(tokens) => {
                ctx.tokens = tokens;
                Ok(false)
            }
            Access::Denied(reply) => {
                respond::write_reply(session, reply).await?;
                Ok(true)
            }
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
            respond::write(session, respond::proxy_failure(431, Self::wants_json(session))).await?;
            return Ok(true);
        }
        let live = self.live.load_full();
        ctx.live = Some(Arc::clone(&live));
        ctx.trace = Self::trace_context(session);
        Self::strip_headers(&live, session, ctx);
        ctx.host = Self::request_host(session);
        let default_port = if self.https { 443 } else { 80 };
        if !forwarded::is_allowed_host(ctx.host.as_deref(), &live.allowed_hosts, default_port) {
            ctx.route = "misdirected";
            respond::write(session, respond::misdirected(Self::wants_json(session))).await?;
            return Ok(true);
        }
        let path = session.req_header().uri.path().to_owned();
        let bot_path = live.teams.as_ref().map(|t| t.bot_path());
        let route = route::classify_with(&path, self.channel.socketio_path.as_deref(), bot_path);
        ctx.route = route.label();
        if matches!(route, Route::Events | Route::SocketIo) {
            return self.route_channel(&live, session, ctx).await;
        }
        if route == Route::Bot {
            return self.route_bot(&live, session, ctx).await;
        }
        if route != Route::Upstream {
            self.answer_local(&live, session, route).await?;
            return Ok(true);
        }
        if self.guard(&live, session, ctx).await? {
            return Ok(true);
        }
        ctx.upgrade = session.is_upgrade_req();
        if ctx.upgrade {
            Self::keep_open(session, ctx);
            if Self::is_websocket(session) {
                self.tunnel(&live, session, ctx).await?;
                return Ok(true);
            }
        }
        Ok(false)
    }

    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut RequestCtx) -> Result<Box<HttpPeer>> {
        if ctx.channel {
            let path = self.channel.socket.to_string_lossy();
            let peer = HttpPeer::new_uds(&path, false, String::new())?;
            ctx.upstream = Some("channel".to_owned());
            return Ok(Box::new(peer));
        }
        let peer = self
            .upstreams
            .next_peer(ctx.upgrade)
            .ok_or_else(|| Error::explain(ErrorType::HTTPStatus(502), "no healthy upstream"))?;
        ctx.upstream = Some(peer._address.to_string());
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
            let refusal = respond::over_limit(cut.limit());
            if let Err(write_err) = respond::write(session, refusal.response).await {
                tracing::debug!(error = %write_err, "could not send the timeout response");
            }
            return FailToProxy { error_code: 408, can_reuse_downstream: false };
        }
        let status = respond::status_for(e);
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
        tracing::info!(
            method = %req.method,
            path = &*route::loggable_path(req.uri.path()),
            status,
            route = ctx.route,
            upstream = ctx.upstream.as_deref().unwrap_or("-"),
            trace_id = ctx.trace.map(|t| t.trace_id()).as_deref().unwrap_or("-"),
            duration_ms = elapsed.as_secs_f64() * 1000.0,
            "access"
        );
        trace::export(req, ctx, status);
    }
}
