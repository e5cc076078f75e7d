//! Many gateways, one Redis: instances on a real `redis-server` share sign-ins, relay
//! status events, take a login transaction once, announce a token's end once per socket, keep
//! nothing readable in Redis, fail closed while Redis is away and recover without a restart.
//!
//! ```text
//!  browser ── popup on A (/connect → dev IdP on A → /connect/dev/callback on A)
//!     │                        │ tokens, sealed
//!     └── socket / requests ── B ◀──── Redis (store + pub/sub) ────▶ A
//! ```
//! The dev provider keeps its authorization codes in the memory of the instance that issued
//! them, so a popup runs on one instance; the browser's cookie (signed with the shared secret)
//! is then sent by hand to the other.

mod keys;
mod teams;

use std::time::Duration;

use anyhow::{bail, ensure, Context};
use futures_util::StreamExt;
use gateway_tests::client::{read_echo, websocket_connect, WebSocket};
use gateway_tests::redis_server::RedisServer;
use gateway_tests::{EchoUpstream, GatewayConfig, TestGateway};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

/// `store.key_prefix` of every instance.
const PREFIX: &str = "gateway:";
/// The session cookie's name (default).
const COOKIE_NAME: &str = "gw_session";
/// The user signed in with the dev provider, and the name the dev provider gives them.
const USER: &str = "ada";
const DISPLAY_NAME: &str = "Dev User ada";
/// Longest wait for an event to cross from one instance to another.
const EVENT_WAIT: Duration = Duration::from_secs(10);

/// The dev provider, a protected `/api/`, a protected `/token/` that forwards the access token;
/// every other path is public.
const PROVIDER_AND_ROUTES: &str = r#"
[providers.dev]
kind = "dev"

[[routes]]
prefix = "/api/"
require = ["dev"]

[[routes]]
prefix = "/token/"
require = ["dev"]
forward_access_token = true
"#;

/// A gateway config on a fresh port using `redis`; plain-HTTP cookies, `token_ttl`. Every
/// instance gets the harness's one `GATEWAY_SECRET`, so each accepts the others' cookies.
fn config_on(redis: &RedisServer, echo: &EchoUpstream, token_ttl: &str) -> anyhow::Result<String> {
    Ok(GatewayConfig::on_free_port(&[echo.addr()])?
        .plain_http_cookies()
        .session_key(&format!("token_ttl = \"{token_ttl}\""))
        .extra(&redis.store_table(PREFIX))
        .extra(PROVIDER_AND_ROUTES)
        .to_toml())
}

/// `count` gateways on `redis`, started once each has subscribed to the relay channels (a
/// health answer does not say the subscription is up yet).
async fn gateways(
    redis: &RedisServer,
    echo: &EchoUpstream,
    token_ttl: &str,
    count: u64,
) -> anyhow::Result<Vec<TestGateway>> {
    let mut started = Vec::new();
    for _ in 0..count {
        started.push(TestGateway::with_toml(config_on(redis, echo, token_ttl)?).start().await?);
    }
    let channels = [format!("{PREFIX}ev"), format!("{PREFIX}inv")];
    redis.wait_subscribers(&channels, count, Duration::from_secs(15)).await?;
    Ok(started)
}

/// Instances A and B on `redis`.
async fn two_gateways(
    redis: &RedisServer,
    echo: &EchoUpstream,
    token_ttl: &str,
) -> anyhow::Result<(TestGateway, TestGateway)> {
    let mut started = gateways(redis, echo, token_ttl, 2).await?;
    let b = started.pop().context("no gateway B")?;
    Ok((started.pop().context("no gateway A")?, b))
}

/// One instance on `redis`, tokens for 2 minutes.
async fn one_gateway(redis: &RedisServer, echo: &EchoUpstream) -> anyhow::Result<TestGateway> {
    gateways(redis, echo, "2m", 1).await?.pop().context("no gateway")
}

