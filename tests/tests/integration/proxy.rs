//! Requests and WebSockets pass through the gateway unchanged; bodies stream; upstream
//! connections are kept alive.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use futures_util::{stream, SinkExt, StreamExt};
use gateway_tests::client::{read_echo, websocket_connect};
use gateway_tests::upstream::{hex, sha256_hex};
use gateway_tests::{EchoUpstream, GatewayConfig, TestGateway};
use sha2::{Digest, Sha256};
use tokio_tungstenite::tungstenite::Message;

/// Size of one chunk of the streamed upload.
const UPLOAD_CHUNK: usize = 1 << 20;

/// Chunks in the streamed upload: 100 MiB in all.
const UPLOAD_CHUNKS: usize = 100;

/// Most the gateway's peak RSS may grow while proxying the upload, in KiB.
const UPLOAD_MAX_GROWTH_KIB: u64 = 50 * 1024;

async fn gateway_for(echo: &EchoUpstream) -> anyhow::Result<TestGateway> {
    TestGateway::with_toml(GatewayConfig::on_free_port(&[echo.addr()])?).start().await
}

/// Deterministic, non-repeating-per-chunk-boundary bytes.
fn pattern(len: usize, modulus: usize) -> Vec<u8> {
    (0..len).map(|i| u8::try_from(i % modulus).unwrap_or(0)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_passes_method_path_and_query_through() -> anyhow::Result<()> {
    let echo = EchoUpstream::start("a").await?;
    let gw = gateway_for(&echo).await?;

    let resp = gw.client()?.get(gw.url("/some/deep/path?x=1&y=two%20words&x=3")).send().await?;
    let seen = read_echo(resp).await?;

    assert_eq!(seen.method, "GET");
    assert_eq!(seen.path, "/some/deep/path");
    assert_eq!(seen.query.as_deref(), Some("x=1&y=two%20words&x=3"));
    assert_eq!(seen.body_len, 0);
    assert_eq!(seen.instance, "a");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_body_arrives_byte_identical() -> anyhow::Result<()> {
    let echo = EchoUpstream::start("a").await?;
    let gw = gateway_for(&echo).await?;
    let body = pattern(256 * 1024 + 7, 251);

    let resp = gw
        .client()?
        .post(gw.url("/submit?kind=form"))
        .header("content-type", "application/octet-stream")
        .body(body.clone())
        .send()
        .await?;
    let seen = read_echo(resp).await?;

    assert_eq!(seen.method, "POST");
    assert_eq!(seen.path, "/submit");
    assert_eq!(seen.query.as_deref(), Some("kind=form"));
    assert_eq!(seen.body_len, body.len() as u64);
    assert_eq!(seen.body_sha256, sha256_hex(&body));
    assert_eq!(seen.header("content-type").as_deref(), Some("application/octet-stream"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_methods_pass_through_with_their_bodies() -> anyhow::Result<()> {
    let echo = EchoUpstream::start("a").await?;
    let gw = gateway_for(&echo).await?;
    let client = gw.client()?;

    for method in ["PUT", "PATCH", "DELETE", "OPTIONS"] {
        let body = format!("{method} body");
        let method = reqwest::Method::from_bytes(method.as_bytes())?;
        let resp = client.request(method.clone(), gw.url("/items/7")).body(body.clone()).send().await?;
        let seen = read_echo(resp).await.with_context(|| format!("{method} /items/7"))?;
        assert_eq!(seen.method, method.as_str());
        assert_eq!(seen.path, "/items/7");
        assert_eq!(seen.body_sha256, sha256_hex(body.as_bytes()), "{method}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_of_100_mb_streams_through_the_binary_in_bounded_memory() -> anyhow::Result<()> {
    let echo = EchoUpstream::start("a").await?;
    let gw = TestGateway::with_toml(GatewayConfig::on_free_port(&[echo.addr()])?).spawn_binary().await?;
    let client = gw.client()?;
    // Warm up (connection pools, lazily built state) so only the upload's cost is measured.
    read_echo(client.post(gw.url("/upload")).body("warm-up").send().await?).await?;
    let before_kib = gw.vm_hwm_kib()?;

    let chunk = Bytes::from(pattern(UPLOAD_CHUNK, 253));
    let mut hasher = Sha256::new();
    for _ in 0..UPLOAD_CHUNKS {
        hasher.update(&chunk);
    }
    let expected_sha256 = hex(&hasher.finalize());
    let chunks = stream::iter((0..UPLOAD_CHUNKS).map(move |_| Ok::<_, std::io::Error>(chunk.clone())));
    let resp = client.post(gw.url("/upload")).body(reqwest::Body::wrap_stream(chunks)).send().await?;
    let seen = read_echo(resp).await.with_context(|| gw.process().map(|p| p.logs()).unwrap_or_default())?;

    assert_eq!(seen.body_len, (UPLOAD_CHUNK * UPLOAD_CHUNKS) as u64);
    assert_eq!(seen.body_sha256, expected_sha256);
    let after_kib = gw.vm_hwm_kib()?;
    let growth_kib = after_kib.saturating_sub(before_kib);
    assert!(
        growth_kib < UPLOAD_MAX_GROWTH_KIB,
        "gateway peak RSS grew by {growth_kib} KiB ({before_kib} -> {after_kib}) for a 100 MiB upload"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_reuses_upstream_connections() -> anyhow::Result<()> {
    let echo = EchoUpstream::start("a").await?;
    let gw = gateway_for(&echo).await?;
    let client = gw.client()?;

    let mut conn_ids = BTreeSet::new();
    for i in 0..20 {
        let seen = read_echo(client.get(gw.url(&format!("/keep-alive/{i}"))).send().await?).await?;
        conn_ids.insert(seen.conn_id);
    }

    assert!(conn_ids.len() <= 2, "20 sequential requests used upstream connections {conn_ids:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_messages_round_trip_through_the_gateway() -> anyhow::Result<()> {
    let echo = EchoUpstream::start("a").await?;
    let gw = gateway_for(&echo).await?;
    let mut ws = websocket_connect(&gw.ws_url("/ws/echo"), &[]).await?;

    for msg in [Message::text("hello through the gateway"), Message::binary(vec![0u8, 1, 2, 254, 255])] {
        ws.send(msg.clone()).await?;
        let reply = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .context("no WebSocket reply within 10 s")?
            .context("WebSocket closed before replying")??;
        assert_eq!(reply, msg);
    }
    ws.close(None).await?;
    Ok(())
}
