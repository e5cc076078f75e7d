//! Sessions: fixation with a planted cookie, cookies signed with a retired key or another
//! gateway's secret, variants of the gateway's own routes that might skip the sign-in, and
//! secrets (tokens, codes, tickets, state, cookies, queries) that must never reach a page, a JSON
//! answer or a log line.
//!
//! Already asserted elsewhere:
//! `popup_flow::forged_session_cookie_is_refused_on_a_protected_route` (garbage, tampered,
//! another gateway's secret, a suffix);
//! `popup_flow::ticket_of_another_session_signs_that_session_in_not_the_popups` (a popup's own
//! cookie is never the one signed in);
//! `popup_flow::no_page_or_json_of_the_gateway_contains_the_access_token` (dev provider);
//! `provider_faults::tokens_and_codes_never_appear_in_the_logs` (TestIdp codes and tokens at the
//! default level); `redis_store::redis_values_are_sealed_not_plaintext`.

use std::time::Duration;

use anyhow::{ensure, Context};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use gateway_tests::config::SECRET_ENV;
use gateway_tests::idp::{IdTokenFault, TestIdp, CLIENT_ID, CLIENT_SECRET};
use gateway_tests::signin::{dev_config, Browser, Page, SESSION_COOKIE};
use gateway_tests::{eventually, EchoUpstream, GatewayConfig, RawRequest, TestGateway};
use reqwest::Url;

use super::{short, Target};

/// The `Set-Cookie` value of the session cookie in `page`, if it set one.
fn new_session_cookie(page: &Page) -> Option<String> {
    page.set_cookies().iter().find_map(|c| {
        c.split(';').next().and_then(|pair| pair.strip_prefix(&format!("{SESSION_COOKIE}="))).map(str::to_owned)
    })
}

// Guards against session fixation: a cookie value the gateway did not sign (chosen by an
// attacker and planted in the victim's browser) is never adopted as a session; the gateway
// replaces it with a fresh cookie of its own, so signing in cannot bind the victim's identity to
// a value the attacker knows. (A genuine cookie planted by cookie injection is rotated away by
// the sign-in, see `binding::a_genuine_cookie_planted_before_sign_in_is_worthless_after_it`; over
// HTTPS the `__Host-` cookie name keeps other hosts from planting one.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planted_cookie_is_replaced_not_adopted_and_stays_worthless_after_sign_in() -> anyhow::Result<()> {
    let target = Target::start(|c| c).await?;
    let mut other = Browser::new(target.gw.endpoint())?;
    let other_info = other.session_info().await?;
    let genuine = other.session_cookie().context("no cookie")?.to_owned();
    let ticket = other_info.ticket()?;
    let (payload, tag) = genuine.split_once('.').context("a cookie is payload.tag")?;
    let foreign_tag = URL_SAFE_NO_PAD.encode([9u8; 32]);
    let planted = [
        URL_SAFE_NO_PAD.encode([7u8; 32]),
        format!("{}.{tag}", URL_SAFE_NO_PAD.encode([7u8; 32])),
        format!("{payload}.{foreign_tag}"),
        ticket.clone(),
        format!("{payload}."),
        format!("{payload}.{tag}{tag}"),
    ];

    for value in &planted {
        let mut victim = Browser::new(target.gw.endpoint())?;
        victim.set_cookie(SESSION_COOKIE, value);
        let first = victim.get("/api/x").await?;
        assert_eq!(first.status, 401, "planted {value}: {}", first.body);
        let issued = new_session_cookie(&first).with_context(|| format!("planted {value}: no fresh cookie issued"))?;
        assert_ne!(&issued, value, "the planted value was adopted");
        let connect = first.json()?["providers"]["dev"]["connect_url"].as_str().context("no connect_url")?.to_owned();
        victim.sign_in_via(&connect, "victim").await?;
        assert_eq!(victim.get("/api/x").await?.echo()?.header("x-forwarded-user").as_deref(), Some("victim"));

        let mut attacker = Browser::new(target.gw.endpoint())?;
        attacker.set_cookie(SESSION_COOKIE, value);
        let page = attacker.get("/api/x").await?;
        assert_eq!(page.status, 401, "the planted value {value} became the victim's session");
    }
    // The genuine cookie of the other browser was never touched by all this.
    assert!(!other.session_info().await?.signed_in("dev"));
    Ok(())
}

