//! The status channel on `/_gateway/events` (native WebSocket and SSE): the behaviours every
//! transport shows (defined once in [`behaviour`], run here and by `channel_socketio`), the
//! per-session socket limit, and 1,000 sockets over 100 sessions getting exactly their events.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{ensure, Context};
use futures_util::future::join_all;
use gateway_tests::channel::{self, Join, NativeWebSocket, Refusal, SseFeed, StatusFeed, Transport, EVENT_WAIT};
use gateway_tests::signin::{dev_config, tamper, Browser};
use gateway_tests::{eventually, metrics, ports, EchoUpstream, TestGateway};
use serde_json::json;

/// A gateway with the `dev` provider, socket.io, an admin listener, and these extra
/// `[channel]` and `[session]` lines; the echo upstream behind it lives as long as it.
pub(super) struct ChannelGateway {
    pub(super) gw: TestGateway,
    pub(super) admin: SocketAddr,
    _echo: EchoUpstream,
}

impl ChannelGateway {
    pub(super) async fn start(channel_keys: &[&str], session_keys: &[&str]) -> anyhow::Result<Self> {
        Self::start_with(channel_keys, session_keys, &[]).await
    }

    /// A gateway for tests that open more sockets from 127.0.0.1 than one client address may
    /// (the per-client connection and channel limits are not what they test).
    pub(super) async fn start_for_many(channel_keys: &[&str]) -> anyhow::Result<Self> {
        let mut channel = channel_keys.to_vec();
        channel.push("max_sockets_per_client = 100000");
        Self::start_with(&channel, &[], &["max_connections_per_client = 100000", "max_connections = 100000"]).await
    }

    async fn start_with(channel_keys: &[&str], session_keys: &[&str], server_keys: &[&str]) -> anyhow::Result<Self> {
        let echo = EchoUpstream::start("app").await?;
        let admin = ports::free_addr()?;
        let mut config = dev_config(echo.addr(), channel_keys)?.server_key(&format!("admin_listen = \"{admin}\""));
        for line in session_keys {
            config = config.session_key(line);
        }
        for line in server_keys {
            config = config.server_key(line);
        }
        Ok(Self { gw: TestGateway::with_toml(config).start().await?, admin, _echo: echo })
    }

    /// A browser with a fresh session (its cookie set).
    pub(super) async fn browser(&self) -> anyhow::Result<Browser> {
        let mut browser = Browser::new(self.gw.endpoint())?;
        browser.session_info().await?;
        Ok(browser)
    }

    /// Opens `transport` for `join` with `origin`.
    pub(super) async fn open(
        &self,
        transport: Transport,
        join: &Join,
        origin: Option<&str>,
    ) -> anyhow::Result<channel::Opened> {
        channel::open(self.gw.endpoint(), transport, join, origin).await
    }

    /// A feed of `browser`'s session, joined by its cookie, whose `init` has been checked.
    pub(super) async fn joined(&self, transport: Transport, browser: &Browser) -> anyhow::Result<Box<dyn StatusFeed>> {
        browser.cookie_header().context("the browser has no session cookie")?;
        let mut feed = self.open(transport, &Join::Jar(browser.jar()), None).await?.joined()?;
        behaviour::expect(&mut *feed, "init", &json!(behaviour::INIT)).await?;
        Ok(feed)
    }

    /// A sample of the gateway's metrics (bounded wait for the admin listener).
    pub(super) async fn metric(&self, name: &str, labels: &[(&str, &str)]) -> anyhow::Result<f64> {
        let text = eventually("the admin listener serves /metrics", EVENT_WAIT, || metrics::scrape(self.admin)).await?;
        Ok(metrics::value(&text, name, labels))
    }
}

/// What every status-channel transport does (docs/architecture.md#status-channel-events).
pub(super) mod behaviour {
    use super::*;
    use serde_json::Value;

    pub(crate) const INIT: &str = "Private socket session established";
    /// Longest wait for `auth_expired` after the sign-in, with `token_ttl = "2s"`: the lifetime
    /// plus 2 s (docs/architecture.md#status-channel-events: announced within a second of the end;
    /// the rest is slack for debug builds).
    const EXPIRY_WAIT: Duration = Duration::from_secs(4);
    /// `auth_expired` before this long after the sign-in started would be early.
    const TOKEN_TTL_FLOOR: Duration = Duration::from_millis(1900);

