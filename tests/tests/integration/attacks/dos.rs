//! Denial of service by one client: idle connections past the open-files limit, slow request
//! heads and bodies (slowloris), and Engine.IO handshakes that never join. Each attack runs
//! while a bystander (`load::Load`, from another address) keeps sending; every bystander answer
//! must be 2xx, and its latency is printed (`--nocapture`), never asserted. Limits are lowered
//! so each attack needs hundreds of connections, not tens of thousands.
//!
//! Client addresses: the bystander is `127.0.0.1`; a connection attacker binds `127.0.0.2`
//! (loopback on Linux); channel attackers are named by `X-Forwarded-For` through a trusted
//! proxy (`127.0.0.1`), so the per-address limits are seen to use the address the gateway trusts.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use futures_util::future::join_all;
use gateway_tests::client::connect_from;
use gateway_tests::load::{describe_failures, Latency, Load, Probe, Sample, Tally};
use gateway_tests::signin::dev_config;
use gateway_tests::{eventually, metrics, ports, EchoUpstream, GatewayConfig, TestGateway};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{read_until_closed, short, Exchange};

/// The attacker's address for connection attacks.
const ATTACKER: &str = "127.0.0.2";
/// Longest wait for any one answer or close in these tests.
const WAIT: Duration = Duration::from_secs(10);

/// A gateway with the `dev` provider, socket.io, an admin listener for `/metrics`, the
/// `[server]` lines `server` and the `[channel]` lines `channel`.
struct Abused {
    _echo: EchoUpstream,
    gw: TestGateway,
    admin: std::net::SocketAddr,
}

impl Abused {
    async fn start(server: &[&str], channel: &[&str]) -> anyhow::Result<Self> {
        Self::start_with(server, channel, |c| c).await
    }

    async fn start_with(
        server: &[&str],
        channel: &[&str],
        adjust: impl FnOnce(GatewayConfig) -> GatewayConfig,
    ) -> anyhow::Result<Self> {
        let echo = EchoUpstream::start("app").await?;
        let admin = std::net::SocketAddr::from(([127, 0, 0, 1], ports::free_port()?));
        let mut config: GatewayConfig =
            adjust(dev_config(echo.addr(), channel)?.server_key(&format!("admin_listen = \"{admin}\"")));
        for line in server {
            config = config.server_key(line);
        }
        let gw = TestGateway::with_toml(config).start().await?;
        Ok(Self { _echo: echo, gw, admin })
    }

    /// `gateway_limit_refusals_total{limit}`.
    async fn refusals(&self, limit: &str) -> anyhow::Result<f64> {
        let text = metrics::scrape(self.admin).await?;
        Ok(metrics::value(&text, "gateway_limit_refusals_total", &[("limit", limit)]))
    }

    /// Waits (bounded) until `gateway_open_connections` is `n`.
    async fn wait_open(&self, n: f64) -> anyhow::Result<()> {
        eventually(&format!("{n} open connections"), WAIT, || async {
            let open = metrics::value(&metrics::scrape(self.admin).await?, "gateway_open_connections", &[]);
            ensure!(open == n, "{open} open");
            Ok(())
        })
        .await
    }

    /// A bystander load on public pages and the health route.
    fn bystander(&self) -> anyhow::Result<Load> {
        Load::start(
            self.gw.endpoint(),
            vec![Probe::anonymous("bystander", "/public/page"), Probe::anonymous("bystander", "/_gateway/health")],
        )
    }

    /// `GET path` with `headers` on a fresh connection from 127.0.0.1; status and head text.
    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> anyhow::Result<(u16, String)> {
        let mut req =
            format!("GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n", self.gw.endpoint().authority());
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        let answer = super::exchange(self.gw.addr(), req.as_bytes(), WAIT).await?;
        let status = answer.statuses().first().copied().context("no answer")?;
        Ok((status, answer.text()))
    }
}

/// Stops the bystander; fails unless every answer was 2xx; prints what it saw.
async fn bystander_report(what: &str, load: Load) -> anyhow::Result<Vec<Sample>> {
    let samples = load.finish().await?;
    let tally = Tally::of(&samples);
    println!("dos: {what}: bystander {tally}; latency {}", Latency::of(&samples));
    ensure!(!samples.is_empty(), "{what}: the bystander got no answer at all");
    ensure!(
        tally.non_2xx() == 0,
        "{what}: bystander failures {tally}:\n{}",
        describe_failures(&samples, Sample::is_2xx)
    );
    Ok(samples)
}

/// Reads what `stream` got within `within` (an admitted idle connection gets nothing).
async fn answer_of(mut stream: TcpStream, within: Duration) -> anyhow::Result<Exchange> {
    read_until_closed(&mut stream, within).await
}

