//! Admission of client connections: how many may be open at once, overall and from one client
//! address, enforced before Pingora's HTTP code sees a connection.
//!
//! ```text
//!  Pingora listener (plain TCP) ─▶ Admitted::process_new
//!     admit(peer): over server.max_connections → 503, over max_connections_per_client → 429,
//!                  both with Retry-After (over TLS, or past 64 refusals being answered at
//!                  once, the connection is just closed: no TLS session exists yet to answer
//!                  in, and a flood of refusals must not hold descriptors itself)
//!     TLS handshake, done here so it is counted and bounded by server.header_timeout
//!     ClientStream (proxy::deadline: head and body deadlines, the slot released on drop)
//!  ─▶ HttpProxy<Gateway>::process_new
//! ```
//! Pingora 0.9's listener has no limit on open connections and no phase that runs once per
//! downstream connection (cloudflare/pingora#118; its optional `connection_filter` only says
//! yes or no at accept, and cannot count a connection's end): it logs `Accept() failed … Too
//! many open files` and sleeps once the process runs out of descriptors, which then stalls every
//! client. The gateway's own [`ServerApp`] around Pingora's HTTP proxy stands in for that phase. The gateway raises its open-files limit to the hard limit at start and keeps
//! `server.max_connections` below it (each proxied connection also holds an upstream one).
//!
//! A peer in `server.trusted_proxies` (a load balancer) is exempt from the per-client limit: it
//! speaks for many users, who are limited by address on the status channel instead.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::listeners::tls::Acceptor;
use pingora::protocols::{Stream, ALPN};
use pingora::server::ShutdownWatch;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::deadline::{ClientStream, ConnClock};
use crate::config::ConnectionLimits;
use crate::metrics::{Limit, Metrics};
use crate::respond;

/// Fewest descriptors kept back from `server.max_connections` for upstream connections, the
/// store, the channel server, listeners and files; an eighth of the limit when that is more.
const RESERVED_FILES: u64 = 256;

/// How long a refused connection is drained after its answer, so closing it does not reset the
/// answer away.
const REFUSAL_DRAIN: Duration = Duration::from_millis(250);

/// Refused connections answered (and drained) at once; past it a refused connection is closed
/// at once, so a flood of refusals cannot itself hold the descriptors the limits protect.
const MAX_ANSWERING: usize = 64;

/// The open client connections, by client address, and the phase clock of each.
pub struct Admission {
    limits: ConnectionLimits,
    /// Whether a peer is a trusted proxy (read from the current config at each connection).
    trusts: Box<dyn Fn(IpAddr) -> bool + Send + Sync>,
    metrics: Metrics,
    state: Mutex<State>,
    /// Refused connections being answered now.
    answering: std::sync::atomic::AtomicUsize,
}

#[derive(Default)]
struct State {
    total: usize,
    per_client: HashMap<IpAddr, usize>,
    clocks: HashMap<SocketAddr, Arc<ConnClock>>,
}

impl Admission {
    /// Counts connections against `limits`; `trusts` tells a trusted proxy (exempt from the
    /// per-client limit) from a client.
    pub fn new(
        limits: ConnectionLimits,
        metrics: Metrics,
        trusts: impl Fn(IpAddr) -> bool + Send + Sync + 'static,
    ) -> Arc<Self> {
        Arc::new(Self {
            limits,
            trusts: Box::new(trusts),
            metrics,
            state: Mutex::new(State::default()),
            answering: Default::default(),
        })
    }

