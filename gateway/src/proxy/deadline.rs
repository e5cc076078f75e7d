//! Deadlines on what one client connection sends: a request head must arrive whole within
//! `server.header_timeout` of its first byte, and a request body must average
//! `server.body_min_rate` bytes per second over the time spent waiting for it.
//!
//! Pingora 0.9 times each read of a request head on its own (the keep-alive or read timeout, 60 s
//! by default, starts again with every byte read), so a client that sends one header byte every
//! few seconds holds its connection forever; it has no deadline for a whole head and no minimum
//! body rate, nor a hook to add one (cloudflare/pingora#447, still open for 0.9: no
//! whole-request-header lifetime for downstream HTTP/1.1). Until it has, the gateway wraps every
//! accepted stream in a [`ClientStream`] whose reads fail once the current phase's deadline has
//! passed; the request path moves the phase along through the connection's [`ConnClock`].
//!
//! ```text
//!  accepted ─▶ Head (deadline: accept + header_timeout; nothing read yet → silent close)
//!               │ request_filter: a body follows ─▶ Body (rate) ─ body ends ─▶ Busy
//!               │ request_filter: no body ─────────────────────────────────▶ Busy
//!  Idle ◀─ logging, connection kept alive ──────────────────────────────────────┘
//!   └─ first byte ─▶ Head (deadline: that byte + header_timeout)
//!  an upgrade (WebSocket, detached status socket) ─▶ Open: no deadline, for good
//! ```
//! HTTP/2 connections (TLS ALPN `h2`) carry many requests at once and keep only the connection
//! limits: their clock stays `Open`.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, Ssl, Stream, UniqueID, UniqueIDType,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use super::admission::Slot;
use crate::config::ConnectionLimits;
use crate::metrics::Limit;

/// The answer written when a request head is too slow (`respond`'s 408); the connection closes
/// after it. Built once: it is written from a poll function, where nothing may wait.
static HEAD_TIMEOUT_RESPONSE: std::sync::LazyLock<Vec<u8>> =
    std::sync::LazyLock::new(|| crate::respond::Answer::from(crate::metrics::Limit::HeaderTimeout).http1_bytes());

/// Why a read was cut: the error inside the `io::Error` a cut read returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DeadlineError {
    /// The request head did not arrive within `server.header_timeout`.
    #[error("the request head did not arrive in time")]
    HeaderTimeout,
    /// The request body fell below `server.body_min_rate`.
    #[error("the request body arrived too slowly")]
    BodyTooSlow,
}

impl DeadlineError {
    /// The limit this cut counts against.
    pub fn limit(self) -> Limit {
        match self {
            Self::HeaderTimeout => Limit::HeaderTimeout,
            Self::BodyTooSlow => Limit::BodyRate,
        }
    }
}

/// The deadline a Pingora error was caused by, if a [`ClientStream`] cut the read.
pub fn cut_by(e: &pingora::Error) -> Option<DeadlineError> {
    let io = e.root_cause().downcast_ref::<std::io::Error>()?;
    io.get_ref()?.downcast_ref::<DeadlineError>().copied()
}

const IDLE: u8 = 0;
const HEAD: u8 = 1;
const BODY: u8 = 2;
const BUSY: u8 = 3;
const OPEN: u8 = 4;

/// The phase of one client connection, shared by its stream and the request path.
#[derive(Debug)]
pub struct ConnClock {
    phase: AtomicU8,
}

impl ConnClock {
    fn new(phase: u8) -> Arc<Self> {
        Arc::new(Self { phase: AtomicU8::new(phase) })
    }

    /// The head is complete; `has_body` when a request body follows (then the rate applies).
    pub fn head_done(&self, has_body: bool) {
        self.advance(if has_body { BODY } else { BUSY });
    }

    /// The request body has been read whole.
    pub fn body_done(&self) {
        self.advance(BUSY);
    }

    /// The answer is complete and the connection waits for its next request.
    pub fn request_done(&self) {
        self.advance(IDLE);
    }

