//! Upstream selection: round-robin over healthy add-in servers, with active health checks.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use pingora::lb::health_check::{HealthCheck, HttpHealthCheck, TcpHealthCheck};
use pingora::lb::selection::RoundRobin;
use pingora::lb::{Backend, LoadBalancer};
use pingora::prelude::HttpPeer;
use pingora::services::background::{background_service, GenBackgroundService};

use crate::config::UpstreamConfig;

/// Why the upstream set could not be built.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// An address did not resolve.
    #[error("cannot resolve upstream addresses {addrs:?}")]
    Resolve {
        /// The configured addresses.
        addrs: Vec<String>,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The health check request could not be built.
    #[error("cannot build the health check request")]
    HealthCheck,
}

/// The upstream set and how to connect to its members.
pub struct Upstreams {
    lb: Arc<LoadBalancer<RoundRobin>>,
    sni: Option<String>,
    connect_timeout: std::time::Duration,
    read_timeout: Option<std::time::Duration>,
    idle_timeout: std::time::Duration,
    checked: UpstreamHealth,
}

/// What the active health checks have seen so far, per upstream address: readiness needs an
/// upstream that passed a check, while Pingora counts a backend healthy before its first one.
#[derive(Clone, Default)]
pub struct UpstreamHealth(Arc<Mutex<HashMap<String, bool>>>);

impl UpstreamHealth {
    /// True when the latest check of at least one upstream passed.
    pub fn any_passed(&self) -> bool {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).values().any(|passed| *passed)
    }

    fn record(&self, target: &Backend, passed: bool) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).insert(target.addr.to_string(), passed);
    }
}

/// A health check that records each result in an [`UpstreamHealth`] before Pingora sees it.
struct RecordedCheck {
    inner: Box<dyn HealthCheck + Send + Sync>,
    seen: UpstreamHealth,
}

#[async_trait]
impl HealthCheck for RecordedCheck {
    async fn check(&self, target: &Backend) -> pingora::Result<()> {
        let result = self.inner.check(target).await;
        self.seen.record(target, result.is_ok());
        result
    }

    async fn health_status_change(&self, target: &Backend, healthy: bool) {
        self.inner.health_status_change(target, healthy).await;
    }

    fn backend_summary(&self, target: &Backend) -> String {
        self.inner.backend_summary(target)
    }

    fn health_threshold(&self, success: bool) -> usize {
        self.inner.health_threshold(success)
    }
}

impl Upstreams {
    /// Builds the set and the background service that health-checks it.
    pub fn from_config(
        cfg: &UpstreamConfig,
    ) -> Result<(Self, GenBackgroundService<LoadBalancer<RoundRobin>>), UpstreamError> {
        let mut lb = LoadBalancer::try_from_iter(cfg.addrs.iter().map(String::as_str))
            .map_err(|source| UpstreamError::Resolve { addrs: cfg.addrs.clone(), source })?;
        let tls = cfg.tls_sni.is_some();
        let sni = cfg.tls_sni.clone().unwrap_or_default();
        let checked = UpstreamHealth::default();
        let check: Box<dyn HealthCheck + Send + Sync> = match &cfg.health_check_path {
            Some(path) => {
                let mut hc = HttpHealthCheck::new(&sni, tls);
                let mut req = pingora::http::RequestHeader::build("GET", path.as_bytes(), None)
                    .map_err(|_| UpstreamError::HealthCheck)?;
                if !sni.is_empty() {
                    req.insert_header("host", &sni).map_err(|_| UpstreamError::HealthCheck)?;
                }
                hc.req = req;
                hc.peer_template.options.connection_timeout = Some(cfg.connect_timeout.get());
                hc.peer_template.options.read_timeout = Some(cfg.connect_timeout.get());
                Box::new(hc)
            }
            None => {
                let mut hc = if tls { TcpHealthCheck::new_tls(&sni) } else { TcpHealthCheck::new() };
                hc.peer_template.options.connection_timeout = Some(cfg.connect_timeout.get());
                hc
            }
        };
        lb.set_health_check(Box::new(RecordedCheck { inner: check, seen: checked.clone() }));
        lb.health_check_frequency = Some(cfg.health_check_interval.get());
        lb.parallel_health_check = true;
        let service = background_service("upstream health check", lb);
        let upstreams = Self {
            lb: service.task(),
            sni: cfg.tls_sni.clone(),
            connect_timeout: cfg.connect_timeout.get(),
            read_timeout: cfg.read_timeout,
            idle_timeout: cfg.idle_timeout.get(),
            checked,
        };
        Ok((upstreams, service))
    }

    /// The next healthy upstream, or `None` when every one is down. An upgraded connection
    /// (WebSocket) gets no read timeout, since it may idle for long.
    pub fn next_peer(&self, upgrade: bool) -> Option<Box<HttpPeer>> {
        let backend = self.lb.select(b"", 256)?;
        let mut peer = HttpPeer::new(backend.addr, self.sni.is_some(), self.sni.clone().unwrap_or_default());
        peer.options.connection_timeout = Some(self.connect_timeout);
        peer.options.total_connection_timeout = Some(self.connect_timeout);
        peer.options.read_timeout = if upgrade { None } else { self.read_timeout };
        peer.options.idle_timeout = Some(self.idle_timeout);
        Some(Box::new(peer))
    }

    /// What the health checks have seen, for readiness.
    pub fn checked(&self) -> UpstreamHealth {
        self.checked.clone()
    }

    /// Healthy and total upstream counts.
    pub fn health_counts(&self) -> (usize, usize) {
        let backends = self.lb.backends().get_backend();
        let healthy = backends.iter().filter(|b| self.lb.backends().ready(b)).count();
        (healthy, backends.len())
    }
}