    pub(crate) fn success(user: &str) -> Value {
        json!([{"providerName": "dev", "displayName": format!("Dev User {user}")}])
    }

    pub(crate) fn denied() -> Value {
        json!({"providerName": "dev", "error": "access_denied", "description": "The user cancelled the sign-in"})
    }

    /// The next event must be `name` with `data`.
    pub(crate) async fn expect(feed: &mut dyn StatusFeed, name: &str, data: &Value) -> anyhow::Result<()> {
        expect_within(feed, name, data, EVENT_WAIT).await
    }

    async fn expect_within(
        feed: &mut dyn StatusFeed,
        name: &str,
        data: &Value,
        within: Duration,
    ) -> anyhow::Result<()> {
        let event = feed.next_event(within).await.with_context(|| format!("waiting for {name}"))?;
        ensure!(event.name == name && event.data == *data, "expected {name} {data}, got {} {}", event.name, event.data);
        Ok(())
    }

    pub(crate) async fn join_by_cookie_or_ticket_gets_init(transport: Transport) -> anyhow::Result<()> {
        let cg = ChannelGateway::start(&[], &[]).await?;
        let mut browser = cg.browser().await?;
        let ticket = browser.session_info().await?.ticket()?;
        let own_origin = browser.origin();

        let mut by_cookie = cg.joined(transport, &browser).await?;
        let mut by_ticket = cg.open(transport, &Join::Ticket(ticket), Some(&own_origin)).await?.joined()?;
        expect(&mut *by_ticket, "init", &json!(INIT)).await?;

        // Both joined the session's room: the sign-in reaches both.
        browser.sign_in_dev("ada").await?;
        expect(&mut *by_cookie, "auth_success", &success("ada")).await.context("joined by cookie")?;
        expect(&mut *by_ticket, "auth_success", &success("ada")).await.context("joined by ticket")
    }

    pub(crate) async fn sign_in_gets_auth_success(transport: Transport) -> anyhow::Result<()> {
        let cg = ChannelGateway::start(&[], &[]).await?;
        let mut browser = cg.browser().await?;
        let mut feed = cg.joined(transport, &browser).await?;

        browser.sign_in_dev("ada").await?;

        expect(&mut *feed, "auth_success", &success("ada")).await
    }

    pub(crate) async fn late_joiner_already_signed_in_gets_auth_success_after_init(
        transport: Transport,
    ) -> anyhow::Result<()> {
        let cg = ChannelGateway::start(&[], &[]).await?;
        let mut browser = cg.browser().await?;
        browser.sign_in_dev("ada").await?;

        let mut feed = cg.joined(transport, &browser).await?;

        expect(&mut *feed, "auth_success", &success("ada")).await
    }

    pub(crate) async fn denied_sign_in_gets_auth_failure(transport: Transport) -> anyhow::Result<()> {
        let cg = ChannelGateway::start(&[], &[]).await?;
        let mut browser = cg.browser().await?;
        let mut feed = cg.joined(transport, &browser).await?;

        browser.deny_dev().await?;

        expect(&mut *feed, "auth_failure", &denied()).await
    }

    pub(crate) async fn token_lifetime_end_gets_auth_expired(transport: Transport) -> anyhow::Result<()> {
        let cg = ChannelGateway::start(&[], &["token_ttl = \"2s\""]).await?;
        let mut browser = cg.browser().await?;
        let mut feed = cg.joined(transport, &browser).await?;
        let started = std::time::Instant::now();
        browser.sign_in_dev("ada").await?;
        let signed_in = started.elapsed();
        expect(&mut *feed, "auth_success", &success("ada")).await?;

        // docs/architecture.md#configuration: tokens purged token_ttl after sign-in; this test is about time passing.
        let wait = (signed_in + EXPIRY_WAIT).saturating_sub(started.elapsed());
        expect_within(&mut *feed, "auth_expired", &json!([{"providerName": "dev"}]), wait).await?;
        let at = started.elapsed();
        ensure!(at >= TOKEN_TTL_FLOOR, "auth_expired only {at:?} after the sign-in started");
        Ok(())
    }

    pub(crate) async fn logout_gets_auth_expired(transport: Transport) -> anyhow::Result<()> {
        let cg = ChannelGateway::start(&[], &[]).await?;
        let mut browser = cg.browser().await?;
        let mut feed = cg.joined(transport, &browser).await?;
        browser.sign_in_dev("ada").await?;
        expect(&mut *feed, "auth_success", &success("ada")).await?;

        let origin = browser.origin();
        ensure!(browser.logout(Some(&origin)).await?.status == 204, "logout failed");

        expect(&mut *feed, "auth_expired", &json!([{"providerName": "dev"}])).await
    }