    /// The connection was upgraded (or left Pingora's HTTP session): no deadline from now on.
    pub fn open(&self) {
        self.phase.store(OPEN, Ordering::Release);
    }

    /// Moves to `to` unless the connection is `Open` for good.
    fn advance(&self, to: u8) {
        let _ = self.phase.fetch_update(Ordering::AcqRel, Ordering::Acquire, |p| (p != OPEN).then_some(to));
    }

    fn get(&self) -> u8 {
        self.phase.load(Ordering::Acquire)
    }
}

/// How much waiting a request body has used against its allowance.
#[derive(Debug, Default)]
struct BodyMeter {
    read: u64,
    waited: Duration,
    waiting_since: Option<Instant>,
}

/// An accepted client connection: the stream, its admission slot (released on drop) and its
/// deadlines. Implements Pingora's `IO` by delegating to the stream it wraps.
pub struct ClientStream {
    inner: Stream,
    clock: Arc<ConnClock>,
    slot: Slot,
    header_timeout: Duration,
    min_rate: Option<u64>,
    /// The phase this stream last saw, to notice a change made by the request path.
    seen: u8,
    head_deadline: Instant,
    head_bytes: usize,
    body: BodyMeter,
    timer: Pin<Box<Sleep>>,
    cut: Option<DeadlineError>,
}

impl std::fmt::Debug for ClientStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientStream").field("phase", &self.clock.get()).finish_non_exhaustive()
    }
}

impl ClientStream {
    /// Wraps an accepted (and, over TLS, handshaken) stream; `h2` connections get no deadlines.
    pub fn new(inner: Stream, slot: Slot, limits: &ConnectionLimits, h2: bool) -> Self {
        let clock = ConnClock::new(if h2 { OPEN } else { HEAD });
        slot.set_clock(Arc::clone(&clock));
        let now = Instant::now();
        Self {
            inner,
            seen: clock.get(),
            clock,
            slot,
            header_timeout: limits.header_timeout,
            min_rate: limits.body_min_rate.map(std::num::NonZeroU64::get),
            head_deadline: now + limits.header_timeout,
            head_bytes: 0,
            body: BodyMeter::default(),
            timer: Box::pin(tokio::time::sleep_until(now + limits.header_timeout)),
            cut: None,
        }
    }

    /// The deadline of the current phase, if it has one.
    fn deadline(&self, now: Instant) -> Option<Instant> {
        match self.seen {
            HEAD => Some(self.head_deadline),
            BODY => {
                let rate = self.min_rate?;
                let allowance = self.header_timeout + Duration::from_secs_f64(self.body.read as f64 / rate as f64);
                let left = allowance.saturating_sub(self.body.waited);
                Some(self.body.waiting_since.unwrap_or(now) + left)
            }
            _ => None,
        }
    }

    /// Notices a phase change made by the request path and starts that phase's accounting.
    fn sync_phase(&mut self) {
        let phase = self.clock.get();
        if phase != self.seen {
            self.seen = phase;
            if phase == BODY {
                self.body = BodyMeter::default();
            }
        }
    }

    /// Cuts the connection: a head that had started gets its 408 (best effort), then every
    /// read fails; a connection that had sent nothing of its head is closed silently (an EOF, as
    /// an idle keep-alive connection closes).
    fn cut(&mut self, cx: &mut Context<'_>, why: DeadlineError) -> Poll<std::io::Result<()>> {
        let silent = why == DeadlineError::HeaderTimeout && self.head_bytes == 0;
        if self.cut.is_none() {
            self.cut = Some(why);
            self.slot.count(why.limit());
            if why == DeadlineError::HeaderTimeout && !silent {
                let _ = Pin::new(&mut self.inner).poll_write(cx, &HEAD_TIMEOUT_RESPONSE);
                let _ = Pin::new(&mut self.inner).poll_flush(cx);
            }
        }
        if silent {
            Poll::Ready(Ok(()))
        } else {
            Poll::Ready(Err(std::io::Error::new(std::io::ErrorKind::TimedOut, why)))
        }
    }
}

