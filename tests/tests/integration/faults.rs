//! Faults while serving load: a dependency fails while bystanders keep sending, and
//! every answer is counted. The users of the failing dependency get one clear error, everyone
//! else keeps getting 2xx, and service comes back without restarting the gateway.
//!
//! ```text
//!  Load: load::TASKS tasks ──▶ gateway ──▶ echo upstream        every answer becomes a Sample:
//!        (bystanders' cookies, public routes, health)          class, start, end, status, error
//!  test: warm up ─▶ inject the fault ─▶ affected users ─▶ lift it ─▶ recovery ─▶ tally + println!
//! ```
//! | fault | affected users get | everyone else |
//! |---|---|---|
//! | token endpoint down, slow (beyond the gateway's timeout), garbage | 502 completion page, `temporarily_unavailable` | 2xx, also sign-ins with the same provider from before |
//! | JWKS unreachable (no keys cached yet) | 502 completion page, `temporarily_unavailable` | 2xx; once keys are cached a second outage refuses nobody |
//! | upstream killed, restarted on its port | 502 `bad_gateway`, only during the outage | gateway routes and sign-ins 2xx |
//! | Redis killed, restarted on its port | protected routes 503 `temporarily_unavailable` (fail closed) | public routes 2xx |
//!
//! Run with `--nocapture` to see the counts (`faults: …` lines, the admission counters of
//! `gateway_limit_refusals_total` among them). Nothing here asserts on speed; every wait is bounded.

use std::net::SocketAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use futures_util::future::join_all;
use gateway::providers::http_client::REQUEST_TIMEOUT as PROVIDER_TIMEOUT;
use gateway_tests::gateway::HEALTH_PATH;
use gateway_tests::idp::{TestIdp, CLIENT_ID, CLIENT_SECRET};
use gateway_tests::load::{describe_failure_span, describe_failures, Load, Outcome, Probe, Sample, Tally};
use gateway_tests::redis_server::RedisServer;
use gateway_tests::signin::{dev_config, Browser, Page};
use gateway_tests::{eventually, metrics, Echo, EchoUpstream, Endpoint, GatewayConfig, TestGateway};
use reqwest::header::{ACCEPT, COOKIE};
use serde_json::Value;

/// Requests the load completes before a fault is injected.
const WARM_UP: u64 = 60;
/// Requests the load completes while a fault is on (at least).
const DURING: u64 = 150;
/// Requests the load completes after recovery (at least).
const AFTER: u64 = 60;
/// Longest wait for a fault to show, or for service to come back after it is lifted.
const CHANGE_WITHIN: Duration = Duration::from_secs(15);
/// Longest wait for one sign-in through a failing provider (the slow case waits for the
/// gateway's provider timeout).
const SIGN_IN_WITHIN: Duration = Duration::from_secs(30);
/// New sign-ins that run into a provider fault.
const AFFECTED_SIGN_INS: usize = 5;

/// The dev provider (`/api/` needs it) plus the test IdP as `idp` by OIDC discovery (`/idp/`
/// needs it); every other path is public.
async fn provider_gateway(idp: &TestIdp, upstream: &EchoUpstream) -> anyhow::Result<(TestGateway, SocketAddr)> {
    let (config, admin) = with_admin(dev_config(upstream.addr(), &[])?)?;
    let config = config
        .extra(&format!(
            "[providers.idp]\nkind = \"oidc\"\nissuer = \"{}\"\nclient_id = \"{CLIENT_ID}\"\n\
             client_secret = \"env:IDP_SECRET\"\nscopes = [\"openid\", \"email\", \"profile\"]\n",
            idp.issuer()
        ))
        .extra("[[routes]]\nprefix = \"/idp/\"\nrequire = [\"idp\"]\n");
    Ok((TestGateway::with_toml(config).env("IDP_SECRET", CLIENT_SECRET).start().await?, admin))
}

/// `config` with an admin listener on a free port, and that port's address.
fn with_admin(config: GatewayConfig) -> anyhow::Result<(GatewayConfig, SocketAddr)> {
    let admin = gateway_tests::ports::free_addr()?;
    Ok((config.server_key(&format!("admin_listen = \"{admin}\"")), admin))
}

