//! What Redis shows and who may use it: key names carry an HMAC tag, never a session id (the
//! expiry relay still finds the session), and a password-protected Redis works with the URL
//! given as a secret reference.

use std::time::Duration;

use anyhow::Context;
use gateway::config::SessionSecret;
use gateway::session::cookie::{read_session_cookie, CookieRead};
use gateway::session::Keyring;
use gateway_tests::config::TEST_SECRET;
use gateway_tests::redis_server::RedisServer;
use gateway_tests::{eventually, EchoUpstream, GatewayConfig, TestGateway};
use secrecy::SecretString;

use super::{get, new_session, one_gateway, sign_in, COOKIE_NAME, PREFIX, PROVIDER_AND_ROUTES, USER};

/// The session id (as the gateway's storage key) of a `gw_session=…` cookie header value.
fn session_id_of(cookie: &str) -> anyhow::Result<String> {
    let secret = SessionSecret::parse(SecretString::from(TEST_SECRET.to_owned())).map_err(anyhow::Error::msg)?;
    let keys = Keyring::from_secrets(&[secret]);
    let mut headers = http::HeaderMap::new();
    headers.insert(http::header::COOKIE, cookie.parse()?);
    match read_session_cookie(&headers, COOKIE_NAME, &keys) {
        CookieRead::One(c) => Ok(c.session.storage_key()),
        other => anyhow::bail!("the cookie {cookie} does not read as one session: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_key_names_show_no_session_id() -> anyhow::Result<()> {
    let redis = RedisServer::start().await?;
    let echo = EchoUpstream::start("app").await?;
    let gw = one_gateway(&redis, &echo).await?;
    let cookie = new_session(&gw).await?;
    let cookie = sign_in(&gw, &cookie, USER).await?;
    let session = session_id_of(&cookie)?;

    let keys = redis.keys(&format!("{PREFIX}*")).await?;
    let has = |kind: &str| keys.iter().any(|k| k.starts_with(&format!("{PREFIX}{kind}:")));
    assert!(has("t") && has("s") && has("g"), "expected token, companion and generation keys: {keys:?}");
    let leaks: Vec<&String> = keys.iter().filter(|k| k.contains(&session)).collect();
    assert!(leaks.is_empty(), "key names show the session id: {leaks:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_with_a_password_serves_sign_ins_and_refuses_a_gateway_without_it() -> anyhow::Result<()> {
    let redis = RedisServer::start_with_password("a-redis-password-for-tests-0123456789").await?;
    let echo = EchoUpstream::start("app").await?;
    let table =
        format!("[store]\nkind = \"redis\"\nurl = \"env:REDIS_URL\"\nkey_prefix = \"{PREFIX}\"\ntimeout = \"300ms\"\n");
    let config = |url: String| -> anyhow::Result<_> {
        let toml = GatewayConfig::on_free_port(&[echo.addr()])?
            .plain_http_cookies()
            .extra(&table)
            .extra(PROVIDER_AND_ROUTES)
            .to_toml();
        Ok(TestGateway::with_toml(toml).env("REDIS_URL", &url))
    };
    let gw = config(redis.url())?.start().await?;
    let ready = |gw: &TestGateway| {
        let url = gw.url("/_gateway/ready");
        let client = gw.client();
        async move { Ok::<_, anyhow::Error>(client?.get(url).send().await?.status().as_u16()) }
    };
    eventually("the gateway with the password is ready", Duration::from_secs(20), || async {
        let status = ready(&gw).await?;
        anyhow::ensure!(status == 200, "ready answered {status}");
        Ok(())
    })
    .await?;
    let cookie = new_session(&gw).await?;
    let cookie = sign_in(&gw, &cookie, USER).await?;
    let seen = gateway_tests::client::read_echo(get(&gw, "/api/whoami", &cookie).await?).await?;
    assert_eq!(seen.header("x-forwarded-user").as_deref(), Some(USER));

    let refused = config(redis.url_without_password())?.start().await?;
    let status = ready(&refused).await.context("ready of the gateway without the password")?;
    assert_eq!(status, 503, "a gateway Redis refuses must not say it is ready");
    let resp = get(&refused, "/api/whoami", &cookie).await?;
    assert_eq!(resp.status(), 503, "protected routes fail closed when Redis refuses the gateway");
    Ok(())
}