    /// The limits in force (after clamping to the open-files limit).
    pub fn limits(&self) -> &ConnectionLimits {
        &self.limits
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes a slot for a connection from `peer`, or names the limit it is over (and counts it).
    pub fn admit(self: &Arc<Self>, peer: Option<SocketAddr>) -> Result<Slot, Limit> {
        let ip = peer.map(|p| p.ip());
        let per_client = ip.filter(|ip| !(self.trusts)(*ip));
        let refused = {
            let mut state = self.state();
            if state.total >= self.limits.max_connections {
                Some(Limit::Connections)
            } else if per_client.is_some_and(|ip| {
                state.per_client.get(&ip).copied().unwrap_or(0) >= self.limits.max_connections_per_client
            }) {
                Some(Limit::ConnectionsPerClient)
            } else {
                state.total += 1;
                if let Some(ip) = per_client {
                    *state.per_client.entry(ip).or_insert(0) += 1;
                }
                None
            }
        };
        if let Some(limit) = refused {
            self.metrics.refuse(limit);
            return Err(limit);
        }
        self.metrics.add_connection(1);
        Ok(Slot { admission: Arc::clone(self), peer, client: per_client })
    }

    /// The phase clock of the open connection from `peer`.
    pub fn clock_of(&self, peer: Option<SocketAddr>) -> Option<Arc<ConnClock>> {
        self.state().clocks.get(&peer?).cloned()
    }

    /// Open connections, overall.
    pub fn open(&self) -> usize {
        self.state().total
    }
}

/// One admitted connection's place in the count, given back when dropped (with the stream
/// that holds it, wherever that stream went: a detached status socket keeps its slot).
pub struct Slot {
    admission: Arc<Admission>,
    peer: Option<SocketAddr>,
    client: Option<IpAddr>,
}

impl Slot {
    /// Makes `clock` findable by the request path ([`Admission::clock_of`]).
    pub(super) fn set_clock(&self, clock: Arc<ConnClock>) {
        if let Some(peer) = self.peer {
            self.admission.state().clocks.insert(peer, clock);
        }
    }

    /// Counts a cut by `limit` (a deadline).
    pub(super) fn count(&self, limit: Limit) {
        self.admission.metrics.refuse(limit);
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        {
            let mut state = self.admission.state();
            state.total = state.total.saturating_sub(1);
            if let Some(ip) = self.client {
                if let Some(n) = state.per_client.get_mut(&ip) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        state.per_client.remove(&ip);
                    }
                }
            }
            if let Some(peer) = self.peer {
                state.clocks.remove(&peer);
            }
        }
        self.admission.metrics.add_connection(-1);
    }
}

/// The proxy's connection handler behind admission: counts, refuses, does the TLS handshake,
/// and wraps the stream in its deadlines before `inner` (Pingora's HTTP proxy) sees it.
pub struct Admitted<A> {
    inner: Arc<A>,
    admission: Arc<Admission>,
    tls: Option<Acceptor>,
}

impl<A> Admitted<A> {
    /// `inner` behind `admission`; `tls` when the listener speaks TLS.
    pub fn new(inner: A, admission: Arc<Admission>, tls: Option<Acceptor>) -> Self {
        Self { inner: Arc::new(inner), admission, tls }
    }

    /// The TLS handshake, bounded by `server.header_timeout`; `None` when it failed.
    async fn handshake(&self, stream: Stream, slot: &Slot) -> Option<Stream> {
        let Some(acceptor) = &self.tls else { return Some(stream) };
        // The listener is plain TCP, so its streams are Pingora's L4 streams.
        let l4 = stream.into_any().downcast::<pingora::protocols::l4::stream::Stream>().ok()?;
        match tokio::time::timeout(self.admission.limits.header_timeout, acceptor.tls_handshake(*l4)).await {
            Ok(Ok(tls)) => Some(Box::new(tls)),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "TLS handshake failed");
                None
            }
            Err(_) => {
                slot.count(Limit::HeaderTimeout);
                None
            }
        }
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for Admitted<A> {
    async fn process_new(self: &Arc<Self>, mut stream: Stream, shutdown: &ShutdownWatch) -> Option<Stream> {
        let peer = stream.get_socket_digest().and_then(|d| d.peer_addr().and_then(|a| a.as_inet()).copied());
        let slot = match self.admission.admit(peer) {
            Ok(slot) => slot,
            Err(limit) => {
                use std::sync::atomic::Ordering;
                if self.tls.is_none() {
                    let answering = &self.admission.answering;
                    if answering.fetch_add(1, Ordering::AcqRel) < MAX_ANSWERING {
                        refuse(&mut stream, limit).await;
                    }
                    answering.fetch_sub(1, Ordering::AcqRel);
                }
                return None;
            }
        };
        let stream = self.handshake(stream, &slot).await?;
        let h2 = matches!(stream.selected_alpn_proto(), Some(ALPN::H2));
        let client = ClientStream::new(stream, slot, &self.admission.limits, h2);
        self.inner.process_new(Box::new(client), shutdown).await
    }

    async fn cleanup(&self) {
        self.inner.cleanup().await;
    }
}

