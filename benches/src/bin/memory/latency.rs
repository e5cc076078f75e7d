//! Phase `latency`: N sign-ins one after another, each with its session's status socket already
//! open; how long after the callback's answer `auth_success` arrives on the socket.
//!
//! ```text
//! t0  GET /connect/dev/callback?..  sent
//! t1  its answer's head received               (the completion page)
//! t2  {"event":"auth_success"} read on the socket opened before the sign-in began
//! ```
//! The gateway announces once it has written the completion page (which sets the rotated
//! cookie); the event travels on another connection, so t2 − t1 can still be negative: the event
//! was read before the page's head.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::client::Gateway;
use crate::sessions::thousands;
use crate::status_socket::StatusSocket;

const EVENT_WAIT: Duration = Duration::from_secs(10);

/// One sign-in's timings, in microseconds.
struct Sample {
    answer_us: f64,
    event_us: f64,
}

/// Runs `count` sign-ins; its markdown section.
pub(crate) async fn run(gateway: &Gateway, count: usize, live_sessions: Option<u64>) -> anyhow::Result<String> {
    let mut samples = Vec::with_capacity(count);
    let began = Instant::now();
    for i in 0..count {
        samples.push(one(gateway, i).await.with_context(|| format!("login {i}"))?);
        if (i + 1) % 250 == 0 {
            eprintln!("    {:>5} logins", i + 1);
        }
    }
    let took = began.elapsed();
    let col = |f: fn(&Sample) -> f64| -> Vec<f64> {
        let mut v: Vec<f64> = samples.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v
    };
    let gap = col(|s| s.event_us - s.answer_us);
    let answer = col(|s| s.answer_us);
    let event = col(|s| s.event_us);
    let first = samples.iter().filter(|s| s.event_us <= s.answer_us).count();

    let mut md = format!("## Callback answer → `auth_success` on the socket, {} logins\n\n", thousands(count));
    md.push_str(&format!(
        "One login at a time ({:.1} s in all){}: a new session, its `/_gateway/events?ticket=` socket opened \
         and `init` received, then connect → dev login form → POST; the clock runs from sending the callback \
         request. The gateway publishes `auth_success` once it has written the completion page, on another \
         connection, so a negative gap means the event was still read first ({first} of {count} logins).\n\n",
        took.as_secs_f64(),
        live_sessions
            .map(|n| format!(", on the gateway holding {} live sessions", thousands(n as usize)))
            .unwrap_or_default(),
    ));
    md.push_str("| ms | p50 | p99 | min | max |\n|---|---:|---:|---:|---:|\n");
    for (label, v) in [
        ("**callback answer → `auth_success`** (t2 − t1)", &gap),
        ("callback sent → its answer (t1 − t0)", &answer),
        ("callback sent → `auth_success` (t2 − t0)", &event),
    ] {
        md.push_str(&format!(
            "| {label} | {} | {} | {} | {} |\n",
            ms(percentile(v, 50.0)),
            ms(percentile(v, 99.0)),
            ms(v.first().copied().unwrap_or_default()),
            ms(v.last().copied().unwrap_or_default()),
        ));
    }
    md.push('\n');
    Ok(md)
}

async fn one(gateway: &Gateway, i: usize) -> anyhow::Result<Sample> {
    let username = format!("lat{i}");
    let session = gateway.new_session().await?;
    let mut socket = StatusSocket::open(gateway, &session.ticket, IpAddr::V4(Ipv4Addr::LOCALHOST), EVENT_WAIT).await?;
    let callback_url = gateway.callback_url(&session, &username).await?;
    // The socket is read on its own task, so the event is timed when it arrives, not when the
    // callback's body has been read.
    let watcher = tokio::spawn(async move { socket.wait_for("auth_success", EVENT_WAIT).await });
    tokio::task::yield_now().await;
    let sent = Instant::now();
    let callback = gateway.callback(&session, &callback_url).await?;
    callback.expect_signed_in(&username)?;
    let event_at = watcher.await.context("the socket task")??;
    let us = |at: Instant| -> f64 {
        match at.checked_duration_since(sent) {
            Some(d) => d.as_secs_f64() * 1e6,
            None => -(sent.duration_since(at).as_secs_f64() * 1e6),
        }
    };
    Ok(Sample { answer_us: us(callback.answered_at), event_us: us(event_at) })
}

/// Nearest-rank percentile of sorted `v`.
fn percentile(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

fn ms(us: f64) -> String {
    format!("{:.3}", us / 1000.0)
}
