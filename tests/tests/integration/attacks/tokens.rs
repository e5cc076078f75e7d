//! Tokens: a bearer token a client sends is never an identity (the gateway only vouches for
//! sign-ins it performed), and an identity never outlives `session.token_ttl`, whatever the
//! provider would still say.
//!
//! Already asserted elsewhere: `popup_flow::tokens_expire_after_token_ttl` and
//! `real_oidc_provider::real_provider_tokens_expire_after_token_ttl` (401 after the lifetime),
//! `popup_flow::access_token_is_forwarded_only_on_routes_that_ask_for_it` (a client-sent
//! `X-Forwarded-Access-Token` is replaced), `teams::bad_bot_tokens_get_401_and_reach_no_bot`.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use gateway_tests::idp::{TestIdp, CLIENT_ID, CLIENT_SECRET};
use gateway_tests::signin::Browser;
use gateway_tests::{eventually, EchoUpstream, GatewayConfig, TestGateway};

use super::{Target, IDENTITY_HEADERS};

/// A route that forwards the access token, so tests learn the tokens the gateway holds.
const TOKEN_ROUTE: &str = "[[routes]]\nprefix = \"/token-api/\"\nrequire = [\"dev\"]\nforward_access_token = true\n";

// Guards against CWE-287 (a client bearer token trusted without validation): a bearer token,
// even one the gateway itself handed the upstream for another user, is never an identity.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_bearer_token_is_never_an_identity() -> anyhow::Result<()> {
    let target = Target::start(|c| c.extra(TOKEN_ROUTE)).await?;
    let mut victim = Browser::new(target.gw.endpoint())?;
    victim.sign_in_dev("victim").await?;
    let stolen = victim.get("/token-api/x").await?.echo()?.header("x-forwarded-access-token").context("no token")?;
    let bearer = format!("Bearer {stolen}");
    let fake_jwt = "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9.";
    let before = target.echo.targets().len();

    let mut failures = Vec::new();
    for (what, path, headers) in [
        ("stolen token as bearer", "/token-api/x", vec![("Authorization", bearer.as_str())]),
        ("unsigned JWT as bearer", "/api/x", vec![("Authorization", fake_jwt)]),
        ("bearer in lower case", "/api/x", vec![("authorization", &*bearer.replacen("Bearer", "bearer", 1))]),
        ("token in the forwarding header", "/token-api/x", vec![("X-Forwarded-Access-Token", stolen.as_str())]),
        ("token as a cookie", "/api/x", vec![("Cookie", &*format!("access_token={stolen}; id_token={stolen}"))]),
        ("token in the query", &*format!("/api/x?access_token={stolen}"), vec![]),
    ] {
        let answer = target.raw("GET", path, &headers).await?;
        let json: serde_json::Value = serde_json::from_slice(&answer.body).unwrap_or_default();
        if answer.status != 401 || json["error"] != "authentication_required" {
            failures.push(format!("{what}: {} {}", answer.status, super::short(&answer.text())));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(target.targets_since(before), Vec::<String>::new(), "a bearer-only request reached the upstream");

    // On a public route the header is the application's business: passed along, as no identity.
    let public = target.raw("GET", "/public", &[("Authorization", &bearer)]).await?.echo()?;
    let identity: Vec<_> = IDENTITY_HEADERS.iter().filter(|h| public.header(h).is_some()).collect();
    assert!(identity.is_empty(), "a bearer token became identity headers {identity:?}");

    // Another signed-in user presenting the victim's token is still only themself.
    let mut other = Browser::new(target.gw.endpoint())?;
    other.sign_in_dev("mallory").await?;
    let cookie = other.cookie_header().context("no cookie")?;
    let seen = target.raw("GET", "/token-api/x", &[("Cookie", &cookie), ("Authorization", &bearer)]).await?.echo()?;
    assert_eq!(seen.header("x-forwarded-user").as_deref(), Some("mallory"));
    assert_ne!(seen.header("x-forwarded-access-token").as_deref(), Some(stolen.as_str()));
    Ok(())
}

// Guards against stale identity: the claims of a sign-in are what the upstream sees, and only
// until `token_ttl` after it, even with a provider that would refresh the tokens and now reports
// another user; nothing is silently extended or re-fetched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_ends_at_token_ttl_whatever_the_provider_would_still_say() -> anyhow::Result<()> {
    let idp = TestIdp::start().await;
    let echo = EchoUpstream::start("app").await?;
    let toml = GatewayConfig::on_free_port(&[echo.addr()])?
        .plain_http_cookies()
        .session_key("token_ttl = \"2s\"")
        .extra(&format!(
            "[providers.idp]\nkind = \"oidc\"\nissuer = \"{}\"\nclient_id = \"{CLIENT_ID}\"\n\
             client_secret = \"env:IDP_SECRET\"\nscopes = [\"openid\", \"email\", \"offline_access\"]\n",
            idp.issuer()
        ))
        .extra("[[routes]]\nprefix = \"/api/\"\nrequire = [\"idp\"]\nforward_access_token = true\n");
    let gw = TestGateway::with_toml(toml).env("IDP_SECRET", CLIENT_SECRET).start().await?;
    let mut browser = Browser::new(gw.endpoint())?;
    let connect = browser.session_info().await?.connect_url("idp")?;
    let to_idp = browser.get(&connect).await?;
    let from_idp = browser.get(to_idp.location()?).await?;
    let callback = from_idp.location()?.to_owned();
    let signed_in = Instant::now();
    assert_eq!(browser.get(&callback).await?.status, 200);
    let exchanges = idp.token_requests();

    idp.set_user("bob");
    let seen = browser.get("/api/x").await?.echo()?;
    assert_eq!(seen.header("x-forwarded-user").as_deref(), Some("sub-alice"), "claims changed within token_ttl");
    let client = gw.client()?;
    let (url, cookie) = (gw.url("/api/x"), browser.cookie_header().context("no cookie")?);
    // docs/architecture.md#configuration: token_ttl is an absolute lifetime; this test is about time passing.
    let ended_after = eventually("the identity ends after token_ttl", Duration::from_secs(8), || async {
        let resp = client.get(&url).header("cookie", &cookie).send().await?;
        ensure!(resp.status() == reqwest::StatusCode::UNAUTHORIZED, "still {}", resp.status());
        Ok(signed_in.elapsed())
    })
    .await?;

    assert!(ended_after >= Duration::from_millis(1900), "ended after only {ended_after:?}");
    assert_eq!(idp.token_requests(), exchanges, "the gateway went back to the provider instead of ending the identity");
    Ok(())
}
