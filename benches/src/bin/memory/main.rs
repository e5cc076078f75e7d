//! The memory harness's load client: drives a running gateway (started by `benches/memory`)
//! through one phase and prints that phase's markdown section on stdout (progress on stderr).
//!
//! # Layout
//! - `client.rs`: the dev provider's popup sign-in over HTTP, one shared keep-alive client
//! - `status_socket.rs`: a native status-channel WebSocket (`init`, idle, wait for an event)
//! - `rss.rs`: `/proc/PID/status` readings
//! - `sessions.rs`, `sockets.rs`, `latency.rs`: the three memory phases
//! - `soak.rs`: minutes of mixed traffic (`benches/run --soak MINUTES`)
//! - `limits.rs`: the admission counters (`gateway_limit_refusals_total`) a phase moved
//!
//! ```text
//! memory --url http://127.0.0.1:P --pid PID [--admin http://127.0.0.1:A] sessions --count 100000
//! memory --url … --pid PID sockets --count 19900 --target-count 20000
//! memory --url … --pid PID latency --count 1000
//! memory --url … --pid PID soak --minutes 10 --token-ttl 45
//! ```

mod client;
mod latency;
mod limits;
mod rss;
mod sessions;
mod soak;
mod sockets;
mod status_socket;

use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::client::Gateway;

/// Command line.
#[derive(Parser)]
#[command(about = "Memory and status-channel latency figures of a running gateway")]
struct Cli {
    /// The gateway's base URL (its `public_url`), plain HTTP on loopback.
    #[arg(long)]
    url: String,
    /// The gateway's process id, for /proc/PID/status.
    #[arg(long)]
    pid: u32,
    /// The gateway's admin listener (`http://127.0.0.1:PORT`), to read its gauges.
    #[arg(long)]
    admin: Option<String>,
    /// The phase gives up after this many seconds.
    #[arg(long, default_value_t = 1800)]
    time_limit: u64,
    #[command(subcommand)]
    phase: Phase,
}

#[derive(Subcommand)]
enum Phase {
    /// Sign in COUNT sessions and read the memory at STEPS even steps.
    Sessions {
        #[arg(long, default_value_t = 100_000)]
        count: usize,
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        #[arg(long, default_value_t = 4)]
        steps: usize,
        /// Seconds to wait before the last reading.
        #[arg(long, default_value_t = 5)]
        settle: u64,
        /// The RSS target for COUNT sessions, MiB.
        #[arg(long, default_value_t = 400)]
        target_mib: u64,
    },
    /// Open COUNT idle status sockets, hold them HOLD seconds, close them.
    Sockets {
        #[arg(long, default_value_t = 20_000)]
        count: usize,
        /// The count the RSS target is stated for.
        #[arg(long, default_value_t = 20_000)]
        target_count: usize,
        /// Why COUNT is below TARGET_COUNT (for the report).
        #[arg(long)]
        cap_reason: Option<String>,
        #[arg(long, default_value_t = 128)]
        concurrency: usize,
        #[arg(long, default_value_t = 4)]
        steps: usize,
        /// Source addresses 127.0.0.1 .. 127.0.0.SOURCES.
        #[arg(long, default_value_t = 4)]
        sources: u8,
        #[arg(long, default_value_t = 30)]
        hold: u64,
        /// The RSS target for TARGET_COUNT sockets, MiB.
        #[arg(long, default_value_t = 200)]
        target_mib: u64,
    },
    /// COUNT logins one at a time, each watched on its already-open status socket.
    Latency {
        #[arg(long, default_value_t = 1000)]
        count: usize,
    },
    /// MINUTES of mixed traffic (sign-ins, API calls, status channels, logouts, expiries).
    Soak {
        #[arg(long, default_value_t = 10)]
        minutes: u64,
        /// Simulated browsers.
        #[arg(long, default_value_t = 24)]
        users: usize,
        /// Milliseconds between one browser's API calls.
        #[arg(long, default_value_t = 50)]
        pause_ms: u64,
        /// The gateway's `session.token_ttl`, seconds (must exceed a browser's 24 s of use).
        #[arg(long, default_value_t = 45)]
        token_ttl: u64,
        /// Seconds between memory readings.
        #[arg(long, default_value_t = 30)]
        sample: u64,
    },
}

/// An RSS target of the memory harness, and how a reading compares with it.
pub(crate) struct Target {
    what: String,
    limit_mib: u64,
}

impl Target {
    /// "Target … ≤ N MiB: met/missed (reading)".
    pub(crate) fn verdict(&self, rss_kib: u64) -> String {
        let mib = rss_kib as f64 / 1024.0;
        let met = mib <= self.limit_mib as f64;
        format!(
            "Target {} ≤ {} MiB: **{}** ({mib:.1} MiB).",
            self.what,
            self.limit_mib,
            if met { "met" } else { "missed" }
        )
    }
}

/// The sum of every series of metric `name` on the admin listener at `admin`.
pub(crate) async fn metric_sum(gateway: &Gateway, admin: &str, name: &str) -> anyhow::Result<Option<u64>> {
    let text = gateway.get_text(&format!("{}/metrics", admin.trim_end_matches('/'))).await?;
    let values: Vec<f64> = text
        .lines()
        .filter(|l| l.strip_prefix(name).is_some_and(|rest| rest.starts_with([' ', '{'])))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    Ok((!values.is_empty()).then(|| values.iter().sum::<f64>() as u64))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let gateway = Gateway::new(&cli.url, 1024)?;
    let admin = cli.admin.as_deref();
    let phase = async {
        match cli.phase {
            Phase::Sessions { count, concurrency, steps, settle, target_mib } => {
                let plan = sessions::Plan {
                    count,
                    concurrency: concurrency.max(1),
                    steps: steps.clamp(1, 20),
                    settle: Duration::from_secs(settle),
                };
                let target = Target { what: format!("{} sessions", sessions::thousands(count)), limit_mib: target_mib };
                sessions::run(&gateway, cli.pid, admin, &plan, &target).await
            }
            Phase::Sockets { count, target_count, cap_reason, concurrency, steps, sources, hold, target_mib } => {
                let plan = sockets::Plan {
                    count,
                    target_count,
                    concurrency: concurrency.max(1),
                    steps: steps.clamp(1, 20),
                    sources: sources.max(1),
                    hold: Duration::from_secs(hold),
                    cap_reason,
                };
                let target = Target {
                    what: format!("{} idle sockets", sessions::thousands(target_count)),
                    limit_mib: target_mib,
                };
                sockets::run(&gateway, cli.pid, admin, &plan, &target).await
            }
            Phase::Soak { minutes, users, pause_ms, token_ttl, sample } => {
                anyhow::ensure!(token_ttl > 25, "--token-ttl must exceed a browser's 24 s of use");
                let plan = soak::Plan {
                    duration: Duration::from_secs(minutes * 60),
                    users: users.max(1),
                    pause: Duration::from_millis(pause_ms.max(1)),
                    token_ttl: Duration::from_secs(token_ttl),
                    sample_every: Duration::from_secs(sample.max(1)),
                };
                soak::run(&gateway, cli.pid, admin, &plan).await
            }
            Phase::Latency { count } => {
                let live = match admin {
                    Some(a) => metric_sum(&gateway, a, gateway::metrics::STORE_ENTRIES).await?,
                    None => None,
                };
                latency::run(&gateway, count, live).await
            }
        }
    };
    let md = tokio::time::timeout(Duration::from_secs(cli.time_limit), phase)
        .await
        .with_context(|| format!("the phase took longer than {} s", cli.time_limit))??;
    print!("{md}");
    Ok(())
}
