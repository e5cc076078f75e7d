//! The Teams messaging-extension loop through a real gateway: Teams-shaped activities
//! from `tests/fixtures/teams/` go to `/api/messages`; the popup signs in with the built-in `dev`
//! provider; a recording bot service shows exactly what was forwarded; a local Bot Framework
//! issuer signs the bot tokens.

use std::time::{Duration, Instant};

use anyhow::ensure;
use gateway_tests::teams_fixtures::{
    bot_claims, bot_result, bot_token, now_secs, security_code, sign_in, sign_in_page, Activity, BotIssuer, BotKey,
    BotService, Received, TeamsClient, TeamsSetup, BOT_PATH, MAX_ACTIVITY_BYTES, SERVICE_URL,
};
use gateway_tests::{eventually, ports};
use serde_json::{json, Value};

/// Longest wait for a short `code_ttl` or `token_ttl` to run out and be noticed.
const EXPIRY_WAIT: Duration = Duration::from_secs(10);

/// Asserts the identity headers of `dev` user `user` reached the bot (and nothing a client sent).
fn assert_identity(forwarded: &Received, user: &str) {
    for (name, value) in [
        ("x-forwarded-user", user.to_owned()),
        ("x-forwarded-email", format!("{user}@dev.example")),
        ("x-forwarded-name", format!("Dev User {user}")),
        ("x-forwarded-provider", "dev".to_owned()),
    ] {
        assert_eq!(forwarded.header_values(name), [value], "{name} as the bot received it");
    }
}

/// A six-digit code that is not `code`.
fn other_code(code: &str) -> &'static str {
    if code == "000000" {
        "111111"
    } else {
        "000000"
    }
}

/// Posts `activity`, which must get the `auth` answer, and signs in through its URL as `username`:
/// the security code.
async fn code_for(
    gw: &gateway_tests::TestGateway,
    teams: &TeamsClient,
    activity: &Activity,
    username: &str,
) -> anyhow::Result<String> {
    let url = teams.expect_auth(activity, &[]).await?;
    sign_in(gw.endpoint(), &url, username).await
}