impl AsyncRead for ClientStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if let Some(why) = this.cut {
            return this.cut(cx, why);
        }
        this.sync_phase();
        // The clock is read only in a phase with a deadline: an idle keep-alive connection and
        // an open one have none, and most reads happen in those.
        let timed = matches!(this.seen, HEAD | BODY);
        let now = timed.then(Instant::now);
        if let Some(now) = now {
            if this.deadline(now).is_some_and(|deadline| now >= deadline) {
                let why = if this.seen == HEAD { DeadlineError::HeaderTimeout } else { DeadlineError::BodyTooSlow };
                return this.cut(cx, why);
            }
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let n = buf.filled().len() - before;
                match this.seen {
                    IDLE if n > 0 => {
                        // The first byte of the next request starts its head's clock.
                        this.clock.advance(HEAD);
                        this.seen = HEAD;
                        this.head_deadline = Instant::now() + this.header_timeout;
                        this.head_bytes = n;
                    }
                    HEAD => this.head_bytes += n,
                    BODY => {
                        this.body.read += n as u64;
                        if let Some(since) = this.body.waiting_since.take() {
                            this.body.waited += Instant::now() - since;
                        }
                    }
                    _ => {}
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                let Some(now) = now else { return Poll::Pending };
                if this.seen == BODY && this.body.waiting_since.is_none() {
                    this.body.waiting_since = Some(now);
                }
                if let Some(deadline) = this.deadline(now) {
                    this.timer.as_mut().reset(deadline);
                    if this.timer.as_mut().poll(cx).is_ready() {
                        let why =
                            if this.seen == HEAD { DeadlineError::HeaderTimeout } else { DeadlineError::BodyTooSlow };
                        return this.cut(cx, why);
                    }
                }
                Poll::Pending
            }
            other => other,
        }
    }
}

impl AsyncWrite for ClientStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[async_trait]
impl Shutdown for ClientStream {
    async fn shutdown(&mut self) {
        self.inner.shutdown().await;
    }
}

impl UniqueID for ClientStream {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for ClientStream {
    fn get_ssl(&self) -> Option<&pingora::protocols::tls::TlsRef> {
        self.inner.get_ssl()
    }

    fn get_ssl_digest(&self) -> Option<Arc<pingora::protocols::tls::SslDigest>> {
        self.inner.get_ssl_digest()
    }

    fn selected_alpn_proto(&self) -> Option<pingora::protocols::ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for ClientStream {
    fn get_timing_digest(&self) -> Vec<Option<pingora::protocols::TimingDigest>> {
        self.inner.get_timing_digest()
    }

    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }

    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for ClientStream {
    fn get_proxy_digest(&self) -> Option<Arc<pingora::protocols::raw_connect::ProxyDigest>> {
        self.inner.get_proxy_digest()
    }
}

impl GetSocketDigest for ClientStream {
    fn get_socket_digest(&self) -> Option<Arc<pingora::protocols::SocketDigest>> {
        self.inner.get_socket_digest()
    }
}

#[async_trait]
impl Peek for ClientStream {
    async fn try_peek(&mut self, buf: &mut [u8]) -> std::io::Result<bool> {
        self.inner.try_peek(buf).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_open_clock_stays_open() {
        let clock = ConnClock::new(HEAD);
        clock.head_done(true);
        assert_eq!(clock.get(), BODY);
        clock.body_done();
        clock.request_done();
        assert_eq!(clock.get(), IDLE);
        clock.open();
        clock.request_done();
        clock.head_done(false);
        assert_eq!(clock.get(), OPEN);
    }

    #[test]
    fn cut_by_finds_the_deadline_under_pingora_errors() {
        let io = std::io::Error::new(std::io::ErrorKind::TimedOut, DeadlineError::BodyTooSlow);
        let e = pingora::Error::because(pingora::ErrorType::ReadError, "reading the body", io);
        assert_eq!(cut_by(&e), Some(DeadlineError::BodyTooSlow));
        let plain = pingora::Error::new(pingora::ErrorType::ReadError);
        assert_eq!(cut_by(&plain), None);
    }
}
