//! The status channel and WebSockets under attack: cross-site WebSocket hijacking (of the
//! channel, and of the upstream's own sockets through the gateway's cookie), hostile socket.io
//! traffic (malformed, giant, out of order, forged events) and join floods for one session.
//!
//! Already asserted elsewhere: `channel_ws_sse::*::foreign_origin_is_refused_with_403` on all
//! eight transports (a foreign origin, `null`, another port, a suffix of an allowed origin),
//! `*::missing_or_forged_session_is_refused`,
//! `channel_socketio::engine_io_session_of_another_gateway_session_is_refused`,
//! `channel_socketio::unsupported_engine_io_version_or_transport_is_refused_with_400`,
//! `channel_ws_sse::seventeenth_socket_of_a_session_is_refused_with_4429` (native WS and SSE).

use anyhow::{bail, ensure, Context};
use futures_util::future::join_all;
use futures_util::SinkExt;
use gateway_tests::channel::{self, Frame, Join, Refusal, Transport, EVENT_WAIT};
use gateway_tests::signin::Browser;
use gateway_tests::socketio::{encode_v3_binary, Polling, SocketIoClient, Version, SOCKETIO_PATH};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use super::{Target, IDENTITY_HEADERS};
use crate::channel_ws_sse::{behaviour, ChannelGateway};

/// Every status-channel transport.
const TRANSPORTS: [Transport; 8] = [
    Transport::WebSocket,
    Transport::Sse,
    Transport::Eio4Polling,
    Transport::Eio4Upgrade,
    Transport::Eio4WebSocket,
    Transport::Eio3PollingText,
    Transport::Eio3PollingBinary,
    Transport::Eio3WebSocket,
];

// Guards against CWE-1385 (cross-site WebSocket hijacking of the status channel): an `Origin`
// matches only exactly, so lookalikes, other schemes and suffixed or decorated spellings of the
// allowed ones are refused with 403 on every transport.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookalike_origins_are_refused_on_every_transport() -> anyhow::Result<()> {
    let cg = ChannelGateway::start(&["allowed_origins = [\"https://addin.example\"]"], &[]).await?;
    let browser = cg.browser().await?;
    let own = browser.origin();
    browser.cookie_header().context("no cookie")?;
    let join = Join::Jar(browser.jar());
    let origins = [
        format!("{own}.evil.example"),
        format!("{own}@evil.example"),
        format!("{own}/"),
        own.replacen("http://", "HTTP://", 1),
        own.replacen("http://", "https://", 1),
        "http://addin.example".to_owned(),
        "https://evil.addin.example".to_owned(),
        "https://addin.example.".to_owned(),
        "https://addin.example:443".to_owned(),
        "https://addin.example/".to_owned(),
        "https://addin.example%2f.evil.example".to_owned(),
        "https://addin.example, https://evil.example".to_owned(),
        "file://".to_owned(),
        String::new(),
    ];
    let before = cg.metric("gateway_channel_joins_refused_total", &[("reason", "bad_origin")]).await?;

    let mut failures = Vec::new();
    for transport in TRANSPORTS {
        for origin in &origins {
            match cg.open(transport, &join, Some(origin)).await?.refused().await {
                Ok(Refusal::Http(403)) => {}
                Ok(other) => failures.push(format!("{transport:?} Origin {origin:?}: refused with {other:?}")),
                Err(e) => failures.push(format!("{transport:?} Origin {origin:?}: {e:#}")),
            }
        }
    }

    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let after = cg.metric("gateway_channel_joins_refused_total", &[("reason", "bad_origin")]).await?;
    assert_eq!(after - before, (TRANSPORTS.len() * origins.len()) as f64, "bad_origin refusals counted");
    Ok(())
}

