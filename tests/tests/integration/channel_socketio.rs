//! The status channel for socket.io clients at `/socket.io/`: every behaviour of
//! `channel_ws_sse::behaviour` on Engine.IO 4 (polling, upgrade, websocket) and Engine.IO 3
//! (b64 text polling, XHR2 binary polling, websocket); then the wire details: handshake,
//! heartbeats both ways, Engine.IO sessions bound to their gateway session, versions, CORS.

use std::time::Duration;

use anyhow::{bail, ensure, Context};
use futures_util::SinkExt;
use gateway_tests::channel::{self, Frame, Join, StatusFeed, Transport, EVENT_WAIT};
use gateway_tests::socketio::{encode_v3_binary, Polling, SocketIoClient, Version, SOCKETIO_PATH};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::channel_ws_sse::{behaviour, transport_suite, ChannelGateway};

transport_suite! {
    eio4_polling => Transport::Eio4Polling,
    eio4_upgrade => Transport::Eio4Upgrade,
    eio4_websocket => Transport::Eio4WebSocket,
    eio3_polling_b64 => Transport::Eio3PollingText,
    eio3_polling_binary => Transport::Eio3PollingBinary,
    eio3_websocket => Transport::Eio3WebSocket,
}

/// The `[channel]` line of the heartbeat tests: pings every second.
const FAST_PINGS: &str = "ping_interval = \"1s\"";

fn cookie_join(browser: &gateway_tests::signin::Browser) -> anyhow::Result<Join> {
    browser.cookie_header().context("the browser has no session cookie")?;
    Ok(Join::Jar(browser.jar()))
}

