//! The popup sign-in through the gateway with its built-in `dev` provider: identity headers reach
//! the upstream after a sign-in, a protected route answers 401 before it, and every way a flow
//! can be refused is (denied, replayed, tampered, foreign, crossed providers, logout, expiry).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context;
use gateway_tests::signin::{dev_config, tamper, Browser, Decision, SESSION_COOKIE};
use gateway_tests::{eventually, metrics, ports, EchoUpstream, GatewayConfig, TestGateway};
use reqwest::{Method, Url};
use serde_json::Value;

/// The identity headers a signed-in request carries (`docs/architecture.md#identity-headers`, default names).
const IDENTITY: [(&str, &str); 5] = [
    ("x-forwarded-user", "ada"),
    ("x-forwarded-email", "ada@dev.example"),
    ("x-forwarded-name", "Dev User ada"),
    ("x-forwarded-preferred-username", "ada"),
    ("x-forwarded-provider", "dev"),
];

/// A route like `/api/` that also forwards the access token.
const TOKEN_ROUTE: &str = "[[routes]]\nprefix = \"/token-api/\"\nrequire = [\"dev\"]\nforward_access_token = true\n";

/// Longest wait for `token_ttl = "2s"` to run out and be noticed.
const EXPIRY_WAIT: Duration = Duration::from_secs(8);

async fn start(config: GatewayConfig) -> anyhow::Result<TestGateway> {
    TestGateway::with_toml(config).start().await
}

/// A `dev` gateway in front of `echo` with an admin listener; its admin address.
async fn start_with_admin(echo: &EchoUpstream) -> anyhow::Result<(TestGateway, SocketAddr)> {
    let admin = ports::free_addr()?;
    let gw = start(dev_config(echo.addr(), &[])?.server_key(&format!("admin_listen = \"{admin}\""))).await?;
    Ok((gw, admin))
}

/// The login funnel counter for `step` of provider `dev` (bounded wait for the admin listener).
async fn funnel(admin: SocketAddr, step: &str) -> anyhow::Result<f64> {
    let text =
        eventually("the admin listener serves /metrics", Duration::from_secs(10), || metrics::scrape(admin)).await?;
    Ok(metrics::value(&text, "gateway_login_funnel_total", &[("provider", "dev"), ("step", step)]))
}