// Guards against CWE-1385 (cross-site WebSocket hijacking of the upstream's own sockets): the
// session cookie is `SameSite=None` (it must flow in the Office iframe), so a foreign page's
// WebSocket handshake carries it; the gateway must not turn it into the user's identity.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cross_site_websocket_to_the_upstream_never_carries_the_users_identity() -> anyhow::Result<()> {
    let target = Target::start(|c| c).await?;
    let mut browser = Browser::new(target.gw.endpoint())?;
    browser.sign_in_dev("ada").await?;
    let cookie = browser.cookie_header().context("no cookie")?;
    let own = browser.origin();
    let headers = |origin: &str| vec![("cookie".to_owned(), cookie.clone()), ("origin".to_owned(), origin.to_owned())];

    // Foreign page → protected socket: 403, never upgraded, never forwarded.
    let before = target.echo.seen().len();
    let hijack = channel::websocket(&target.gw.ws_url("/api/ws"), &headers("https://evil.example")).await?;
    assert!(matches!(hijack, Err(403)), "a foreign page's WebSocket to /api/ws was {:?}", hijack.as_ref().err());
    assert!(target.echo.seen()[before..].is_empty(), "the hijacking handshake reached the upstream");

    // Foreign page → public socket: upgraded, but as nobody.
    let before = target.echo.seen().len();
    let public = channel::websocket(&target.gw.ws_url("/public/ws"), &headers("https://evil.example")).await?;
    ensure!(public.is_ok(), "a public WebSocket was refused: {:?}", public.err());
    let seen = target.echo.seen();
    let handshake = seen.get(before).context("the public handshake did not reach the upstream")?;
    let identity: Vec<_> = IDENTITY_HEADERS.iter().filter(|h| handshake.headers.contains_key(**h)).collect();
    assert!(identity.is_empty(), "a foreign page's WebSocket reached the upstream as the user: {identity:?}");

    // The gateway's own page → protected socket: the user.
    let before = target.echo.seen().len();
    let mut ws = match channel::websocket(&target.gw.ws_url("/api/ws"), &headers(&own)).await? {
        Ok(ws) => ws,
        Err(status) => bail!("the same-origin WebSocket was refused with {status}"),
    };
    ws.send(Message::text("ping")).await?;
    assert!(matches!(channel::next_frame(&mut ws, EVENT_WAIT).await?, Frame::Text(t) if t == "ping"));
    let seen = target.echo.seen();
    let handshake = seen.get(before).context("the same-origin handshake did not reach the upstream")?;
    assert_eq!(handshake.headers.get("x-forwarded-user").map(Vec::as_slice), Some(&["ada".to_owned()][..]));
    Ok(())
}

/// A connected Engine.IO 4 polling client of `browser`'s session.
async fn polling_client(cg: &ChannelGateway, browser: &Browser) -> anyhow::Result<SocketIoClient> {
    browser.cookie_header().context("no cookie")?;
    let join = Join::Jar(browser.jar());
    match SocketIoClient::open(cg.gw.endpoint(), Transport::Eio4Polling, &join, None).await? {
        Ok(mut client) => {
            behaviour::expect(&mut client, "init", &json!(behaviour::INIT)).await?;
            Ok(client)
        }
        Err(r) => bail!("refused: {r:?}"),
    }
}

/// The Engine.IO session of `client` is gone: a poll answers the close packet or 400.
async fn assert_closed(client: &SocketIoClient, what: &str) -> anyhow::Result<()> {
    let link = client.polling().context("not polling")?;
    let (status, body) = link.get(&format!("EIO=4&transport=polling&sid={}", client.sid())).await?;
    let body = String::from_utf8_lossy(&body);
    ensure!(status == 400 || body == "1", "{what}: the session still answers polls ({status} {body})");
    Ok(())
}