/// A new browser session on `gw`: the `Cookie` header value (`gw_session=…`).
async fn new_session(gw: &TestGateway) -> anyhow::Result<String> {
    let resp = gw.client()?.get(gw.url("/_gateway/session")).send().await?;
    ensure!(resp.status() == 200, "GET /_gateway/session answered {}", resp.status());
    session_cookie_of(&resp).context("no session cookie set")
}

/// The `gw_session=…` pair of the session cookie `resp` sets, if it sets one.
fn session_cookie_of(resp: &reqwest::Response) -> Option<String> {
    let set = resp
        .headers()
        .get_all(http::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{COOKIE_NAME}=")))?;
    Some(set.split(';').next().unwrap_or_default().to_owned())
}

/// The session JSON of `cookie`'s session on `gw`.
async fn session_info(gw: &TestGateway, cookie: &str) -> anyhow::Result<Value> {
    let resp = gw.client()?.get(gw.url("/_gateway/session")).header("cookie", cookie).send().await?;
    ensure!(resp.status() == 200, "GET /_gateway/session answered {}", resp.status());
    Ok(serde_json::from_slice(&resp.bytes().await?)?)
}

/// The `Location` of a 302.
fn location(resp: &reqwest::Response) -> anyhow::Result<reqwest::Url> {
    ensure!(resp.status() == 302, "expected 302, got {}", resp.status());
    let value = resp.headers().get(http::header::LOCATION).context("302 without Location")?.to_str()?;
    reqwest::Url::parse(value).with_context(|| format!("Location {value} is not an absolute URL"))
}

/// Opens the popup on `gw`: follows the session's connect URL (which records the login
/// transaction) to the dev provider's authorize URL.
async fn start_sign_in(gw: &TestGateway, cookie: &str) -> anyhow::Result<reqwest::Url> {
    let info = session_info(gw, cookie).await?;
    let connect = info["providers"]["dev"]["connect_url"].as_str().context("no dev connect_url")?;
    location(&gw.client()?.get(gw.url(connect)).send().await?)
}

/// Signs `user` in at the dev provider on `gw`; the provider's redirect back (path and query
/// of the callback), not yet followed.
async fn approve(gw: &TestGateway, authorize: &reqwest::Url, user: &str) -> anyhow::Result<String> {
    let client = gw.client()?;
    let form = client.get(authorize.as_str()).send().await?;
    ensure!(form.status() == 200, "dev authorize form answered {}", form.status());
    let html = form.text().await?;
    let marker = "name=\"request\" value=\"";
    let start = html.find(marker).context("no request field in the dev form")? + marker.len();
    let request = &html[start..start + html[start..].find('"').context("unterminated request value")?];
    let body = format!("request={request}&username={user}&action=approve");
    let resp = client
        .post(gw.url("/_gateway/dev/authorize"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await?;
    let callback = location(&resp)?;
    ensure!(callback.path() == "/connect/dev/callback", "dev provider redirected to {callback}");
    Ok(format!("{}?{}", callback.path(), callback.query().unwrap_or_default()))
}

/// GET of a callback on `gw`: status and completion page.
async fn follow_callback(gw: &TestGateway, callback: &str) -> anyhow::Result<(u16, String)> {
    let resp = gw.client()?.get(gw.url(callback)).send().await?;
    Ok((resp.status().as_u16(), resp.text().await?))
}

/// Whether a completion page reports a refused (unknown, used or expired) state.
fn is_invalid_state(page: &str) -> bool {
    page.contains("\"error\":\"invalid_state\"")
}

/// The whole popup for `cookie`'s session on `gw`, as `user`, in a popup without the pane's
/// cookies; the pane then redeems the handoff code on `gw`. The session's rotated cookie.
async fn sign_in(gw: &TestGateway, cookie: &str, user: &str) -> anyhow::Result<String> {
    let authorize = start_sign_in(gw, cookie).await?;
    let callback = approve(gw, &authorize, user).await?;
    let (status, page) = follow_callback(gw, &callback).await?;
    ensure!(status == 200, "callback answered {status}: {page}");
    redeem(gw, cookie, &page).await
}

/// The pane of `cookie` redeems the handoff code of a completion `page` on `gw` (204 required);
/// the rotated cookie.
async fn redeem(gw: &TestGateway, cookie: &str, page: &str) -> anyhow::Result<String> {
    let completion = gateway_tests::signin::Page { status: 200, headers: Default::default(), body: page.to_owned() };
    let code = completion.handoff_code()?.context("no handoff code on the completion page")?;
    let resp = gw
        .client()?
        .post(gw.url("/_gateway/handoff"))
        .header("cookie", cookie)
        .header("origin", gw.url("").trim_end_matches('/'))
        .header("content-type", "application/json")
        .body(json!({ "code": code }).to_string())
        .send()
        .await?;
    ensure!(resp.status() == 204, "handoff answered {}", resp.status());
    session_cookie_of(&resp).context("the handoff set no rotated cookie")
}

/// A GET of `path` on `gw` with `cookie`.
async fn get(gw: &TestGateway, path: &str, cookie: &str) -> anyhow::Result<reqwest::Response> {
    Ok(gw.client()?.get(gw.url(path)).header("cookie", cookie).send().await?)
}

/// A status-channel connection: native WebSocket or SSE, read the same way.
enum Events {
    Ws(Box<WebSocket>),
    Sse { resp: reqwest::Response, buffer: String },
}

impl Events {
    async fn websocket(gw: &TestGateway, cookie: &str) -> anyhow::Result<Self> {
        Ok(Self::Ws(Box::new(websocket_connect(&gw.ws_url("/_gateway/events"), &[("cookie", cookie)]).await?)))
    }

    async fn sse(gw: &TestGateway, cookie: &str) -> anyhow::Result<Self> {
        let resp = get(gw, "/_gateway/events", cookie).await?;
        ensure!(resp.status() == 200, "SSE answered {}", resp.status());
        Ok(Self::Sse { resp, buffer: String::new() })
    }

    /// The next `{"event","data"}` within `within`; `None` when nothing came in time.
    async fn next(&mut self, within: Duration) -> anyhow::Result<Option<(String, Value)>> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let text = match self {
                Self::Ws(ws) => match tokio::time::timeout_at(deadline, ws.next()).await {
                    Err(_) => return Ok(None),
                    Ok(Some(Ok(Message::Text(text)))) => text.to_string(),
                    Ok(Some(Ok(Message::Close(frame)))) => bail!("the status socket closed: {frame:?}"),
                    Ok(Some(Ok(_))) => continue,
                    Ok(Some(Err(e))) => bail!("the status socket failed: {e}"),
                    Ok(None) => bail!("the status socket ended"),
                },
                Self::Sse { resp, buffer } => {
                    if let Some(end) = buffer.find("\n\n") {
                        let block: String = buffer.drain(..end + 2).collect();
                        match block.lines().find_map(|l| l.strip_prefix("data: ")) {
                            Some(data) => data.to_owned(),
                            None => continue,
                        }
                    } else {
                        match tokio::time::timeout_at(deadline, resp.chunk()).await {
                            Err(_) => return Ok(None),
                            Ok(chunk) => match chunk.context("the SSE stream failed")? {
                                Some(bytes) => buffer.push_str(&String::from_utf8_lossy(&bytes)),
                                None => bail!("the SSE stream ended"),
                            },
                        }
                        continue;
                    }
                }
            };
            let event: Value = serde_json::from_str(&text).with_context(|| format!("not an event: {text}"))?;
            let name = event["event"].as_str().with_context(|| format!("no event name: {text}"))?.to_owned();
            return Ok(Some((name, event["data"].clone())));
        }
    }

    /// Skips other events until `name` arrives (its data), failing after `within`.
    async fn expect(&mut self, name: &str, within: Duration) -> anyhow::Result<Value> {
        let deadline = tokio::time::Instant::now() + within;
        let mut seen = Vec::new();
        while let Some((event, data)) =
            self.next(deadline.saturating_duration_since(tokio::time::Instant::now())).await?
        {
            if event == name {
                return Ok(data);
            }
            seen.push(event);
        }
        bail!("no {name} within {within:?}; saw {seen:?}")
    }

    /// Every event that arrives during `window`.
    async fn collect(&mut self, window: Duration) -> anyhow::Result<Vec<String>> {
        let deadline = tokio::time::Instant::now() + window;
        let mut seen = Vec::new();
        while let Some((event, _)) = self.next(deadline.saturating_duration_since(tokio::time::Instant::now())).await? {
            seen.push(event);
        }
        Ok(seen)
    }
}

fn signed_in_as_user() -> Value {
    json!([{"providerName": "dev", "displayName": DISPLAY_NAME}])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_sign_in_on_one_instance_reaches_the_socket_on_the_other() -> anyhow::Result<()> {
    let redis = RedisServer::start().await?;
    let echo = EchoUpstream::start("app").await?;
    let (a, b) = two_gateways(&redis, &echo, "2m").await?;
    let cookie = new_session(&a).await?;
    let mut on_b = Events::websocket(&b, &cookie).await?;
    on_b.expect("init", EVENT_WAIT).await?;

    // The sign-in and its redemption happen on A (which rotates the cookie); the socket on B,
    // joined with the old value, is still told.
    sign_in(&a, &cookie, USER).await?;

    assert_eq!(on_b.expect("auth_success", EVENT_WAIT).await?, signed_in_as_user());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_request_via_the_other_instance_carries_the_identity() -> anyhow::Result<()> {
    let redis = RedisServer::start().await?;
    let echo = EchoUpstream::start("app").await?;
    let (a, b) = two_gateways(&redis, &echo, "2m").await?;
    let cookie = new_session(&a).await?;
    let before = get(&b, "/api/whoami", &cookie).await?;
    assert_eq!(before.status(), 401, "signed out, B must ask for a sign-in");

    let cookie = sign_in(&a, &cookie, USER).await?;

    // B may have cached "signed out" for a moment; the invalidation must reach it (bounded).
    let seen = gateway_tests::eventually("B serves /api/ to the session signed in on A", EVENT_WAIT, || async {
        read_echo(get(&b, "/api/whoami", &cookie).await?).await
    })
    .await?;
    assert_eq!(seen.header("x-forwarded-user").as_deref(), Some(USER));
    assert_eq!(seen.header("x-forwarded-name").as_deref(), Some(DISPLAY_NAME));
    assert_eq!(session_info(&b, &cookie).await?["providers"]["dev"]["signed_in"], json!(true));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_handoff_parked_on_one_instance_is_redeemed_once_on_the_other_and_rotates_everywhere(
) -> anyhow::Result<()> {
    let redis = RedisServer::start().await?;
    let echo = EchoUpstream::start("app").await?;
    let (a, b) = two_gateways(&redis, &echo, "2m").await?;
    let old = new_session(&a).await?;
    // Both instances have looked at the old value (and may cache its generation).
    assert_eq!(get(&a, "/api/whoami", &old).await?.status(), 401);
    assert_eq!(get(&b, "/api/whoami", &old).await?.status(), 401);
    let authorize = start_sign_in(&a, &old).await?;
    let (status, page) = follow_callback(&a, &approve(&a, &authorize, USER).await?).await?;
    ensure!(status == 200, "callback answered {status}: {page}");

    let new = redeem(&b, &old, &page).await?;
    assert!(redeem(&a, &new, &page).await.is_err(), "a handoff code was redeemed twice across instances");
    assert!(new != old, "the cookie did not rotate");
    for (name, gw) in [("A", &a), ("B", &b)] {
        let seen = gateway_tests::eventually(&format!("{name} serves the rotated cookie"), EVENT_WAIT, || async {
            read_echo(get(gw, "/api/whoami", &new).await?).await
        })
        .await?;
        assert_eq!(seen.header("x-forwarded-user").as_deref(), Some(USER));
        gateway_tests::eventually(&format!("{name} refuses the old cookie"), EVENT_WAIT, || async {
            let status = get(gw, "/api/whoami", &old).await?.status();
            ensure!(status == 401, "the rotated-away cookie got {status} on {name}");
            Ok(())
        })
        .await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_login_transaction_replayed_on_the_other_instance_is_refused() -> anyhow::Result<()> {
    let redis = RedisServer::start().await?;
    let echo = EchoUpstream::start("app").await?;
    let (a, b) = two_gateways(&redis, &echo, "2m").await?;
    let cookie = new_session(&a).await?;
    let callback = approve(&a, &start_sign_in(&a, &cookie).await?, USER).await?;

    let (first, page) = follow_callback(&a, &callback).await?;
    assert_eq!(first, 200, "{page}");
    let (replayed, page) = follow_callback(&b, &callback).await?;

    assert_eq!(replayed, 400, "{page}");
    assert!(is_invalid_state(&page), "the replay must be refused as invalid_state: {page}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_login_transaction_sent_to_both_instances_at_once_is_taken_once() -> anyhow::Result<()> {
    let redis = RedisServer::start().await?;
    let echo = EchoUpstream::start("app").await?;
    let (a, b) = two_gateways(&redis, &echo, "2m").await?;
    for round in 0..3 {
        let cookie = new_session(&a).await?;
        let callback = approve(&a, &start_sign_in(&a, &cookie).await?, USER).await?;

        let (on_a, on_b) = tokio::join!(follow_callback(&a, &callback), follow_callback(&b, &callback));
        let ((status_a, page_a), (status_b, page_b)) = (on_a?, on_b?);

        // The code was issued by A's dev provider: if B wins the transaction its code exchange
        // fails, but in every case exactly one instance must find the state already gone.
        let refused = [&page_a, &page_b].into_iter().filter(|p| is_invalid_state(p)).count();
        assert_eq!(refused, 1, "round {round}: A {status_a} {page_a}\nB {status_b} {page_b}");
        if is_invalid_state(&page_b) {
            assert_eq!(status_a, 200, "round {round}: A took the transaction but failed: {page_a}");
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_token_lifetime_end_is_announced_once_on_each_socket() -> anyhow::Result<()> {
    let redis = RedisServer::start().await?;
    let echo = EchoUpstream::start("app").await?;
    let (a, b) = two_gateways(&redis, &echo, "2s").await?;
    let cookie = new_session(&a).await?;
    let mut on_a = Events::sse(&a, &cookie).await?;
    let mut on_b = Events::websocket(&b, &cookie).await?;
    on_a.expect("init", EVENT_WAIT).await?;
    on_b.expect("init", EVENT_WAIT).await?;

    let cookie = sign_in(&a, &cookie, USER).await?;
    on_a.expect("auth_success", EVENT_WAIT).await?;
    on_b.expect("auth_success", EVENT_WAIT).await?;

    let expired = json!([{"providerName": "dev"}]);
    assert_eq!(on_a.expect("auth_expired", EVENT_WAIT).await?, expired, "socket on A");
    assert_eq!(on_b.expect("auth_expired", EVENT_WAIT).await?, expired, "socket on B");
    let window = Duration::from_millis(1500);
    let (later_a, later_b) = tokio::join!(on_a.collect(window), on_b.collect(window));
    let (later_a, later_b) = (later_a?, later_b?);
    assert!(!later_a.contains(&"auth_expired".to_owned()), "A's socket heard the end twice: {later_a:?}");
    assert!(!later_b.contains(&"auth_expired".to_owned()), "B's socket heard the end twice: {later_b:?}");
    let after = get(&b, "/api/whoami", &cookie).await?;
    assert_eq!(after.status(), 401, "the expired sign-in must no longer open /api/");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_values_are_sealed_not_plaintext() -> anyhow::Result<()> {
    let redis = RedisServer::start().await?;
    let echo = EchoUpstream::start("app").await?;
    let gw = one_gateway(&redis, &echo).await?;
    // A long user name: a short one could turn up in random ciphertext by chance.
    let user = "ada.lovelace-1815";
    let cookie = new_session(&gw).await?;
    let cookie = sign_in(&gw, &cookie, user).await?;
    let seen = read_echo(get(&gw, "/token/x", &cookie).await?).await?;
    let access_token = seen.header("x-forwarded-access-token").context("no access token forwarded")?;
    // A second sign-in left open: its login transaction (state, nonce, PKCE) sits in Redis.
    let authorize = start_sign_in(&gw, &cookie).await?;
    let param = |name: &str| authorize.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned());
    let mut secrets = vec![
        ("user name", user.to_owned()),
        ("display name", format!("Dev User {user}")),
        ("\"Dev User\"", "Dev User".to_owned()),
        ("email", format!("{user}@dev.example")),
        ("access token", access_token),
    ];
    for name in ["state", "nonce", "code_challenge"] {
        secrets.push((name, param(name).with_context(|| format!("no {name} in {authorize}"))?));
    }

    let keys = redis.keys(&format!("{PREFIX}*")).await?;
    let tokens = keys.iter().filter(|k| k.starts_with(&format!("{PREFIX}t:"))).count();
    let flows = keys.iter().filter(|k| k.starts_with(&format!("{PREFIX}f:"))).count();
    assert!(tokens >= 1 && flows >= 1, "expected token and transaction keys, found {keys:?}");
    let mut leaks = Vec::new();
    for key in &keys {
        let value = redis.get_raw(key).await?.unwrap_or_default();
        for (what, secret) in &secrets {
            if value.windows(secret.len()).any(|w| w == secret.as_bytes()) {
                leaks.push(format!("{key} holds the {what} in plaintext"));
            }
        }
    }
    assert!(leaks.is_empty(), "{}", leaks.join("\n"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_fails_closed_on_protected_routes_and_recovers_when_it_returns() -> anyhow::Result<()> {
    let mut redis = RedisServer::start_persistent().await?;
    let echo = EchoUpstream::start("app").await?;
    let gw = one_gateway(&redis, &echo).await?;
    let cookie = new_session(&gw).await?;
    let cookie = sign_in(&gw, &cookie, USER).await?;
    read_echo(get(&gw, "/api/whoami", &cookie).await?).await?;

    redis.stop()?;
    // The L1 may answer for a few seconds; then the store's absence must show as 503.
    gateway_tests::eventually("/api/ answers 503 while Redis is down", Duration::from_secs(10), || async {
        let resp = get(&gw, "/api/whoami", &cookie).await?;
        let status = resp.status();
        let body: Value = serde_json::from_slice(&resp.bytes().await?).unwrap_or(Value::Null);
        ensure!(status == 503, "status {status}, body {body}");
        ensure!(body["error"] == "temporarily_unavailable", "503 body {body}");
        Ok(())
    })
    .await?;
    let public = read_echo(get(&gw, "/public/page", &cookie).await?).await?;
    assert_eq!(public.path, "/public/page");
    read_echo(gw.client()?.get(gw.url("/public/anonymous")).send().await?).await?;

    redis.restart().await?;
    let seen = gateway_tests::eventually("/api/ answers 200 again", Duration::from_secs(20), || async {
        read_echo(get(&gw, "/api/whoami", &cookie).await?).await
    })
    .await?;
    assert_eq!(seen.header("x-forwarded-user").as_deref(), Some(USER), "the sign-in survived the Redis restart");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_session_survives_a_gateway_restart() -> anyhow::Result<()> {
    let redis = RedisServer::start().await?;
    let echo = EchoUpstream::start("app").await?;
    let toml = config_on(&redis, &echo, "2m")?;
    let first = TestGateway::with_toml(toml.clone()).start().await?;
    let cookie = new_session(&first).await?;
    let cookie = sign_in(&first, &cookie, USER).await?;
    read_echo(get(&first, "/api/whoami", &cookie).await?).await?;
    drop(first);

    // Same file, same port, same secret: a restarted process with an empty L1.
    let second = TestGateway::with_toml(toml).start().await?;
    let seen = read_echo(get(&second, "/api/whoami", &cookie).await?).await?;

    assert_eq!(seen.header("x-forwarded-user").as_deref(), Some(USER));
    Ok(())
}