    /// Each session's next event is its own: a leaked event would arrive before it (queues are FIFO).
    pub(crate) async fn sessions_never_see_each_others_events(transport: Transport) -> anyhow::Result<()> {
        let cg = ChannelGateway::start(&[], &[]).await?;
        let (mut a, mut b) = (cg.browser().await?, cg.browser().await?);
        let mut feed_a = cg.joined(transport, &a).await?;
        let mut feed_b = cg.joined(transport, &b).await?;

        b.sign_in_dev("bob").await?;
        expect(&mut *feed_b, "auth_success", &success("bob")).await?;
        a.deny_dev().await?;
        expect(&mut *feed_a, "auth_failure", &denied()).await.context("session A after B's sign-in")?;
        b.sign_in_dev("carol").await?;
        expect(&mut *feed_b, "auth_success", &success("carol")).await.context("session B after A's denial")
    }

    pub(crate) async fn missing_or_forged_session_is_refused(transport: Transport) -> anyhow::Result<()> {
        let cg = ChannelGateway::start(&[], &[]).await?;
        let mut browser = cg.browser().await?;
        let cookie = browser.session_cookie().context("no cookie")?.to_owned();
        let ticket = browser.session_info().await?.ticket()?;
        let forged = [
            Join::Nothing,
            Join::Cookie("gw_session=garbage".to_owned()),
            Join::Cookie(format!("gw_session={}", tamper(&cookie))),
            Join::Ticket(tamper(&ticket)),
            Join::Ticket(cookie.clone()),
        ];
        for join in &forged {
            let refusal = cg.open(transport, join, None).await?.refused().await.with_context(|| format!("{join:?}"))?;
            ensure!(refusal == transport.no_session_refusal(), "{join:?} was refused with {refusal:?}");
        }
        let counted = cg.metric("gateway_channel_joins_refused_total", &[("reason", "unauthorized")]).await?;
        ensure!(counted >= forged.len() as f64, "{counted} unauthorized joins counted for {} refused", forged.len());
        // None of that disturbed the genuine session.
        let mut feed = cg.joined(transport, &browser).await?;
        browser.sign_in_dev("ada").await?;
        expect(&mut *feed, "auth_success", &success("ada")).await
    }

    pub(crate) async fn foreign_origin_is_refused_with_403(transport: Transport) -> anyhow::Result<()> {
        let cg = ChannelGateway::start(&["allowed_origins = [\"https://addin.example\"]"], &[]).await?;
        let browser = cg.browser().await?;
        let join = Join::Cookie(browser.cookie_header().context("no cookie")?);
        let other_port = format!("http://127.0.0.1:{}", cg.gw.addr().port() + 1);

        for origin in ["http://evil.example", "null", other_port.as_str(), "https://addin.example.evil"] {
            let refusal = cg.open(transport, &join, Some(origin)).await?.refused().await?;
            ensure!(refusal == Refusal::Http(403), "Origin {origin} was refused with {refusal:?}");
        }
        let counted = cg.metric("gateway_channel_joins_refused_total", &[("reason", "bad_origin")]).await?;
        ensure!(counted >= 4.0, "{counted} bad_origin joins counted for 4 refused");
        for origin in [browser.origin().as_str(), "https://addin.example"] {
            let mut feed =
                cg.open(transport, &join, Some(origin)).await?.joined().with_context(|| format!("Origin {origin}"))?;
            expect(&mut *feed, "init", &json!(INIT)).await?;
        }
        Ok(())
    }
}

