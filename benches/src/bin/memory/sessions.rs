//! Phase `sessions`: sign in N sessions through the real flow and read the gateway's memory at
//! even steps; per-session bytes from the growth between readings.

use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::{stream, StreamExt, TryStreamExt};

use crate::client::Gateway;
use crate::rss::{bytes_per_item, mib, step_rows, Memory};
use crate::Target;

/// What the phase needs.
pub(crate) struct Plan {
    /// Sessions to sign in.
    pub(crate) count: usize,
    /// Sign-ins in flight at once.
    pub(crate) concurrency: usize,
    /// Memory readings on the way (every `count / steps` sessions).
    pub(crate) steps: usize,
    /// Wait after the last sign-in before the final reading (store housekeeping runs every second).
    pub(crate) settle: Duration,
}

/// Runs the phase; its markdown section.
pub(crate) async fn run(
    gateway: &Gateway,
    pid: u32,
    admin: Option<&str>,
    plan: &Plan,
    target: &Target,
) -> anyhow::Result<String> {
    let start = Memory::of(pid)?;
    let mut rows = vec![(0usize, start, Duration::ZERO)];
    let began = Instant::now();
    let mut done = 0;
    for step in 1..=plan.steps {
        let goal = plan.count * step / plan.steps;
        stream::iter(done..goal)
            .map(|i| {
                let gateway = gateway.clone();
                async move { gateway.sign_in(&format!("u{i}")).await.with_context(|| format!("sign-in {i}")) }
            })
            .buffer_unordered(plan.concurrency)
            .try_for_each(|_| async { Ok(()) })
            .await?;
        done = goal;
        let m = Memory::of(pid)?;
        let elapsed = began.elapsed();
        eprintln!(
            "    {done:>7} sessions  VmRSS {:>7} MiB  ({:.0} sign-ins/s)",
            mib(m.rss_kib),
            done as f64 / elapsed.as_secs_f64()
        );
        rows.push((done, m, elapsed));
    }
    let signing = began.elapsed();
    tokio::time::sleep(plan.settle).await;
    let settled = Memory::of(pid)?;
    let entries = match admin {
        Some(url) => crate::metric_sum(gateway, url, gateway::metrics::STORE_ENTRIES).await?,
        None => None,
    };

    let mut md = format!("## {} live sessions in the memory store\n\n", thousands(plan.count));
    md.push_str(&format!(
        "Each session signed in through the real flow (session → connect → dev login form → POST → callback, \
         200 completion page checked), {} at a time; {} sign-ins in {:.1} s ({:.0}/s). `token_ttl` is far longer \
         than the run, so none expired.{}\n\n",
        plan.concurrency,
        thousands(plan.count),
        signing.as_secs_f64(),
        plan.count as f64 / signing.as_secs_f64(),
        entries
            .map(|n| format!(" The gateway's `{}` gauge read {n} at the end.", gateway::metrics::STORE_ENTRIES))
            .unwrap_or_default(),
    ));
    md.push_str(
        "| live sessions | VmRSS MiB | VmHWM MiB | RssAnon MiB | bytes per session added since the previous row |\n",
    );
    md.push_str("|---:|---:|---:|---:|---:|\n");
    step_rows(&mut md, rows.iter().map(|(n, m, _)| (*n, *m)));
    md.push_str(&format!(
        "| {} after {} s idle | {} | {} | {} | |\n\n",
        thousands(plan.count),
        plan.settle.as_secs(),
        mib(settled.rss_kib),
        mib(settled.hwm_kib),
        mib(settled.anon_kib)
    ));
    let per_session = bytes_per_item(&start, &settled, plan.count).unwrap_or_default();
    let half = rows.get(rows.len() / 2).map(|(n, m, _)| (*n, *m));
    let slope = half
        .and_then(|(n, m)| rows.last().and_then(|(ln, lm, _)| bytes_per_item(&m, lm, ln - n)))
        .unwrap_or(per_session);
    md.push_str(&format!(
        "Per session: {per_session:.0} bytes of VmRSS ((after − started) / {n}); {slope:.0} bytes over the second half \
         alone (start-up effects excluded). {}\n\n",
        target.verdict(settled.rss_kib.max(rows.last().map_or(0, |r| r.1.rss_kib))),
        n = thousands(plan.count),
    ));
    Ok(md)
}

/// `12345` as `12,345`.
pub(crate) fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