/// The admission counters for a `faults:` line: what each limit refused or cut (a fault of a
/// dependency should move none of them), and the open connections.
async fn limits_line(admin: SocketAddr) -> String {
    let Ok(text) = metrics::scrape(admin).await else { return "limits: metrics unavailable".to_owned() };
    let counts: Vec<String> = gateway::metrics::Limit::ALL
        .iter()
        .map(|l| {
            format!("{}={}", l.label(), metrics::value(&text, "gateway_limit_refusals_total", &[("limit", l.label())]))
        })
        .collect();
    let open = metrics::value(&text, "gateway_open_connections", &[]);
    format!("limit refusals {}; open connections {open}", counts.join(" "))
}

/// The popup flow with the test IdP (which answers at once): the completion page.
async fn idp_sign_in(browser: &mut Browser) -> anyhow::Result<Page> {
    let connect = browser.session_info().await?.connect_url("idp")?;
    let to_idp = browser.get(&connect).await?;
    ensure!(to_idp.status == 302, "connect answered {}: {}", to_idp.status, to_idp.body);
    let from_idp = browser.get(to_idp.location()?).await?;
    ensure!(from_idp.status == 302, "the provider answered {}: {}", from_idp.status, from_idp.body);
    let callback = from_idp.location()?.to_owned();
    browser.get(&callback).await
}

/// `count` new browsers sign in with the test IdP at once; each one's completion page and the
/// status of its next `/idp/` request.
async fn idp_sign_ins(endpoint: &Endpoint, count: usize) -> anyhow::Result<Vec<(Page, u16)>> {
    let attempts = (0..count).map(|_| async {
        let mut browser = Browser::new(endpoint)?;
        let page = tokio::time::timeout(SIGN_IN_WITHIN, idp_sign_in(&mut browser))
            .await
            .context("a sign-in through the failing provider did not end")??;
        let after = browser.get("/idp/whoami").await?.status;
        anyhow::Ok((page, after))
    });
    join_all(attempts).await.into_iter().collect()
}

/// The completion page of a sign-in that a provider fault stopped: `status`, the OAuth `code`,
/// a message naming the failed dependency (`names`), and no secret or internal address.
fn ensure_clear_failure(page: &Page, status: u16, code: &str, names: &str, idp: &TestIdp) -> anyhow::Result<()> {
    ensure!(page.status == status, "expected {status} {code}, got {}: {}", page.status, page.body);
    ensure!(
        page.body.contains("Sign-in failed") && page.body.contains(&format!("\"error\":\"{code}\"")),
        "no {code} failure in: {}",
        page.body
    );
    ensure!(page.body.contains(names), "the page does not say that the {names} failed: {}", page.body);
    ensure!(!page.body.contains(CLIENT_SECRET), "the client secret is in the page");
    ensure!(!idp.issued_secrets().iter().any(|s| page.body.contains(s.as_str())), "a code or token is in the page");
    ensure!(!page.body.contains(&idp.addr().to_string()), "the provider's address is in the page: {}", page.body);
    Ok(())
}

/// A `GET` of `url` asking for JSON: status and body (`Null` when not JSON).
async fn get_json(client: &reqwest::Client, url: String) -> anyhow::Result<(u16, Value)> {
    get_json_with(client.get(url)).await
}

/// Sends `request` asking for JSON: status and body (`Null` when not JSON).
async fn get_json_with(request: reqwest::RequestBuilder) -> anyhow::Result<(u16, Value)> {
    let resp = request.header(ACCEPT, "application/json").send().await?;
    let status = resp.status().as_u16();
    Ok((status, serde_json::from_slice(&resp.bytes().await?).unwrap_or(Value::Null)))
}

/// A new browser signed in with the dev provider as `user`, checked on `/api/`.
async fn dev_user(endpoint: &Endpoint, user: &str) -> anyhow::Result<Browser> {
    let mut browser = Browser::new(endpoint)?;
    browser.sign_in_dev(user).await?;
    let seen = browser.get("/api/whoami").await?.echo()?;
    ensure!(seen.header("x-forwarded-user").as_deref() == Some(user), "{user} reached /api/ as {seen:?}");
    Ok(browser)
}

