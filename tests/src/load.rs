//! `Load`: a bounded background load on a gateway that keeps every answer as a [`Sample`], so a
//! test can count what bystanders got while it breaks something.
//!
//! ```text
//! let load = Load::start(gw.endpoint(), vec![Probe::anonymous("public", "/page"), ..])?;
//! load.run_for(100).await?       waits (bounded) until 100 more requests have completed
//! let samples = load.finish().await?      stops: every Sample (class, path, start, end, outcome)
//! Tally::of(&samples)            "2xx=N non2xx=M (502 bad_gateway: M)"
//! Latency::of(&samples)          "n=N p50=… ms p99=… ms max=… ms" (printed, never asserted)
//! ```
//! Every request sends `Accept: application/json`, so a gateway error names its `error` code.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use reqwest::header::{ACCEPT, COOKIE};
use serde_json::Value;
use tokio::task::JoinHandle;

use crate::gateway::Endpoint;
use crate::retry::eventually;
use crate::signin::Browser;
use crate::upstream::Echo;

/// Concurrent tasks of a load.
pub const TASKS: usize = 4;
/// Most requests one task sends: the loop is bounded even if it is never told to stop.
pub const MAX_REQUESTS_PER_TASK: u64 = 50_000;
/// Pause between two requests of one task: a steady load that leaves a 2-core machine room for
/// the rest of the test.
pub const PAUSE: Duration = Duration::from_millis(10);
/// Longest wait for one request (a request that takes longer counts as [`Outcome::Transport`]).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// Longest wait of [`Load::run_for`].
pub const RUN_WAIT: Duration = Duration::from_secs(30);

/// One request the background load repeats.
#[derive(Debug, Clone)]
pub struct Probe {
    /// Who sends it, for the tally (e.g. `"bystander"`, `"protected"`).
    pub class: &'static str,
    /// Path (and query) on the gateway.
    pub path: String,
    /// The `Cookie` header, if any.
    pub cookie: Option<String>,
    /// When set, a 2xx must come from the echo upstream with this `X-Forwarded-User`.
    pub user: Option<String>,
}

impl Probe {
    /// `path` without a cookie.
    pub fn anonymous(class: &'static str, path: &str) -> Self {
        Self { class, path: path.to_owned(), cookie: None, user: None }
    }

    /// `path` with `browser`'s cookies; a 2xx must carry `user` when given.
    pub fn with_cookie(class: &'static str, path: &str, browser: &Browser, user: Option<&str>) -> anyhow::Result<Self> {
        let cookie = browser.cookie_header().context("the browser has no cookie")?;
        Ok(Self { class, path: path.to_owned(), cookie: Some(cookie), user: user.map(str::to_owned) })
    }
}

/// How one load request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// An answer; `error` is the JSON body's `error` field, if any.
    Status {
        /// Status code.
        status: u16,
        /// The JSON body's `error` field.
        error: Option<String>,
    },
    /// A 2xx that did not carry the probe's user.
    WrongUser(Option<String>),
    /// No answer (connection error or [`REQUEST_TIMEOUT`]).
    Transport(String),
}

/// One load request.
#[derive(Debug, Clone)]
pub struct Sample {
    /// The probe's class.
    pub class: &'static str,
    /// The probe's path.
    pub path: String,
    /// When the request was sent.
    pub started: Instant,
    /// When its answer was read (or it failed).
    pub ended: Instant,
    /// How it ended.
    pub outcome: Outcome,
}

impl Sample {
    /// A 2xx answer (with the expected user, when the probe names one).
    pub fn is_2xx(&self) -> bool {
        matches!(self.outcome, Outcome::Status { status: 200..=299, .. })
    }

    /// Whether the request was under way at some time in `from..=to`.
    pub fn overlaps(&self, from: Instant, to: Instant) -> bool {
        self.ended >= from && self.started <= to
    }

    /// `"502 bad_gateway"`, `"200"`, `"wrong user"`, `"no answer"`: the tally's key.
    pub fn label(&self) -> String {
        match &self.outcome {
            Outcome::Status { status, error: Some(e) } => format!("{status} {e}"),
            Outcome::Status { status, error: None } => status.to_string(),
            Outcome::WrongUser(_) => "wrong user".to_owned(),
            Outcome::Transport(_) => "no answer".to_owned(),
        }
    }
}

/// Counts of a set of samples: 2xx, and every other outcome by label.
#[derive(Debug, Default)]
pub struct Tally {
    /// 2xx answers.
    pub ok: u64,
    /// Every other outcome, by [`Sample::label`].
    pub failed: BTreeMap<String, u64>,
}

impl Tally {
    /// Counts `samples`.
    pub fn of<'a>(samples: impl IntoIterator<Item = &'a Sample>) -> Self {
        let mut tally = Self::default();
        for sample in samples {
            if sample.is_2xx() {
                tally.ok += 1;
            } else {
                *tally.failed.entry(sample.label()).or_default() += 1;
            }
        }
        tally
    }

    /// Everything but 2xx.
    pub fn non_2xx(&self) -> u64 {
        self.failed.values().sum()
    }
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "2xx={} non2xx={}", self.ok, self.non_2xx())?;
        if !self.failed.is_empty() {
            let parts: Vec<String> = self.failed.iter().map(|(label, n)| format!("{label}: {n}")).collect();
            write!(f, " ({})", parts.join(", "))?;
        }
        Ok(())
    }
}

/// Latency of a set of samples (answered or not): median, 99th percentile and worst, printed
/// by tests that measure what a bystander saw; nothing asserts on it.
#[derive(Debug, Default, Clone, Copy)]
pub struct Latency {
    /// Samples counted.
    pub count: usize,
    /// Median.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Slowest.
    pub max: Duration,
}

