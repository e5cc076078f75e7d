//! The Teams messaging-extension loop across two gateways on one Redis: the sign-in card is
//! asked for on A, the popup signs in on A, the code comes back through B (Teams may send each
//! request to any instance behind the load balancer); a code works once, wherever it is used.

use std::time::Duration;

use anyhow::{ensure, Context};
use gateway_tests::redis_server::RedisServer;
use gateway_tests::teams_fixtures::{bot_result, sign_in, Activity, BotService, TeamsClient, TeamsSetup};
use gateway_tests::TestGateway;
use serde_json::json;

use super::PREFIX;

/// Gateways A and B in front of `bot`, both on `redis`, subscribed to its channels.
async fn two_teams_gateways(redis: &RedisServer, bot: &BotService) -> anyhow::Result<(TestGateway, TestGateway)> {
    let config = || -> anyhow::Result<String> {
        Ok(TeamsSetup::default().config(bot.addr())?.extra(&redis.store_table(PREFIX)).to_toml())
    };
    let a = TestGateway::with_toml(config()?).start().await?;
    let b = TestGateway::with_toml(config()?).start().await?;
    let channels = [format!("{PREFIX}ev"), format!("{PREFIX}inv")];
    redis.wait_subscribers(&channels, 2, Duration::from_secs(15)).await?;
    Ok((a, b))
}

/// The auth answer on `teams`, then the popup on `popup_gw` as `user`: the security code.
async fn code_from(
    teams: &TeamsClient,
    popup_gw: &TestGateway,
    query: &Activity,
    user: &str,
) -> anyhow::Result<String> {
    let url = teams.expect_auth(query, &[]).await?;
    ensure!(url.starts_with(&popup_gw.url("/connect/dev/t.")), "the sign-in URL {url} is not the instance's own");
    sign_in(popup_gw.endpoint(), &url, user).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_teams_sign_in_started_on_one_instance_completes_on_the_other() -> anyhow::Result<()> {
    let redis = RedisServer::start().await?;
    let bot = BotService::start().await?;
    let (a, b) = two_teams_gateways(&redis, &bot).await?;
    let (on_a, on_b) = (TeamsClient::new(&a)?, TeamsClient::new(&b)?);
    let query = Activity::load("query")?;

    let code = code_from(&on_a, &a, &query, "ada").await?;
    ensure!(bot.activities().is_empty(), "forwarded before the code came back");
    let answer = on_b.post(query.clone().with_state(&code).bytes(), &[]).await?;
    ensure!(answer.status == 200 && answer.json().ok() == Some(bot_result()), "B did not redeem A's code: {answer:?}");
    let received = bot.activities();
    let forwarded = received.last().context("the bot received nothing")?;
    assert_eq!(forwarded.header_values("x-forwarded-user"), ["ada"], "the identity B forwarded");
    assert_eq!(forwarded.json()?, query.0, "the query minus value.state");
    // Validated on every instance: A forwards the user's next query too.
    let later = on_a.post(query.bytes(), &[]).await?;
    ensure!(later.status == 200 && later.json().ok() == Some(bot_result()), "A does not know the user: {later:?}");

    // Nothing in Redis names the Teams user or holds the code or a token in the clear.
    let user = query.0["from"]["aadObjectId"].as_str().context("no aadObjectId")?;
    for key in redis.keys(&format!("{PREFIX}*")).await? {
        assert!(!key.contains(user) && !key.contains(&code), "the Redis key {key} names the user or the code");
        if let Some(raw) = redis.get_raw(&key).await? {
            let text = String::from_utf8_lossy(&raw);
            assert!(!text.contains("ada") && !text.contains(user), "{key} holds plaintext: {text}");
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_teams_code_used_on_one_instance_is_refused_on_the_other() -> anyhow::Result<()> {
    let redis = RedisServer::start().await?;
    let bot = BotService::start().await?;
    let (a, b) = two_teams_gateways(&redis, &bot).await?;
    let (on_a, on_b) = (TeamsClient::new(&a)?, TeamsClient::new(&b)?);
    let query = Activity::load("query")?;
    let user = query.0["from"]["aadObjectId"].clone();
    let verify = |code: &str| {
        Activity::load("verify-state").map(|v| v.with(&["from", "aadObjectId"], user.clone()).with_state(code))
    };

    let code = code_from(&on_a, &a, &query, "ada").await?;
    let first = on_a.post(verify(&code)?.bytes(), &[]).await?;
    ensure!(first.status == 200 && first.json().ok() == Some(json!({})), "A refused the code: {first:?}");
    let again = on_b.post(verify(&code)?.bytes(), &[]).await?;
    assert_eq!(again.status, 412, "B accepted a code already used on A: {again:?}");
    let again_on_a = on_a.post(verify(&code)?.bytes(), &[]).await?;
    assert_eq!(again_on_a.status, 412, "A accepted its own code twice: {again_on_a:?}");
    assert!(bot.activities().is_empty(), "a verifyState reached the bot");

    // Wrong codes count on every instance: four on A and one on B discard the next sign-in.
    let other = Activity::load("query")?.from_user("another-user");
    let code = code_from(&on_b, &b, &other, "grace").await?;
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for (i, client) in [&on_a, &on_a, &on_a, &on_a, &on_b].into_iter().enumerate() {
        client.expect_auth(&other.clone().with_state(wrong), &[]).await.with_context(|| format!("wrong code {i}"))?;
    }
    on_a.expect_auth(&other.clone().with_state(&code), &[]).await.context("the right code after five wrong ones")?;
    assert!(bot.activities().is_empty(), "a discarded sign-in forwarded something");
    Ok(())
}
