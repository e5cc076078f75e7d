//! Optional trace export (`[telemetry] otlp_endpoint`): one span per proxied request and one
//! per sign-in step, in the request's W3C trace (`proxy::trace`), sent over OTLP/HTTP.
//!
//! ```text
//!  request path ── try_send(span) ──▶ bounded queue (QUEUE) ──▶ export task: batches of up to
//!  (never waits; full: dropped, counted)                        BATCH or every FLUSH_EVERY,
//!                                                               POST protobuf, failures logged
//!  sign-in step ── journal[tokio task id] ──▶ the request's `logging` takes them as its children
//! ```
//! Off (no endpoint): nothing is built, and the request path checks one `Option`. Spans carry
//! the method, route label, status and upstream address, never a path, query, header, cookie,
//! token, code or state.

pub mod export;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;

/// Spans waiting for export at most; beyond it new spans are dropped (and counted).
pub const QUEUE: usize = 4096;
/// Requests whose sign-in steps are held at once (a request that never reaches `logging`, such
/// as one whose client went away, leaves its entry until [`STEP_MAX_AGE`]).
const MAX_JOURNALS: usize = 4096;
/// Steps kept per request.
const MAX_STEPS: usize = 16;
/// How long unclaimed steps are kept.
const STEP_MAX_AGE: Duration = Duration::from_secs(60);

/// What a span is (OTLP `SpanKind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The gateway serving a request.
    Server,
    /// A step inside it.
    Internal,
}

/// One finished span.
#[derive(Debug, Clone)]
pub struct Span {
    /// Trace id.
    pub trace_id: [u8; 16],
    /// Span id.
    pub span_id: [u8; 8],
    /// Parent span id, when it has one.
    pub parent: Option<[u8; 8]>,
    /// Name, e.g. `GET upstream` or `signin.callback`.
    pub name: String,
    /// Kind.
    pub kind: Kind,
    /// Start.
    pub start: SystemTime,
    /// End.
    pub end: SystemTime,
    /// Attributes: fixed keys, values free of secrets.
    pub attributes: Vec<(&'static str, Value)>,
    /// True when it failed (OTLP status `ERROR`).
    pub error: bool,
}

/// An attribute value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Text.
    Str(String),
    /// A number.
    Int(i64),
}

/// A sign-in step, kept until its request's span is made.
#[derive(Debug, Clone)]
pub struct Step {
    /// `signin.connect`, `signin.callback`, `signin.handoff`, `signin.obo`.
    pub name: &'static str,
    /// The provider name.
    pub provider: String,
    /// What came of it: a fixed word (`ok`, or the metric step of a refusal).
    pub outcome: &'static str,
    /// When it started.
    pub start: SystemTime,
    /// When it ended.
    pub end: SystemTime,
}

/// The export handle: a bounded queue to the export task, and the sign-in step journal.
pub struct Telemetry {
    tx: mpsc::Sender<Span>,
    rx: Mutex<Option<mpsc::Receiver<Span>>>,
    endpoint: url::Url,
    dropped: AtomicU64,
    journal: Mutex<HashMap<tokio::task::Id, Vec<Step>>>,
    /// Entries in `journal`, so the usual request (no sign-in step) takes no lock.
    journaled: AtomicUsize,
}

impl Telemetry {
    /// A handle exporting to `endpoint` once [`export::run`] runs.
    pub fn new(endpoint: url::Url) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        Self {
            tx,
            rx: Mutex::new(Some(rx)),
            endpoint,
            dropped: AtomicU64::new(0),
            journal: Mutex::new(HashMap::new()),
            journaled: AtomicUsize::new(0),
        }
    }

    /// Queues `span` for export without waiting; when the queue is full it is dropped and counted.
    pub fn record(&self, span: Span) {
        if self.tx.try_send(span).is_err() {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(dropped = n, "trace export queue full; spans dropped");
            }
        }
    }

    /// Spans dropped so far because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Notes a sign-in step of the request being served by this task; its `logging` makes it a
    /// child span of the request's span.
    pub fn step(&self, name: &'static str, provider: &str, outcome: &'static str, start: SystemTime) {
        let Some(task) = tokio::task::try_id() else { return };
        let step = Step { name, provider: provider.to_owned(), outcome, start, end: SystemTime::now() };
        let Ok(mut journal) = self.journal.lock() else { return };
        if journal.len() >= MAX_JOURNALS && !journal.contains_key(&task) {
            return;
        }
        let steps = journal.entry(task).or_default();
        if steps.len() < MAX_STEPS {
            steps.push(step);
        }
        self.journaled.store(journal.len(), Ordering::Relaxed);
    }

    /// The steps noted by this task since its last request.
    pub fn take_steps(&self) -> Vec<Step> {
        if self.journaled.load(Ordering::Relaxed) == 0 {
            return Vec::new();
        }
        let Some(task) = tokio::task::try_id() else { return Vec::new() };
        let Ok(mut journal) = self.journal.lock() else { return Vec::new() };
        let steps = journal.remove(&task).unwrap_or_default();
        self.journaled.store(journal.len(), Ordering::Relaxed);
        steps
    }

    /// Forgets steps no request claimed within [`STEP_MAX_AGE`].
    fn prune_journal(&self) {
        if let Ok(mut journal) = self.journal.lock() {
            journal
                .retain(|_, steps| steps.first().is_some_and(|s| s.end.elapsed().unwrap_or_default() < STEP_MAX_AGE));
            self.journaled.store(journal.len(), Ordering::Relaxed);
        }
    }
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry").field("endpoint", &self.endpoint.as_str()).finish_non_exhaustive()
    }
}