// Guards against descriptor exhaustion from one address (Pingora then logs `Accept() failed …
// Too many open files` and stalls every client): connections past
// `server.max_connections_per_client` get 429 with Retry-After at once, past
// `server.max_connections` 503, and the bystander on another address is served throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_of_one_address_are_capped_and_starve_no_one() -> anyhow::Result<()> {
    gateway_tests::limits::ensure_open_files(4096)?;
    let abused = Abused::start(&["max_connections = 300", "max_connections_per_client = 100"], &[]).await?;
    let attacker: IpAddr = ATTACKER.parse()?;
    let load = abused.bystander()?;
    load.run_for(20).await?;

    let mut held = Vec::new();
    for _ in 0..150 {
        held.push(connect_from(attacker, abused.gw.addr()).await?);
    }
    load.run_for(100).await?;
    let answers = join_all(held.into_iter().map(|s| answer_of(s, Duration::from_secs(2)))).await;
    let mut refused = 0;
    for answer in answers {
        let answer = answer?;
        match answer.statuses().as_slice() {
            [] => ensure!(!answer.closed, "an admitted idle connection was closed within 2 s"),
            [429] => {
                ensure!(
                    answer.text().to_ascii_lowercase().contains("retry-after: "),
                    "429 without Retry-After: {}",
                    answer.text()
                );
                refused += 1;
            }
            other => anyhow::bail!("unexpected answer {other:?}: {}", short(&answer.text())),
        }
    }
    bystander_report("150 idle connections from one address", load).await?;
    assert_eq!(refused, 50, "connections past max_connections_per_client = 100 refused");
    assert_eq!(abused.refusals("connections_per_client").await?, 50.0);

    // The gateway-wide limit: more addresses fill it; the next connection gets 503. Admission
    // runs on a task per connection, so the count is awaited before and after the fill.
    abused.wait_open(0.0).await?;
    let mut fill = Vec::new();
    for host in ["127.0.0.3", "127.0.0.4", "127.0.0.5"] {
        for _ in 0..100 {
            fill.push(connect_from(host.parse()?, abused.gw.addr()).await?);
        }
    }
    abused.wait_open(300.0).await?;
    let late = connect_from("127.0.0.6".parse()?, abused.gw.addr()).await?;
    let late = answer_of(late, WAIT).await?;
    assert_eq!(late.statuses(), [503], "{}", short(&late.text()));
    assert!(late.text().to_ascii_lowercase().contains("retry-after: "), "{}", late.text());
    assert!(abused.refusals("connections").await? >= 1.0);
    drop(fill);
    eventually("the bystander is served once the flood is gone", WAIT, || async {
        let (status, text) = abused.get("/public/after", &[]).await?;
        ensure!(status == 200, "{status}: {}", short(&text));
        Ok(())
    })
    .await
}

/// Sends `head` then one byte of `drip` every `gap`, at most `drips` times, while reading; ends
/// when the gateway closes the connection. Returns what was read and how long it took.
async fn drip(
    from: IpAddr,
    addr: std::net::SocketAddr,
    head: String,
    drips: usize,
) -> anyhow::Result<(Exchange, Duration)> {
    let gap = Duration::from_millis(200);
    let started = Instant::now();
    let mut stream = connect_from(from, addr).await?;
    stream.write_all(head.as_bytes()).await?;
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    for _ in 0..drips {
        tokio::select! {
            read = stream.read(&mut buf) => match read {
                Ok(0) | Err(_) => return Ok((Exchange { bytes, closed: true }, started.elapsed())),
                Ok(n) => bytes.extend_from_slice(&buf[..n]),
            },
            _ = tokio::time::sleep(gap) => {
                if stream.write_all(b"a").await.is_err() {
                    let rest = read_until_closed(&mut stream, Duration::from_secs(1)).await?;
                    bytes.extend(rest.bytes);
                    return Ok((Exchange { bytes, closed: true }, started.elapsed()));
                }
            }
        }
    }
    Ok((Exchange { bytes, closed: false }, started.elapsed()))
}

// Guards against slowloris (Pingora 0.9 restarts its read timeout with every byte of a head and
// has no minimum body rate): heads dripping a byte every 200 ms and a body dripping as slowly
// get 408 and are closed soon after `server.header_timeout` (1 s here), a connection that sends
// nothing is closed silently, and the bystander is served throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_heads_and_bodies_get_408_and_starve_no_one() -> anyhow::Result<()> {
    gateway_tests::limits::ensure_open_files(2048)?;
    let abused = Abused::start(&["header_timeout = \"1s\"", "body_min_rate = 1024"], &[]).await?;
    let (attacker, addr, host) =
        (ATTACKER.parse::<IpAddr>()?, abused.gw.addr(), abused.gw.endpoint().authority().to_owned());
    let load = abused.bystander()?;
    load.run_for(20).await?;

    // 40 drips of 200 ms: 8 s, far past the 1 s deadline.
    let heads =
        (0..200).map(|i| drip(attacker, addr, format!("GET /public/slow{i} HTTP/1.1\r\nHost: {host}\r\nX-Slow: "), 40));
    let body = format!(
        "POST /public/upload HTTP/1.1\r\nHost: {host}\r\nContent-Type: text/plain\r\nContent-Length: 100000\r\n\r\n"
    );
    let (heads, body, silent) = tokio::join!(
        join_all(heads),
        drip(attacker, addr, body, 40),
        answer_of(connect_from(attacker, addr).await?, WAIT)
    );
    let mut slowest = Duration::ZERO;
    for (i, head) in heads.into_iter().enumerate() {
        let (answer, took) = head?;
        ensure!(answer.closed, "slow head {i} was still open after 8 s");
        ensure!(answer.statuses() == [408], "slow head {i}: {}", short(&answer.text()));
        slowest = slowest.max(took);
    }
    let (body, body_took) = body?;
    assert!(body.closed, "the slow body was still open after 8 s");
    assert_eq!(body.statuses(), [408], "{}", short(&body.text()));
    let silent = silent?;
    assert!(silent.closed && silent.bytes.is_empty(), "a silent connection got {:?}", silent.text());
    println!(
        "dos: 200 slow heads closed within {:.1} s, the slow body within {:.1} s",
        slowest.as_secs_f64(),
        body_took.as_secs_f64()
    );
    bystander_report("200 slow heads and a slow body", load).await?;
    assert!(abused.refusals("header_timeout").await? >= 200.0);
    assert!(abused.refusals("body_rate").await? >= 1.0);
    Ok(())
}

