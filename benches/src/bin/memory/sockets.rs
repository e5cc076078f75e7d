//! Phase `sockets`: open N idle native status-channel WebSockets, each for its own (signed-out)
//! session, read the gateway's memory at even steps, hold them idle through a ping round, close.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures_util::{stream, StreamExt};
use tokio::task::JoinSet;

use crate::client::Gateway;
use crate::rss::{bytes_per_item, mib, step_rows, Memory};
use crate::sessions::thousands;
use crate::status_socket::StatusSocket;
use crate::Target;

/// What the phase needs.
pub(crate) struct Plan {
    /// Sockets to open.
    pub(crate) count: usize,
    /// The count the target is stated for (the figure is extrapolated to it when `count` is lower).
    pub(crate) target_count: usize,
    /// Handshakes in flight at once.
    pub(crate) concurrency: usize,
    /// Memory readings on the way.
    pub(crate) steps: usize,
    /// Source addresses 127.0.0.1 .. 127.0.0.N, round-robin (ephemeral ports are per address).
    pub(crate) sources: u8,
    /// How long the open sockets stay idle before the last reading.
    pub(crate) hold: Duration,
    /// Why `count` is lower than `target_count`, when it is.
    pub(crate) cap_reason: Option<String>,
}

const INIT_WAIT: Duration = Duration::from_secs(30);

/// Runs the phase; its markdown section.
pub(crate) async fn run(
    gateway: &Gateway,
    pid: u32,
    admin: Option<&str>,
    plan: &Plan,
    target: &Target,
) -> anyhow::Result<String> {
    let start = Memory::of(pid)?;
    let mut rows = vec![(0usize, start)];
    let mut idle = JoinSet::new();
    let began = Instant::now();
    let mut done = 0;
    for step in 1..=plan.steps {
        let goal = plan.count * step / plan.steps;
        let mut opened = stream::iter(done..goal)
            .map(|i| {
                let gateway = gateway.clone();
                let source = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + (i % usize::from(plan.sources)) as u8));
                async move {
                    let session = gateway.new_session().await?;
                    StatusSocket::open(&gateway, &session.ticket, source, INIT_WAIT)
                        .await
                        .with_context(|| format!("socket {i} from {source}"))
                }
            })
            .buffer_unordered(plan.concurrency);
        while let Some(socket) = opened.next().await {
            idle.spawn(socket?.idle());
        }
        done = goal;
        let m = Memory::of(pid)?;
        eprintln!("    {done:>7} sockets  VmRSS {:>7} MiB", mib(m.rss_kib));
        rows.push((done, m));
    }
    let opening = began.elapsed();
    let open_now = Memory::of(pid)?;
    eprintln!("    holding {} idle sockets for {} s", thousands(plan.count), plan.hold.as_secs());
    tokio::time::sleep(plan.hold).await;
    let held = Memory::of(pid)?;
    let mut ended = Vec::new();
    while let Some(r) = idle.try_join_next() {
        ended.push(r.unwrap_or_else(|e| e.to_string()));
    }
    let gauge = match admin {
        Some(url) => crate::metric_sum(gateway, url, gateway::metrics::CHANNEL_SOCKETS).await?,
        None => None,
    };
    if !ended.is_empty() {
        bail!("{} of the idle sockets ended during the hold; first: {}", ended.len(), ended[0]);
    }
    idle.shutdown().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let closed = Memory::of(pid)?;

    let mut md = format!("## {} idle status-channel WebSockets\n\n", thousands(plan.count));
    md.push_str(&format!(
        "Each socket belongs to its own signed-out session (`GET /_gateway/session`, then \
         `/_gateway/events?ticket=` with the gateway's `Origin`), waited for `init`, then stayed idle \
         answering the gateway's pings; {} handshakes at a time from 127.0.0.1–127.0.0.{}, all open in {:.1} s.{}\n\n",
        plan.concurrency,
        plan.sources,
        opening.as_secs_f64(),
        gauge
            .map(|n| format!(" The gateway's `{}` gauge read {n} after the hold.", gateway::metrics::CHANNEL_SOCKETS))
            .unwrap_or_default(),
    ));
    md.push_str(
        "| open sockets | VmRSS MiB | VmHWM MiB | RssAnon MiB | bytes per socket added since the previous row |\n",
    );
    md.push_str("|---:|---:|---:|---:|---:|\n");
    step_rows(&mut md, rows.iter().copied());
    for (label, m) in [
        (format!("{} after {} s idle", thousands(plan.count), plan.hold.as_secs()), held),
        ("0 (all closed, 3 s later)".to_owned(), closed),
    ] {
        md.push_str(&format!("| {label} | {} | {} | {} | |\n", mib(m.rss_kib), mib(m.hwm_kib), mib(m.anon_kib)));
    }
    md.push('\n');
    let per_socket = bytes_per_item(&start, &held, plan.count).unwrap_or_default();
    md.push_str(&format!(
        "Per socket: {per_socket:.0} bytes of VmRSS ((after the hold − started) / {}). ",
        thousands(plan.count)
    ));
    let with_all_open = held.rss_kib.max(open_now.rss_kib);
    if plan.count < plan.target_count {
        let projected = start.rss_kib as f64 + per_socket * plan.target_count as f64 / 1024.0; // KiB
        md.push_str(&format!(
            "Only {} sockets fit here ({}); at that rate {} sockets take ≈ {:.1} MiB. {}\n\n",
            thousands(plan.count),
            plan.cap_reason.as_deref().unwrap_or("capped"),
            thousands(plan.target_count),
            projected / 1024.0,
            target.verdict(projected as u64),
        ));
    } else {
        md.push_str(&format!("{}\n\n", target.verdict(with_all_open)));
    }
    Ok(md)
}
