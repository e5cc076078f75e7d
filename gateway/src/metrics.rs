//! Prometheus metrics: names, one registry per gateway, and the admin listener that serves them.

use std::sync::Arc;
use std::time::Duration;

use crate::proxy::ready::Readiness;
use crate::proxy::route::READY_PATH;
use crate::respond::{self, Answer};
use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Requests answered, by route class and status code.
pub const REQUESTS_TOTAL: &str = "gateway_requests_total";
/// Failed connection attempts to upstreams.
pub const UPSTREAM_CONNECT_FAILURES_TOTAL: &str = "gateway_upstream_connect_failures_total";
/// Sign-in steps by provider: `started`, `completed`, or the reason it failed.
pub const LOGIN_FUNNEL_TOTAL: &str = "gateway_login_funnel_total";
/// Token entries in the store.
pub const STORE_ENTRIES: &str = "gateway_store_entries";
/// Open status-channel sockets by transport.
pub const CHANNEL_SOCKETS: &str = "gateway_channel_sockets";
/// Status events queued to sockets.
pub const CHANNEL_EVENTS_SENT_TOTAL: &str = "gateway_channel_events_sent_total";
/// Status-channel joins refused, by reason.
pub const CHANNEL_JOINS_REFUSED_TOTAL: &str = "gateway_channel_joins_refused_total";
/// Open client connections (all clients).
pub const OPEN_CONNECTIONS: &str = "gateway_open_connections";
/// Connections, requests and status-channel entries refused or cut by an admission limit or a
/// deadline, by [`Limit`].
pub const LIMIT_REFUSALS_TOTAL: &str = "gateway_limit_refusals_total";
/// Request duration in seconds, by route class.
pub const REQUEST_DURATION_SECONDS: &str = "gateway_request_duration_seconds";

/// An admission limit or deadline, the label of [`LIMIT_REFUSALS_TOTAL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// `server.max_connections`: a connection refused (503).
    Connections,
    /// `server.max_connections_per_client`: a connection refused (429).
    ConnectionsPerClient,
    /// `server.header_timeout`: a request head or TLS handshake too slow (408, closed).
    HeaderTimeout,
    /// `server.body_min_rate`: a request body too slow (408, closed).
    BodyRate,
    /// `channel.max_sockets`: an Engine.IO handshake refused (503).
    ChannelTotal,
    /// `channel.max_sockets_per_client`: a status-channel entry refused (429).
    ChannelPerClient,
    /// `channel.max_sockets_per_session`: a status-channel entry refused (429).
    ChannelPerSession,
    /// `channel.join_timeout`: an Engine.IO session closed because it never joined.
    JoinTimeout,
}

impl Limit {
    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            Self::Connections => "connections",
            Self::ConnectionsPerClient => "connections_per_client",
            Self::HeaderTimeout => "header_timeout",
            Self::BodyRate => "body_rate",
            Self::ChannelTotal => "channel_total",
            Self::ChannelPerClient => "channel_per_client",
            Self::ChannelPerSession => "channel_per_session",
            Self::JoinTimeout => "join_timeout",
        }
    }

    /// Every limit, for tests and reports.
    pub const ALL: [Limit; 8] = [
        Self::Connections,
        Self::ConnectionsPerClient,
        Self::HeaderTimeout,
        Self::BodyRate,
        Self::ChannelTotal,
        Self::ChannelPerClient,
        Self::ChannelPerSession,
        Self::JoinTimeout,
    ];
}