// Guards against CVE-2022-2421, CVE-2023-32695 (socket.io-parser) and CVE-2022-41940,
// CVE-2020-36048 (engine.io): malformed, giant and out-of-order packets close the sender's
// Engine.IO session with the protocol's error, client events are never relayed, and the same
// session's other sockets are untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_socketio_traffic_ends_only_the_senders_engine_io_session() -> anyhow::Result<()> {
    let cg = ChannelGateway::start(&[], &[]).await?;
    let mut browser = cg.browser().await?;
    let mut bystander = cg.joined(Transport::Eio4WebSocket, &browser).await?;
    browser.cookie_header().context("no cookie")?;
    let join = Join::Jar(browser.jar());
    let endpoint = cg.gw.endpoint();

    // Packets for a session that does not exist, or before any handshake.
    let Ok((link, _)) = Polling::handshake(endpoint, Version::V4, false, &join, None).await? else { bail!("refused") };
    assert_eq!(link.post_with_sid("no-such-sid", &["40"]).await?, 400);
    assert_eq!(link.get_with_sid("no-such-sid").await?, 400);

    // Malformed Engine.IO and socket.io packets: the session is closed. Client events (even
    // broken ones) are ignored: the channel is one-way.
    for packet in ["9", "", "4", "4\u{0}", "40/admin,", "42[", "45-[\"x\"]"] {
        let client = polling_client(&cg, &browser).await?;
        let link = client.polling().context("not polling")?;
        let (status, text) = link.post_raw(packet.as_bytes().to_vec()).await?;
        if packet == "40/admin," {
            // Another namespace gets the protocol's connect error, not the default namespace.
            assert_eq!((status, text.as_str()), (200, "ok"));
            let answer = link.poll().await?;
            assert!(answer.iter().any(|p| p == "44/admin,{\"message\":\"Invalid namespace\"}"), "{answer:?}");
            continue;
        }
        if packet.is_empty() || packet.starts_with("42") || packet.starts_with("45") {
            // No packet, or a client event: nothing happens, nothing is relayed.
            assert_eq!((status, text.as_str()), (200, "ok"), "{packet:?}");
            continue;
        }
        assert_closed(&client, &format!("packet {packet:?}")).await?;
    }

    // Broken payload framing: 400 "Bad request" and the session closed.
    for (version, body) in [
        (Version::V3, b"5:2".to_vec()),
        (Version::V3, b"x:2".to_vec()),
        (Version::V3, b"99999999999999999999:2".to_vec()),
        (Version::V3, vec![0, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 0xFF, b'2']),
        (Version::V3, vec![1, 1, 0xFF, b'2']),
        (Version::V4, vec![0xFF, 0xFE, b'2']),
    ] {
        let Ok((link, _)) = Polling::handshake(endpoint, version, false, &join, None).await? else { bail!("refused") };
        let (status, text) = link.post_raw(body.clone()).await?;
        assert_eq!(status, 400, "{version:?} {body:?}: {text}");
        assert!(text.contains("Bad request"), "{text}");
        assert!(link.poll().await.is_err(), "{version:?} {body:?}: the session survived a bad payload");
    }

    // Giant: a POST over maxPayload is 413; a websocket frame over it closes that socket.
    let client = polling_client(&cg, &browser).await?;
    let (status, _) = client.polling().context("not polling")?.post_raw(vec![b'4'; 65 * 1024]).await?;
    assert_eq!(status, 413);
    let url = cg.gw.ws_url(&join.target(SOCKETIO_PATH, "EIO=4&transport=websocket"));
    let mut ws = match channel::websocket(&url, &join.headers(None)).await? {
        Ok(ws) => ws,
        Err(status) => bail!("socket.io websocket refused with {status}"),
    };
    let _open = channel::next_frame(&mut ws, EVENT_WAIT).await?;
    let _ = ws.send(Message::text(format!("42[\"x\",\"{}\"]", "a".repeat(70 * 1024)))).await;
    let after = channel::next_frame(&mut ws, EVENT_WAIT).await;
    assert!(!matches!(after, Ok(Frame::Text(_))), "a giant frame was answered");
    let native = cg.gw.ws_url("/_gateway/events");
    let mut ws = match channel::websocket(&native, &join.headers(None)).await? {
        Ok(ws) => ws,
        Err(status) => bail!("native websocket refused with {status}"),
    };
    let _init = channel::next_frame(&mut ws, EVENT_WAIT).await?;
    let _ = ws.send(Message::text("a".repeat(64 * 1024))).await;
    let after = channel::next_frame(&mut ws, EVENT_WAIT).await;
    assert!(matches!(after, Ok(Frame::Closed(1009)) | Err(_)), "a giant native message did not close its socket");

    // Out of order: two long-polls at once close the session; a second CONNECT is ignored.
    let client = polling_client(&cg, &browser).await?;
    let link = client.polling().context("not polling")?.clone();
    let (a, b) = tokio::join!(link.poll(), link.poll());
    assert!(a.is_err() || b.is_err(), "two concurrent long-polls were both served");
    let mut twice = polling_client(&cg, &browser).await?;
    twice.send("40").await?;

    // Forged events from a client are never relayed, to it or to anyone.
    twice.send("42[\"auth_success\",[{\"providerName\":\"dev\",\"displayName\":\"Mallory\"}]]").await?;
    browser.sign_in_dev("ada").await?;
    behaviour::expect(&mut *bystander, "auth_success", &behaviour::success("ada")).await?;
    behaviour::expect(&mut twice, "auth_success", &behaviour::success("ada")).await?;
    // A v3 client's binary-framed POST of a forged event is ignored the same way.
    let mut v3 = match SocketIoClient::open(endpoint, Transport::Eio3PollingBinary, &join, None).await? {
        Ok(client) => client,
        Err(r) => bail!("v3 refused: {r:?}"),
    };
    behaviour::expect(&mut v3, "init", &json!(behaviour::INIT)).await?;
    let (status, _) =
        v3.polling().context("not polling")?.post_raw(encode_v3_binary(&["42[\"auth_expired\",[]]"])).await?;
    assert_eq!(status, 200);
    behaviour::expect(&mut v3, "auth_success", &behaviour::success("ada")).await?;
    Ok(())
}

