//! `GET /_gateway/ready`: 503 naming what is missing (store, provider, upstream) until each is
//! there, 200 after; the admin listener answers the same. `/_gateway/health` stays 200 throughout.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::ensure;
use gateway_tests::ports;
use gateway_tests::redis_server::RedisServer;
use gateway_tests::{eventually, EchoUpstream, GatewayConfig, TestGateway};
use serde_json::Value;

/// Longest wait for readiness to change (health checks run every second in tests).
const CHANGE_WAIT: Duration = Duration::from_secs(20);

/// The answer of `GET url`: status and JSON body.
async fn get_json(client: &reqwest::Client, url: &str) -> anyhow::Result<(u16, Value)> {
    let resp = client.get(url).send().await?;
    let status = resp.status().as_u16();
    let body = resp.bytes().await?;
    Ok((status, serde_json::from_slice(&body)?))
}

/// Waits (bounded) until `url` answers `status` with `missing` listing exactly `missing`.
async fn wait_for(client: &reqwest::Client, url: &str, status: u16, missing: &[&str]) -> anyhow::Result<Value> {
    eventually(&format!("GET {url} answers {status} missing {missing:?}"), CHANGE_WAIT, || async {
        let (got, body) = get_json(client, url).await?;
        let listed: Vec<&str> = body["missing"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        ensure!(got == status && listed == missing, "status {got}, body {body}");
        ensure!(body["ready"] == Value::Bool(missing.is_empty()), "body {body}");
        Ok(body)
    })
    .await
}

#[tokio::test]
async fn ready_waits_for_a_healthy_upstream_on_both_listeners() -> anyhow::Result<()> {
    let upstream_port = ports::free_port()?;
    let admin = ports::free_addr()?;
    let config = GatewayConfig::on_free_port(&[SocketAddr::from(([127, 0, 0, 1], upstream_port))])?
        .server_key(&format!("admin_listen = \"{admin}\""));
    let gw = TestGateway::with_toml(config.to_toml()).start().await?;
    let client = gw.client()?;
    let admin_ready = format!("http://{admin}/_gateway/ready");

    wait_for(&client, &gw.url("/_gateway/ready"), 503, &["upstream"]).await?;
    wait_for(&client, &admin_ready, 503, &["upstream"]).await?;
    let (health, _) = get_json(&client, &gw.url("/_gateway/health")).await?;
    assert_eq!(health, 200, "health is liveness and stays 200 while not ready");

    let _echo = EchoUpstream::start_on("app", upstream_port).await?;
    wait_for(&client, &gw.url("/_gateway/ready"), 200, &[]).await?;
    wait_for(&client, &admin_ready, 200, &[]).await?;
    Ok(())
}

#[tokio::test]
async fn ready_waits_for_redis_and_its_subscription() -> anyhow::Result<()> {
    let mut redis = RedisServer::start().await?;
    let echo = EchoUpstream::start("app").await?;
    let config = GatewayConfig::on_free_port(&[echo.addr()])?.extra(&redis.store_table("ready:"));
    let gw = TestGateway::with_toml(config.to_toml()).start().await?;
    let client = gw.client()?;
    let ready = gw.url("/_gateway/ready");

    wait_for(&client, &ready, 200, &[]).await?;
    redis.stop()?;
    wait_for(&client, &ready, 503, &["store"]).await?;
    redis.restart().await?;
    wait_for(&client, &ready, 200, &[]).await?;
    Ok(())
}

#[tokio::test]
async fn ready_names_a_provider_whose_metadata_cannot_be_fetched() -> anyhow::Result<()> {
    let echo = EchoUpstream::start("app").await?;
    // Nothing listens there: discovery keeps failing.
    let issuer = format!("http://{}/", ports::free_addr()?);
    let provider = format!(
        "[providers.broken]\nkind = \"oidc\"\nissuer = \"{issuer}\"\nclient_id = \"gw\"\n\n[providers.dev]\nkind = \"dev\"\n"
    );
    let gw =
        TestGateway::with_toml(GatewayConfig::on_free_port(&[echo.addr()])?.extra(&provider).to_toml()).start().await?;

    wait_for(&gw.client()?, &gw.url("/_gateway/ready"), 503, &["provider:broken"]).await?;
    Ok(())
}