/// `config` with `session.secret` set to the listed env references instead of [`SECRET_ENV`].
fn with_secrets(config: GatewayConfig, names: &[&str]) -> String {
    let list: Vec<String> = names.iter().map(|n| format!("\"env:{n}\"")).collect();
    config.to_toml().replace(&format!("secret = \"env:{SECRET_ENV}\""), &format!("secret = [{}]", list.join(", ")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cookie_signed_with_a_retired_key_is_refused_while_a_rotated_key_still_verifies() -> anyhow::Result<()> {
    const OLD: &str = "old-session-secret-0123456789abcdefghijklmnop";
    const NEW: &str = "new-session-secret-0123456789abcdefghijklmnop";
    let echo = EchoUpstream::start("app").await?;
    let start = |names: &'static [&'static str]| {
        let toml = dev_config(echo.addr(), &[]).map(|c| with_secrets(c, names));
        async move { TestGateway::with_toml(toml?).env("OLD_SECRET", OLD).env("NEW_SECRET", NEW).start().await }
    };
    let old = start(&["OLD_SECRET"]).await?;
    let mut browser = Browser::new(old.endpoint())?;
    let info = browser.session_info().await?;
    let old_cookie = browser.session_cookie().context("no cookie")?.to_owned();
    let old_connect = info.connect_url("dev")?;
    let spare_connect = browser.session_info().await?.connect_url("dev")?;
    drop(old);

    // Rotated: NEW signs, OLD still verifies.
    let rotated = start(&["NEW_SECRET", "OLD_SECRET"]).await?;
    let mut kept = Browser::new(rotated.endpoint())?;
    kept.set_cookie(SESSION_COOKIE, &old_cookie);
    let page = kept.get("/_gateway/session").await?;
    assert_eq!(page.status, 200);
    assert_eq!(new_session_cookie(&page), None, "a cookie of a rotated-out but listed key was replaced");
    kept.sign_in_via(&old_connect, "ada").await?;
    assert_eq!(kept.get("/api/x").await?.echo()?.header("x-forwarded-user").as_deref(), Some("ada"));
    drop(rotated);

    // Retired: OLD is gone from the list.
    let retired = start(&["NEW_SECRET"]).await?;
    let before = echo.targets().len();
    let mut refused = Browser::new(retired.endpoint())?;
    refused.set_cookie(SESSION_COOKIE, &old_cookie);
    let page = refused.get("/api/x").await?;
    assert_eq!(page.status, 401, "{}", page.body);
    assert_eq!(page.json()?["error"], "authentication_required");
    let fresh = new_session_cookie(&page).context("no fresh cookie for a retired-key cookie")?;
    assert_ne!(fresh, old_cookie);
    let connect = refused.get(&spare_connect).await?;
    assert_eq!(connect.status, 400, "a retired-key ticket started a sign-in: {}", short(&connect.body));
    assert!(connect.body.contains("invalid_request"), "{}", short(&connect.body));
    assert!(connect.headers.get("location").is_none());
    assert_eq!(echo.targets()[before..], [] as [String; 0], "a retired-key cookie reached the upstream");
    Ok(())
}

// Guards against auth-skip bypasses through path variants (`/health/../admin`): with every path
// protected, no spelling of a gateway route reaches the upstream without a sign-in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_variant_of_a_gateway_route_reaches_the_upstream_without_a_sign_in() -> anyhow::Result<()> {
    let target = Target::start(|c| c.extra("[[routes]]\nprefix = \"/\"\nrequire = \"any\"\n")).await?;
    let own = [
        ("GET", "/_gateway/health"),
        ("HEAD", "/_gateway/health"),
        ("POST", "/_gateway/health"),
        ("GET", "/_gateway/health?x=/../../api/x"),
        ("GET", "/_gateway/session"),
        ("GET", "/_gateway/client.js"),
    ];
    let variants = [
        "/_gateway/health/",
        "/_gateway/health/.",
        "/_gateway/health/..",
        "/_gateway/health/../../api/x",
        "/_gateway/health/..%2f..%2fapi%2fx",
        "/_gateway/health%2f..%2f..%2fapi%2fx",
        "/_gateway/health;/../../api/x",
        "/_gateway/health/..;/..;/api/x",
        "/_gateway//health",
        "//_gateway/health",
        "/./_gateway/health",
        "/x/../_gateway/health",
        "/_gateway/./health",
        "/_GATEWAY/health",
        "/_gateway/Health",
        "/_gateway/health.",
        "/_gateway/health%20",
        "/%5fgateway/health",
        "/_gateway%2fhealth",
        "/_gateway/health%00",
        "/_gateway/health%",
        "/_gateway/client.js/../../api/x",
        "/_gateway/session/",
        "/_gateway/events/../../api/x",
        "/connect/logout/../../api/x",
        "/connect/dev/callback/../../../api/x",
        "/connect//dev/callback",
        "/_gateway/dev/authorize/../../../api/x",
    ];

    let mut failures = Vec::new();
    for (method, path) in own {
        let answer = super::exchange(
            target.gw.addr(),
            &RawRequest::new(method, path).header("Host", &target.authority()).to_bytes(),
            Duration::from_secs(10),
        )
        .await?;
        if !matches!(answer.statuses().as_slice(), [200] | [405]) {
            failures.push(format!("{method} {path}: the gateway's own route answered {:?}", answer.statuses()));
        }
    }
    for path in variants {
        for method in ["GET", "POST"] {
            let answer = super::exchange(
                target.gw.addr(),
                &RawRequest::new(method, path).header("Host", &target.authority()).to_bytes(),
                Duration::from_secs(10),
            )
            .await?;
            if !matches!(answer.statuses().as_slice(), [400] | [401] | [404] | [405]) {
                failures.push(format!("{method} {path}: answered {:?}: {}", answer.statuses(), short(&answer.text())));
            }
        }
    }

    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(target.echo.targets().is_empty(), "reached the upstream without a sign-in: {:?}", target.echo.targets());
    Ok(())
}

/// Connect → provider (answers at once) → the callback URL, and the `state` the gateway chose.
async fn idp_callback(browser: &mut Browser) -> anyhow::Result<(String, String)> {
    let connect = browser.session_info().await?.connect_url("idp")?;
    let to_idp = browser.get(&connect).await?;
    ensure!(to_idp.status == 302, "connect answered {}", to_idp.status);
    let authorize = Url::parse(to_idp.location()?)?;
    let state = authorize.query_pairs().find(|(k, _)| k == "state").map(|(_, v)| v.into_owned()).unwrap_or_default();
    let from_idp = browser.get(authorize.as_str()).await?;
    ensure!(from_idp.status == 302, "the provider answered {}", from_idp.status);
    Ok((from_idp.location()?.to_owned(), state))
}

// Guards against CWE-532 (credentials in logs) and tokens in pages: with the gateway's own logs
// at debug, through sign-in, failure, replay, logout with revocation, channel joins by ticket, a
// malformed request and an upstream failure, no code, access/ID/refresh token, client secret,
// ticket, state, session cookie or query value appears in a log line, and no token in any page
// or JSON answer of the gateway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_a_log_line_a_page_or_a_json_answer() -> anyhow::Result<()> {
    let idp = TestIdp::start().await;
    let echo = EchoUpstream::start("app").await?;
    let toml = GatewayConfig::on_free_port(&[echo.addr()])?
        .plain_http_cookies()
        .extra(&format!(
            "[providers.idp]\nkind = \"oidc\"\nissuer = \"{}\"\nclient_id = \"{CLIENT_ID}\"\n\
             client_secret = \"env:IDP_SECRET\"\nrevocation_url = \"{}\"\n",
            idp.issuer(),
            idp.revocation_url()
        ))
        .extra("[[routes]]\nprefix = \"/api/\"\nrequire = [\"idp\"]\nforward_access_token = true\n")
        .extra("[channel]\nsocketio_path = \"/socket.io/\"\n");
    let gw = TestGateway::with_toml(toml)
        .env("IDP_SECRET", CLIENT_SECRET)
        // Every level of every crate: Pingora's trace and debug lines dump request heads.
        .env("RUST_LOG", "trace")
        .spawn_binary()
        .await?;
    let mut secrets: Vec<(String, String)> = vec![("client secret".into(), CLIENT_SECRET.into())];
    let mut pages: Vec<String> = Vec::new();

    // A full sign-in, the API through it, a replay of its callback, and a logout.
    let mut user = Browser::new(gw.endpoint())?;
    assert_eq!(user.get("/api/x").await?.status, 401);
    let (callback, state) = idp_callback(&mut user).await?;
    secrets.push(("state".into(), state));
    let done = user.get(&callback).await?;
    assert_eq!(done.status, 200, "{}", short(&done.body));
    let forwarded = user.get("/api/x").await?.echo()?;
    let access = forwarded.header("x-forwarded-access-token").context("no access token forwarded")?;
    assert_eq!(user.get(&callback).await?.status, 400, "the callback replay");
    let info = user.session_info().await?;
    let ticket = info.ticket()?;
    secrets.push(("ticket".into(), ticket.clone()));
    secrets.push(("connect ticket".into(), info.connect_url("idp")?.rsplit('/').next().unwrap_or_default().into()));
    secrets.push(("session cookie".into(), user.session_cookie().context("no cookie")?.to_owned()));

    // Channel joins by ticket (query), SSE and socket.io polling.
    let client = gw.client()?;
    for path in
        [format!("/_gateway/events?ticket={ticket}"), format!("/socket.io/?EIO=4&transport=polling&ticket={ticket}")]
    {
        let resp = tokio::time::timeout(Duration::from_secs(10), client.get(gw.url(&path)).send()).await??;
        assert!(resp.status().is_success(), "{path}: {}", resp.status());
    }

    // A failed sign-in (wrong nonce) of another browser.
    let mut other = Browser::new(gw.endpoint())?;
    idp.set_id_token_fault(IdTokenFault::WrongNonce);
    let (failed_callback, failed_state) = idp_callback(&mut other).await?;
    secrets.push(("failed state".into(), failed_state));
    assert_eq!(other.get(&failed_callback).await?.status / 100, 4);
    idp.reset();
    secrets.push(("other cookie".into(), other.session_cookie().context("no cookie")?.to_owned()));

    // A malformed request carrying the cookie, and a query to an upstream that is gone.
    let cookie = user.cookie_header().context("no cookie")?;
    let bad = format!(
        "GET /api/x HTTP/1.1\r\nHost: {}\r\nCookie: {cookie}\r\nBad Header: x\r\n\r\n",
        gw.endpoint().authority()
    );
    assert_eq!(super::exchange(gw.addr(), bad.as_bytes(), Duration::from_secs(10)).await?.statuses(), [400]);
    let origin = user.origin();
    assert_eq!(user.logout(Some(&origin)).await?.status, 204);
    echo.stop().await;
    let query_secret = "q-secret-5f0c1e";
    secrets.push(("query value".into(), query_secret.into()));
    let failed = user.get(&format!("/public?token={query_secret}")).await?;
    assert_eq!(failed.status, 502, "{}", short(&failed.body));

    pages.extend(user.transcript().iter().filter(|b| !b.contains("\"body_sha256\"")).cloned());
    pages.extend(other.transcript().iter().cloned());
    for issued in idp.issued_secrets() {
        secrets.push(("issued by the provider".into(), issued));
    }
    secrets.push(("access token".into(), access.clone()));
    // The last access line (the 502) may be written just after its answer.
    let process = gw.process()?;
    let logs = eventually("the 502 is logged", Duration::from_secs(5), || async {
        let logs = process.logs();
        ensure!(logs.contains("status=502"), "not yet");
        Ok(logs)
    })
    .await?;
    ensure!(logs.contains("sign-in completed") && logs.contains("sign-in failed"), "unexpected logs: {}", short(&logs));

    let mut leaks = Vec::new();
    for (what, secret) in &secrets {
        if secret.len() >= 8 && logs.contains(secret.as_str()) {
            let line = logs.lines().find(|l| l.contains(secret.as_str())).unwrap_or_default();
            leaks.push(format!("{what} in the logs: {}", short(line)));
        }
    }
    for (what, secret) in secrets.iter().filter(|(w, _)| w == "issued by the provider" || w == "access token") {
        if let Some(page) = pages.iter().find(|p| p.contains(secret.as_str())) {
            leaks.push(format!("{what} in a page of the gateway: {}", short(page)));
        }
    }
    assert!(leaks.is_empty(), "{}", leaks.join("\n"));
    Ok(())
}