/// One test per behaviour of [`behaviour`] for each `module => transport`.
macro_rules! transport_suite {
    ($($module:ident => $transport:expr),+ $(,)?) => {$(
        mod $module {
            use crate::channel_ws_sse::behaviour;
            use gateway_tests::channel::Transport;

            const TRANSPORT: Transport = $transport;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn join_by_cookie_or_ticket_gets_init() -> anyhow::Result<()> {
                behaviour::join_by_cookie_or_ticket_gets_init(TRANSPORT).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sign_in_gets_auth_success() -> anyhow::Result<()> {
                behaviour::sign_in_gets_auth_success(TRANSPORT).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn late_joiner_already_signed_in_gets_auth_success_after_init() -> anyhow::Result<()> {
                behaviour::late_joiner_already_signed_in_gets_auth_success_after_init(TRANSPORT).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn denied_sign_in_gets_auth_failure() -> anyhow::Result<()> {
                behaviour::denied_sign_in_gets_auth_failure(TRANSPORT).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn token_lifetime_end_gets_auth_expired() -> anyhow::Result<()> {
                behaviour::token_lifetime_end_gets_auth_expired(TRANSPORT).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn logout_gets_auth_expired() -> anyhow::Result<()> {
                behaviour::logout_gets_auth_expired(TRANSPORT).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sessions_never_see_each_others_events() -> anyhow::Result<()> {
                behaviour::sessions_never_see_each_others_events(TRANSPORT).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn missing_or_forged_session_is_refused() -> anyhow::Result<()> {
                behaviour::missing_or_forged_session_is_refused(TRANSPORT).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn foreign_origin_is_refused_with_403() -> anyhow::Result<()> {
                behaviour::foreign_origin_is_refused_with_403(TRANSPORT).await
            }
        }
    )+};
}
pub(crate) use transport_suite;

transport_suite! {
    websocket => Transport::WebSocket,
    sse => Transport::Sse,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_stream_starts_with_a_retry_hint_and_is_an_event_stream() -> anyhow::Result<()> {
    let cg = ChannelGateway::start(&[], &[]).await?;
    let browser = cg.browser().await?;
    let join = Join::Cookie(browser.cookie_header().context("no cookie")?);

    let Ok(mut feed) = SseFeed::open(cg.gw.endpoint(), &join, None).await? else { anyhow::bail!("SSE refused") };
    let first = feed.next_event(EVENT_WAIT).await?;

    assert_eq!(first.name, "init");
    assert_eq!(feed.retry_ms, Some(3000));
    assert!(feed.content_type.starts_with("text/event-stream"), "{}", feed.content_type);
    Ok(())
}

// The status socket leaves Pingora's session after the 101 (proxy::upgrade::detach); a client
// that sends a frame in the same write as its handshake must not lose it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_sent_with_the_handshake_is_not_lost() -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let cg = ChannelGateway::start(&[], &[]).await?;
    let browser = cg.browser().await?;
    let cookie = browser.cookie_header().context("no cookie")?;
    let mut tcp = tokio::net::TcpStream::connect(cg.gw.addr()).await?;
    let mut bytes = format!(
        "GET /_gateway/events HTTP/1.1\r\nhost: {}\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\
         sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\ncookie: {cookie}\r\n\r\n",
        cg.gw.endpoint().authority()
    )
    .into_bytes();
    // A masked ping (mask key 0) carrying "early", in the same write as the head.
    bytes.extend_from_slice(&[0x89, 0x85, 0, 0, 0, 0]);
    bytes.extend_from_slice(b"early");
    tcp.write_all(&bytes).await?;

    let pong = [&[0x8A, 0x05][..], b"early"].concat();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(EVENT_WAIT, async {
        while !seen.windows(pong.len()).any(|w| w == pong.as_slice()) {
            let n = tcp.read(&mut buf).await?;
            ensure!(n > 0, "the socket ended without a pong: {}", String::from_utf8_lossy(&seen));
            seen.extend_from_slice(&buf[..n]);
        }
        Ok(())
    })
    .await
    .with_context(|| format!("no pong for the early ping: {}", String::from_utf8_lossy(&seen)))??;

    assert!(String::from_utf8_lossy(&seen).starts_with("HTTP/1.1 101"), "{}", String::from_utf8_lossy(&seen));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seventeenth_socket_of_a_session_is_refused_with_4429() -> anyhow::Result<()> {
    let cg = ChannelGateway::start(&[], &[]).await?;
    let mut browser = cg.browser().await?;
    let join = Join::Jar(browser.jar());
    let mut sockets = Vec::new();
    for _ in 0..16 {
        sockets.push(cg.joined(Transport::WebSocket, &browser).await?);
    }

    let refusal = cg.open(Transport::WebSocket, &join, None).await?.refused().await?;
    assert_eq!(refusal, Refusal::Close(4429));
    let sse = cg.open(Transport::Sse, &join, None).await?.refused().await?;
    assert_eq!(sse, Refusal::Http(429));
    assert!(cg.metric("gateway_channel_joins_refused_total", &[("reason", "too_many_sockets")]).await? >= 2.0);
    // Another session is not limited by this one, and the 16 still get their events.
    let other = cg.browser().await?;
    cg.joined(Transport::WebSocket, &other).await?;
    browser.sign_in_dev("ada").await?;
    for socket in &mut sockets {
        behaviour::expect(&mut **socket, "auth_success", &behaviour::success("ada")).await?;
    }
    // A socket that leaves frees a place.
    drop(sockets.pop());
    eventually("a place frees up after a socket leaves", EVENT_WAIT, || async {
        match cg.open(Transport::WebSocket, &join, None).await? {
            channel::Opened::Joined(_) => Ok(()),
            channel::Opened::Refused(r) => anyhow::bail!("still refused: {r:?}"),
        }
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_ticket_joins_nothing() -> anyhow::Result<()> {
    let cg = ChannelGateway::start(&[], &["ticket_ttl = \"1s\""]).await?;
    let mut browser = cg.browser().await?;
    let ticket = browser.session_info().await?.ticket()?;
    let join = Join::Ticket(ticket);
    cg.open(Transport::WebSocket, &join, None).await?.joined()?;

    // docs/architecture.md#routes: tickets are short-lived; this test is about time passing.
    eventually("a 1 s ticket stops joining", Duration::from_secs(5), || async {
        let refusal = cg.open(Transport::WebSocket, &join, None).await?.refused().await?;
        ensure!(refusal == Refusal::Close(4401), "refused with {refusal:?}");
        Ok(())
    })
    .await?;
    assert!(cg.metric("gateway_channel_joins_refused_total", &[("reason", "unauthorized")]).await? >= 1.0);
    Ok(())
}

/// Sessions and sockets of the load test: 100 sessions × 10 sockets, 10 of them signed in.
const SESSIONS: usize = 100;
const SOCKETS_PER_SESSION: usize = 10;
const SIGNED_IN: usize = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_sockets_over_100_sessions_get_exactly_their_events() -> anyhow::Result<()> {
    // Four descriptors per socket in this process (client, gateway downstream, both ends of the
    // channel hop), doubled for the tests running alongside.
    gateway_tests::limits::ensure_open_files(8 * (SESSIONS * SOCKETS_PER_SESSION) as u64)?;
    // Every socket comes from 127.0.0.1: lift the per-client limits this test is not about.
    let cg = ChannelGateway::start_for_many(&[]).await?;
    let mut browsers =
        join_all((0..SESSIONS).map(|_| cg.browser())).await.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    let endpoint = cg.gw.endpoint();
    let joins: Vec<(usize, Join)> = (0..SESSIONS * SOCKETS_PER_SESSION)
        .map(|i| (i % SESSIONS, Join::Cookie(browsers[i % SESSIONS].cookie_header().unwrap_or_default())))
        .collect();

    let opened = join_all(joins.iter().map(|(session, join)| async move {
        let ws = NativeWebSocket::open(endpoint, join, None).await?.map_err(|r| anyhow::anyhow!("refused: {r:?}"))?;
        Ok::<_, anyhow::Error>((*session, ws))
    }))
    .await;
    let mut sockets = opened.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    let open = cg.metric("gateway_channel_sockets", &[("transport", "websocket")]).await?;
    assert_eq!(open, (SESSIONS * SOCKETS_PER_SESSION) as f64, "sockets the gateway counts open after every join");
    for (_, ws) in &mut sockets {
        behaviour::expect(ws, "init", &json!(behaviour::INIT)).await?;
    }

    let signed = join_all(
        browsers[..SIGNED_IN]
            .iter_mut()
            .enumerate()
            .map(|(i, b)| async move { b.sign_in_dev(&format!("user{i}")).await }),
    )
    .await;
    signed.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    // Every socket's next event: its own session's sign-in, or (the sentinel) its own denial.
    let successes = join_all(sockets.iter_mut().filter(|(s, _)| *s < SIGNED_IN).map(|(s, ws)| {
        let expected = behaviour::success(&format!("user{s}"));
        async move { behaviour::expect(ws, "auth_success", &expected).await.with_context(|| format!("session {s}")) }
    }))
    .await;
    successes.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    let denials = join_all(browsers.iter_mut().map(Browser::deny_dev)).await;
    denials.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    let failures = join_all(sockets.iter_mut().map(|(s, ws)| async move {
        behaviour::expect(ws, "auth_failure", &behaviour::denied()).await.with_context(|| format!("session {s}"))
    }))
    .await;
    failures.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    Ok(())
}
