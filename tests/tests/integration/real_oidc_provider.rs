//! The whole popup flow through the gateway against a real, certified OpenID provider
//! (npm `oidc-provider`, run from `tests/e2e/oidc`): discovery, PKCE, state, nonce, the code
//! exchange with client_secret_basic, RS256 ID-token checks, identity upstream, revocation.

use std::time::Duration;

use anyhow::{ensure, Context};
use gateway_tests::oidc_provider::OidcProvider;
use gateway_tests::signin::Browser;
use gateway_tests::{eventually, EchoUpstream, GatewayConfig, TestGateway};

const CLIENT_ID: &str = "gateway";
const CLIENT_SECRET: &str = "real-provider-secret-0123456789";

async fn setup(token_ttl: &str) -> anyhow::Result<(OidcProvider, EchoUpstream, TestGateway)> {
    let upstream = EchoUpstream::start("up").await?;
    let config = GatewayConfig::on_free_port(&[upstream.addr()])?.plain_http_cookies();
    let callback = format!("http://{}/connect/op/callback", config.listen());
    let provider = OidcProvider::start(CLIENT_ID, CLIENT_SECRET, &[callback]).await?;
    let config = config
        .session_key(&format!("token_ttl = \"{token_ttl}\""))
        .extra(&format!(
            "[providers.op]\nkind = \"oidc\"\nissuer = \"{}\"\nclient_id = \"{CLIENT_ID}\"\n\
             client_secret = \"env:OP_SECRET\"\nscopes = [\"openid\", \"email\", \"profile\"]\n",
            provider.issuer()
        ))
        .extra("[[routes]]\nprefix = \"/api/\"\nrequire = [\"op\"]\n");
    let gw = TestGateway::with_toml(config).env("OP_SECRET", CLIENT_SECRET).start().await?;
    Ok((provider, upstream, gw))
}

/// Connect → the provider's login and consent (driven like a person would) → callback URL.
async fn callback_url(b: &mut Browser, provider: &OidcProvider, login: Option<&str>) -> anyhow::Result<String> {
    let connect = b.session_info().await?.connect_url("op")?;
    let to_op = b.get(&connect).await?;
    ensure!(to_op.status == 302, "connect answered {}: {}", to_op.status, to_op.body);
    let authorize = to_op.location()?.to_owned();
    let back = match login {
        Some(user) => provider.login(&authorize, user).await,
        None => provider.login_denied(&authorize).await,
    };
    Ok(back.with_context(|| provider.logs())?.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_provider_sign_in_reaches_the_upstream_as_the_user() -> anyhow::Result<()> {
    let (provider, _upstream, gw) = setup("2m").await?;
    let mut b = Browser::new(gw.endpoint())?;
    ensure!(b.get("/api/x").await?.status == 401);
    let callback = callback_url(&mut b, &provider, Some("ada")).await?;
    ensure!(callback.contains("iss="), "the provider did not name itself (RFC 9207): {callback}");
    let page = b.get(&callback).await?;
    ensure!(page.status == 200 && page.body.contains("Signed in as"), "{}: {}", page.status, page.body);
    let echo = b.get("/api/x").await?.echo()?;
    ensure!(echo.header("x-forwarded-user").as_deref() == Some("ada"), "{echo:?}");
    ensure!(echo.header("x-forwarded-email").as_deref() == Some("ada@example.test"), "{echo:?}");
    ensure!(echo.header("x-forwarded-provider").as_deref() == Some("op"), "{echo:?}");
    ensure!(
        echo.header("x-forwarded-access-token").is_none(),
        "token forwarded on a route without forward_access_token"
    );
    // The code is single use at the gateway and at the provider.
    let replay = b.get(&callback).await?;
    ensure!(replay.status == 400 && replay.body.contains("invalid_state"), "replay: {}", replay.status);
    let info = b.session_info().await?;
    ensure!(info.signed_in("op"), "the session JSON does not show the sign-in: {:?}", info.0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_provider_cancel_shows_access_denied_and_signs_nobody_in() -> anyhow::Result<()> {
    let (provider, _upstream, gw) = setup("2m").await?;
    let mut b = Browser::new(gw.endpoint())?;
    let callback = callback_url(&mut b, &provider, None).await?;
    let page = b.get(&callback).await?;
    ensure!(page.status == 400 && page.body.contains("access_denied"), "{}: {}", page.status, page.body);
    ensure!(b.get("/api/x").await?.status == 401);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_provider_tokens_expire_after_token_ttl() -> anyhow::Result<()> {
    let (provider, _upstream, gw) = setup("2s").await?;
    let mut b = Browser::new(gw.endpoint())?;
    let callback = callback_url(&mut b, &provider, Some("bob")).await?;
    ensure!(b.get(&callback).await?.status == 200);
    ensure!(b.get("/api/x").await?.status == 200);
    let endpoint = gw.endpoint().clone();
    let cookie = b.cookie_header().context("no cookie")?;
    eventually("401 after token_ttl", Duration::from_secs(6), || {
        let (endpoint, cookie) = (endpoint.clone(), cookie.clone());
        async move {
            let status = endpoint.client()?.get(endpoint.url("/api/x")).header("cookie", cookie).send().await?.status();
            ensure!(status == 401, "still {status}");
            Ok(())
        }
    })
    .await
}