/// Join attempts per transport in the flood.
const FLOOD: usize = 150;
/// `channel.max_sockets_per_session` of the flood test.
const MAX_SOCKETS: usize = 4;

// Guards against join floods (one client exhausting the channel): thousands of joins of one
// session, over every transport at once, never hold more than `channel.max_sockets_per_session`
// sockets; each extra one gets the transport's own refusal (or, for an Engine.IO handshake past
// the session's entries, 429), and another session still joins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_flood_of_one_session_stays_within_max_sockets_per_session() -> anyhow::Result<()> {
    gateway_tests::limits::ensure_open_files(8 * (FLOOD * TRANSPORTS.len()) as u64)?;
    let max = format!("max_sockets_per_session = {MAX_SOCKETS}");
    // Every join comes from 127.0.0.1: the per-client limits are not what this test is about.
    let cg = ChannelGateway::start_for_many(&[max.as_str()]).await?;
    let browser = cg.browser().await?;
    browser.cookie_header().context("no cookie")?;
    let join = Join::Jar(browser.jar());

    let plan: Vec<Transport> = TRANSPORTS.iter().flat_map(|t| std::iter::repeat_n(*t, FLOOD)).collect();
    let mut joined = Vec::new();
    let mut failures = Vec::new();
    for chunk in plan.chunks(100) {
        let opened = join_all(chunk.iter().map(|t| {
            let (cg, join) = (&cg, &join);
            async move { (*t, cg.open(*t, join, None).await) }
        }))
        .await;
        for (transport, opened) in opened {
            match opened {
                Ok(channel::Opened::Joined(feed)) => joined.push((transport, feed)),
                Ok(channel::Opened::Refused(r)) if r == too_many(transport) => {}
                // An Engine.IO session is an entry of its session from its handshake on.
                Ok(channel::Opened::Refused(channel::Refusal::Http(429))) if transport.is_engine_io() => {}
                Ok(channel::Opened::Refused(r)) => failures.push(format!("{transport:?}: refused with {r:?}")),
                Err(e) => failures.push(format!("{transport:?}: {e:#}")),
            }
        }
    }

    assert!(failures.is_empty(), "{} unexpected outcomes:\n{}", failures.len(), failures.join("\n"));
    assert!(joined.len() <= MAX_SOCKETS, "{} sockets joined one session (max {MAX_SOCKETS})", joined.len());
    let mut open = 0.0;
    for transport in ["websocket", "sse", "socketio"] {
        open += cg.metric("gateway_channel_sockets", &[("transport", transport)]).await?;
    }
    assert!(open <= MAX_SOCKETS as f64, "the gateway counts {open} sockets open for one session");
    let other = cg.browser().await?;
    cg.joined(Transport::WebSocket, &other).await.context("another session could not join during the flood")?;
    Ok(())
}

/// The refusal for one socket too many on `transport`.
fn too_many(transport: Transport) -> Refusal {
    match transport {
        Transport::WebSocket => Refusal::Close(4429),
        Transport::Sse => Refusal::Http(429),
        Transport::Eio4Polling | Transport::Eio4Upgrade | Transport::Eio4WebSocket => {
            Refusal::ConnectError("44{\"message\":\"too many sockets for this session\"}".to_owned())
        }
        Transport::Eio3PollingText | Transport::Eio3PollingBinary | Transport::Eio3WebSocket => {
            Refusal::ConnectError("44\"too many sockets for this session\"".to_owned())
        }
    }
}