/// Bystanders of a provider fault: `ada` and `bob` signed in with the dev provider (their
/// `/api/` and session routes), one session signed in with `idp` before the fault (its `/idp/`
/// route) when `idp_session` says so, anonymous public pages and the health route.
async fn provider_bystanders(gw: &TestGateway, idp_session: bool) -> anyhow::Result<Vec<Probe>> {
    let mut probes = Vec::new();
    for user in ["ada", "bob"] {
        let browser = dev_user(gw.endpoint(), user).await?;
        probes.push(Probe::with_cookie("bystander", "/api/whoami", &browser, Some(user))?);
        probes.push(Probe::with_cookie("bystander", "/_gateway/session", &browser, None)?);
    }
    if idp_session {
        let mut early = Browser::new(gw.endpoint())?;
        let page = idp_sign_in(&mut early).await?;
        ensure!(page.status == 200, "the sign-in before the fault failed: {}", page.body);
        probes.push(Probe::with_cookie("bystander", "/idp/whoami", &early, Some("sub-alice"))?);
    }
    probes.push(Probe::anonymous("bystander", "/public/page"));
    probes.push(Probe::anonymous("bystander", HEALTH_PATH));
    Ok(probes)
}

/// A fault of the provider's token endpoint while bystanders keep sending: `inject` spoils it,
/// then [`AFFECTED_SIGN_INS`] new sign-ins with that provider must fail clearly (502,
/// `temporarily_unavailable`, naming the token endpoint) while nobody else notices.
async fn token_endpoint_fault(what: &str, inject: impl Fn(&TestIdp)) -> anyhow::Result<()> {
    let (idp, upstream) = (TestIdp::start().await, EchoUpstream::start("app").await?);
    let (gw, admin) = provider_gateway(&idp, &upstream).await?;
    let load = Load::start(gw.endpoint(), provider_bystanders(&gw, true).await?)?;
    load.run_for(WARM_UP).await?;

    let fault_on = Instant::now();
    inject(&idp);
    let affected = idp_sign_ins(gw.endpoint(), AFFECTED_SIGN_INS).await?;
    for (page, after) in &affected {
        ensure_clear_failure(page, 502, "temporarily_unavailable", "token endpoint", &idp).context(what.to_owned())?;
        ensure!(*after == 401, "{what}: a failed sign-in left the session signed in ({after})");
    }
    // Another provider's sign-in is no user of this dependency.
    dev_user(gw.endpoint(), "carol").await.context("a dev sign-in during the fault")?;
    load.run_for(DURING).await?;
    idp.reset();
    let fault_off = Instant::now();

    let mut next = Browser::new(gw.endpoint())?;
    let page = idp_sign_in(&mut next).await?;
    ensure!(page.status == 200 && page.body.contains("Signed in as Alice Example"), "after the fault: {}", page.body);
    let seen = next.get("/idp/whoami").await?.echo()?;
    ensure!(seen.header("x-forwarded-user").as_deref() == Some("sub-alice"), "{seen:?}");
    load.run_for(AFTER).await?;
    let samples = load.finish().await?;

    let all = Tally::of(&samples);
    let during = Tally::of(samples.iter().filter(|s| s.overlaps(fault_on, fault_off)));
    println!(
        "faults: {what}: bystanders {all}, during the fault {during}; affected={} all 502 temporarily_unavailable; \
         recovered: the next sign-in 200",
        affected.len()
    );
    println!("faults: {what}: {}", limits_line(admin).await);
    ensure!(all.non_2xx() == 0, "{what}: bystanders were refused:\n{}", describe_failures(&samples, Sample::is_2xx));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_endpoint_down_fails_its_sign_ins_clearly_and_no_one_else() -> anyhow::Result<()> {
    token_endpoint_fault("token endpoint down", |idp| idp.unreachable("/token")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_endpoint_slower_than_the_timeout_fails_its_sign_ins_clearly_and_no_one_else() -> anyhow::Result<()> {
    token_endpoint_fault("token endpoint slower than the gateway's timeout", |idp| {
        idp.token_delay(PROVIDER_TIMEOUT + Duration::from_secs(2));
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_endpoint_answering_garbage_fails_its_sign_ins_clearly_and_no_one_else() -> anyhow::Result<()> {
    token_endpoint_fault("token endpoint answers garbage", TestIdp::token_body_garbage).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_unreachable_fails_its_sign_ins_clearly_and_recovers_when_it_returns() -> anyhow::Result<()> {
    let (idp, upstream) = (TestIdp::start().await, EchoUpstream::start("app").await?);
    // The key set is away from the start: the gateway, which fetches every provider's keys once
    // when it starts (readiness), holds none of them.
    idp.unreachable("/jwks");
    let (gw, admin) = provider_gateway(&idp, &upstream).await?;
    let load = Load::start(gw.endpoint(), provider_bystanders(&gw, false).await?)?;
    load.run_for(WARM_UP).await?;

    let fault_on = Instant::now();
    let affected = idp_sign_ins(gw.endpoint(), AFFECTED_SIGN_INS).await?;
    for (page, after) in &affected {
        ensure_clear_failure(page, 502, "temporarily_unavailable", "keys", &idp)?;
        ensure!(*after == 401, "a failed sign-in left the session signed in ({after})");
    }
    dev_user(gw.endpoint(), "carol").await.context("a dev sign-in during the fault")?;
    load.run_for(DURING).await?;
    idp.reset();
    let fault_off = Instant::now();

    // Sign-ins between the key set's return and the gateway's next fetch may still fail, but
    // only with the same clear error; one must succeed within a bounded time.
    let refused = Mutex::new(Vec::new());
    let endpoint = gw.endpoint();
    let mut recovered = eventually("a sign-in with idp succeeds after the key set returns", CHANGE_WITHIN, || async {
        let mut browser = Browser::new(endpoint)?;
        let page = idp_sign_in(&mut browser).await?;
        if page.status == 200 {
            return Ok(browser);
        }
        let clear = ensure_clear_failure(&page, 502, "temporarily_unavailable", "keys", &idp);
        refused.lock().unwrap_or_else(PoisonError::into_inner).push(clear.map_err(|e| format!("{e:#}")));
        bail!("refused with {}", page.status)
    })
    .await?;
    let refused = refused.into_inner().unwrap_or_else(PoisonError::into_inner);
    let unclear: Vec<&String> = refused.iter().filter_map(|r| r.as_ref().err()).collect();
    ensure!(unclear.is_empty(), "sign-ins after the key set returned failed unclearly: {unclear:?}");
    ensure!(recovered.get("/idp/whoami").await?.status == 200, "the recovered sign-in does not open /idp/");

    // With the keys cached, the key set going away again stops nobody.
    idp.unreachable("/jwks");
    let cached = idp_sign_ins(gw.endpoint(), 2).await?;
    idp.reset();
    for (page, after) in &cached {
        ensure!(
            page.status == 200 && *after == 200,
            "with keys cached a sign-in answered {}: {}",
            page.status,
            page.body
        );
    }
    load.run_for(AFTER).await?;
    let samples = load.finish().await?;

    let all = Tally::of(&samples);
    let during = Tally::of(samples.iter().filter(|s| s.overlaps(fault_on, fault_off)));
    println!(
        "faults: JWKS unreachable: bystanders {all}, during the fault {during}; affected={} all 502 \
         temporarily_unavailable; recovered after {} more refused sign-ins; with keys cached a second outage \
         refused 0 of {}",
        affected.len(),
        refused.len(),
        cached.len()
    );
    println!("faults: JWKS unreachable: {}", limits_line(admin).await);
    ensure!(all.non_2xx() == 0, "bystanders were refused:\n{}", describe_failures(&samples, Sample::is_2xx));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_killed_and_restarted_gives_502_only_during_the_outage() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("app").await?;
    let (config, admin) = with_admin(dev_config(upstream.addr(), &[])?)?;
    let gw = TestGateway::with_toml(config).start().await?;
    let mut probes = Vec::new();
    for user in ["ada", "bob"] {
        let browser = dev_user(gw.endpoint(), user).await?;
        probes.push(Probe::with_cookie("upstream", "/api/whoami", &browser, Some(user))?);
        probes.push(Probe::with_cookie("gateway", "/_gateway/session", &browser, None)?);
    }
    probes.push(Probe::anonymous("upstream", "/public/page"));
    probes.push(Probe::anonymous("gateway", HEALTH_PATH));
    let load = Load::start(gw.endpoint(), probes)?;
    load.run_for(WARM_UP).await?;

    let client = gw.client()?;
    let probe_status = || get_json(&client, gw.url("/public/probe"));
    let healthy_upstreams = || async {
        let (_, health) = get_json(&client, gw.url(HEALTH_PATH)).await?;
        health["upstreams"]["healthy"].as_u64().with_context(|| format!("no upstream count in {health}"))
    };
    let port = upstream.port();
    let killed = Instant::now();
    upstream.stop().await;
    eventually("the dead upstream shows as 502", CHANGE_WITHIN, || async {
        let (status, body) = probe_status().await?;
        ensure!(status == 502 && body["error"] == "bad_gateway", "{status} {body}");
        let message = body["message"].as_str().unwrap_or_default();
        ensure!(message.contains("application server"), "the 502 does not name what failed: {body}");
        ensure!(!body.to_string().contains(&format!(":{port}")), "the 502 names the upstream's address: {body}");
        Ok(())
    })
    .await?;
    // First refused connects, then (after a health check) no healthy upstream: both in the outage.
    eventually("the health check takes the dead upstream out", CHANGE_WITHIN, || async {
        let healthy = healthy_upstreams().await?;
        ensure!(healthy == 0, "{healthy} healthy");
        Ok(())
    })
    .await?;
    // The gateway's own routes and sign-ins do not need the upstream.
    let mut newcomer = Browser::new(gw.endpoint())?;
    newcomer.sign_in_dev("carol").await.context("a dev sign-in during the upstream outage")?;
    load.run_for(DURING).await?;

    let upstream = EchoUpstream::start_on("app", port).await?;
    let restarted = Instant::now();
    eventually("the restarted upstream answers through the gateway", CHANGE_WITHIN, || async {
        let (status, body) = probe_status().await?;
        ensure!(status == 200, "{status} {body}");
        let healthy = healthy_upstreams().await?;
        ensure!(healthy == 1, "{healthy} healthy");
        Ok(())
    })
    .await?;
    let recovered = Instant::now();
    let seen = newcomer.get("/api/whoami").await?.echo()?;
    ensure!(seen.header("x-forwarded-user").as_deref() == Some("carol"), "{seen:?}");
    load.run_for(AFTER).await?;
    let samples = load.finish().await?;

    let gateway_routes: Vec<&Sample> = samples.iter().filter(|s| s.class == "gateway").collect();
    let proxied: Vec<&Sample> = samples.iter().filter(|s| s.class == "upstream").collect();
    let outside = |s: &Sample| !s.overlaps(killed, recovered);
    let local = Tally::of(gateway_routes.iter().copied());
    let before = Tally::of(proxied.iter().copied().filter(|s| s.ended < killed));
    let during = Tally::of(proxied.iter().copied().filter(|s| s.overlaps(killed, recovered)));
    let after = Tally::of(proxied.iter().copied().filter(|s| s.started > recovered));
    println!(
        "faults: upstream killed and restarted: gateway routes {local}; upstream routes before {before}, during \
         the outage {during}, after {after}; 502s ended {} after the kill (restart at +{:.1} s, first 2xx at \
         +{:.1} s); recovered without a gateway restart (the new upstream served {} requests)",
        describe_failure_span(proxied.iter().copied(), killed),
        (restarted - killed).as_secs_f64(),
        (recovered - killed).as_secs_f64(),
        upstream.requests()
    );
    println!("faults: upstream killed and restarted: {}", limits_line(admin).await);
    ensure!(
        local.non_2xx() == 0,
        "gateway routes failed:\n{}",
        describe_failures(gateway_routes.iter().copied(), Sample::is_2xx)
    );
    let clear_502 =
        |s: &Sample| s.is_2xx() || s.outcome == Outcome::Status { status: 502, error: Some("bad_gateway".to_owned()) };
    ensure!(
        proxied.iter().all(|&s| clear_502(s)),
        "upstream routes failed other than 502 bad_gateway:\n{}",
        describe_failures(proxied.iter().copied(), clear_502)
    );
    let in_outage = |s: &Sample| s.is_2xx() || !outside(s);
    ensure!(
        proxied.iter().all(|&s| in_outage(s)),
        "upstream routes failed outside the outage:\n{}",
        describe_failures(proxied.iter().copied(), in_outage)
    );
    ensure!(during.non_2xx() > 0, "the load never saw the outage");
    ensure!(after.ok > 0 && after.non_2xx() == 0, "no clean recovery: {after}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_and_restarted_fails_closed_on_protected_routes_only_and_recovers() -> anyhow::Result<()> {
    let mut redis = RedisServer::start_persistent().await?;
    let upstream = EchoUpstream::start("app").await?;
    let (config, admin) = with_admin(dev_config(upstream.addr(), &[])?.extra(&redis.store_table("gateway:")))?;
    let gw = TestGateway::with_toml(config).start().await?;
    let channels = ["gateway:ev".to_owned(), "gateway:inv".to_owned()];
    redis.wait_subscribers(&channels, 1, CHANGE_WITHIN).await?;
    let mut probes = Vec::new();
    let mut users = Vec::new();
    for user in ["ada", "bob", "carol"] {
        let browser = dev_user(gw.endpoint(), user).await?;
        probes.push(Probe::with_cookie("protected", "/api/whoami", &browser, Some(user))?);
        users.push((user, browser.cookie_header().context("no cookie")?));
    }
    probes.push(Probe::with_cookie("public", "/public/page", &dev_user(gw.endpoint(), "dan").await?, None)?);
    probes.push(Probe::anonymous("public", "/public/page"));
    probes.push(Probe::anonymous("public", HEALTH_PATH));
    let load = Load::start(gw.endpoint(), probes)?;
    load.run_for(WARM_UP).await?;

    let client = gw.client()?;
    let whoami = |cookie: String| get_json_with(client.get(gw.url("/api/whoami")).header(COOKIE, cookie));
    let killed = Instant::now();
    redis.stop()?;
    // The L1 may answer for a few seconds; then protected routes must fail closed.
    eventually("protected routes answer 503 while Redis is down", CHANGE_WITHIN, || async {
        let (status, body) = whoami(users[0].1.clone()).await?;
        ensure!(status == 503 && body["error"] == "temporarily_unavailable", "{status} {body}");
        let message = body["message"].as_str().unwrap_or_default();
        ensure!(message.contains("token store"), "the 503 does not name what failed: {body}");
        ensure!(!body.to_string().contains(&redis.port().to_string()), "the 503 names Redis's address: {body}");
        Ok(())
    })
    .await?;
    // A newcomer cannot start a sign-in without the store, and is told so.
    let (status, body) = get_json(&client, gw.url("/_gateway/session")).await?;
    ensure!(status == 503 && body["error"] == "temporarily_unavailable", "newcomer: {status} {body}");
    load.run_for(DURING).await?;

    redis.restart().await?;
    let restarted = Instant::now();
    for (user, cookie) in &users {
        eventually(&format!("{user}'s /api/ answers 200 again"), CHANGE_WITHIN, || async {
            let (status, body) = whoami(cookie.clone()).await?;
            ensure!(status == 200, "{status} {body}");
            let seen: Echo = serde_json::from_value(body)?;
            ensure!(seen.header("x-forwarded-user").as_deref() == Some(*user), "{seen:?}");
            Ok(())
        })
        .await?;
    }
    let recovered = Instant::now();
    load.run_for(AFTER).await?;
    let samples = load.finish().await?;

    let public: Vec<&Sample> = samples.iter().filter(|s| s.class == "public").collect();
    let protected: Vec<&Sample> = samples.iter().filter(|s| s.class == "protected").collect();
    let public_tally = Tally::of(public.iter().copied());
    let before = Tally::of(protected.iter().copied().filter(|s| s.ended < killed));
    let during = Tally::of(protected.iter().copied().filter(|s| s.overlaps(killed, recovered)));
    let after = Tally::of(protected.iter().copied().filter(|s| s.started > recovered));
    println!(
        "faults: Redis killed and restarted: public routes {public_tally}; protected routes before {before}, \
         during the outage {during}, after {after}; 503s ended {} after the kill (restart at +{:.1} s, all \
         users 2xx at +{:.1} s); a newcomer's session 503; recovered without a gateway restart",
        describe_failure_span(protected.iter().copied(), killed),
        (restarted - killed).as_secs_f64(),
        (recovered - killed).as_secs_f64()
    );
    println!("faults: Redis killed and restarted: {}", limits_line(admin).await);
    ensure!(
        public_tally.non_2xx() == 0,
        "public routes failed:\n{}",
        describe_failures(public.iter().copied(), Sample::is_2xx)
    );
    // Fail closed, never "signed out": a protected route answers the user or 503, nothing else.
    let fail_closed = |s: &Sample| {
        s.is_2xx()
            || (s.overlaps(killed, recovered)
                && s.outcome == Outcome::Status { status: 503, error: Some("temporarily_unavailable".to_owned()) })
    };
    ensure!(
        protected.iter().all(|&s| fail_closed(s)),
        "protected routes answered other than 2xx or (during the outage) 503:\n{}",
        describe_failures(protected.iter().copied(), fail_closed)
    );
    ensure!(during.non_2xx() > 0, "the load never saw the outage");
    ensure!(after.ok > 0 && after.non_2xx() == 0, "no clean recovery: {after}");
    Ok(())
}