fn connect_ticket(connect_url: &str) -> anyhow::Result<&str> {
    connect_url.strip_prefix("/connect/dev/").with_context(|| format!("unexpected connect_url {connect_url}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_sign_in_sends_the_users_identity_upstream() -> anyhow::Result<()> {
    let echo = EchoUpstream::start("app").await?;
    let (gw, admin) = start_with_admin(&echo).await?;
    let mut browser = Browser::new(gw.endpoint())?;

    let before = browser.session_info().await?;
    assert!(browser.session_cookie().is_some(), "GET /_gateway/session set no {SESSION_COOKIE} cookie");
    assert!(!before.signed_in("dev"));
    assert_eq!(before.0["providers"]["dev"]["user"], Value::Null);
    assert!(!before.ticket()?.is_empty());
    let page = browser.sign_in_via(&before.connect_url("dev")?, "ada").await?;
    assert!(page.headers.get("content-type").is_some_and(|v| v.to_str().unwrap_or("").starts_with("text/html")));

    // A client-sent identity header is replaced by the gateway's, never passed along.
    let seen = browser.send(Method::GET, "/api/x", &[("x-forwarded-user", "mallory")], None).await?.echo()?;
    for (name, value) in IDENTITY {
        assert_eq!(seen.header_values(name), [value], "{name}");
    }
    assert_eq!(
        seen.header("x-forwarded-access-token"),
        None,
        "the access token went to a route without forward_access_token"
    );
    let after = browser.session_info().await?;
    assert!(after.signed_in("dev"), "{}", after.0);
    assert_eq!(after.0["providers"]["dev"]["user"]["name"], "Dev User ada");
    assert_eq!(funnel(admin, "started").await?, 1.0);
    assert_eq!(funnel(admin, "completed").await?, 1.0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protected_route_without_sign_in_answers_401_with_connect_urls() -> anyhow::Result<()> {
    let echo = EchoUpstream::start("app").await?;
    let gw = start(dev_config(echo.addr(), &[])?).await?;
    let mut browser = Browser::new(gw.endpoint())?;

    let first = browser.get("/api/x").await?;
    assert_eq!(first.status, 401, "{}", first.body);
    let json = first.json()?;
    assert_eq!(json["error"], "authentication_required");
    let providers = json["providers"].as_object().context("providers is not an object")?;
    assert_eq!(providers.keys().collect::<Vec<_>>(), ["dev"], "{json}");
    let connect = json["providers"]["dev"]["connect_url"].as_str().context("no connect_url")?.to_owned();
    assert!(connect.starts_with("/connect/dev/"), "{connect}");
    assert!(first.set_cookies().iter().any(|c| c.starts_with(&format!("{SESSION_COOKIE}="))), "no session cookie set");

    let again = browser.get("/api/x").await?;
    assert_eq!(again.status, 401);
    assert!(again.set_cookies().is_empty(), "a second Set-Cookie for an existing session: {:?}", again.set_cookies());
    assert_eq!(echo.requests(), 0, "an unauthenticated request reached the upstream");

    // The 401's connect URL signs in the session its cookie created.
    browser.sign_in_via(&connect, "ada").await?;
    assert_eq!(browser.get("/api/x").await?.echo()?.header("x-forwarded-user").as_deref(), Some("ada"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denied_sign_in_shows_the_failure_page_and_signs_nothing_in() -> anyhow::Result<()> {
    let echo = EchoUpstream::start("app").await?;
    let (gw, admin) = start_with_admin(&echo).await?;
    let mut browser = Browser::new(gw.endpoint())?;

    let connect = browser.session_info().await?.connect_url("dev")?;
    let callback = browser.callback_url(&connect, "ada", Decision::Deny).await?;
    let url = Url::parse(&callback)?;
    assert_eq!(url.path(), "/connect/dev/callback");
    assert!(url.query_pairs().any(|(k, v)| k == "error" && v == "access_denied"), "{callback}");
    let page = browser.get(&callback).await?;

    assert!((400..500).contains(&page.status), "status {}: {}", page.status, page.body);
    assert!(page.body.contains("Sign-in failed") && page.body.contains("access_denied"), "{}", page.body);
    assert_eq!(browser.get("/api/x").await?.status, 401);
    assert!(!browser.session_info().await?.signed_in("dev"));
    assert_eq!(funnel(admin, "denied").await?, 1.0);
    assert_eq!(funnel(admin, "completed").await?, 0.0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_callback_is_refused_with_400() -> anyhow::Result<()> {
    let echo = EchoUpstream::start("app").await?;
    let gw = start(dev_config(echo.addr(), &[])?).await?;
    let mut browser = Browser::new(gw.endpoint())?;

    let connect = browser.session_info().await?.connect_url("dev")?;
    let callback = browser.callback_url(&connect, "ada", Decision::Approve).await?;
    assert_eq!(browser.get(&callback).await?.status, 200);
    let replay = browser.get(&callback).await?;

    assert_eq!(replay.status, 400, "{}", replay.body);
    assert!(replay.body.contains("Sign-in failed") && replay.body.contains("invalid_state"), "{}", replay.body);
    assert!(browser.session_info().await?.signed_in("dev"), "the replay undid the first sign-in");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_ticket_is_refused_with_400_and_unknown_provider_with_404() -> anyhow::Result<()> {
    let echo = EchoUpstream::start("app").await?;
    let gw = start(dev_config(echo.addr(), &[])?).await?;
    let mut browser = Browser::new(gw.endpoint())?;
    let connect = browser.session_info().await?.connect_url("dev")?;
    let ticket = connect_ticket(&connect)?.to_owned();
    let other = browser.session_info().await?.connect_url("dev")?;
    let other = connect_ticket(&other)?;
    let channel_ticket = browser.session_info().await?.ticket()?;
    // Damaged anywhere, cut short, spliced from two tickets, or a channel ticket: all refused.
    let (half, rest) = ticket.split_at(ticket.len() / 2);
    let spliced = format!("{half}{}", &other[half.len()..]);
    for forged in [
        tamper(&ticket),
        format!("{}{}", tamper(half), rest),
        ticket[..ticket.len() - 4].to_owned(),
        spliced,
        channel_ticket,
        format!("{ticket}.sig"),
    ] {
        let page = browser.get(&format!("/connect/dev/{forged}")).await?;
        assert_eq!(page.status, 400, "ticket {forged}: {}", page.body);
        assert!(page.headers.get("location").is_none(), "a forged ticket was redirected to the provider");
        assert!(page.body.contains("invalid_request"), "{}", page.body);
        assert!(page.headers.get("content-type").is_some_and(|v| v.to_str().unwrap_or("").starts_with("text/html")));
    }
    let unknown = browser.get(&format!("/connect/nope/{ticket}")).await?;
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    // A ticket issued for one provider does not start a sign-in with another.
    let second_provider = browser.get(&format!("/connect/dev2/{ticket}")).await?;
    assert_ne!(second_provider.status, 302, "a dev ticket started a sign-in elsewhere: {}", second_provider.body);
    // The genuine ticket still works, once.
    assert_eq!(browser.get(&connect).await?.status, 302);
    let again = browser.get(&connect).await?;
    assert_eq!(again.status, 400, "a connect ticket started two sign-ins: {}", again.body);
    assert!(again.body.contains("invalid_request"), "{}", again.body);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_popup_without_the_panes_cookies_signs_in_only_once_the_pane_redeems_its_code() -> anyhow::Result<()> {
    let echo = EchoUpstream::start("app").await?;
    let gw = start(dev_config(echo.addr(), &[])?).await?;
    let mut pane = Browser::new(gw.endpoint())?;
    let mut popup = Browser::new(gw.endpoint())?;
    let connect = pane.session_info().await?.connect_url("dev")?;
    popup.session_info().await?;

    let page = popup.sign_in_via(&connect, "ada").await?;
    assert_eq!(pane.get("/api/x").await?.status, 401, "the pane was signed in before it redeemed the code");
    assert_eq!(popup.get("/api/x").await?.status, 401, "the popup's own session was signed in");
    pane.redeem_from(&page).await?;

    assert_eq!(pane.get("/api/x").await?.echo()?.header("x-forwarded-user").as_deref(), Some("ada"));
    assert_eq!(popup.get("/api/x").await?.status, 401, "the popup's own session was signed in");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_interleaved_sign_ins_of_one_session_both_succeed() -> anyhow::Result<()> {
    let echo = EchoUpstream::start("app").await?;
    let gw = start(dev_config(echo.addr(), &[])?).await?;
    let mut pane = Browser::new(gw.endpoint())?;
    let first_url = pane.session_info().await?.connect_url("dev")?;
    let second_url = pane.session_info().await?.connect_url("dev")?;
    // Two popups without the pane's cookies (as in an Office dialog).
    let (mut one, mut two) = (Browser::new(gw.endpoint())?, Browser::new(gw.endpoint())?);

    let first = one.start_sign_in(&first_url).await?;
    let second = two.start_sign_in(&second_url).await?;
    for name in ["state", "nonce", "code_challenge"] {
        assert_ne!(first.params[name], second.params[name], "two flows share a {name}");
    }
    let first_request = one.login_form(&first).await?;
    let second_request = two.login_form(&second).await?;
    let second_callback = two.submit_login(&second_request, "bob", Decision::Approve).await?;
    let first_callback = one.submit_login(&first_request, "ada", Decision::Approve).await?;
    let second_page = two.get(&second_callback).await?;
    let first_page = one.get(&first_callback).await?;

    assert_eq!(second_page.status, 200, "{}", second_page.body);
    assert!(second_page.body.contains("Signed in as Dev User bob"), "{}", second_page.body);
    assert_eq!(first_page.status, 200, "{}", first_page.body);
    assert!(first_page.body.contains("Signed in as Dev User ada"), "{}", first_page.body);
    // Each redemption rotates the cookie; the next one carries the new value and still counts.
    pane.redeem_from(&second_page).await?;
    assert_eq!(pane.get("/api/x").await?.echo()?.header("x-forwarded-user").as_deref(), Some("bob"));
    pane.redeem_from(&first_page).await?;
    // Storing twice replaces: the sign-in redeemed last is the identity.
    assert_eq!(pane.get("/api/x").await?.echo()?.header("x-forwarded-user").as_deref(), Some("ada"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_of_one_provider_is_refused_on_another_providers_callback() -> anyhow::Result<()> {
    let echo = EchoUpstream::start("app").await?;
    let config =
        dev_config(echo.addr(), &[])?.extra("[providers.dev2]\nkind = \"dev\"\nclient_id = \"gateway-dev2\"\n");
    let gw = start(config).await?;
    let mut browser = Browser::new(gw.endpoint())?;
    let info = browser.session_info().await?;
    assert!(info.connect_url("dev2")?.starts_with("/connect/dev2/"), "{}", info.0);

    let callback = browser.callback_url(&info.connect_url("dev")?, "ada", Decision::Approve).await?;
    let crossed = callback.replacen("/connect/dev/callback", "/connect/dev2/callback", 1);
    assert_ne!(crossed, callback);
    let page = browser.get(&crossed).await?;

    assert_eq!(page.status, 400, "{}", page.body);
    assert!(page.body.contains("Sign-in failed") && page.body.contains("invalid_state"), "{}", page.body);
    let after = browser.session_info().await?;
    assert!(!after.signed_in("dev") && !after.signed_in("dev2"), "{}", after.0);
    assert_eq!(browser.get("/api/x").await?.status, 401);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_needs_the_gateways_origin_and_then_protects_again() -> anyhow::Result<()> {
    let echo = EchoUpstream::start("app").await?;
    let gw = start(dev_config(echo.addr(), &[])?).await?;
    let mut browser = Browser::new(gw.endpoint())?;
    browser.sign_in_dev("ada").await?;
    let own = browser.origin();
    let other_port = format!("http://127.0.0.1:{}", gw.addr().port() + 1);

    for origin in [None, Some("http://evil.example"), Some(other_port.as_str()), Some("null")] {
        let page = browser.logout(origin).await?;
        assert_eq!(page.status, 403, "logout with Origin {origin:?}: {}", page.body);
        assert_eq!(browser.get("/api/x").await?.status, 200, "a refused logout (Origin {origin:?}) signed out");
    }
    let page = browser.logout(Some(&own)).await?;

    assert_eq!(page.status, 204, "{}", page.body);
    assert_eq!(browser.get("/api/x").await?.status, 401);
    assert!(!browser.session_info().await?.signed_in("dev"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_expire_after_token_ttl() -> anyhow::Result<()> {
    let echo = EchoUpstream::start("app").await?;
    let gw = start(dev_config(echo.addr(), &[])?.session_key("token_ttl = \"2s\"")).await?;
    let mut browser = Browser::new(gw.endpoint())?;
    let connect = browser.session_info().await?.connect_url("dev")?;
    let callback = browser.callback_url(&connect, "ada", Decision::Approve).await?;

    let before_store = Instant::now();
    assert_eq!(browser.get(&callback).await?.status, 200);
    assert_eq!(browser.get("/api/x").await?.status, 200, "the sign-in did not last even one request");
    let client = gw.client()?;
    let (url, cookie) = (gw.url("/api/x"), browser.cookie_header().context("no cookie")?);
    // docs/architecture.md#configuration: token_ttl is an absolute lifetime; this test is about time passing.
    let expired_after = eventually("the protected route answers 401 after token_ttl", EXPIRY_WAIT, || async {
        let status = client.get(&url).header("cookie", &cookie).send().await?.status();
        anyhow::ensure!(status == reqwest::StatusCode::UNAUTHORIZED, "still {status}");
        Ok(before_store.elapsed())
    })
    .await?;

    assert!(expired_after >= Duration::from_millis(1900), "tokens were gone after only {expired_after:?}");
    assert!(!browser.session_info().await?.signed_in("dev"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_token_is_forwarded_only_on_routes_that_ask_for_it() -> anyhow::Result<()> {
    let echo = EchoUpstream::start("app").await?;
    let gw = start(dev_config(echo.addr(), &[])?.extra(TOKEN_ROUTE)).await?;
    let mut browser = Browser::new(gw.endpoint())?;
    browser.sign_in_dev("ada").await?;

    let with_token = browser.get("/token-api/x").await?.echo()?;
    let token =
        with_token.header("x-forwarded-access-token").context("no access token on the forward_access_token route")?;
    assert!(token.len() >= 16, "implausible access token {token:?}");
    assert_eq!(with_token.header("x-forwarded-user").as_deref(), Some("ada"));
    let forged = [("x-forwarded-access-token", "forged")];
    let without = browser.send(Method::GET, "/api/x", &forged, None).await?.echo()?;
    assert_eq!(without.header("x-forwarded-access-token"), None);
    assert_eq!(without.header("x-forwarded-user").as_deref(), Some("ada"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_page_or_json_of_the_gateway_contains_the_access_token() -> anyhow::Result<()> {
    let echo = EchoUpstream::start("app").await?;
    let gw = start(dev_config(echo.addr(), &[])?.extra(TOKEN_ROUTE)).await?;
    let mut browser = Browser::new(gw.endpoint())?;
    assert_eq!(browser.get("/api/x").await?.status, 401);
    browser.sign_in_dev("ada").await?;
    browser.deny_dev().await?;
    browser.session_info().await?;
    browser.get("/_gateway/client.js").await?;
    let gateway_bodies = browser.transcript().len();

    let token = browser.get("/token-api/x").await?.echo()?.header("x-forwarded-access-token").context("no token")?;

    for (i, body) in browser.transcript()[..gateway_bodies].iter().enumerate() {
        assert!(!body.contains(&token), "answer #{i} of the gateway contains the access token:\n{body}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_session_cookie_is_refused_on_a_protected_route() -> anyhow::Result<()> {
    let echo = EchoUpstream::start("app").await?;
    let gw = start(dev_config(echo.addr(), &[])?).await?;
    let other_secret = "another-gateway-session-secret-0123456789abcdefgh";
    let other =
        TestGateway::with_toml(dev_config(echo.addr(), &[])?).env("GATEWAY_SECRET", other_secret).start().await?;
    let mut genuine = Browser::new(gw.endpoint())?;
    genuine.sign_in_dev("ada").await?;
    let mut elsewhere = Browser::new(other.endpoint())?;
    elsewhere.sign_in_dev("ada").await?;
    let cookie = genuine.session_cookie().context("no cookie")?.to_owned();
    let foreign = elsewhere.session_cookie().context("no cookie")?.to_owned();
    let requests_before = echo.requests();

    for forged in ["garbage".to_owned(), tamper(&cookie), foreign, format!("{cookie}x")] {
        let mut browser = Browser::new(gw.endpoint())?;
        browser.set_cookie(SESSION_COOKIE, &forged);
        let page = browser.get("/api/x").await?;
        assert_eq!(page.status, 401, "cookie {forged}: {}", page.body);
        assert_eq!(page.json()?["error"], "authentication_required");
        assert_ne!(
            browser.session_cookie().as_deref(),
            Some(forged.as_str()),
            "the forged cookie was kept as the session"
        );
    }
    assert_eq!(echo.requests(), requests_before, "a forged cookie reached the upstream");
    assert_eq!(genuine.get("/api/x").await?.status, 200);
    Ok(())
}
