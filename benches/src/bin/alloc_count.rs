//! Heap allocations per proxied request: the gateway runs in this process (`gateway::app::run`,
//! as `gateway run` does, access log included) under a counting global allocator (`stats_alloc`
//! around the system allocator), and one keep-alive connection sends N requests one after
//! another. Allocations counted over those N requests, divided by N, are the cost per request.
//!
//! The client allocates nothing per request (a request built once, a fixed read buffer on the
//! stack); the first case runs the same client against the upstream directly, so its count is
//! what the idle gateway's background tasks and the client add by themselves (≈ 0).
//!
//! ```text
//! GATEWAY_SECRET=… alloc_count --config gateway.toml --upstream 127.0.0.1:PORT [--requests N]
//! ```
//! The config must have the `dev` provider and a route `/api/` requiring it (as `benches/run`
//! writes it). Prints a markdown table on stdout; the gateway's log goes to stderr.

use std::alloc::System;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use clap::Parser;
use stats_alloc::{StatsAlloc, INSTRUMENTED_SYSTEM};

#[allow(dead_code, unreachable_pub, reason = "the memory client's sign-in, shared by path; only part is used here")]
#[path = "memory/client.rs"]
mod client;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

#[derive(Parser)]
#[command(about = "Heap allocations per request of the gateway, in-process")]
struct Args {
    /// Gateway config (plain HTTP, `dev` provider, `/api/` requiring it).
    #[arg(long)]
    config: PathBuf,
    /// The upstream, `IP:PORT`: the baseline case runs the client against it directly.
    #[arg(long)]
    upstream: SocketAddr,
    /// Requests counted per case.
    #[arg(long, default_value_t = 20_000)]
    requests: u64,
    /// Requests sent before counting, per case.
    #[arg(long, default_value_t = 2_000)]
    warmup: u64,
}

/// One keep-alive HTTP/1.1 connection that allocates nothing per request.
struct Conn {
    stream: TcpStream,
    request: Vec<u8>,
    buf: Box<[u8; 64 * 1024]>,
}