/// Posts `activity`, which must be forwarded: the bot's answer came back, and the request the
/// bot received (the last one, the only new one).
async fn forwarded(
    bot: &BotService,
    teams: &TeamsClient,
    activity: &Activity,
    headers: &[(&str, &str)],
) -> anyhow::Result<Received> {
    let before = bot.activities().len();
    let answer = teams.post(activity.bytes(), headers).await?;
    ensure!(answer.status == 200 && answer.json().ok() == Some(bot_result()), "not forwarded: {answer:?}");
    let received = bot.activities();
    ensure!(received.len() == before + 1, "the bot received {} requests, expected 1", received.len() - before);
    received.last().cloned().ok_or_else(|| anyhow::anyhow!("nothing received"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_users_extension_invokes_get_the_auth_answer_and_reach_no_bot() -> anyhow::Result<()> {
    let bot = BotService::start().await?;
    let gw = TeamsSetup::default().start(&bot).await?;
    let teams = TeamsClient::new(&gw)?;
    let query = Activity::load("query")?;

    let url = teams.expect_auth(&query, &[]).await?;
    let prefix = gw.url("/connect/dev/t.");
    assert!(url.starts_with(&prefix) && url.ends_with("?opener=teams"), "sign-in URL {url}");
    assert!(url.len() > prefix.len() + "?opener=teams".len(), "no user reference in {url}");
    for name in ["composeExtension/fetchTask", "composeExtension/submitAction", "composeExtension/queryLink"] {
        teams.expect_auth(&query.clone().named(name), &[]).await?;
    }
    assert!(bot.activities().is_empty(), "forwarded before sign-in: {:?}", bot.activities());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_right_code_forwards_the_query_without_state_with_identity_and_later_queries_pass() -> anyhow::Result<()> {
    let issuer = BotIssuer::start().await?;
    let bot = BotService::start().await?;
    let gw = TeamsSetup::default().verifying(&issuer).start(&bot).await?;
    let teams = TeamsClient::new(&gw)?;
    let token = bot_token(BotKey::Teams, &bot_claims())?;
    // Teams' own request carries a forged identity header: it must never reach the bot.
    let headers = [("authorization", token.as_str()), ("x-forwarded-user", "mallory")];
    let query = Activity::load("query")?;

    let url = teams.expect_auth(&query, &headers).await?;
    assert!(bot.activities().is_empty());
    let page = sign_in_page(gw.endpoint(), &url, "ada").await?;
    for part in ["teams-js", "\"opener\":\"teams\"", "notifySuccess"] {
        assert!(page.body.contains(part), "{part} missing from the Teams completion page: {}", page.body);
    }
    let code = security_code(&page.body)?;
    assert!(bot.activities().is_empty(), "the sign-in itself forwarded something");

    let first = forwarded(&bot, &teams, &query.clone().with_state(&code), &headers).await?;
    assert_eq!((first.method.as_str(), first.path.as_str()), ("POST", BOT_PATH));
    assert_identity(&first, "ada");
    assert_eq!(first.json()?, query.0, "the bot must get the query minus value.state, all else identical");

    let later = forwarded(&bot, &teams, &query, &headers).await?;
    assert_identity(&later, "ada");
    assert_eq!(later.body, query.bytes(), "a validated user's query must pass byte for byte");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validated_users_queries_pass_straight_through_until_token_ttl() -> anyhow::Result<()> {
    let bot = BotService::start().await?;
    let gw = TeamsSetup::default().token_ttl("2s").start(&bot).await?;
    let teams = TeamsClient::new(&gw)?;
    let query = Activity::load("query")?;
    let code = code_for(&gw, &teams, &query, "ada").await?;
    forwarded(&bot, &teams, &query.clone().with_state(&code), &[]).await?;
    assert_identity(&forwarded(&bot, &teams, &query, &[]).await?, "ada");

    eventually("the validated Teams user is asked to sign in again", EXPIRY_WAIT, || async {
        teams.expect_auth(&query, &[]).await.map(drop)
    })
    .await?;
    let count = bot.activities().len();
    teams.expect_auth(&query, &[]).await?;
    assert_eq!(bot.activities().len(), count, "an expired user's query was forwarded");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_code_answers_auth_again_and_forwards_nothing() -> anyhow::Result<()> {
    let bot = BotService::start().await?;
    let gw = TeamsSetup::default().start(&bot).await?;
    let teams = TeamsClient::new(&gw)?;
    let query = Activity::load("query")?;
    let code = code_for(&gw, &teams, &query, "ada").await?;

    teams.expect_auth(&query.clone().with_state(other_code(&code)), &[]).await?;
    assert!(bot.activities().is_empty(), "a wrong code forwarded the query");
    // One wrong try does not spend the sign-in.
    assert_identity(&forwarded(&bot, &teams, &query.with_state(&code), &[]).await?, "ada");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_users_code_is_refused_and_still_works_for_its_owner() -> anyhow::Result<()> {
    let bot = BotService::start().await?;
    let gw = TeamsSetup::default().start(&bot).await?;
    let teams = TeamsClient::new(&gw)?;
    let ada_query = Activity::load("query")?;
    let bob_query = Activity::load("query")?.from_user("5e0b9a7c-1f2d-4c3b-8a69-bbbbbbbbbbbb");

    let ada_url = teams.expect_auth(&ada_query, &[]).await?;
    let ada_code = sign_in(gw.endpoint(), &ada_url, "ada").await?;
    let bob_url = teams.expect_auth(&bob_query.clone().with_state(&ada_code), &[]).await?;
    assert_ne!(bob_url, ada_url, "bob's sign-in URL must refer to bob, not ada");
    assert!(bot.activities().is_empty(), "ada's code let bob's query through");

    assert_identity(&forwarded(&bot, &teams, &ada_query.with_state(&ada_code), &[]).await?, "ada");
    let bob_code = sign_in(gw.endpoint(), &bob_url, "bob").await?;
    assert_identity(&forwarded(&bot, &teams, &bob_query.with_state(&bob_code), &[]).await?, "bob");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_code_answers_auth_again() -> anyhow::Result<()> {
    let bot = BotService::start().await?;
    let gw = TeamsSetup::default().code_ttl("1s").start(&bot).await?;
    let teams = TeamsClient::new(&gw)?;
    let query = Activity::load("query")?;
    let code = code_for(&gw, &teams, &query, "ada").await?;
    let issued = Instant::now();

    // Only the clock may move: any probe with the code would spend it.
    eventually("code_ttl (1s) has passed", EXPIRY_WAIT, || async {
        ensure!(issued.elapsed() > Duration::from_millis(1500), "{:?} since the code was shown", issued.elapsed());
        Ok(())
    })
    .await?;
    teams.expect_auth(&query.with_state(&code), &[]).await?;
    assert!(bot.activities().is_empty(), "an expired code forwarded the query");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_wrong_codes_discard_the_sign_in_so_the_right_code_then_fails() -> anyhow::Result<()> {
    let bot = BotService::start().await?;
    let gw = TeamsSetup::default().start(&bot).await?;
    let teams = TeamsClient::new(&gw)?;
    let query = Activity::load("query")?;
    let code = code_for(&gw, &teams, &query, "ada").await?;

    for _ in 0..5 {
        teams.expect_auth(&query.clone().with_state(other_code(&code)), &[]).await?;
    }
    teams.expect_auth(&query.clone().with_state(&code), &[]).await?;
    assert!(bot.activities().is_empty(), "a discarded code forwarded the query");

    // A fresh sign-in starts over.
    let fresh = code_for(&gw, &teams, &query, "ada").await?;
    assert_identity(&forwarded(&bot, &teams, &query.with_state(&fresh), &[]).await?, "ada");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_state_invoke_with_the_code_validates_without_reaching_the_bot() -> anyhow::Result<()> {
    let bot = BotService::start().await?;
    let gw = TeamsSetup::default().start(&bot).await?;
    let teams = TeamsClient::new(&gw)?;
    let query = Activity::load("query")?;
    let verify = Activity::load("verify-state")?;
    let code = code_for(&gw, &teams, &query, "ada").await?;

    let wrong = teams.post(verify.clone().with_state(other_code(&code)).bytes(), &[]).await?;
    assert_eq!(wrong.status, 412, "a wrong verifyState code: {wrong:?}");
    let right = teams.post(verify.with_state(&code).bytes(), &[]).await?;
    assert_eq!((right.status, right.json()?), (200, json!({})), "{right:?}");
    assert!(bot.activities().is_empty(), "signin/verifyState reached the bot");

    assert_identity(&forwarded(&bot, &teams, &query, &[]).await?, "ada");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_carrying_the_code_validates_and_never_reaches_the_bot() -> anyhow::Result<()> {
    let bot = BotService::start().await?;
    let gw = TeamsSetup::default().start(&bot).await?;
    let teams = TeamsClient::new(&gw)?;
    let query = Activity::load("query")?;
    let message = Activity::load("message")?;
    let code = code_for(&gw, &teams, &query, "ada").await?;

    let typed = teams.post(message.clone().with_text(&code).bytes(), &[]).await?;
    assert_eq!((typed.status, typed.json()?), (200, json!({})), "{typed:?}");
    assert!(bot.activities().is_empty(), "the typed code reached the bot");

    assert_identity(&forwarded(&bot, &teams, &query, &[]).await?, "ada");
    let chat = forwarded(&bot, &teams, &message, &[]).await?;
    assert_identity(&chat, "ada");
    assert_eq!(chat.body, message.bytes());
    assert!(bot.activities().iter().all(|r| !String::from_utf8_lossy(&r.body).contains(&code)), "code leaked");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_activities_get_a_400_json_error_and_reach_no_bot() -> anyhow::Result<()> {
    let bot = BotService::start().await?;
    let gw = TeamsSetup::default().start(&bot).await?;
    let teams = TeamsClient::new(&gw)?;
    for body in [&b"{\"type\":\"invoke\",\"name\":"[..], b"not json", b"[1,2,3]", b""] {
        let answer = teams.post(body.to_vec(), &[]).await?;
        assert_eq!(answer.status, 400, "{:?} answered {answer:?}", String::from_utf8_lossy(body));
        assert!(answer.content_type.starts_with("application/json"), "{answer:?}");
        assert!(answer.json()?.get("error").is_some(), "{answer:?}");
    }
    assert!(bot.activities().is_empty(), "a malformed activity reached the bot");
    Ok(())
}

/// `activity` padded (in its one query parameter's value) to exactly `len` bytes.
fn padded_to(activity: &Activity, len: usize) -> anyhow::Result<Activity> {
    let keys = ["value", "parameters"];
    let padded = |n: usize| activity.clone().with(&keys, json!([{"name": "searchKeyword", "value": "x".repeat(n)}]));
    let overhead = padded(0).bytes().len();
    ensure!(len >= overhead, "{len} bytes is shorter than the activity itself");
    Ok(padded(len - overhead))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_activity_gets_413_and_reaches_no_bot() -> anyhow::Result<()> {
    let bot = BotService::start().await?;
    let gw = TeamsSetup::default().pass_through().start(&bot).await?;
    let teams = TeamsClient::new(&gw)?;
    for len in [MAX_ACTIVITY_BYTES + 1, 4 * MAX_ACTIVITY_BYTES] {
        let answer = teams.post(padded_to(&Activity::load("query")?, len)?.bytes(), &[]).await?;
        assert_eq!(answer.status, 413, "{len} bytes: {answer:?}");
    }
    assert!(bot.activities().is_empty(), "an oversized activity reached the bot");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_activity_of_exactly_the_limit_reaches_the_bot_whole() -> anyhow::Result<()> {
    let bot = BotService::start().await?;
    let gw = TeamsSetup::default().start(&bot).await?;
    let teams = TeamsClient::new(&gw)?;
    let query = Activity::load("query")?;
    let code = code_for(&gw, &teams, &query, "ada").await?;

    let redeem = padded_to(&query.clone().with_state(&code), MAX_ACTIVITY_BYTES)?;
    assert_eq!(redeem.bytes().len(), MAX_ACTIVITY_BYTES);
    let mut expected = redeem.0.clone();
    if let Some(value) = expected["value"].as_object_mut() {
        value.remove("state");
    }
    let redeemed = forwarded(&bot, &teams, &redeem, &[]).await?;
    assert_eq!(redeemed.json()?, expected, "the rewritten (state-less) body must arrive whole");

    let query = padded_to(&query, MAX_ACTIVITY_BYTES)?;
    let later = forwarded(&bot, &teams, &query, &[]).await?;
    assert_eq!(later.body.len(), MAX_ACTIVITY_BYTES);
    assert_eq!(later.body, query.bytes(), "the replayed body must arrive whole");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pass_through_forwards_activities_untouched_but_still_checks_the_bot_token() -> anyhow::Result<()> {
    let issuer = BotIssuer::start().await?;
    let bot = BotService::start().await?;
    let gw = TeamsSetup::default().verifying(&issuer).pass_through().start(&bot).await?;
    let teams = TeamsClient::new(&gw)?;
    let token = bot_token(BotKey::Teams, &bot_claims())?;

    let missing = teams.post(Activity::load("query")?.bytes(), &[]).await?;
    assert_eq!(missing.status, 401, "pass_through skipped the bot token check: {missing:?}");
    assert!(bot.activities().is_empty());
    for activity in [
        Activity::load("query")?,
        Activity::load("query")?.with_state("123456"),
        Activity::load("verify-state")?,
        Activity::load("message")?,
    ] {
        let headers = [("authorization", token.as_str()), ("x-forwarded-user", "mallory")];
        let got = forwarded(&bot, &teams, &activity, &headers).await?;
        assert_eq!(got.body, activity.bytes(), "pass_through changed the activity");
        assert_eq!(got.header_values("authorization"), [token.as_str()], "the bot cannot check its own token");
        assert!(got.header_values("x-forwarded-user").is_empty(), "a client-sent identity reached the bot");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bot_tokens_get_401_and_reach_no_bot() -> anyhow::Result<()> {
    let issuer = BotIssuer::start().await?;
    let bot = BotService::start().await?;
    let gw = TeamsSetup::default().verifying(&issuer).start(&bot).await?;
    let teams = TeamsClient::new(&gw)?;
    let query = Activity::load("query")?;
    let with = |key: &str, value: Value| {
        let mut claims = bot_claims();
        claims[key] = value;
        claims
    };
    let cases = [
        ("missing", None),
        ("forged", Some(bot_token(BotKey::Forged, &bot_claims())?)),
        ("expired beyond the skew", Some(bot_token(BotKey::Teams, &with("exp", json!(now_secs() - 600)))?)),
        ("wrong audience", Some(bot_token(BotKey::Teams, &with("aud", json!("another-bot-app")))?)),
        ("wrong serviceurl", Some(bot_token(BotKey::Teams, &with("serviceurl", json!("https://evil.example/")))?)),
        ("key not endorsed for msteams", Some(bot_token(BotKey::SkypeOnly, &bot_claims())?)),
        ("not a JWT", Some("Bearer not-a-jwt".to_owned())),
    ];
    for (what, token) in &cases {
        let headers: Vec<(&str, &str)> = token.iter().map(|t| ("authorization", t.as_str())).collect();
        let answer = teams.post(query.bytes(), &headers).await?;
        assert_eq!(answer.status, 401, "{what}: {answer:?}");
        assert!(answer.content_type.starts_with("application/json") && answer.json().is_ok(), "{what}: {answer:?}");
    }
    assert!(bot.activities().is_empty(), "a request with a bad bot token reached the bot");

    // A valid token still gets the normal answer.
    let valid = bot_token(BotKey::Teams, &with("serviceurl", json!(SERVICE_URL)))?;
    teams.expect_auth(&query, &[("authorization", valid.as_str())]).await?;
    assert!(issuer.key_fetches() >= 1, "the keys were never fetched from the configured metadata");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bot_requests_are_refused_when_the_bot_framework_keys_cannot_be_fetched() -> anyhow::Result<()> {
    let bot = BotService::start().await?;
    // A free port nothing listens on: the metadata cannot be fetched.
    let nowhere = format!("http://{}/v1/.well-known/openidconfiguration", ports::free_addr()?);
    let gw = TeamsSetup::default().verifying_at(&nowhere).start(&bot).await?;
    let teams = TeamsClient::new(&gw)?;
    let token = bot_token(BotKey::Teams, &bot_claims())?;

    let answer = teams.post(Activity::load("query")?.bytes(), &[("authorization", token.as_str())]).await?;
    assert!(answer.status == 401 || answer.status >= 500, "unverifiable token accepted: {answer:?}");
    assert!(answer.json().is_ok(), "{answer:?}");
    assert!(bot.activities().is_empty(), "a request whose token could not be checked reached the bot");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_activities_are_read_whole_and_forwarded_whole() -> anyhow::Result<()> {
    let bot = BotService::start().await?;
    let gw = TeamsSetup::default().start(&bot).await?;
    let teams = TeamsClient::new(&gw)?;
    let query = Activity::load("query")?;
    let code = code_for(&gw, &teams, &query, "ada").await?;

    let answer = teams.post_chunked(query.clone().with_state(&code).bytes(), 100).await?;
    assert_eq!((answer.status, answer.json()?), (200, bot_result()), "{answer:?}");
    let answer = teams.post_chunked(query.bytes(), 100).await?;
    assert_eq!((answer.status, answer.json()?), (200, bot_result()), "{answer:?}");
    let received = bot.activities();
    assert_eq!(received.len(), 2);
    assert_eq!(received[0].json()?, query.0, "the redeemed chunked query, minus state");
    assert_eq!(received[1].body, query.bytes(), "the later chunked query, byte for byte");
    for r in &received {
        assert_identity(r, "ada");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_loop_works_with_an_oidc_provider_by_discovery() -> anyhow::Result<()> {
    use gateway_tests::idp::{TestIdp, CLIENT_ID, CLIENT_SECRET};
    let idp = TestIdp::start().await;
    let bot = BotService::start().await?;
    let toml = gateway_tests::GatewayConfig::on_free_port(&[bot.addr()])?
        .plain_http_cookies()
        .extra(&format!(
            "[providers.idp]\nkind = \"oidc\"\nissuer = \"{}\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret = \"env:IDP_SECRET\"\n",
            idp.issuer()
        ))
        .extra(&format!("[teams]\nbot_path = \"{BOT_PATH}\"\nprovider = \"idp\"\napp_id = \"app\"\nverify_bot_token = false\n"));
    let gw = gateway_tests::TestGateway::with_toml(toml).env("IDP_SECRET", CLIENT_SECRET).start().await?;
    let teams = TeamsClient::new(&gw)?;
    let query = Activity::load("query")?;
    let url = teams.expect_auth(&query, &[]).await?;
    assert!(url.contains("/connect/idp/t."), "{url}");
    // The popup: gateway → provider (answers at once) → gateway callback → completion page.
    let client = gw.client()?;
    let to_idp = client.get(&url).send().await?;
    let to_idp = to_idp.headers().get("location").and_then(|l| l.to_str().ok()).map(str::to_owned);
    let back = client.get(to_idp.as_deref().unwrap_or_default()).send().await?;
    let callback = back.headers().get("location").and_then(|l| l.to_str().ok()).map(str::to_owned);
    let page = client.get(callback.as_deref().unwrap_or_default()).send().await?.text().await?;
    let code = security_code(&page)?;
    let received = forwarded(&bot, &teams, &query.clone().with_state(&code), &[]).await?;
    assert_eq!(received.header_values("x-forwarded-user"), ["sub-alice"]);
    assert_eq!(received.header_values("x-forwarded-provider"), ["idp"]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_loop_works_with_the_real_oidc_provider() -> anyhow::Result<()> {
    use gateway_tests::oidc_provider::OidcProvider;
    let bot = BotService::start().await?;
    let config = gateway_tests::GatewayConfig::on_free_port(&[bot.addr()])?.plain_http_cookies();
    let callback = format!("http://{}/connect/op/callback", config.listen());
    let op = OidcProvider::start("teams-gateway", "teams-secret-0123456789", &[callback]).await?;
    let toml = config
        .extra(&format!(
            "[providers.op]\nkind = \"oidc\"\nissuer = \"{}\"\nclient_id = \"teams-gateway\"\nclient_secret = \"env:OP_SECRET\"\n",
            op.issuer()
        ))
        .extra(&format!("[teams]\nbot_path = \"{BOT_PATH}\"\nprovider = \"op\"\napp_id = \"app\"\nverify_bot_token = false\n"));
    let gw = gateway_tests::TestGateway::with_toml(toml).env("OP_SECRET", "teams-secret-0123456789").start().await?;
    let teams = TeamsClient::new(&gw)?;
    let query = Activity::load("query")?;
    let url = teams.expect_auth(&query, &[]).await?;
    let client = gw.client()?;
    let to_op = client.get(&url).send().await?;
    let authorize = to_op.headers().get("location").and_then(|l| l.to_str().ok()).unwrap_or_default().to_owned();
    let back = op.login(&authorize, "grace").await?;
    let page = client.get(back.as_str()).send().await?.text().await?;
    let code = security_code(&page)?;
    let received = forwarded(&bot, &teams, &query.clone().with_state(&code), &[]).await?;
    assert_eq!(received.header_values("x-forwarded-user"), ["grace"]);
    assert_eq!(received.header_values("x-forwarded-email"), ["grace@example.test"]);
    Ok(())
}