impl Latency {
    /// The latency of `samples`.
    pub fn of<'a>(samples: impl IntoIterator<Item = &'a Sample>) -> Self {
        let mut times: Vec<Duration> =
            samples.into_iter().map(|s| s.ended.saturating_duration_since(s.started)).collect();
        times.sort();
        let at = |q: f64| times.get(((times.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or_default();
        Self { count: times.len(), p50: at(0.5), p99: at(0.99), max: times.last().copied().unwrap_or_default() }
    }
}

impl fmt::Display for Latency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        write!(f, "n={} p50={:.1} ms p99={:.1} ms max={:.1} ms", self.count, ms(self.p50), ms(self.p99), ms(self.max))
    }
}

/// The first few samples that fail `keep`, for an assertion message.
pub fn describe_failures<'a>(samples: impl IntoIterator<Item = &'a Sample>, keep: impl Fn(&Sample) -> bool) -> String {
    let bad: Vec<String> = samples
        .into_iter()
        .filter(|s| !keep(s))
        .take(5)
        .map(|s| format!("{} {}: {:?}", s.class, s.path, s.outcome))
        .collect();
    bad.join("\n")
}

/// When the failures among `samples` ended, relative to `fault`: `"+0.1 s to +5.2 s"`.
pub fn describe_failure_span<'a>(samples: impl IntoIterator<Item = &'a Sample>, fault: Instant) -> String {
    let ends: Vec<f64> = samples
        .into_iter()
        .filter(|s| !s.is_2xx())
        .map(|s| s.ended.saturating_duration_since(fault).as_secs_f64())
        .collect();
    let first = ends.iter().copied().fold(f64::INFINITY, f64::min);
    let last = ends.iter().copied().fold(0.0, f64::max);
    if ends.is_empty() {
        "none".to_owned()
    } else {
        format!("+{first:.1} s to +{last:.1} s")
    }
}

/// The background load: [`TASKS`] tasks, each sending the probes in turn until stopped (or
/// [`MAX_REQUESTS_PER_TASK`]), [`PAUSE`] apart.
pub struct Load {
    stop: Arc<AtomicBool>,
    completed: Arc<AtomicU64>,
    tasks: Vec<JoinHandle<Vec<Sample>>>,
}

impl Load {
    /// Starts sending `probes` to the gateway at `endpoint`.
    pub fn start(endpoint: &Endpoint, probes: Vec<Probe>) -> anyhow::Result<Self> {
        ensure!(!probes.is_empty(), "a load needs probes");
        let stop = Arc::new(AtomicBool::new(false));
        let completed = Arc::new(AtomicU64::new(0));
        let probes = Arc::new(probes);
        let mut tasks = Vec::new();
        for task in 0..TASKS {
            let client = endpoint.client_builder()?.timeout(REQUEST_TIMEOUT).build()?;
            let (base, probes) = (endpoint.url(""), Arc::clone(&probes));
            let (stop, completed) = (Arc::clone(&stop), Arc::clone(&completed));
            tasks.push(tokio::spawn(async move {
                let mut samples = Vec::new();
                for i in 0..MAX_REQUESTS_PER_TASK {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let probe = &probes[(task + i as usize) % probes.len()];
                    samples.push(send(&client, &base, probe).await);
                    completed.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(PAUSE).await;
                }
                samples
            }));
        }
        Ok(Self { stop, completed, tasks })
    }

    /// Waits (bounded) until `requests` more load requests have completed.
    pub async fn run_for(&self, requests: u64) -> anyhow::Result<()> {
        let target = self.completed.load(Ordering::SeqCst) + requests;
        eventually(&format!("the load completes {requests} more requests"), RUN_WAIT, || async {
            let done = self.completed.load(Ordering::SeqCst);
            ensure!(done >= target, "{done} of {target} done");
            Ok(())
        })
        .await
    }

    /// Stops the load and returns every sample (fails if a task does not stop in time).
    pub async fn finish(self) -> anyhow::Result<Vec<Sample>> {
        self.stop.store(true, Ordering::SeqCst);
        let mut samples = Vec::new();
        for task in self.tasks {
            let done = tokio::time::timeout(REQUEST_TIMEOUT + Duration::from_secs(5), task)
                .await
                .context("a load task did not stop")?
                .context("a load task panicked")?;
            samples.extend(done);
        }
        Ok(samples)
    }
}

/// Sends one probe and records how it ended.
async fn send(client: &reqwest::Client, base: &str, probe: &Probe) -> Sample {
    let started = Instant::now();
    let mut request = client.get(format!("{base}{}", probe.path)).header(ACCEPT, "application/json");
    if let Some(cookie) = &probe.cookie {
        request = request.header(COOKIE, cookie);
    }
    let outcome = match request.send().await {
        Err(e) => Outcome::Transport(format!("{e:#}")),
        Ok(resp) => {
            let status = resp.status().as_u16();
            match resp.bytes().await {
                Err(e) => Outcome::Transport(format!("body: {e:#}")),
                Ok(body) => judge(status, &body, probe),
            }
        }
    };
    Sample { class: probe.class, path: probe.path.clone(), started, ended: Instant::now(), outcome }
}

fn judge(status: u16, body: &[u8], probe: &Probe) -> Outcome {
    if (200..300).contains(&status) {
        if let Some(user) = &probe.user {
            let seen = Echo::parse(body).ok().and_then(|e| e.header("x-forwarded-user"));
            if seen.as_deref() != Some(user.as_str()) {
                return Outcome::WrongUser(seen);
            }
        }
        return Outcome::Status { status, error: None };
    }
    let error = serde_json::from_slice::<Value>(body).ok().and_then(|v| v["error"].as_str().map(str::to_owned));
    Outcome::Status { status, error }
}