async fn connected(cg: &ChannelGateway, transport: Transport, join: &Join) -> anyhow::Result<SocketIoClient> {
    match SocketIoClient::open(cg.gw.endpoint(), transport, join, None).await? {
        Ok(client) => Ok(client),
        Err(refusal) => bail!("{transport:?} was refused: {refusal:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eio4_polling_handshake_connect_and_first_poll_follow_the_protocol() -> anyhow::Result<()> {
    let cg = ChannelGateway::start(&[FAST_PINGS], &[]).await?;
    let browser = cg.browser().await?;
    let join = cookie_join(&browser)?;

    let (link, packets) = match Polling::handshake(cg.gw.endpoint(), Version::V4, false, &join, None).await? {
        Ok(found) => found,
        Err(status) => bail!("handshake answered {status}"),
    };
    assert_eq!(packets.len(), 1, "{packets:?}");
    let open = gateway_tests::socketio::open_packet(&packets[0])?;
    assert!(open["sid"].as_str().is_some_and(|s| !s.is_empty()), "{open}");
    assert_eq!(open["upgrades"], json!(["websocket"]));
    assert_eq!(open["pingInterval"], json!(1000));
    assert!(open["pingTimeout"].as_u64().is_some_and(|t| t > 0), "{open}");
    assert_eq!(open["maxPayload"], json!(65536));
    link.post(&["40"]).await?;
    let first = link.poll().await?;

    let connect = first.first().and_then(|p| p.strip_prefix("40")).context("no 40 first")?;
    let connect: serde_json::Value = serde_json::from_str(connect).with_context(|| format!("{first:?}"))?;
    assert!(connect["sid"].as_str().is_some_and(|s| !s.is_empty() && s != open["sid"]), "{first:?}");
    assert_eq!(
        first.get(1).map(String::as_str),
        Some("42[\"init\",\"Private socket session established\"]"),
        "{first:?}"
    );
    assert_eq!(cg.metric("gateway_channel_sockets", &[("transport", "socketio")]).await?, 1.0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eio3_handshake_carries_the_implicit_connect_and_init() -> anyhow::Result<()> {
    let cg = ChannelGateway::start(&[], &[]).await?;
    let browser = cg.browser().await?;
    let join = cookie_join(&browser)?;

    for binary in [false, true] {
        let Ok((_, packets)) = Polling::handshake(cg.gw.endpoint(), Version::V3, binary, &join, None).await? else {
            bail!("v3 handshake refused (binary {binary})");
        };
        let open = gateway_tests::socketio::open_packet(&packets[0])?;
        assert_eq!(open["upgrades"], json!(["websocket"]), "binary {binary}");
        assert_eq!(packets[1..3], ["40", "42[\"init\",\"Private socket session established\"]"], "binary {binary}");
    }
    let anonymous = Polling::handshake(cg.gw.endpoint(), Version::V3, false, &Join::Nothing, None).await?;
    let Ok((_, packets)) = anonymous else { bail!("anonymous v3 handshake answered an HTTP error") };
    assert_eq!(packets[1..], ["44\"unauthorized\""], "no init without a session");
    Ok(())
}

/// Engine.IO 4: the server pings every `ping_interval`; a client that answers stays connected.
async fn server_pings_are_answered_and_the_socket_stays_alive(transport: Transport) -> anyhow::Result<()> {
    let cg = ChannelGateway::start(&[FAST_PINGS], &[]).await?;
    let mut browser = cg.browser().await?;
    let mut client = connected(&cg, transport, &cookie_join(&browser)?).await?;
    behaviour::expect(&mut client, "init", &json!(behaviour::INIT)).await?;

    // This test is about time passing: three ping intervals, then a sign-in.
    let later_sign_in = async {
        tokio::time::sleep(Duration::from_millis(3500)).await;
        browser.sign_in_dev("ada").await
    };
    let (signed, event) = tokio::join!(later_sign_in, client.next_event(Duration::from_secs(15)));
    signed?;

    let event = event?;
    assert_eq!((event.name.as_str(), &event.data), ("auth_success", &behaviour::success("ada")));
    assert!(client.pings_answered >= 2, "only {} server pings in 3.5 s at a 1 s interval", client.pings_answered);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eio4_polling_server_pings_keep_the_socket_alive() -> anyhow::Result<()> {
    server_pings_are_answered_and_the_socket_stays_alive(Transport::Eio4Polling).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eio4_upgraded_websocket_server_pings_keep_the_socket_alive() -> anyhow::Result<()> {
    server_pings_are_answered_and_the_socket_stays_alive(Transport::Eio4Upgrade).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eio3_client_pings_get_pongs_on_every_transport() -> anyhow::Result<()> {
    let cg = ChannelGateway::start(&[], &[]).await?;
    let browser = cg.browser().await?;
    let join = cookie_join(&browser)?;

    for transport in [Transport::Eio3PollingText, Transport::Eio3PollingBinary, Transport::Eio3WebSocket] {
        let mut client = connected(&cg, transport, &join).await?;
        behaviour::expect(&mut client, "init", &json!(behaviour::INIT)).await?;
        client.send("2probe").await?;
        assert_eq!(client.next_raw(EVENT_WAIT).await?, "3probe", "{transport:?}");
        client.send("2").await?;
        assert_eq!(client.next_raw(EVENT_WAIT).await?, "3", "{transport:?}");
    }
    // A binary-framed POST is understood too (XHR2 clients may send one).
    let mut client = connected(&cg, Transport::Eio3PollingBinary, &join).await?;
    behaviour::expect(&mut client, "init", &json!(behaviour::INIT)).await?;
    let link = client.polling().context("not polling")?;
    let (status, text) = link.post_raw(encode_v3_binary(&["2"])).await?;
    assert_eq!((status, text.as_str()), (200, "ok"));
    assert_eq!(link.poll().await?, ["3"]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_io_session_of_another_gateway_session_is_refused() -> anyhow::Result<()> {
    let cg = ChannelGateway::start(&[], &[]).await?;
    let mut owner = cg.browser().await?;
    let intruder = cg.browser().await?;
    let mut victim = connected(&cg, Transport::Eio4Polling, &cookie_join(&owner)?).await?;
    behaviour::expect(&mut victim, "init", &json!(behaviour::INIT)).await?;
    let sid = victim.sid().to_owned();

    for join in [cookie_join(&intruder)?, Join::Nothing] {
        let Ok((link, _)) = Polling::handshake(cg.gw.endpoint(), Version::V4, false, &join, None).await? else {
            bail!("handshake refused for {join:?}");
        };
        assert_eq!(link.get_with_sid(&sid).await?, 400, "GET with a foreign sid ({join:?})");
        assert_eq!(link.post_with_sid(&sid, &["1"]).await?, 400, "POST with a foreign sid ({join:?})");
        let url = cg.gw.ws_url(&join.target(SOCKETIO_PATH, &format!("EIO=4&transport=websocket&sid={sid}")));
        if let Ok(mut ws) = channel::websocket(&url, &join.headers(None)).await? {
            ws.send(Message::Text("2probe".into())).await?;
            let answer = channel::next_frame(&mut ws, EVENT_WAIT).await;
            ensure!(!matches!(answer, Ok(Frame::Text(_))), "the upgrade of a foreign sid was answered ({join:?})");
        }
    }
    // The owner's Engine.IO session is untouched.
    owner.sign_in_dev("ada").await?;
    behaviour::expect(&mut victim, "auth_success", &behaviour::success("ada")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_engine_io_version_or_transport_is_refused_with_400() -> anyhow::Result<()> {
    let cg = ChannelGateway::start(&[], &[]).await?;
    let client = cg.gw.client()?;

    for query in
        ["EIO=5&transport=polling", "EIO=2&transport=polling", "transport=polling", "EIO=4&transport=flashsocket"]
    {
        let status = client.get(cg.gw.url(&format!("{SOCKETIO_PATH}?{query}"))).send().await?.status();
        assert_eq!(status, 400, "{query}");
    }
    Ok(())
}

/// A WebSocket upgrade with an unsupported `EIO` or transport is refused with a 400 and
/// Engine.IO's JSON error before any 101, as its polling twin is (it once got a 101 and a close).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_engine_io_version_or_transport_on_a_websocket_gets_400_json_not_101() -> anyhow::Result<()> {
    use tokio_tungstenite::tungstenite::Error as WsError;
    let cg = ChannelGateway::start(&[], &[]).await?;
    for query in ["EIO=5&transport=websocket", "EIO=2&transport=websocket", "transport=websocket", "EIO=4&transport=x"]
    {
        let url = cg.gw.ws_url(&format!("{SOCKETIO_PATH}?{query}"));
        let connect = tokio_tungstenite::connect_async(url.as_str());
        let answer = tokio::time::timeout(EVENT_WAIT, connect).await.context("the upgrade was not answered")?;
        let resp = match answer {
            Err(WsError::Http(resp)) => resp,
            Ok(_) => bail!("{query}: upgraded (101)"),
            Err(e) => bail!("{query}: {e}"),
        };
        assert_eq!(resp.status(), 400, "{query}");
        let body: serde_json::Value = serde_json::from_slice(resp.body().as_deref().unwrap_or_default())
            .with_context(|| format!("{query}: the body is not JSON"))?;
        ensure!(body["code"].is_u64() && body["message"].is_string(), "{query}: {body}");
    }
    // The supported versions still upgrade.
    let opened = cg.open(Transport::Eio4WebSocket, &Join::Nothing, None).await?;
    ensure!(!matches!(opened.refused().await?, channel::Refusal::Http(_)), "EIO=4 websocket refused over HTTP");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentialed_polling_gets_cors_headers_only_for_allowed_origins() -> anyhow::Result<()> {
    let cg = ChannelGateway::start(&["allowed_origins = [\"https://addin.example\"]"], &[]).await?;
    let browser = cg.browser().await?;
    let client = cg.gw.client()?;
    let cookie = browser.cookie_header().context("no cookie")?;
    let url = cg.gw.url(&format!("{SOCKETIO_PATH}?EIO=4&transport=polling"));
    let handshake = |origin: &'static str| client.get(&url).header("cookie", &cookie).header("origin", origin).send();

    let allowed = handshake("https://addin.example").await?;
    assert_eq!(allowed.status(), 200);
    let header = |name: &str| allowed.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    assert_eq!(header("access-control-allow-origin").as_deref(), Some("https://addin.example"));
    assert_eq!(header("access-control-allow-credentials").as_deref(), Some("true"));
    let refused = handshake("https://evil.example").await?;
    assert_eq!(refused.status(), 403);
    assert!(refused.headers().get("access-control-allow-origin").is_none());
    Ok(())
}

/// Engine.IO 4 upgrade with a long-poll pending (as socket.io-client has at that moment): the
/// server's `3probe` ends the pending poll with a no-op, so the client can pause polling and
/// finish the upgrade at once instead of after the ping interval (25 s here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_probe_ends_the_pending_long_poll_with_a_noop() -> anyhow::Result<()> {
    let cg = ChannelGateway::start(&[], &[]).await?;
    let browser = cg.browser().await?;
    let join = cookie_join(&browser)?;
    let Ok((link, _)) = Polling::handshake(cg.gw.endpoint(), Version::V4, false, &join, None).await? else {
        bail!("handshake refused")
    };
    link.post(&["40"]).await?;
    let connected = link.poll().await?;
    ensure!(connected.iter().any(|p| p.starts_with("40")), "no connect answer: {connected:?}");
    let pending = tokio::spawn({
        let link = link.clone();
        async move { link.poll().await }
    });
    // The poll must be parked on the server before the probe, as in a browser.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let url = cg.gw.ws_url(&join.target(SOCKETIO_PATH, &format!("EIO=4&transport=websocket&sid={}", link.sid())));
    let Ok(mut ws) = channel::websocket(&url, &join.headers(None)).await? else { bail!("websocket refused") };
    ws.send(Message::Text("2probe".into())).await?;
    let answer = channel::next_frame(&mut ws, EVENT_WAIT).await?;
    ensure!(matches!(&answer, Frame::Text(t) if t == "3probe"), "the probe was not answered with 3probe");
    let ended = tokio::time::timeout(Duration::from_secs(5), pending).await;
    let packets = ended.context("the pending long-poll was not ended by the probe")???;
    assert_eq!(packets, ["6"], "the pending poll ended with {packets:?}, not a no-op");
    ws.send(Message::Text("5".into())).await?;
    Ok(())
}