/// The metrics of one gateway.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    connect_failures: IntCounter,
    duration: HistogramVec,
    login: IntCounterVec,
    store_entries: IntGauge,
    sockets: IntGaugeVec,
    events_sent: IntCounter,
    joins_refused: IntCounterVec,
    open_connections: IntGauge,
    limit_refusals: IntCounterVec,
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> prometheus::Result<Self> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(Opts::new(REQUESTS_TOTAL, "requests answered"), &["route", "status"])?;
        let connect_failures =
            IntCounter::new(UPSTREAM_CONNECT_FAILURES_TOTAL, "failed connection attempts to upstreams")?;
        let duration = HistogramVec::new(
            HistogramOpts::new(REQUEST_DURATION_SECONDS, "request duration in seconds")
                .buckets(vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
            &["route"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(connect_failures.clone()))?;
        let login = IntCounterVec::new(Opts::new(LOGIN_FUNNEL_TOTAL, "sign-in steps"), &["provider", "step"])?;
        let store_entries = IntGauge::new(STORE_ENTRIES, "token entries in the store")?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(login.clone()))?;
        registry.register(Box::new(store_entries.clone()))?;
        let sockets = IntGaugeVec::new(Opts::new(CHANNEL_SOCKETS, "open status-channel sockets"), &["transport"])?;
        let events_sent = IntCounter::new(CHANNEL_EVENTS_SENT_TOTAL, "status events queued to sockets")?;
        let joins_refused =
            IntCounterVec::new(Opts::new(CHANNEL_JOINS_REFUSED_TOTAL, "status-channel joins refused"), &["reason"])?;
        registry.register(Box::new(sockets.clone()))?;
        registry.register(Box::new(events_sent.clone()))?;
        registry.register(Box::new(joins_refused.clone()))?;
        let open_connections = IntGauge::new(OPEN_CONNECTIONS, "open client connections")?;
        let limit_refusals = IntCounterVec::new(
            Opts::new(LIMIT_REFUSALS_TOTAL, "connections, requests and channel entries refused or cut by a limit"),
            &["limit"],
        )?;
        registry.register(Box::new(open_connections.clone()))?;
        registry.register(Box::new(limit_refusals.clone()))?;
        for limit in Limit::ALL {
            // Present at zero from the start, so a dashboard sees every limit.
            limit_refusals.with_label_values(&[limit.label()]).inc_by(0);
        }
        Ok(Self {
            registry,
            requests,
            connect_failures,
            duration,
            login,
            store_entries,
            sockets,
            events_sent,
            joins_refused,
            open_connections,
            limit_refusals,
        })
    }

    /// Counts one answered request; `route` is a fixed label from `proxy::route`.
    pub fn observe_request(&self, route: &'static str, status: u16, elapsed: Duration) {
        let mut digits = [b'0'; 3];
        self.requests.with_label_values(&[route, status_label(status, &mut digits)]).inc();
        self.duration.with_label_values(&[route]).observe(elapsed.as_secs_f64());
    }

    /// Counts one sign-in step; `provider` is a configured name, `step` a fixed label.
    pub fn observe_login(&self, provider: &str, step: &str) {
        self.login.with_label_values(&[provider, step]).inc();
    }

    /// Sets the store-size gauge.
    pub fn set_store_entries(&self, n: u64) {
        self.store_entries.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// One more (`delta` = 1) or one fewer (-1) open socket on `transport`.
    pub fn add_socket(&self, transport: &'static str, delta: i64) {
        self.sockets.with_label_values(&[transport]).add(delta);
    }

    /// Counts `n` events queued to sockets.
    pub fn add_events_sent(&self, n: u64) {
        self.events_sent.inc_by(n);
    }

    /// Counts a refused join; `reason` is a fixed label.
    pub fn refuse_join(&self, reason: &'static str) {
        self.joins_refused.with_label_values(&[reason]).inc();
    }

    /// One more (`delta` = 1) or one fewer (-1) open client connection.
    pub fn add_connection(&self, delta: i64) {
        self.open_connections.add(delta);
    }

    /// Counts one refusal (or cut) by `limit`.
    pub fn refuse(&self, limit: Limit) {
        self.limit_refusals.with_label_values(&[limit.label()]).inc();
    }

    /// Counts one failed upstream connection.
    pub fn observe_connect_failure(&self) {
        self.connect_failures.inc();
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail for well-formed metrics.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }
}

/// The admin listener's app: `/metrics`, `/health` and readiness (`/_gateway/ready`, `/ready`).
pub struct AdminApp {
    metrics: Metrics,
    readiness: Arc<Readiness>,
}

impl AdminApp {
    /// Serves these metrics and this readiness.
    pub fn new(metrics: Metrics, readiness: Arc<Readiness>) -> Self {
        Self { metrics, readiness }
    }
}

/// `status` as its three digits, written into `digits` (no allocation on the request path);
/// `0` (no answer written) and anything out of range read as `"0"`.
fn status_label(status: u16, digits: &mut [u8; 3]) -> &str {
    if !(100..=999).contains(&status) {
        return "0";
    }
    for (i, d) in digits.iter_mut().enumerate() {
        // 100..=999: each digit is 0..=9, so the cast cannot truncate.
        *d = b'0' + ((status / 10u16.pow(2 - i as u32)) % 10) as u8;
    }
    std::str::from_utf8(digits).unwrap_or("0")
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let answer = match session.req_header().uri.path() {
            "/metrics" => Answer::new(200, "text/plain; version=0.0.4", self.metrics.render()),
            READY_PATH | "/ready" => respond::readiness(&self.readiness.missing().await),
            "/health" | "/_gateway/health" => Answer::json(200, &serde_json::json!({"status": "ok"})),
            _ => respond::not_found(),
        };
        let mut r = answer.into_http().map(|b| b.to_vec());
        let len = r.body().len();
        r.headers_mut().insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(len));
        r
    }
}

#[cfg(test)]
mod tests {
    use super::status_label;

    #[test]
    fn status_labels_are_the_three_digits_or_zero() {
        let mut digits = [b'0'; 3];
        assert_eq!(status_label(200, &mut digits), "200");
        assert_eq!(status_label(101, &mut digits), "101");
        assert_eq!(status_label(504, &mut digits), "504");
        assert_eq!(status_label(999, &mut digits), "999");
        assert_eq!(status_label(0, &mut digits), "0");
        assert_eq!(status_label(1000, &mut digits), "0");
    }
}