/// An Engine.IO 4 polling handshake from the client `xff` names (through the trusted proxy
/// 127.0.0.1), or from 127.0.0.1 itself; the status and whether `Retry-After` came with it.
async fn handshake(abused: &Abused, xff: Option<&str>) -> anyhow::Result<(u16, bool)> {
    let headers: Vec<(&str, &str)> = xff.map(|a| ("X-Forwarded-For", a)).into_iter().collect();
    let (status, text) = abused.get("/socket.io/?EIO=4&transport=polling", &headers).await?;
    Ok((status, text.to_ascii_lowercase().contains("retry-after: ")))
}

// Guards against Engine.IO handshake floods (100,000 handshakes that never join filled the
// global table and every user got `503 Server busy` for ~30 s): one client address gets at most
// `channel.max_sockets_per_client` entries (429 with Retry-After past it), unjoined entries go
// after `channel.join_timeout`, a full table (many addresses) answers 503 with Retry-After and
// frees itself within seconds, and the bystander is served throughout the one-address flood.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_io_handshake_floods_are_capped_per_client_and_expire() -> anyhow::Result<()> {
    let channel = ["max_sockets_per_client = 20", "max_sockets = 100", "join_timeout = \"1s\""];
    let abused = Abused::start_with(&[], &channel, |c| c.trusted_proxies(&["127.0.0.1/32"])).await?;
    let load = abused.bystander()?;
    load.run_for(20).await?;

    let bystander = async {
        let mut seen = Vec::new();
        for _ in 0..10 {
            let started = Instant::now();
            seen.push((handshake(&abused, Some("198.51.100.7")).await, started.elapsed()));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        seen
    };
    let (flood, bystander_handshakes) =
        tokio::join!(join_all((0..200).map(|_| handshake(&abused, Some("203.0.113.66")))), bystander);
    let statuses: Vec<(u16, bool)> = flood.into_iter().collect::<anyhow::Result<_>>()?;
    let accepted = statuses.iter().filter(|(s, _)| *s == 200).count();
    let limited = statuses.iter().filter(|(s, retry)| *s == 429 && *retry).count();
    assert_eq!((accepted, limited), (20, 180), "{statuses:?}");
    for (answer, took) in bystander_handshakes {
        assert_eq!(answer?.0, 200, "a bystander's handshake during the flood");
        println!("dos: bystander handshake during the flood: {:.1} ms", took.as_secs_f64() * 1000.0);
    }
    bystander_report("200 handshakes from one client", load).await?;
    assert_eq!(abused.refusals("channel_per_client").await?, 180.0);

    // The flooder's entries never join: they expire, and it may handshake again.
    eventually("unjoined entries expire after join_timeout", WAIT, || async {
        let (status, _) = handshake(&abused, Some("203.0.113.66")).await?;
        ensure!(status == 200, "still {status}");
        Ok(())
    })
    .await?;
    // Every entry opened so far (the flooder's 20 and its last one, the bystander's 10) expires.
    eventually("every unjoined entry is counted as expired", WAIT, || async {
        let expired = abused.refusals("join_timeout").await?;
        ensure!(expired >= 31.0, "{expired} expired");
        Ok(())
    })
    .await?;

    // Many addresses fill the table (100): 503 with Retry-After, then it frees itself.
    let addresses: Vec<String> = (1..=8).map(|i| format!("192.0.2.{i}")).collect();
    let fill = join_all((0..160).map(|i| handshake(&abused, Some(addresses[i % 8].as_str())))).await;
    let busy = fill.iter().filter(|r| matches!(r, Ok((503, true)))).count();
    assert!(busy >= 1, "a full table answered no 503 with Retry-After");
    let full_at = Instant::now();
    eventually("the table frees itself after join_timeout", WAIT, || async {
        let (status, _) = handshake(&abused, Some("198.51.100.8")).await?;
        ensure!(status == 200, "still {status}");
        Ok(())
    })
    .await?;
    println!("dos: handshakes served again {:.1} s after the table was full", full_at.elapsed().as_secs_f64());
    assert!(abused.refusals("channel_total").await? >= 1.0);
    Ok(())
}
