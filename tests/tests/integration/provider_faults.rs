//! The popup flow against the in-repo test provider (`TestIdp`, kind = "oidc" by discovery and
//! kind = "oauth2" with userinfo), with every provider fault: each refusal is asserted, none
//! signs anyone in, leaks a token or disturbs a concurrent good sign-in.

use std::time::Duration;

use anyhow::{ensure, Context};
use gateway_tests::idp::{IdTokenFault, TestIdp, CLIENT_ID, CLIENT_SECRET};
use gateway_tests::signin::{tamper, Browser, Page};
use gateway_tests::{eventually, EchoUpstream, GatewayConfig, TestGateway};

/// A gateway whose provider `idp` is the test provider (OIDC discovery), `/api/` protected,
/// the access token forwarded so tests can see which one the gateway holds.
async fn gateway(idp: &TestIdp, upstream: &EchoUpstream, kind_oauth2: bool) -> anyhow::Result<TestGateway> {
    let provider = if kind_oauth2 {
        format!(
            "[providers.idp]\nkind = \"oauth2\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret = \"env:IDP_SECRET\"\n\
             authorize_url = \"{}\"\ntoken_url = \"{}\"\nuserinfo_url = \"{}\"\nscopes = [\"profile\"]\n",
            idp.authorize_url(),
            idp.token_url(),
            idp.userinfo_url()
        )
    } else {
        format!(
            "[providers.idp]\nkind = \"oidc\"\nissuer = \"{}\"\nclient_id = \"{CLIENT_ID}\"\n\
             client_secret = \"env:IDP_SECRET\"\nscopes = [\"openid\", \"email\", \"profile\"]\n",
            idp.issuer()
        )
    };
    let config = GatewayConfig::on_free_port(&[upstream.addr()])?
        .plain_http_cookies()
        .extra(&provider)
        .extra("[[routes]]\nprefix = \"/api/\"\nrequire = [\"idp\"]\nforward_access_token = true\n");
    TestGateway::with_toml(config).env("IDP_SECRET", CLIENT_SECRET).start().await
}

/// Connect → provider (which answers at once) → callback: the completion page.
async fn sign_in(browser: &mut Browser) -> anyhow::Result<Page> {
    let callback = callback_url(browser).await?;
    browser.get(&callback).await
}

/// Connect → provider: the callback URL the provider redirects the popup to.
async fn callback_url(browser: &mut Browser) -> anyhow::Result<String> {
    let connect = browser.session_info().await?.connect_url("idp")?;
    let to_idp = browser.get(&connect).await?;
    ensure!(to_idp.status == 302, "connect answered {}: {}", to_idp.status, to_idp.body);
    let from_idp = browser.get(to_idp.location()?).await?;
    ensure!(from_idp.status == 302, "the provider answered {}: {}", from_idp.status, from_idp.body);
    Ok(from_idp.location()?.to_owned())
}

async fn api_status(browser: &mut Browser) -> anyhow::Result<u16> {
    Ok(browser.get("/api/x").await?.status)
}

