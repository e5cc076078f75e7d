//! Request smuggling and resource exhaustion over raw TCP: framing the gateway and an upstream
//! could read differently (CL.TE, TE.CL, obfuscated `Transfer-Encoding`, bad chunk sizes),
//! malformed header names, oversize and numerous headers, and slow or idle connections. A
//! smuggled request is always `GET /api/smuggled`: it must never reach the upstream.
//!
//! Already asserted elsewhere: `proxy::post_body_arrives_byte_identical` and
//! `teams::chunked_activities_are_read_whole_and_forwarded_whole` (honest framing passes whole).

use std::time::Duration;

use anyhow::Context;
use futures_util::future::join_all;
use gateway_tests::RawRequest;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::{exchange, read_until_closed, short, Target};

/// The request hidden in a body: it must never reach the upstream.
const SMUGGLED: &str = "GET /api/smuggled HTTP/1.1\r\nHost: HOST\r\n\r\n";

/// Longest wait for the gateway to answer (and close) a hostile connection.
const ANSWER_WAIT: Duration = Duration::from_secs(10);

/// What one hostile request must get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// 400 and the connection closed; nothing reaches the upstream.
    Refused,
    /// One answer for the outer request (forwarded once, with a consistent framing), then the
    /// connection closed, so nothing after the outer body is read as a request.
    OneRequestThenClosed,
}

/// Sends each `(name, head lines, body)` as `POST /public` with this gateway's `Host` on its
/// own connection; returns every way the outcome differed from `expected`.
async fn smuggle(target: &Target, cases: &[(&str, &[&str], &str, Outcome)]) -> anyhow::Result<Vec<String>> {
    let host = target.authority();
    let mut failures = Vec::new();
    for (name, lines, body, expected) in cases {
        let mut bytes = format!("POST /public HTTP/1.1\r\nHost: {host}\r\n");
        for line in *lines {
            bytes.push_str(line);
            bytes.push_str("\r\n");
        }
        bytes.push_str("\r\n");
        bytes.push_str(&body.replace("HOST", &host));
        let before = target.echo.targets().len();
        let answer = exchange(target.gw.addr(), bytes.as_bytes(), ANSWER_WAIT).await?;
        let reached = target.targets_since(before);
        let statuses = answer.statuses();
        let smuggled = reached.iter().any(|t| t.contains("smuggled"));
        let ok = match expected {
            Outcome::Refused => statuses == [400] && answer.closed && reached.is_empty(),
            Outcome::OneRequestThenClosed => {
                statuses.len() == 1 && answer.closed && reached == ["POST /public"] && !smuggled
            }
        };
        if !ok {
            failures.push(format!(
                "{name}: expected {expected:?}; got answers {statuses:?} (closed: {}), upstream saw {reached:?}\n{}",
                answer.closed,
                short(&answer.text())
            ));
        }
    }
    Ok(failures)
}