/// Answers a refused plain-HTTP connection and closes it, within a bounded time.
async fn refuse(stream: &mut Stream, limit: Limit) {
    let bytes = respond::Answer::from(limit).http1_bytes();
    let answer = async {
        stream.write_all(&bytes).await?;
        stream.flush().await?;
        AsyncWriteExt::shutdown(stream).await?;
        // Read what the client sent until it closes, so the close does not reset the answer.
        let mut sink = [0u8; 4096];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<_, std::io::Error>(())
    };
    let _ = tokio::time::timeout(REFUSAL_DRAIN, answer).await;
}

/// Raises this process's open-files limit to its hard limit and returns the soft limit now in
/// force (`None` when it cannot be read).
pub fn raise_open_files() -> Option<u64> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        return Some(hard);
    }
    Some(soft)
}

/// `limits` with `max_connections` (and the per-client limit) kept below an open-files limit of
/// `open_files`, less an eighth of it (at least [`RESERVED_FILES`]) for everything else the
/// gateway opens: a proxied request's upstream connection (pooled ones are at most 256), the
/// store, the channel server. Status sockets, the bulk of long-lived connections, hold none.
pub fn fit_to_open_files(mut limits: ConnectionLimits, open_files: Option<u64>) -> ConnectionLimits {
    if let Some(files) = open_files {
        let reserved = (files / 8).max(RESERVED_FILES);
        let budget = usize::try_from(files.saturating_sub(reserved)).unwrap_or(usize::MAX).max(1);
        limits.max_connections = limits.max_connections.min(budget);
        limits.max_connections_per_client = limits.max_connections_per_client.min(limits.max_connections);
    }
    limits
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(ip: &str, port: u16) -> Option<SocketAddr> {
        Some(SocketAddr::new(ip.parse().unwrap(), port))
    }

    #[test]
    fn one_client_cannot_take_every_slot() {
        let trusted: IpAddr = "10.0.0.1".parse().unwrap();
        let admission = Admission::new(limits(4, 2), Metrics::new().unwrap(), move |ip| ip == trusted);
        let a1 = admission.admit(peer("192.0.2.1", 1)).unwrap();
        let _a2 = admission.admit(peer("192.0.2.1", 2)).unwrap();
        assert_eq!(admission.admit(peer("192.0.2.1", 3)).err(), Some(Limit::ConnectionsPerClient));
        let _b = admission.admit(peer("192.0.2.2", 1)).unwrap();
        // A trusted proxy is not limited per client, only by the total.
        let _lb = admission.admit(peer("10.0.0.1", 1)).unwrap();
        assert_eq!(admission.admit(peer("10.0.0.1", 2)).err(), Some(Limit::Connections));
        drop(a1);
        assert_eq!(admission.open(), 3);
        assert!(admission.admit(peer("192.0.2.1", 4)).is_ok());
    }

    fn limits(total: usize, per_client: usize) -> ConnectionLimits {
        ConnectionLimits {
            max_connections: total,
            max_connections_per_client: per_client,
            header_timeout: Duration::from_secs(10),
            body_min_rate: None,
        }
    }

    #[test]
    fn the_connection_limit_stays_below_the_open_files_limit() {
        let fitted = fit_to_open_files(limits(10_000, 1_000), Some(1024));
        assert_eq!(fitted.max_connections, 768);
        assert_eq!(fitted.max_connections_per_client, 768);
        assert_eq!(fit_to_open_files(limits(100_000, 1_000), Some(20_000)).max_connections, 17_500);
        assert_eq!(fit_to_open_files(limits(10_000, 1_000), Some(1 << 20)).max_connections, 10_000);
        assert_eq!(fit_to_open_files(limits(10_000, 1_000), None).max_connections, 10_000);
    }
}
