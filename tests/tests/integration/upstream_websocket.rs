//! WebSockets to the add-in server that carry a signed-in identity end with it: the gateway
//! closes both sides with 1008 ("session expired") when the session's tokens go away by
//! lifetime or logout (docs/architecture.md#request-path). Anonymous WebSockets pass through.

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use futures_util::{SinkExt, StreamExt};
use gateway_tests::client::{websocket_connect, WebSocket};
use gateway_tests::signin::{dev_config, Browser};
use gateway_tests::{EchoUpstream, TestGateway};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

/// Longest wait for one echo or close.
const WAIT: Duration = Duration::from_secs(10);

async fn gateway(session_keys: &[&str]) -> anyhow::Result<(EchoUpstream, TestGateway)> {
    let echo = EchoUpstream::start("app").await?;
    let mut config = dev_config(echo.addr(), &[])?;
    for line in session_keys {
        config = config.session_key(line);
    }
    Ok((echo, TestGateway::with_toml(config).start().await?))
}

async fn signed_in(gw: &TestGateway, user: &str) -> anyhow::Result<Browser> {
    let mut browser = Browser::new(gw.endpoint())?;
    browser.sign_in_dev(user).await?;
    Ok(browser)
}

/// Opens `/api/ws` (a protected route) with the browser's cookie.
async fn open(gw: &TestGateway, browser: &Browser) -> anyhow::Result<WebSocket> {
    let cookie = browser.cookie_header().context("no session cookie")?;
    websocket_connect(&gw.ws_url("/api/ws"), &[("cookie", &cookie)]).await
}

async fn echoes(ws: &mut WebSocket, text: &str) -> anyhow::Result<()> {
    ws.send(Message::text(text)).await?;
    let reply = tokio::time::timeout(WAIT, ws.next()).await.context("no echo in time")?.context("closed")??;
    ensure!(reply == Message::text(text), "echo of {text:?} came back as {reply:?}");
    Ok(())
}

/// The next frame must be a close with 1008 and the reason `session expired`.
async fn closed_for_expiry(ws: &mut WebSocket) -> anyhow::Result<()> {
    loop {
        let next = tokio::time::timeout(WAIT, ws.next()).await.context("no close frame in time")?;
        match next {
            Some(Ok(Message::Close(Some(frame)))) => {
                ensure!(frame.code == CloseCode::Policy, "closed with {:?}, not 1008", frame.code);
                ensure!(frame.reason == "session expired", "close reason {:?}", frame.reason);
                return Ok(());
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            other => bail!("expected a 1008 close frame, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_lifetime_end_closes_the_upstream_websocket_with_1008() -> anyhow::Result<()> {
    let (_echo, gw) = gateway(&["token_ttl = \"2s\""]).await?;
    let started = Instant::now();
    let browser = signed_in(&gw, "ada").await?;
    let mut ws = open(&gw, &browser).await?;
    echoes(&mut ws, "before expiry").await?;
    closed_for_expiry(&mut ws).await?;
    ensure!(started.elapsed() >= Duration::from_millis(1500), "closed after only {:?}", started.elapsed());
    // The same cookie no longer opens one.
    let again = open(&gw, &browser).await;
    ensure!(again.is_err(), "an expired session opened a protected WebSocket");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_closes_the_upstream_websocket_and_spares_other_sessions() -> anyhow::Result<()> {
    let (_echo, gw) = gateway(&[]).await?;
    let mut ada = signed_in(&gw, "ada").await?;
    let grace = signed_in(&gw, "grace").await?;
    let mut ws_ada = open(&gw, &ada).await?;
    let mut ws_grace = open(&gw, &grace).await?;
    echoes(&mut ws_ada, "ada 1").await?;
    echoes(&mut ws_grace, "grace 1").await?;

    let origin = ada.origin();
    ensure!(ada.logout(Some(&origin)).await?.status == 204, "logout failed");
    closed_for_expiry(&mut ws_ada).await?;
    // Another session's socket is untouched.
    echoes(&mut ws_grace, "grace 2").await?;
    ws_grace.close(None).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protected_websocket_needs_a_sign_in_and_anonymous_ones_pass_through() -> anyhow::Result<()> {
    let (_echo, gw) = gateway(&[]).await?;
    let refused = websocket_connect(&gw.ws_url("/api/ws"), &[]).await;
    let message = format!("{:#}", refused.err().context("a protected WebSocket opened without a session")?);
    ensure!(message.contains("401"), "refused without 401: {message}");
    let mut public = websocket_connect(&gw.ws_url("/ws/echo"), &[]).await?;
    echoes(&mut public, "anonymous").await?;
    public.close(None).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_in_websocket_to_a_dead_upstream_gets_502() -> anyhow::Result<()> {
    let (echo, gw) = gateway(&[]).await?;
    let browser = signed_in(&gw, "ada").await?;
    echo.stop().await;
    let result = open(&gw, &browser).await;
    let message = format!("{:#}", result.err().context("a WebSocket opened to a stopped upstream")?);
    ensure!(message.contains("502"), "a dead upstream answered: {message}");
    Ok(())
}
