//! The request flood of `benches/abuse`: GET one path as fast as the gateway answers, on
//! keep-alive connections from one local address, until a count or a time is reached; prints
//! `{"STATUS": count, ...}` on stdout. Written in Rust because the Python driver, not the
//! gateway, set the pace (≈ 1,600 handshakes/s on this VM).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

#[derive(Parser)]
#[command(about = "GET one path on keep-alive connections until a count or a time is reached")]
struct Cli {
    /// The gateway, IP:PORT.
    #[arg(long)]
    addr: SocketAddr,
    /// The local address the connections come from.
    #[arg(long, default_value = "127.0.0.2")]
    from: IpAddr,
    /// Path and query to GET.
    #[arg(long)]
    path: String,
    /// Requests in all (at most).
    #[arg(long, default_value_t = 100_000)]
    count: u64,
    /// Connections in parallel.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Seconds at most.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
}

type Counts = Arc<Mutex<BTreeMap<String, u64>>>;

fn count(counts: &Counts, key: String) {
    *counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner).entry(key).or_default() += 1;
}

/// One connection's requests until it closes, the count is spent or the time is up.
async fn connection(
    cli: &Cli,
    request: &[u8],
    sent: &AtomicU64,
    until: Instant,
    counts: &Counts,
) -> anyhow::Result<()> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(cli.from, 0))?;
    let stream = tokio::time::timeout(Duration::from_secs(5), socket.connect(cli.addr)).await??;
    let mut stream = BufReader::new(stream);
    while Instant::now() < until && sent.fetch_add(1, Ordering::SeqCst) < cli.count {
        stream.get_mut().write_all(request).await?;
        let mut status = String::new();
        let mut length = 0usize;
        let mut close = false;
        let mut line = String::new();
        loop {
            line.clear();
            if stream.read_line(&mut line).await? == 0 {
                anyhow::bail!("closed");
            }
            let lower = line.to_ascii_lowercase();
            if status.is_empty() {
                status = line.split(' ').nth(1).unwrap_or("?").to_owned();
            } else if let Some(v) = lower.strip_prefix("content-length:") {
                length = v.trim().parse().context("content-length")?;
            } else if lower.starts_with("connection:") && lower.contains("close") {
                close = true;
            } else if line == "\r\n" {
                break;
            }
        }
        let mut body = vec![0u8; length];
        stream.read_exact(&mut body).await?;
        count(counts, status);
        if close {
            break;
        }
    }
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() -> anyhow::Result<()> {
    let cli = Arc::new(Cli::parse());
    let request = format!("GET {} HTTP/1.1\r\nHost: {}\r\n\r\n", cli.path, cli.addr).into_bytes();
    let (sent, counts): (Arc<AtomicU64>, Counts) = (Arc::default(), Arc::default());
    let until = Instant::now() + Duration::from_secs(cli.seconds);
    let workers: Vec<_> = (0..cli.connections)
        .map(|_| {
            let (cli, request, sent, counts) =
                (Arc::clone(&cli), request.clone(), Arc::clone(&sent), Arc::clone(&counts));
            tokio::spawn(async move {
                while Instant::now() < until && sent.load(Ordering::SeqCst) < cli.count {
                    if let Err(e) = connection(&cli, &request, &sent, until, &counts).await {
                        count(&counts, format!("{e}"));
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.await?;
    }
    let counts = counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    let json: serde_json::Map<String, serde_json::Value> = counts.into_iter().map(|(k, v)| (k, v.into())).collect();
    println!("{}", serde_json::Value::Object(json));
    Ok(())
}