fn assert_failure(page: &Page, status: u16, code: &str) -> anyhow::Result<()> {
    ensure!(page.status == status, "expected {status}, got {}: {}", page.status, page.body);
    ensure!(page.body.contains("Sign-in failed") && page.body.contains(code), "no {code} in: {}", page.body);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_sign_in_uses_pkce_state_nonce_and_forwards_the_identity() -> anyhow::Result<()> {
    let (idp, upstream) = (TestIdp::start().await, EchoUpstream::start("up").await?);
    let gw = gateway(&idp, &upstream, false).await?;
    let mut b = Browser::new(gw.endpoint())?;
    ensure!(api_status(&mut b).await? == 401);
    let page = sign_in(&mut b).await?;
    ensure!(page.status == 200 && page.body.contains("Signed in as Alice Example"), "{}", page.body);
    let params = idp.last_authorize_params().context("no authorize request")?;
    ensure!(params.get("code_challenge_method").map(String::as_str) == Some("S256"), "{params:?}");
    for name in ["state", "nonce", "code_challenge"] {
        ensure!(params.get(name).is_some_and(|v| v.len() >= 32), "{name} missing or short: {params:?}");
    }
    let echo = b.get("/api/x").await?.echo()?;
    ensure!(echo.header("x-forwarded-user").as_deref() == Some("sub-alice"), "{echo:?}");
    ensure!(echo.header("x-forwarded-email").as_deref() == Some("alice@idp.test"), "{echo:?}");
    ensure!(echo.header("x-forwarded-name").as_deref() == Some("Alice Example"), "{echo:?}");
    ensure!(echo.header("x-forwarded-provider").as_deref() == Some("idp"), "{echo:?}");
    let token = echo.header("x-forwarded-access-token").context("no access token forwarded")?;
    ensure!(idp.issued_access_tokens().contains(&token), "the forwarded token is not the provider's");
    // Tokens never reach the browser: no body the browser received contains any provider secret.
    for secret in idp.issued_secrets() {
        let leaked = b
            .transcript()
            .iter()
            .filter(|body| !body.contains("x-forwarded-access-token"))
            .any(|body| body.contains(&secret));
        ensure!(!leaked, "a provider secret reached the browser");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_forged_or_wrong_id_token_is_refused() -> anyhow::Result<()> {
    let (idp, upstream) = (TestIdp::start().await, EchoUpstream::start("up").await?);
    let gw = gateway(&idp, &upstream, false).await?;
    for fault in [
        IdTokenFault::WrongSignature,
        IdTokenFault::WrongIssuer,
        IdTokenFault::WrongAudience,
        IdTokenFault::WrongNonce,
        IdTokenFault::Expired,
        IdTokenFault::AlgNone,
        IdTokenFault::Hs256WithPublicKey,
        IdTokenFault::UnknownKid,
    ] {
        idp.set_id_token_fault(fault);
        let mut b = Browser::new(gw.endpoint())?;
        let page = sign_in(&mut b).await?;
        assert_failure(&page, 400, "invalid_id_token").with_context(|| format!("{fault:?}"))?;
        ensure!(api_status(&mut b).await? == 401, "{fault:?} signed the session in");
    }
    idp.reset();
    idp.omit_id_token();
    let mut b = Browser::new(gw.endpoint())?;
    assert_failure(&sign_in(&mut b).await?, 400, "invalid_id_token")?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_endpoint_failures_answer_502_and_sign_nobody_in() -> anyhow::Result<()> {
    let (idp, upstream) = (TestIdp::start().await, EchoUpstream::start("up").await?);
    let gw = gateway(&idp, &upstream, false).await?;
    type Knob<'a> = (&'a str, &'a dyn Fn(&TestIdp));
    let faults: [Knob<'_>; 3] = [
        ("status 500", &|i| i.token_status(500)),
        ("garbage JSON", &|i| i.token_body_garbage()),
        ("huge body", &|i| i.token_body_huge(2 * 1024 * 1024)),
    ];
    for (what, knob) in faults {
        idp.reset();
        knob(&idp);
        let mut b = Browser::new(gw.endpoint())?;
        let page = sign_in(&mut b).await?;
        assert_failure(&page, 502, "temporarily_unavailable").context(what)?;
        ensure!(api_status(&mut b).await? == 401, "{what} signed the session in");
    }
    idp.reset();
    idp.token_status(400);
    let mut b = Browser::new(gw.endpoint())?;
    assert_failure(&sign_in(&mut b).await?, 400, "invalid_grant")?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_endpoint_that_hangs_times_out() -> anyhow::Result<()> {
    let (idp, upstream) = (TestIdp::start().await, EchoUpstream::start("up").await?);
    let gw = gateway(&idp, &upstream, false).await?;
    idp.token_delay(Duration::from_secs(15));
    let mut b = Browser::new(gw.endpoint())?;
    let started = std::time::Instant::now();
    assert_failure(&sign_in(&mut b).await?, 502, "temporarily_unavailable")?;
    ensure!(started.elapsed() < Duration::from_secs(14), "the gateway waited for the provider past its timeout");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_errors_replays_and_tampered_state_are_refused() -> anyhow::Result<()> {
    let (idp, upstream) = (TestIdp::start().await, EchoUpstream::start("up").await?);
    let gw = gateway(&idp, &upstream, false).await?;
    idp.deny_next("access_denied");
    let mut b = Browser::new(gw.endpoint())?;
    assert_failure(&sign_in(&mut b).await?, 400, "access_denied")?;

    let mut b = Browser::new(gw.endpoint())?;
    let callback = callback_url(&mut b).await?;
    let tampered = callback.replace("state=", "state=x");
    assert_failure(&b.get(&tampered).await?, 400, "invalid_state")?;
    ensure!(b.get(&callback).await?.status == 200, "the genuine callback after a tampered one");
    assert_failure(&b.get(&callback).await?, 400, "invalid_state").context("replayed callback")?;
    let before = idp.token_requests();
    assert_failure(&b.get(&callback).await?, 400, "invalid_state")?;
    ensure!(idp.token_requests() == before, "a replayed state reached the token endpoint");

    let no_state = callback.split('?').next().unwrap_or_default().to_owned() + "?code=abc";
    assert_failure(&b.get(&no_state).await?, 400, "invalid_state")?;
    let page = b.get("/connect/nobody/callback?state=x&code=y").await?;
    ensure!(page.status == 400 || page.status == 404, "unknown provider callback answered {}", page.status);
    let ticket = b.session_info().await?.ticket()?;
    let page = b.get(&format!("/connect/nobody/{ticket}")).await?;
    ensure!(page.status == 404, "unknown provider connect answered {}", page.status);
    let page = b.get(&format!("/connect/idp/{}", tamper(&ticket))).await?;
    assert_failure(&page, 400, "invalid_request")?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_callback_does_not_disturb_a_concurrent_good_sign_in() -> anyhow::Result<()> {
    let (idp, upstream) = (TestIdp::start().await, EchoUpstream::start("up").await?);
    let gw = gateway(&idp, &upstream, false).await?;
    let mut good = Browser::new(gw.endpoint())?;
    let mut bad = Browser::new(gw.endpoint())?;
    let good_callback = callback_url(&mut good).await?;
    let bad_callback = callback_url(&mut bad).await?.replace("code=", "code=forged");
    let (g, x) = tokio::join!(good.get(&good_callback), bad.get(&bad_callback));
    ensure!(g?.status == 200, "the good sign-in failed");
    assert_failure(&x?, 400, "invalid_grant")?;
    ensure!(api_status(&mut good).await? == 200);
    ensure!(api_status(&mut bad).await? == 401);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_oauth2_needs_userinfo_and_fails_closed_when_it_is_down() -> anyhow::Result<()> {
    let (idp, upstream) = (TestIdp::start().await, EchoUpstream::start("up").await?);
    let gw = gateway(&idp, &upstream, true).await?;
    let mut b = Browser::new(gw.endpoint())?;
    ensure!(sign_in(&mut b).await?.status == 200);
    let echo = b.get("/api/x").await?.echo()?;
    ensure!(echo.header("x-forwarded-user").as_deref() == Some("sub-alice"), "{echo:?}");
    idp.userinfo_status(503);
    let mut b = Browser::new(gw.endpoint())?;
    assert_failure(&sign_in(&mut b).await?, 502, "temporarily_unavailable")?;
    ensure!(api_status(&mut b).await? == 401);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_revokes_at_the_provider_and_ends_the_session() -> anyhow::Result<()> {
    let (idp, upstream) = (TestIdp::start().await, EchoUpstream::start("up").await?);
    let gw = gateway(&idp, &upstream, false).await?;
    let mut b = Browser::new(gw.endpoint())?;
    sign_in(&mut b).await?;
    let token = b.get("/api/x").await?.echo()?.header("x-forwarded-access-token").context("no token")?;
    let origin = b.origin();
    ensure!(b.logout(Some(&origin)).await?.status == 204);
    ensure!(api_status(&mut b).await? == 401);
    eventually("revocation at the provider", Duration::from_secs(5), || {
        let revoked = idp.revoked_tokens();
        let token = token.clone();
        async move {
            if revoked.contains(&token) {
                Ok(())
            } else {
                anyhow::bail!("not revoked yet")
            }
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_and_codes_never_appear_in_the_logs() -> anyhow::Result<()> {
    let (idp, upstream) = (TestIdp::start().await, EchoUpstream::start("up").await?);
    let toml = GatewayConfig::on_free_port(&[upstream.addr()])?
        .plain_http_cookies()
        .extra(&format!(
            "[providers.idp]\nkind = \"oidc\"\nissuer = \"{}\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret = \"env:IDP_SECRET\"\n",
            idp.issuer()
        ))
        .extra("[[routes]]\nprefix = \"/api/\"\nrequire = [\"idp\"]\n");
    let gw = TestGateway::with_toml(toml).env("IDP_SECRET", CLIENT_SECRET).spawn_binary().await?;
    let mut b = Browser::new(gw.endpoint())?;
    sign_in(&mut b).await?;
    idp.set_id_token_fault(IdTokenFault::WrongNonce);
    let mut b2 = Browser::new(gw.endpoint())?;
    sign_in(&mut b2).await?;
    ensure!(api_status(&mut b).await? == 200);
    let logs = gw.process()?.logs();
    ensure!(logs.contains("sign-in completed") && logs.contains("sign-in failed"), "unexpected logs: {logs}");
    for secret in idp.issued_secrets().iter().chain([CLIENT_SECRET.to_owned()].iter()) {
        ensure!(!logs.contains(secret.as_str()), "a token, code or the client secret is in the logs");
    }
    let cookie = b.session_cookie().context("no cookie")?.to_owned();
    ensure!(!logs.contains(&cookie), "the session cookie is in the logs");
    Ok(())
}
