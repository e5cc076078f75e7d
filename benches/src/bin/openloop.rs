//! The open-model load generator of `benches/run`'s latency phase: requests at a fixed rate
//! whatever the answers do, latency counted from each request's scheduled start (no coordinated
//! omission), one JSON line of results on stdout.
//!
//! `--connections` keep-alive HTTP/1.1 connections (hyper's client connection, one request in
//! flight each); connection `i` sends its `k`-th request at `start + (k × connections + i) / rate`.
//! When an answer comes back after the next request's scheduled time, that request leaves at once
//! and its latency counts from when it should have left (the server made it wait). When the
//! connection was idle, it counts from when it left: the wait was the generator's own timer (tokio's
//! has a 1 ms tick), not the server. A request still unanswered at the end is counted as late, with
//! its wait so far.
//!
//! ```text
//! openloop --url http://127.0.0.1:PORT/path --rate 10000 --duration 10 [--connections 50] [--header 'Name: value']
//! ```

use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;
use http::{HeaderName, HeaderValue, Request, Uri};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;

#[derive(Parser, Clone)]
#[command(about = "Open-model HTTP/1.1 load at a fixed rate; latency percentiles as JSON")]
struct Args {
    /// `http://IP:PORT/path` (plain HTTP, loopback).
    #[arg(long)]
    url: Uri,
    /// Requests per second, all connections together.
    #[arg(long)]
    rate: f64,
    /// Seconds of load (at most 120).
    #[arg(long)]
    duration: f64,
    /// Keep-alive connections.
    #[arg(long, default_value_t = 50)]
    connections: usize,
    /// A request header, `Name: value` (repeatable).
    #[arg(long)]
    header: Vec<String>,
}

/// What one connection saw.
#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    non2xx: u64,
    errors: u64,
    late: u64,
}

async fn connection(args: Args, i: usize, start: Instant, end: Instant) -> Tally {
    let mut tally = Tally::default();
    if let Err(e) = drive(&args, i, start, end, &mut tally).await {
        eprintln!("openloop: connection {i}: {e:#}");
        tally.errors += 1;
    }
    tally
}

async fn drive(args: &Args, i: usize, start: Instant, end: Instant, tally: &mut Tally) -> anyhow::Result<()> {
    let authority = args.url.authority().context("the URL has no host:port")?.clone();
    let stream = TcpStream::connect(authority.as_str()).await.with_context(|| format!("connect {authority}"))?;
    stream.set_nodelay(true)?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let mut headers = http::HeaderMap::new();
    headers.insert(http::header::HOST, HeaderValue::from_str(authority.as_str())?);
    for h in &args.header {
        let (name, value) = h.split_once(':').context("a header is `Name: value`")?;
        headers.append(HeaderName::from_bytes(name.trim().as_bytes())?, HeaderValue::from_str(value.trim())?);
    }
    let path = args.url.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let interval = args.connections as f64 / args.rate;
    let mut free_since = start;
    for k in 0u64.. {
        let scheduled = start + Duration::from_secs_f64((k as f64 * args.connections as f64 + i as f64) / args.rate);
        if scheduled >= end {
            break;
        }
        if scheduled > Instant::now() {
            tokio::time::sleep_until(scheduled).await;
        }
        let sent = Instant::now();
        // Waiting for the previous answer past the schedule is the server's doing; waiting for
        // the timer while the connection was free is ours.
        let from = if free_since > scheduled { scheduled } else { sent };
        let mut req = Request::get(path.as_str()).body(Empty::<Bytes>::new())?;
        *req.headers_mut() = headers.clone();
        let left = end + Duration::from_secs_f64(interval.max(1.0)) - Instant::now();
        match tokio::time::timeout(left, exchange(&mut sender, req)).await {
            Ok(Ok(status)) => {
                if !status.is_success() {
                    tally.non2xx += 1;
                }
            }
            Ok(Err(e)) => {
                eprintln!("openloop: connection {i}: {e:#}");
                tally.errors += 1;
                return Ok(());
            }
            Err(_) => {
                tally.late += 1;
                tally.latencies_us.push(us(from.elapsed()));
                return Ok(());
            }
        }
        free_since = Instant::now();
        tally.latencies_us.push(us(free_since - from));
    }
    Ok(())
}

async fn exchange(
    sender: &mut hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    req: Request<Empty<Bytes>>,
) -> anyhow::Result<http::StatusCode> {
    sender.ready().await?;
    let resp = sender.send_request(req).await?;
    let status = resp.status();
    resp.into_body().collect().await?;
    Ok(status)
}

fn us(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

async fn run(args: Args) -> anyhow::Result<()> {
    if args.url.scheme_str() != Some("http") {
        bail!("only http:// URLs");
    }
    if !(args.rate > 0.0 && args.duration > 0.0 && args.duration <= 120.0 && (1..=1000).contains(&args.connections)) {
        bail!("rate > 0, duration 0..120 s, connections 1..1000");
    }
    // Connections open first, then the clock starts for all of them.
    let start = Instant::now() + Duration::from_millis(200);
    let end = start + Duration::from_secs_f64(args.duration);
    let tasks: Vec<_> = (0..args.connections).map(|i| tokio::spawn(connection(args.clone(), i, start, end))).collect();
    let mut all = Tally::default();
    for t in tasks {
        let t = t.await?;
        all.latencies_us.extend(t.latencies_us);
        all.non2xx += t.non2xx;
        all.errors += t.errors;
        all.late += t.late;
    }
    all.latencies_us.sort_unstable();
    let l = &all.latencies_us;
    let answered = l.len() as u64 - all.late;
    println!(
        "{}",
        serde_json::json!({
            "rate": args.rate,
            "achieved": answered as f64 / args.duration,
            "requests": answered,
            "late": all.late,
            "errors": all.errors,
            "non2xx": all.non2xx,
            "p50_us": percentile(l, 50.0),
            "p90_us": percentile(l, 90.0),
            "p99_us": percentile(l, 99.0),
            "p999_us": percentile(l, 99.9),
            "max_us": l.last().copied().unwrap_or(0),
        })
    );
    Ok(())
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("openloop: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("openloop: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}
