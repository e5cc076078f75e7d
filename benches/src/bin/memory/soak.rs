//! Phase `soak`: MINUTES of mixed traffic from USERS simulated browsers, each going round the
//! life of a task pane again and again, while the gateway's memory is read every SAMPLE seconds.
//!
//! ```text
//! one cycle of one user (user u, cycle c):
//!   GET /_gateway/session                      new session, its ticket
//!   status channel opened (WebSocket, or SSE for every third user), `init`
//!   connect → dev login form → POST → callback  completion page checked
//!   `auth_success` on the channel
//!   for 15–24 s: GET /api/items (signed in, 200), GET /public/.. (200), GET /_gateway/session (signed_in)
//!   then, by c mod 3:  0  POST /connect/logout (204), `auth_expired`, GET /api/items answers 401
//!                      1  wait for the tokens' lifetime to end: `auth_expired` within token_ttl + 30 s
//!                      2  close the channel and walk away (the tokens expire unobserved)
//! ```
//! Every answer is counted by request kind and status; anything unexpected (a status, a missing
//! event, a transport error) is a failure, and the first ones are quoted in the report.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::client::{Gateway, Session};
use crate::rss::{mib, Memory};
use crate::sessions::thousands;
use crate::status_socket::StatusSocket;

/// What the phase needs.
pub(crate) struct Plan {
    pub(crate) duration: Duration,
    pub(crate) users: usize,
    /// Pause between one user's API calls.
    pub(crate) pause: Duration,
    /// The gateway's `session.token_ttl` (the lifetime-expiry ending waits for it).
    pub(crate) token_ttl: Duration,
    pub(crate) sample_every: Duration,
}

/// Longest wait for `init`, `auth_success` and a logout's `auth_expired`.
const EVENT_WAIT: Duration = Duration::from_secs(10);
/// How late a lifetime `auth_expired` may be after `token_ttl` (the store is swept every second).
const EXPIRY_SLACK: Duration = Duration::from_secs(30);
/// Failures quoted in the report.
const QUOTED_FAILURES: usize = 20;

/// What every user has seen so far.
#[derive(Default)]
struct Tally {
    /// (request kind, status) → answers.
    answers: BTreeMap<(&'static str, u16), u64>,
    /// Status events received, by name.
    events: BTreeMap<String, u64>,
    logins: u64,
    cycles: u64,
    failures: u64,
    quoted: Vec<String>,
}

type Shared = Arc<Mutex<Tally>>;

fn note(tally: &Shared, kind: &'static str, status: StatusCode) {
    let mut t = tally.lock().unwrap_or_else(|e| e.into_inner());
    *t.answers.entry((kind, status.as_u16())).or_default() += 1;
}

fn fail(tally: &Shared, what: String) {
    let mut t = tally.lock().unwrap_or_else(|e| e.into_inner());
    t.failures += 1;
    if t.quoted.len() < QUOTED_FAILURES {
        t.quoted.push(what);
    }
}

/// One memory reading during the run, with the gateway's store and socket gauges.
struct Sample {
    at: Duration,
    memory: Memory,
    store_entries: Option<u64>,
    sockets: Option<u64>,
}

impl Sample {
    async fn take(gateway: &Gateway, pid: u32, admin: Option<&str>, at: Duration) -> anyhow::Result<Self> {
        let gauge = |name: &'static str| async move {
            let a = admin?;
            crate::metric_sum(gateway, a, name).await.ok().flatten()
        };
        Ok(Self {
            at,
            memory: Memory::of(pid)?,
            store_entries: gauge(gateway::metrics::STORE_ENTRIES).await,
            sockets: gauge(gateway::metrics::CHANNEL_SOCKETS).await,
        })
    }
}