impl Conn {
    fn open(addr: SocketAddr, path: &str, cookie: Option<&str>) -> anyhow::Result<Self> {
        let stream =
            TcpStream::connect_timeout(&addr, Duration::from_secs(5)).with_context(|| format!("connect {addr}"))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let cookie = cookie.map(|c| format!("Cookie: {c}\r\n")).unwrap_or_default();
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: */*\r\n{cookie}\r\n").into_bytes();
        Ok(Self { stream, request, buf: Box::new([0; 64 * 1024]) })
    }

    /// Sends the request and reads the whole response; its status.
    fn round_trip(&mut self) -> anyhow::Result<u16> {
        self.stream.write_all(&self.request)?;
        let mut filled = 0;
        loop {
            let n = self.stream.read(&mut self.buf[filled..])?;
            ensure!(n > 0, "the connection closed mid-response");
            filled += n;
            let data = &self.buf[..filled];
            let Some(head_end) = find(data, b"\r\n\r\n").map(|i| i + 4) else {
                ensure!(filled < self.buf.len(), "response head larger than the buffer");
                continue;
            };
            let head = &data[..head_end];
            let status = parse_u64(head.get(9..12).unwrap_or_default()).context("status line")? as u16;
            if let Some(len) = header_value(head, b"content-length").and_then(parse_u64) {
                let total = head_end + len as usize;
                ensure!(total <= self.buf.len(), "response larger than the buffer");
                if filled >= total {
                    ensure!(filled == total, "bytes after the response");
                    return Ok(status);
                }
            } else if header_value(head, b"transfer-encoding").is_some() {
                if data.ends_with(b"\r\n0\r\n\r\n") {
                    return Ok(status);
                }
                ensure!(filled < self.buf.len(), "chunked response larger than the buffer");
            } else {
                bail!("response without Content-Length or Transfer-Encoding");
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The value of header `name` (lower case) in a response head, trimmed.
fn header_value<'a>(head: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    head.split(|&b| b == b'\n').find_map(|line| {
        let colon = line.iter().position(|&b| b == b':')?;
        line[..colon].eq_ignore_ascii_case(name).then(|| line[colon + 1..].trim_ascii())
    })
}

fn parse_u64(digits: &[u8]) -> Option<u64> {
    std::str::from_utf8(digits).ok()?.trim().parse().ok()
}

/// Allocation counts over one case's counted requests.
struct Counted {
    allocs: usize,
    deallocs: usize,
    reallocs: usize,
    bytes: usize,
    elapsed: Duration,
}

fn count(conn: &mut Conn, warmup: u64, requests: u64, expect: u16) -> anyhow::Result<Counted> {
    for _ in 0..warmup {
        let status = conn.round_trip()?;
        ensure!(status == expect, "answered {status}, expected {expect}");
    }
    let before = GLOBAL.stats();
    let start = Instant::now();
    let mut wrong = 0u64;
    for _ in 0..requests {
        if conn.round_trip()? != expect {
            wrong += 1;
        }
    }
    let elapsed = start.elapsed();
    let after = GLOBAL.stats();
    ensure!(wrong == 0, "{wrong} answers other than {expect}");
    Ok(Counted {
        allocs: after.allocations - before.allocations,
        deallocs: after.deallocations - before.deallocations,
        reallocs: after.reallocations - before.reallocations,
        bytes: after.bytes_allocated - before.bytes_allocated,
        elapsed,
    })
}

fn wait_healthy(addr: SocketAddr) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if let Ok(mut conn) = Conn::open(addr, "/_gateway/health", None) {
            if conn.round_trip().is_ok_and(|s| s == 200) {
                return Ok(());
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("the gateway did not answer /_gateway/health within 15 s")
}

/// Signs in through the dev flow (the memory harness's client) and returns the session cookie
/// as the callback leaves it: a callback that carries the session's cookie rotates it.
async fn sign_in(base: &str) -> anyhow::Result<String> {
    let gateway = client::Gateway::new(base, 1)?;
    let session = gateway.new_session().await?;
    let url = gateway.callback_url(&session, "bench").await?;
    let url = if url.starts_with("http") { url } else { format!("{base}{url}") };
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).no_proxy().build()?;
    let resp = http.get(&url).header(reqwest::header::COOKIE, &session.cookie).send().await?;
    ensure!(resp.status() == 200, "the callback answered {}", resp.status());
    let rotated = resp
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok()?.split(';').next())
        .find(|pair| pair.starts_with("gw_session="))
        .map(str::to_owned);
    Ok(rotated.unwrap_or(session.cookie))
}

fn run(args: Args) -> anyhow::Result<()> {
    gateway::logging::init(gateway::logging::LogFormat::Text);
    let config = gateway::config::load(&args.config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let listen = config.server.listen;
    std::thread::Builder::new().name("gateway".into()).spawn(move || {
        if let Err(e) = gateway::app::run(config, None, gateway::signals::run_args(false), false) {
            eprintln!("alloc_count: the gateway stopped: {e}");
            std::process::exit(1);
        }
    })?;
    wait_healthy(listen)?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let cookie = rt.block_on(sign_in(&format!("http://{listen}")))?;
    drop(rt);

    let cases: [(&str, SocketAddr, &str, Option<&str>, u16); 4] = [
        ("client alone (upstream directly; the gateway idle)", args.upstream, "/api/items", None, 200),
        ("public route (`GET /index.html`, no cookie)", listen, "/index.html", None, 200),
        ("authenticated route (`GET /api/items`, session cookie)", listen, "/api/items", Some(&cookie), 200),
        ("denied (`GET /api/items`, no cookie: 401)", listen, "/api/items", None, 401),
    ];
    println!("| request | allocations / req | frees / req | reallocs / req | bytes allocated / req | µs / req |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, addr, path, cookie, expect) in cases {
        let mut conn = Conn::open(addr, path, cookie)?;
        let c = count(&mut conn, args.warmup, args.requests, expect).with_context(|| name.to_owned())?;
        let n = args.requests as f64;
        println!(
            "| {name} | {:.1} | {:.1} | {:.1} | {:.0} | {:.1} |",
            c.allocs as f64 / n,
            c.deallocs as f64 / n,
            c.reallocs as f64 / n,
            c.bytes as f64 / n,
            c.elapsed.as_secs_f64() * 1e6 / n
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        // The gateway's threads are still running: leave without waiting for them.
        Ok(()) => std::process::exit(0),
        Err(e) => {
            eprintln!("alloc_count: {e:#}");
            ExitCode::from(1)
        }
    }
}