// Guards against CVE-2022-24766 (mitmproxy) and CVE-2023-25690 (Apache), CL.TE and TE.CL
// desync: one framing wins, the connection is not reused, and nothing after the body is read as
// another request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicting_framing_never_lets_a_second_request_through() -> anyhow::Result<()> {
    let target = Target::start(|c| c).await?;
    let chunked_then_smuggled = format!("0\r\n\r\n{SMUGGLED}");
    let length = format!("Content-Length: {}", chunked_then_smuggled.len());
    let cl_then_te = [length.as_str(), "Transfer-Encoding: chunked"];
    let cases: Vec<(&str, &[&str], &str, Outcome)> = vec![
        ("CL then TE", &cl_then_te, &chunked_then_smuggled, Outcome::OneRequestThenClosed),
        (
            "TE then CL",
            &["Transfer-Encoding: chunked", "Content-Length: 4"],
            &chunked_then_smuggled,
            Outcome::OneRequestThenClosed,
        ),
        (
            "TE chunked then identity",
            &["Transfer-Encoding: chunked", "Transfer-Encoding: identity", "Content-Length: 5"],
            "0\r\n\r\n",
            Outcome::Refused,
        ),
        (
            "TE chunked, identity",
            &["Transfer-Encoding: chunked, identity", "Content-Length: 5"],
            "0\r\n\r\n",
            Outcome::Refused,
        ),
        ("TE xchunked", &["Transfer-Encoding: xchunked", "Content-Length: 5"], "0\r\n\r\n", Outcome::Refused),
        (
            "TE with a space before the colon",
            &["Transfer-Encoding : chunked", "Content-Length: 5"],
            "0\r\n\r\n",
            Outcome::Refused,
        ),
        (
            "two different Content-Lengths",
            &["Content-Length: 5", "Content-Length: 45"],
            &chunked_then_smuggled,
            Outcome::Refused,
        ),
        ("Content-Length list of two values", &["Content-Length: 5, 45"], &chunked_then_smuggled, Outcome::Refused),
        ("signed Content-Length", &["Content-Length: +5"], &chunked_then_smuggled, Outcome::Refused),
        ("hex Content-Length", &["Content-Length: 0x5"], &chunked_then_smuggled, Outcome::Refused),
    ];

    let failures = smuggle(&target, &cases).await?;

    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // HTTP/1.0 cannot carry Transfer-Encoding at all (RFC 9112 §6.1).
    let host = target.authority();
    let old = format!("POST /public HTTP/1.0\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
    let answer = exchange(target.gw.addr(), old.as_bytes(), ANSWER_WAIT).await?;
    assert_eq!(answer.statuses(), [400], "{}", answer.text());
    assert!(!target.echo.targets().iter().any(|t| t.contains("smuggled")), "{:?}", target.echo.targets());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_chunk_sizes_end_the_connection_before_any_smuggled_request() -> anyhow::Result<()> {
    let target = Target::start(|c| c).await?;
    let mut failures = Vec::new();
    for (name, body) in [
        ("letters", "ZZ\r\nhello\r\n0\r\n\r\n"),
        ("negative", "-5\r\nhello\r\n0\r\n\r\n"),
        ("0x prefix", "0x5\r\nhello\r\n0\r\n\r\n"),
        ("overflowing", "ffffffffffffffffffff\r\nhello\r\n0\r\n\r\n"),
        ("data longer than its size", "2\r\nhello\r\n0\r\n\r\n"),
        ("no CRLF after the data", "5\r\nhelloXX0\r\n\r\n"),
    ] {
        let host = target.authority();
        let bytes = format!(
            "POST /public HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n\r\n{body}{}",
            SMUGGLED.replace("HOST", &host)
        );
        let before = target.echo.targets().len();
        let answer = exchange(target.gw.addr(), bytes.as_bytes(), ANSWER_WAIT).await?;
        let reached = target.targets_since(before);
        let statuses = answer.statuses();
        // The head may already be upstream when the bad chunk arrives; the client then gets
        // 400 (or 502 when the upstream gave up first), never the upstream's 200, and the
        // connection ends.
        let refused = statuses.len() == 1 && matches!(statuses[0], 400 | 502);
        // Pingora may retry the broken request once on a fresh upstream connection; it never
        // completes there, and nothing after it is read as a request.
        if !refused || !answer.closed || reached.iter().any(|t| t != "POST /public") {
            failures.push(format!(
                "{name}: answers {statuses:?} (closed: {}), upstream saw {reached:?}\n{}",
                answer.closed,
                short(&answer.text())
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_names_with_spaces_or_controls_are_refused_with_400() -> anyhow::Result<()> {
    let target = Target::start(|c| c).await?;
    let cases: Vec<(&str, &[&str], &str, Outcome)> = vec![
        ("space before the colon", &["X-Forwarded-User : mallory"], "", Outcome::Refused),
        ("tab before the colon", &["X-Forwarded-User\t: mallory"], "", Outcome::Refused),
        ("spaces inside the name", &["X Forwarded User: mallory"], "", Outcome::Refused),
        ("NUL in the name", &["X-Forwarded\0-User: mallory"], "", Outcome::Refused),
        ("NUL in the value", &["X-Note: a\0b"], "", Outcome::Refused),
        ("bare CR in the value", &["X-Note: a\rX-Forwarded-User: mallory"], "", Outcome::Refused),
        ("no colon", &["X-Forwarded-User mallory"], "", Outcome::Refused),
        ("empty name", &[": mallory"], "", Outcome::Refused),
    ];

    let failures = smuggle(&target, &cases).await?;

    assert!(failures.is_empty(), "{}", failures.join("\n"));
    Ok(())
}

// Guards against memory exhaustion by request heads: an oversize head is answered 431 naming
// the problem, a head with too many fields 400; neither reaches the upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_and_numerous_headers_are_refused() -> anyhow::Result<()> {
    let target = Target::start(|c| c).await?;
    let host = target.authority();

    let big = "a".repeat(100 * 1024);
    let oversize = target.raw("GET", "/public", &[("Accept", "application/json"), ("X-Big", &big)]).await?;
    assert_eq!(oversize.status, 431, "{}", short(&oversize.text()));
    let json: serde_json::Value = serde_json::from_slice(&oversize.body).unwrap_or_default();
    assert_eq!(json["error"], "request_header_fields_too_large", "{}", short(&oversize.text()));

    let cookies = target.raw("GET", "/public", &[("Cookie", &format!("a={}", "b".repeat(70 * 1024)))]).await?;
    assert_eq!(cookies.status, 431, "{}", short(&cookies.text()));
    assert!(cookies.text().contains("Request headers too large"), "{}", short(&cookies.text()));

    let huge = format!("GET /public HTTP/1.1\r\nHost: {host}\r\nX-Huge: {}\r\n\r\n", "a".repeat(2 * 1024 * 1024));
    let answer = exchange(target.gw.addr(), huge.as_bytes(), ANSWER_WAIT).await?;
    assert!(matches!(answer.statuses().as_slice(), [400] | [431]), "{:?}", answer.statuses());

    let mut many = RawRequest::get("/public").header("Host", &host);
    for i in 0..300 {
        many = many.header(&format!("X-H{i}"), "v");
    }
    let answer = exchange(target.gw.addr(), &many.to_bytes(), ANSWER_WAIT).await?;
    assert_eq!(answer.statuses(), [400], "{}", short(&answer.text()));

    assert!(target.echo.targets().is_empty(), "the upstream saw {:?}", target.echo.targets());
    // Large but sane heads still pass.
    let fine = target.raw("GET", "/public", &[("X-Fine", &"a".repeat(8 * 1024))]).await?;
    assert_eq!(fine.echo()?.header("x-fine").map(|v| v.len()), Some(8 * 1024));
    Ok(())
}

// Guards against slowloris and idle-connection exhaustion: a keep-alive connection left idle
// after its answer is closed by the gateway (`server.idle_timeout`), and clients stuck half-way
// through a head do not stop others being served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_slow_connections_are_bounded_and_starve_no_one() -> anyhow::Result<()> {
    let target = Target::start(|c| c.server_key("idle_timeout = \"1s\"")).await?;
    let host = target.authority();

    // An idle keep-alive connection: answered, then closed within the idle timeout.
    let mut idle = TcpStream::connect(target.gw.addr()).await?;
    idle.write_all(format!("GET /public/idle HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes()).await?;
    let answer = read_until_closed(&mut idle, Duration::from_secs(8)).await?;
    assert_eq!(answer.statuses(), [200], "{}", answer.text());
    assert!(answer.closed, "an idle keep-alive connection was still open 8 s after its answer (idle_timeout 1 s)");

    // A client asking for a longer keep-alive does not get it either.
    let mut greedy = TcpStream::connect(target.gw.addr()).await?;
    let head = "Connection: keep-alive\r\nKeep-Alive: timeout=3600";
    greedy.write_all(format!("GET /public/greedy HTTP/1.1\r\nHost: {host}\r\n{head}\r\n\r\n").as_bytes()).await?;
    let answer = read_until_closed(&mut greedy, Duration::from_secs(8)).await?;
    assert!(answer.closed, "Keep-Alive: timeout=3600 kept the connection past the idle timeout");

    // A second head left half-sent after the first answer is cut too.
    let mut slow = TcpStream::connect(target.gw.addr()).await?;
    slow.write_all(format!("GET /public/first HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes()).await?;
    let first = read_until_closed(&mut slow, Duration::from_millis(300)).await?;
    assert_eq!((first.statuses(), first.closed), (vec![200], false), "{}", short(&first.text()));
    slow.write_all(format!("GET /public/second HTTP/1.1\r\nHost: {host}\r\nX-Slow: ").as_bytes()).await?;
    let rest = read_until_closed(&mut slow, Duration::from_secs(8)).await?;
    assert!(rest.closed, "a half-sent second head kept the connection open 8 s (idle_timeout 1 s)");
    assert!(rest.statuses().is_empty(), "the half-sent head was answered: {}", short(&rest.text()));

    // 200 connections stuck half-way through their first head; everyone else is still served.
    let mut stuck = Vec::new();
    for _ in 0..200 {
        let mut s = TcpStream::connect(target.gw.addr()).await?;
        s.write_all(format!("GET /api/stuck HTTP/1.1\r\nHost: {host}\r\nX-Slow: ").as_bytes()).await?;
        stuck.push(s);
    }
    let client = target.gw.client()?;
    let served = join_all((0..20).map(|i| {
        let client = client.clone();
        let url = target.gw.url(&format!("/public/{i}"));
        async move { tokio::time::timeout(Duration::from_secs(10), client.get(&url).send()).await }
    }))
    .await;
    for (i, r) in served.into_iter().enumerate() {
        let status = r.with_context(|| format!("request {i} not served within 10 s"))??.status();
        assert_eq!(status, 200, "request {i}");
    }
    assert!(!target.echo.targets().iter().any(|t| t.contains("stuck")), "a half-sent head reached the upstream");
    drop(stuck);
    Ok(())
}
