//! Several upstreams share the traffic; a dead one is skipped after a health check and comes back
//! when revived; with none alive the client gets a 502 that reveals nothing internal.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{ensure, Context};
use gateway_tests::client::read_echo;
use gateway_tests::{eventually, ports, EchoUpstream, GatewayConfig, TestGateway};
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::StatusCode;

/// Upper bound for a health check (1 s interval in these configs) to notice a change.
const HEALTH_CHANGE_WITHIN: Duration = Duration::from_secs(15);

/// Sends `n` sequential GETs to `url`; every one must be answered by an upstream.
/// Returns how many each upstream instance answered.
async fn hits(client: &reqwest::Client, url: &str, n: usize) -> anyhow::Result<BTreeMap<String, usize>> {
    let mut counts = BTreeMap::new();
    for i in 0..n {
        let resp = client.get(url).send().await.with_context(|| format!("request {i} of {n}"))?;
        let seen = read_echo(resp).await.with_context(|| format!("request {i} of {n}"))?;
        *counts.entry(seen.instance).or_insert(0) += 1;
    }
    Ok(counts)
}

async fn gateway_for(upstreams: &[&EchoUpstream]) -> anyhow::Result<TestGateway> {
    let addrs: Vec<_> = upstreams.iter().map(|u| u.addr()).collect();
    let config = GatewayConfig::on_free_port(&addrs)?.health_check_interval(Duration::from_secs(1));
    TestGateway::with_toml(config).start().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_spread_over_both_upstreams() -> anyhow::Result<()> {
    let a = EchoUpstream::start("a").await?;
    let b = EchoUpstream::start("b").await?;
    let gw = gateway_for(&[&a, &b]).await?;

    let counts = hits(&gw.client()?, &gw.url("/balanced"), 20).await?;

    let (from_a, from_b) = (counts.get("a").copied().unwrap_or(0), counts.get("b").copied().unwrap_or(0));
    assert_eq!(from_a + from_b, 20, "{counts:?}");
    assert!(from_a >= 5 && from_b >= 5, "round robin over 20 requests gave {counts:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_upstream_is_skipped_and_gets_traffic_again_when_revived() -> anyhow::Result<()> {
    let a = EchoUpstream::start("a").await?;
    let b = EchoUpstream::start("b").await?;
    let gw = gateway_for(&[&a, &b]).await?;
    let client = gw.client()?;
    let url = gw.url("/health-checked");
    let counts = hits(&client, &url, 10).await?;
    assert!(counts.contains_key("a") && counts.contains_key("b"), "both should serve at first: {counts:?}");

    let a_port = a.port();
    a.stop().await;
    eventually("after a is stopped, every request is answered by b", HEALTH_CHANGE_WITHIN, || async {
        let counts = hits(&client, &url, 10).await?;
        ensure!(counts.keys().eq(["b"]), "answered by {counts:?}");
        Ok(())
    })
    .await?;
    let counts = hits(&client, &url, 20).await.context("errors after the health check took a out")?;
    assert_eq!(counts, BTreeMap::from([("b".to_owned(), 20)]));

    let a = EchoUpstream::start_on("a", a_port).await?;
    eventually("revived a gets traffic again", HEALTH_CHANGE_WITHIN, || async {
        let counts = hits(&client, &url, 10).await?;
        ensure!(counts.contains_key("a"), "answered by {counts:?}");
        Ok(())
    })
    .await?;
    assert!(a.requests() > 0);
    Ok(())
}

/// One request with `accept`; checks the 502 and its content type, and that the body names no
/// internal address. Returns the body.
async fn bad_gateway(client: &reqwest::Client, url: &str, accept: &str, content_type: &str) -> anyhow::Result<String> {
    // The client reuses its keep-alive connection: a 502 must leave it usable or say `Connection: close`.
    let resp =
        client.get(url).header(ACCEPT, accept).send().await.with_context(|| format!("Accept: {accept}: no answer"))?;
    let status = resp.status();
    let ct = resp.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let body = resp.text().await?;
    ensure!(status == StatusCode::BAD_GATEWAY, "Accept: {accept}: status {status}, body {body}");
    ensure!(ct.starts_with(content_type), "Accept: {accept}: content-type {ct:?}, wanted {content_type}");
    ensure!(!body.contains("127.0.0.1"), "Accept: {accept}: the 502 body names an internal address: {body}");
    Ok(body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_upstreams_down_answers_502_json_or_html_without_internal_addresses() -> anyhow::Result<()> {
    let echo = EchoUpstream::start("a").await?;
    // public_url names `localhost`, so any `127.0.0.1` in a body can only be an internal address.
    let port = ports::free_port()?;
    let config = GatewayConfig::minimal(port, &[echo.addr()])
        .public_url(&format!("http://localhost:{port}"))
        .health_check_interval(Duration::from_secs(1));
    let gw = TestGateway::with_toml(config).start().await?;
    let client = gw.client()?;
    let url = gw.url("/anything?q=1");
    echo.stop().await;

    // Sampled for 2.5 s (bounded count too): first the refused connect, then, once a health check
    // has run, no healthy peer at all. Both must give the same answer.
    let until = tokio::time::Instant::now() + Duration::from_millis(2500);
    let mut pace = tokio::time::interval(Duration::from_millis(250));
    for _ in 0..12 {
        pace.tick().await;
        let json = bad_gateway(&client, &url, "application/json", "application/json").await?;
        let value: serde_json::Value =
            serde_json::from_str(&json).with_context(|| format!("502 body is not JSON: {json}"))?;
        assert_eq!(value["error"], "bad_gateway", "{json}");
        let html = bad_gateway(&client, &url, "text/html,application/xhtml+xml,*/*;q=0.8", "text/html").await?;
        assert!(html.to_ascii_lowercase().contains("<html"), "{html}");
        bad_gateway(&client, &url, "*/*", "text/html").await?;
        if tokio::time::Instant::now() >= until {
            break;
        }
    }
    Ok(())
}
