//! SIGTERM drains: the in-flight request completes, status and relayed WebSockets close with
//! 1001, SSE streams and long-polls end, the process exits 0 within its configured grace, and the
//! port is closed afterwards. Runs the built binary.

use std::time::Duration;

use anyhow::{anyhow, bail, ensure, Context};
use futures_util::SinkExt;
use gateway_tests::channel::{next_frame, websocket, Frame, Join, SseFeed, StatusFeed, EVENTS_PATH, EVENT_WAIT};
use gateway_tests::client::{read_echo, websocket_connect};
use gateway_tests::signin::{dev_config, Browser};
use gateway_tests::socketio::{Polling, Version};
use gateway_tests::{eventually, EchoUpstream, GatewayConfig, TestGateway};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_in_flight_request_finish_then_exits_zero() -> anyhow::Result<()> {
    let echo = EchoUpstream::start("a").await?;
    let config = GatewayConfig::on_free_port(&[echo.addr()])?.shutdown(Duration::from_secs(2), Duration::from_secs(2));
    let gw = TestGateway::with_toml(config).spawn_binary().await?;
    let logs = || gw.process().map(|p| p.logs()).unwrap_or_default();

    let slow = tokio::spawn(gw.client()?.get(gw.url("/slow?ms=1500")).send());
    eventually("the slow request reached the upstream", Duration::from_secs(10), || async {
        ensure!(echo.requests() >= 1, "upstream has seen {} requests", echo.requests());
        Ok(())
    })
    .await?;
    gw.sigterm()?;

    let resp = slow.await?.with_context(logs)?;
    let seen = read_echo(resp).await.with_context(logs)?;
    assert_eq!(seen.path, "/slow");
    // grace 2 s + runtime shutdown 2 s, with room for a busy machine.
    let status =
        gw.wait_exit(Duration::from_secs(20)).await.with_context(|| format!("no exit after SIGTERM\n{}", logs()))?;
    assert!(status.success(), "exit status {status}\n{}", logs());
    assert!(tokio::net::TcpStream::connect(gw.addr()).await.is_err(), "the port still accepts after exit");
    Ok(())
}

/// SIGTERM reaches the sockets that left Pingora's HTTP session too: every open status
/// WebSocket, and a WebSocket relayed to the upstream, gets a close frame with 1001 ("going
/// away", so its client reconnects elsewhere), an SSE stream ends, and the process still exits 0
/// within its grace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_status_and_relayed_websockets_with_1001_and_ends_streams_and_polls() -> anyhow::Result<()> {
    let echo = EchoUpstream::start("a").await?;
    let config = dev_config(echo.addr(), &[])?.shutdown(Duration::from_secs(2), Duration::from_secs(2));
    let gw = TestGateway::with_toml(config).spawn_binary().await?;
    let logs = || gw.process().map(|p| p.logs()).unwrap_or_default();
    let mut browser = Browser::new(gw.endpoint())?;
    browser.session_info().await?;
    let cookie = browser.cookie_header().context("no session cookie")?;
    let headers = [("cookie".to_owned(), cookie.clone())];

    let mut sockets = Vec::new();
    for _ in 0..3 {
        let url = gw.ws_url(EVENTS_PATH);
        let mut ws = websocket(&url, &headers).await?.map_err(|status| anyhow!("upgrade refused: {status}"))?;
        let Frame::Text(init) = next_frame(&mut ws, EVENT_WAIT).await? else { bail!("closed before init") };
        ensure!(init.contains("\"init\""), "first message {init}");
        sockets.push(ws);
    }
    let mut sse = SseFeed::open(gw.endpoint(), &Join::Cookie(cookie.clone()), None)
        .await?
        .map_err(|r| anyhow!("SSE refused: {r:?}"))?;
    ensure!(sse.next_event(EVENT_WAIT).await?.name == "init", "the SSE stream starts with init");
    let join = Join::Cookie(cookie.clone());
    let (polling, _) = Polling::handshake(gw.endpoint(), Version::V4, false, &join, None)
        .await?
        .map_err(|status| anyhow!("socket.io handshake refused: {status}"))?;
    polling.post(&["40"]).await?;
    let mut seen = Vec::new();
    for _ in 0..5 {
        seen.extend(polling.poll().await?);
        if seen.iter().any(|p| p.contains("\"init\"")) {
            break;
        }
    }
    ensure!(seen.iter().any(|p| p.contains("\"init\"")), "no init over polling: {seen:?}");
    // Pending until an event, the 25 s ping interval, or the stop.
    let long_poll = tokio::spawn(async move { polling.poll().await });
    let mut relayed = websocket_connect(&gw.ws_url("/ws/echo"), &[]).await?;
    relayed.send(Message::text("before")).await?;
    ensure!(matches!(next_frame(&mut relayed, EVENT_WAIT).await?, Frame::Text(t) if t == "before"), "no echo");

    gw.sigterm()?;
    for (i, ws) in sockets.iter_mut().enumerate() {
        match next_frame(ws, EVENT_WAIT).await.with_context(|| format!("socket {i}\n{}", logs()))? {
            Frame::Closed(code) => assert_eq!(code, 1001, "socket {i} close code"),
            Frame::Text(t) => bail!("socket {i} got {t} instead of a close"),
        }
    }
    match next_frame(&mut relayed, EVENT_WAIT).await.with_context(|| format!("relayed socket\n{}", logs()))? {
        Frame::Closed(code) => assert_eq!(code, 1001, "relayed socket close code"),
        Frame::Text(t) => bail!("the relayed socket got {t} instead of a close"),
    }
    // The long-poll ends with the close packet (or, sent just after the stop, finds its session gone).
    let polled = tokio::time::timeout(EVENT_WAIT, long_poll).await.context("the long-poll went on")??;
    if let Ok(packets) = polled {
        ensure!(packets.iter().any(|p| p == "1"), "the long-poll answered {packets:?}, not the close packet");
    }
    let ended = sse.next_event(EVENT_WAIT).await;
    ensure!(ended.as_ref().is_err_and(|e| e.to_string().contains("ended")), "the SSE stream went on: {ended:?}");
    let status =
        gw.wait_exit(Duration::from_secs(20)).await.with_context(|| format!("no exit after SIGTERM\n{}", logs()))?;
    assert!(status.success(), "exit status {status}\n{}", logs());
    Ok(())
}