/// Runs the phase; its markdown section.
pub(crate) async fn run(gateway: &Gateway, pid: u32, admin: Option<&str>, plan: &Plan) -> anyhow::Result<String> {
    let tally: Shared = Arc::default();
    let sse = reqwest::Client::builder().no_proxy().connect_timeout(EVENT_WAIT).build()?;
    let began = Instant::now();
    let deadline = began + plan.duration;
    let refusals_before = match admin {
        Some(a) => Some(crate::limits::refusals(gateway, a).await?),
        None => None,
    };
    let gateway_view_before = match admin {
        Some(a) => gateway_statuses(gateway, a).await?,
        None => BTreeMap::new(),
    };
    let mut samples = vec![Sample::take(gateway, pid, admin, Duration::ZERO).await?];

    let mut users = JoinSet::new();
    for u in 0..plan.users {
        let (gateway, sse, tally) = (gateway.clone(), sse.clone(), Arc::clone(&tally));
        let (pause, ttl) = (plan.pause, plan.token_ttl);
        // Staggered starts: the users do not all sign in in the same second.
        let delay = plan.pause.saturating_mul(u as u32 * 3);
        users.spawn(async move {
            tokio::time::sleep(delay).await;
            let mut cycle = 0u64;
            while Instant::now() < deadline {
                if let Err(e) = one_cycle(&gateway, &sse, &tally, u, cycle, pause, ttl, deadline).await {
                    fail(&tally, format!("user {u} cycle {cycle}: {e:#}"));
                    // A failing gateway is not hammered: a second before the next try.
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                cycle += 1;
                tally.lock().unwrap_or_else(|e| e.into_inner()).cycles += 1;
            }
        });
    }

    let mut next = began + plan.sample_every;
    while Instant::now() < deadline {
        tokio::time::sleep_until(next.min(deadline).into()).await;
        next += plan.sample_every;
        samples.push(Sample::take(gateway, pid, admin, began.elapsed()).await?);
        let t = tally.lock().unwrap_or_else(|e| e.into_inner());
        eprintln!(
            "    {:>4} s: VmRSS {} MiB, {} logins, {} failures",
            began.elapsed().as_secs(),
            mib(samples.last().map_or(0, |s| s.memory.rss_kib)),
            t.logins,
            t.failures
        );
    }
    // The users finish the cycle they are in (bounded by token_ttl + slack).
    while let Some(joined) = users.join_next().await {
        if let Err(e) = joined {
            fail(&tally, format!("a user task ended abnormally: {e}"));
        }
    }
    let load_ended = began.elapsed();
    let at_end = Sample::take(gateway, pid, admin, load_ended).await?;
    // Quiet until every session's tokens have expired and been purged.
    tokio::time::sleep(plan.token_ttl + Duration::from_secs(5)).await;
    let drained = Sample::take(gateway, pid, admin, began.elapsed()).await?;
    let gateway_view = match admin {
        Some(a) => Some(difference(gateway_statuses(gateway, a).await?, &gateway_view_before)),
        None => None,
    };

    let limits = match (admin, refusals_before) {
        (Some(a), Some(before)) => crate::limits::section(&before, &crate::limits::refusals(gateway, a).await?),
        _ => String::new(),
    };
    let t = tally.lock().unwrap_or_else(|e| e.into_inner());
    Ok(report(plan, &t, &samples, &at_end, &drained, gateway_view.as_ref()) + &limits)
}

/// The status channel of one user: a reader task forwards event names, so the socket is read
/// (and the gateway's pings answered) while the user is busy with API calls.
struct Channel {
    events: mpsc::Receiver<anyhow::Result<String>>,
    reader: tokio::task::JoinHandle<()>,
    transport: &'static str,
}

impl Drop for Channel {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl Channel {
    async fn open(gateway: &Gateway, sse: &reqwest::Client, ticket: &str, use_sse: bool) -> anyhow::Result<Self> {
        let (tx, events) = mpsc::channel(16);
        if use_sse {
            let url = format!("{}/_gateway/events?ticket={}", gateway.origin(), urlencode(ticket));
            let resp = sse
                .get(&url)
                .header("accept", "text/event-stream")
                .header("origin", gateway.origin())
                .send()
                .await
                .context("opening the SSE stream")?;
            ensure!(resp.status() == StatusCode::OK, "the SSE stream answered {}", resp.status());
            let reader = tokio::spawn(read_sse(resp, tx));
            let mut channel = Self { events, reader, transport: "sse" };
            channel.expect("init", EVENT_WAIT).await?;
            Ok(channel)
        } else {
            let socket = StatusSocket::open(gateway, ticket, IpAddr::V4(Ipv4Addr::LOCALHOST), EVENT_WAIT).await?;
            let reader = tokio::spawn(read_ws(socket, tx));
            Ok(Self { events, reader, transport: "websocket" })
        }
    }

    /// Waits up to `within` for event `name`; any other event first is a failure.
    async fn expect(&mut self, name: &str, within: Duration) -> anyhow::Result<String> {
        let got = tokio::time::timeout(within, self.events.recv())
            .await
            .with_context(|| format!("no {name} on the {} channel within {within:?}", self.transport))?
            .with_context(|| format!("the {} channel ended before {name}", self.transport))??;
        ensure!(got == name, "the {} channel sent {got:?} where {name:?} was due", self.transport);
        Ok(got)
    }
}

async fn read_ws(mut socket: StatusSocket, tx: mpsc::Sender<anyhow::Result<String>>) {
    loop {
        let event = socket.next_event().await;
        let end = event.is_err();
        if tx.send(event).await.is_err() || end {
            return;
        }
    }
}

async fn read_sse(mut resp: reqwest::Response, tx: mpsc::Sender<anyhow::Result<String>>) {
    let mut buf = String::new();
    loop {
        let chunk = match resp.chunk().await {
            Ok(Some(c)) => c,
            Ok(None) => {
                let _ = tx.send(Err(anyhow::anyhow!("the SSE stream ended"))).await;
                return;
            }
            Err(e) => {
                let _ = tx.send(Err(anyhow::Error::new(e).context("reading the SSE stream"))).await;
                return;
            }
        };
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let frame: String = buf.drain(..end + 2).collect();
            for data in frame.lines().filter_map(|l| l.strip_prefix("data: ")) {
                let event = serde_json::from_str::<Value>(data)
                    .ok()
                    .and_then(|v| v["event"].as_str().map(str::to_owned))
                    .with_context(|| format!("an SSE frame without an event: {data:.200}"));
                if tx.send(event).await.is_err() {
                    return;
                }
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn one_cycle(
    gateway: &Gateway,
    sse: &reqwest::Client,
    tally: &Shared,
    user: usize,
    cycle: u64,
    pause: Duration,
    token_ttl: Duration,
    deadline: Instant,
) -> anyhow::Result<()> {
    let username = format!("soak{user}");
    let session = gateway.new_session().await?;
    note(tally, "GET /_gateway/session (new)", StatusCode::OK);
    let mut channel = Channel::open(gateway, sse, &session.ticket, user % 3 == 2).await?;
    event(tally, "init");
    let callback_url = gateway.callback_url(&session, &username).await?;
    gateway.callback(&session, &callback_url).await?.expect_signed_in(&username)?;
    channel.expect("auth_success", EVENT_WAIT).await?;
    event(tally, "auth_success");
    tally.lock().unwrap_or_else(|e| e.into_inner()).logins += 1;

    // 15–24 s of use, well inside token_ttl (checked by benches/memory).
    let life = Duration::from_secs(15 + (user as u64 * 7 + cycle * 3) % 10);
    let signed_in_at = Instant::now();
    let mut i = 0u64;
    while signed_in_at.elapsed() < life && Instant::now() < deadline {
        match i % 4 {
            0 | 1 => {
                call(gateway, tally, "GET /api/items (signed in)", "/api/items", Some(&session), StatusCode::OK)
                    .await?;
            }
            2 => {
                call(gateway, tally, "GET /public (no cookie)", &format!("/public/{user}/{i}"), None, StatusCode::OK)
                    .await?;
            }
            _ => {
                let body = call(
                    gateway,
                    tally,
                    "GET /_gateway/session (signed in)",
                    "/_gateway/session",
                    Some(&session),
                    StatusCode::OK,
                )
                .await?;
                let v: Value = serde_json::from_str(&body).context("the session JSON")?;
                ensure!(v["providers"]["dev"]["signed_in"] == true, "the session JSON says signed out: {body:.200}");
            }
        }
        i += 1;
        tokio::time::sleep(pause).await;
    }

    match cycle % 3 {
        0 => {
            let (status, body) =
                gateway.request(Method::POST, "/connect/logout", Some(&session.cookie), Some(gateway.origin())).await?;
            note(tally, "POST /connect/logout", status);
            ensure!(status == StatusCode::NO_CONTENT, "logout answered {status}: {body:.200}");
            channel.expect("auth_expired", EVENT_WAIT).await?;
            event(tally, "auth_expired (logout)");
            call(
                gateway,
                tally,
                "GET /api/items (after logout)",
                "/api/items",
                Some(&session),
                StatusCode::UNAUTHORIZED,
            )
            .await?;
        }
        1 => {
            let left = token_ttl.saturating_sub(signed_in_at.elapsed());
            channel.expect("auth_expired", left + EXPIRY_SLACK).await?;
            event(tally, "auth_expired (lifetime)");
            if signed_in_at.elapsed() < token_ttl {
                bail!("auth_expired came {:?} after sign-in, before token_ttl", signed_in_at.elapsed());
            }
        }
        _ => drop(channel),
    }
    Ok(())
}

fn event(tally: &Shared, name: &str) {
    *tally.lock().unwrap_or_else(|e| e.into_inner()).events.entry(name.to_owned()).or_default() += 1;
}

/// One GET, counted; fails unless it answered `expected`. The body.
async fn call(
    gateway: &Gateway,
    tally: &Shared,
    kind: &'static str,
    target: &str,
    session: Option<&Session>,
    expected: StatusCode,
) -> anyhow::Result<String> {
    let (status, body) = gateway.request(Method::GET, target, session.map(|s| s.cookie.as_str()), None).await?;
    note(tally, kind, status);
    ensure!(status == expected, "{kind} answered {status}, not {expected}: {body:.200}");
    Ok(body)
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The gateway's own `gateway_requests_total` by (route, status).
async fn gateway_statuses(gateway: &Gateway, admin: &str) -> anyhow::Result<BTreeMap<(String, String), u64>> {
    let text = gateway.get_text(&format!("{}/metrics", admin.trim_end_matches('/'))).await?;
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with(gateway::metrics::REQUESTS_TOTAL)) {
        let label = |name: &str| -> Option<String> {
            let start = line.find(&format!("{name}=\""))? + name.len() + 2;
            Some(line[start..].split('"').next()?.to_owned())
        };
        if let (Some(route), Some(status), Some(n)) =
            (label("route"), label("status"), line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        {
            out.insert((route, status), n as u64);
        }
    }
    Ok(out)
}

fn difference(
    after: BTreeMap<(String, String), u64>,
    before: &BTreeMap<(String, String), u64>,
) -> BTreeMap<(String, String), u64> {
    after
        .into_iter()
        .map(|(k, n)| {
            let was = before.get(&k).copied().unwrap_or(0);
            (k, n - was.min(n))
        })
        .filter(|(_, n)| *n > 0)
        .collect()
}

fn report(
    plan: &Plan,
    t: &Tally,
    samples: &[Sample],
    at_end: &Sample,
    drained: &Sample,
    gateway_view: Option<&BTreeMap<(String, String), u64>>,
) -> String {
    let minutes = plan.duration.as_secs_f64() / 60.0;
    let requests: u64 = t.answers.values().sum();
    let unexpected: u64 = t.failures;
    let mut md = format!("## Soak: {minutes:.0} minutes of mixed traffic\n\n");
    md.push_str(&format!(
        "{} simulated browsers, each going round a task pane's life (see `benches/src/bin/memory/soak.rs`): a new \
         session, its status channel (WebSocket; SSE for every third browser), a popup sign-in through the dev \
         provider, `auth_success` on the channel, 15–24 s of API calls ({} ms apart: the signed-in route, a public \
         route, the session JSON), then in turn a logout (`auth_expired`, then a 401), the tokens' lifetime running \
         out (`auth_expired` within `token_ttl` = {} s + {} s), or walking away. {} sign-ins, {} cycles, {} counted \
         requests besides the sign-in steps; load for {:.0} s.\n\n",
        plan.users,
        plan.pause.as_millis(),
        plan.token_ttl.as_secs(),
        EXPIRY_SLACK.as_secs(),
        thousands(t.logins as usize),
        thousands(t.cycles as usize),
        thousands(requests as usize),
        at_end.at.as_secs_f64(),
    ));

    md.push_str("### Memory\n\n| at | VmRSS MiB | RssAnon MiB | VmHWM MiB | store entries | open channel sockets |\n");
    md.push_str("|---|---:|---:|---:|---:|---:|\n");
    let gauge = |v: Option<u64>| v.map_or("–".to_owned(), |n| n.to_string());
    let row = |md: &mut String, label: String, s: &Sample| {
        md.push_str(&format!(
            "| {label} | {} | {} | {} | {} | {} |\n",
            mib(s.memory.rss_kib),
            mib(s.memory.anon_kib),
            mib(s.memory.hwm_kib),
            gauge(s.store_entries),
            gauge(s.sockets)
        ));
    };
    for (i, s) in samples.iter().enumerate() {
        row(
            &mut md,
            if i == 0 { "start (before the load)".to_owned() } else { format!("{:.0} s", s.at.as_secs_f64()) },
            s,
        );
    }
    row(&mut md, format!("{:.0} s, load ended", at_end.at.as_secs_f64()), at_end);
    row(&mut md, format!("{:.0} s, after token_ttl + 5 s quiet", drained.at.as_secs_f64()), drained);
    md.push('\n');

    // Growth: the warmed-up level (the first reading at or after 2 minutes, when the store has
    // reached its steady population) against the last reading under load.
    let warm = samples.iter().find(|s| s.at >= Duration::from_secs(120)).or(samples.get(1));
    if let (Some(warm), Some(last)) = (warm, samples.last()) {
        let delta = last.memory.rss_kib as f64 - warm.memory.rss_kib as f64;
        let pct = 100.0 * delta / warm.memory.rss_kib.max(1) as f64;
        let flat = delta <= 8.0 * 1024.0 || pct <= 10.0;
        md.push_str(&format!(
            "RSS start (before the load) {} MiB; at {:.0} s (warmed up) {} MiB; at the end of the load {} MiB: {:+.1} MiB \
             ({pct:+.1} %) since warm-up: **{}** (the bound: ≤ 10 % or ≤ 8 MiB). After the sessions expired: {} MiB.\n\n",
            mib(samples[0].memory.rss_kib),
            warm.at.as_secs_f64(),
            mib(warm.memory.rss_kib),
            mib(last.memory.rss_kib),
            delta / 1024.0,
            if flat { "no growth beyond noise" } else { "grew" },
            mib(drained.memory.rss_kib),
        ));
    }

    md.push_str("### Answers the browsers counted\n\n| request | status | count |\n|---|---:|---:|\n");
    for ((kind, status), n) in &t.answers {
        md.push_str(&format!("| {kind} | {status} | {} |\n", thousands(*n as usize)));
    }
    md.push_str("\n| status event | count |\n|---|---:|\n");
    for (name, n) in &t.events {
        md.push_str(&format!("| `{name}` | {} |\n", thousands(*n as usize)));
    }
    md.push('\n');
    if let Some(view) = gateway_view {
        md.push_str(
            "### Every answer outside 2xx, as the gateway counted it (`gateway_requests_total`)\n\n\
             The sign-in's redirects (302 on `connect`/`dev`) and the WebSocket upgrades (101) are the flow \
             itself; the 401s on the `upstream` route (a protected prefix) are the checks after logout above.\n\n| route | status | count |\n|---|---:|---:|\n",
        );
        let mut any = false;
        for ((route, status), n) in view.iter().filter(|((_, s), _)| !s.starts_with('2')) {
            any = true;
            md.push_str(&format!("| {route} | {status} | {} |\n", thousands(*n as usize)));
        }
        if !any {
            md.push_str("| (none) | | |\n");
        }
        let total: u64 = view.values().sum();
        md.push_str(&format!("\nAll answers the gateway counted: {}.\n\n", thousands(total as usize)));
    }
    md.push_str(&format!("**Unexpected outcomes: {unexpected}**"));
    if t.quoted.is_empty() {
        md.push_str(" (every answer, event and sign-in was the one due).\n\n");
    } else {
        md.push_str(&format!(" (first {}):\n\n", t.quoted.len()));
        for q in &t.quoted {
            md.push_str(&format!("- {}\n", q.replace('\n', " ")));
        }
        md.push('\n');
    }
    md
}
