//! Office and Teams single sign-on against the local Entra stand-in: `Authorization: Bearer`
//! access tokens (v1 and v2 issuers, two tenants, key rotation, every refusal) and on-behalf-of
//! tokens forwarded upstream (cached, one exchange for many requests, consent fallback).

use std::time::Duration;

use anyhow::Context;
use gateway_tests::entra::{
    EntraStandIn, OboMode, Signer, TokenSpec, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_OID, DEFAULT_USERNAME,
};
use gateway_tests::redis_server::RedisServer;
use gateway_tests::signin::Browser;
use gateway_tests::{Echo, EchoUpstream, GatewayConfig, TestGateway};
use serde_json::json;

const T1: &str = "11111111-1111-4111-8111-111111111111";
const T2: &str = "22222222-2222-4222-8222-222222222222";
const T3: &str = "33333333-3333-4333-8333-333333333333";
const GRAPH_SCOPE: &str = "https://graph.microsoft.com/User.Read";

struct Sso {
    entra: EntraStandIn,
    echo: EchoUpstream,
    gw: TestGateway,
    admin: std::net::SocketAddr,
}

/// The provider and routes of [`Sso`], for `entra` at `authority`, plus `extra` lines.
fn sso_tables(authority: &str, tenant: &str, extra: &str) -> String {
    format!(
        "[providers.entra]\nkind = \"entra\"\ntenant = \"{tenant}\"\nauthority = \"{authority}\"\n\
         client_id = \"{DEFAULT_CLIENT_ID}\"\nclient_secret = \"env:ENTRA_SECRET\"\naccept_bearer = true\n{extra}\n\
         [[routes]]\nprefix = \"/api/\"\nrequire = [\"entra\"]\n\
         [[routes]]\nprefix = \"/graph/\"\nrequire = [\"entra\"]\nobo_scopes = [\"{GRAPH_SCOPE}\"]\n"
    )
}

impl Sso {
    /// A gateway with provider `entra` at the stand-in (`tenant`, plus `extra` provider keys),
    /// `/api/` requiring it and `/graph/` forwarding an on-behalf-of token for Graph.
    async fn start(tenant: &str, extra: &str) -> anyhow::Result<Self> {
        let entra = EntraStandIn::start().await?;
        let echo = EchoUpstream::start("app").await?;
        let admin = gateway_tests::ports::free_addr()?;
        let toml = GatewayConfig::on_free_port(&[echo.addr()])?
            .plain_http_cookies()
            .server_key(&format!("admin_listen = \"{admin}\""))
            .extra(&sso_tables(&entra.authority(), tenant, extra));
        let gw = TestGateway::with_toml(toml).env("ENTRA_SECRET", DEFAULT_CLIENT_SECRET).start().await?;
        Ok(Self { entra, echo, gw, admin })
    }

    /// `gateway_login_funnel_total{provider="entra",step}`.
    async fn step(&self, step: &str) -> anyhow::Result<f64> {
        let text = gateway_tests::eventually("the admin listener serves /metrics", Duration::from_secs(5), || {
            gateway_tests::metrics::scrape(self.admin)
        })
        .await?;
        Ok(gateway_tests::metrics::value(&text, "gateway_login_funnel_total", &[("provider", "entra"), ("step", step)]))
    }

    async fn get(&self, path: &str, token: &str) -> anyhow::Result<reqwest::Response> {
        Ok(self.gw.client()?.get(self.gw.url(path)).bearer_auth(token).send().await?)
    }
}

/// Status, `WWW-Authenticate` and JSON `error` of an answer.
async fn refusal(resp: reqwest::Response) -> anyhow::Result<(u16, String, String)> {
    let status = resp.status().as_u16();
    let challenge = resp.headers().get("www-authenticate").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let body: serde_json::Value = serde_json::from_slice(&resp.bytes().await?).unwrap_or_default();
    Ok((status, challenge, body["error"].as_str().unwrap_or("").to_owned()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_bearer_signs_the_request_in_and_every_other_one_is_refused_not_passed_through() -> anyhow::Result<()> {
    let sso = Sso::start(T1, "").await?;
    let api = format!("api://{}/{DEFAULT_CLIENT_ID}", sso.gw.endpoint().authority());
    for spec in [TokenSpec::new(T1, DEFAULT_CLIENT_ID), TokenSpec::new(T1, &api).v1()] {
        let resp = sso.get("/api/whoami", &sso.entra.access_token(&spec)).await?;
        let seen = Echo::parse(&resp.bytes().await?)?;
        assert_eq!(seen.header("x-forwarded-user").as_deref(), Some(DEFAULT_OID), "{spec:?}");
        assert_eq!(seen.header("x-forwarded-email").as_deref(), Some(DEFAULT_USERNAME));
        assert_eq!(seen.header("x-forwarded-provider").as_deref(), Some("entra"));
    }
    let before = sso.echo.targets().len();
    let base = || TokenSpec::new(T1, DEFAULT_CLIENT_ID);
    let refused = [
        ("expired beyond the skew", base().expires_in(-400)),
        ("not valid for ten minutes", TokenSpec { not_before: 600, ..base() }),
        ("another API", TokenSpec::new(T1, "api://other/app")),
        ("another tenant", TokenSpec::new(T2, DEFAULT_CLIENT_ID)),
        ("an unpublished key", base().signer(Signer::Unpublished)),
        ("a forged kid", base().signer(Signer::ForgedKid)),
        ("alg none", base().signer(Signer::AlgNone)),
        ("HS256 with the public key", base().signer(Signer::Hs256WithPublicKey)),
        ("an issuer of another tenant", base().extra(json!({"iss": format!("{}/{T2}/v2.0", sso.entra.authority())}))),
        ("a foreign issuer", base().extra(json!({"iss": "https://evil.example/v2.0"}))),
    ];
    for (why, spec) in refused {
        let (status, challenge, error) = refusal(sso.get("/api/whoami", &sso.entra.access_token(&spec)).await?).await?;
        assert_eq!((status, error.as_str()), (401, "invalid_token"), "{why}");
        assert!(challenge.starts_with("Bearer error=\"invalid_token\""), "{why}: {challenge}");
    }
    let no_scope = sso.entra.access_token(&base().scp("Files.Read"));
    let (status, challenge, error) = refusal(sso.get("/api/whoami", &no_scope).await?).await?;
    assert_eq!((status, error.as_str()), (403, "insufficient_scope"));
    assert!(challenge.contains("scope=\"access_as_user\""), "{challenge}");
    for garbage in ["x", "a.b.c", &"A".repeat(20_000)] {
        assert_eq!(refusal(sso.get("/api/whoami", garbage).await?).await?.0, 401, "{}", &garbage[..1]);
    }
    assert_eq!(sso.echo.targets()[before..], [] as [String; 0], "a refused bearer reached the upstream");
    // Metrics: each validation counted once by outcome (cache hits are not validations).
    assert_eq!(sso.step("bearer_accepted").await?, 2.0);
    assert_eq!(sso.step("bearer_missing_scope").await?, 1.0);
    assert!(sso.step("bearer_invalid").await? >= 7.0);
    assert_eq!(sso.step("bearer_expired").await?, 2.0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_rotation_is_followed_refetches_are_bounded_and_a_validated_token_is_cached() -> anyhow::Result<()> {
    let sso = Sso::start(T1, "").await?;
    let first = sso.entra.access_token(&TokenSpec::new(T1, DEFAULT_CLIENT_ID));
    assert_eq!(sso.get("/api/x", &first).await?.status(), 200);
    let fetched = sso.entra.jwks_requests();
    // An unknown key id fetches the keys at most once a minute, however often it is tried.
    let unknown = sso.entra.access_token(&TokenSpec::new(T1, DEFAULT_CLIENT_ID).signer(Signer::Unpublished));
    for _ in 0..20 {
        assert_eq!(sso.get("/api/x", &unknown).await?.status(), 401);
    }
    assert!(
        sso.entra.jwks_requests() <= fetched + 1,
        "{} key fetches for 20 unknown kids",
        sso.entra.jwks_requests() - fetched
    );
    // A token validated once is remembered by its hash: it still passes after its key is retired.
    sso.entra.rotate();
    sso.entra.retire_old_key();
    assert_eq!(sso.get("/api/x", &first).await?.status(), 200, "a validated token was checked again");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_published_ahead_of_a_rotation_is_accepted_as_soon_as_it_signs() -> anyhow::Result<()> {
    let sso = Sso::start(T1, "").await?;
    sso.entra.publish_next_key();
    let first = sso.entra.access_token(&TokenSpec::new(T1, DEFAULT_CLIENT_ID));
    assert_eq!(sso.get("/api/x", &first).await?.status(), 200);
    sso.entra.rotate();
    let next = sso.entra.access_token(&TokenSpec::new(T1, DEFAULT_CLIENT_ID));
    assert_eq!(sso.get("/api/x", &next).await?.status(), 200, "the pre-published key was not used");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_tenant_provider_admits_only_its_allowed_tenants() -> anyhow::Result<()> {
    let sso = Sso::start("organizations", &format!("allowed_tenants = [\"{T1}\", \"{T2}\"]")).await?;
    for tenant in [T1, T2] {
        let token = sso.entra.access_token(&TokenSpec::new(tenant, DEFAULT_CLIENT_ID));
        assert_eq!(sso.get("/api/x", &token).await?.status(), 200, "{tenant}");
        let v1 = sso.entra.access_token(&TokenSpec::new(tenant, DEFAULT_CLIENT_ID).v1());
        assert_eq!(sso.get("/api/x", &v1).await?.status(), 200, "{tenant} v1");
    }
    let fetched = sso.entra.jwks_requests();
    let outsider = sso.entra.access_token(&TokenSpec::new(T3, DEFAULT_CLIENT_ID));
    assert_eq!(refusal(sso.get("/api/x", &outsider).await?).await?.0, 401);
    assert_eq!(sso.entra.jwks_requests(), fetched, "a token of a tenant not admitted made the gateway fetch keys");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn obo_tokens_are_forwarded_cached_and_exchanged_once_for_many_concurrent_requests() -> anyhow::Result<()> {
    let sso = Sso::start(T1, "").await?;
    let token = sso.entra.access_token(&TokenSpec::new(T1, DEFAULT_CLIENT_ID));
    let resp = sso.get("/graph/me", &token).await?;
    let seen = Echo::parse(&resp.bytes().await?)?;
    let forwarded = seen.header("x-forwarded-access-token").context("no access token forwarded")?;
    assert_eq!(sso.entra.issued_obo_tokens(), vec![forwarded.clone()], "not the on-behalf-of token");
    assert_ne!(forwarded, token);
    let form = sso.entra.last_obo_request().context("no OBO request")?;
    assert_eq!(form.get("requested_token_use"), Some("on_behalf_of"));
    assert_eq!(form.get("scope"), Some(GRAPH_SCOPE));
    assert_eq!(form.get("assertion"), Some(token.as_str()));
    // Cached: the same user again costs no exchange; /api/ forwards no access token at all.
    let again = Echo::parse(&sso.get("/graph/me", &token).await?.bytes().await?)?;
    assert_eq!(again.header("x-forwarded-access-token"), Some(forwarded));
    assert_eq!(sso.entra.obo_requests(), 1);
    let api = Echo::parse(&sso.get("/api/x", &token).await?.bytes().await?)?;
    assert_eq!(api.header("x-forwarded-access-token"), None);

    // Another user, 50 requests at once while Entra is slow: one exchange.
    sso.entra.obo_mode(OboMode::Slow(Duration::from_millis(300)));
    let other = sso.entra.access_token(&TokenSpec::new(T1, DEFAULT_CLIENT_ID).extra(json!({"oid": "second-user"})));
    let client = sso.gw.client()?;
    let url = sso.gw.url("/graph/me");
    let requests = (0..50).map(|_| client.get(&url).bearer_auth(&other).send());
    for resp in futures_util::future::join_all(requests).await {
        assert_eq!(resp?.status(), 200);
    }
    assert_eq!(sso.entra.obo_requests(), 2, "50 concurrent requests of one user made several exchanges");
    assert_eq!(sso.step("obo_exchanged").await?, 2.0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn obo_failures_that_need_the_user_become_consent_required_and_others_a_clean_502() -> anyhow::Result<()> {
    let sso = Sso::start(T1, "").await?;
    let before = sso.echo.targets().len();
    let token = |oid: &str| sso.entra.access_token(&TokenSpec::new(T1, DEFAULT_CLIENT_ID).extra(json!({"oid": oid})));

    sso.entra.obo_mode(OboMode::ConsentRequired);
    let resp = sso.get("/graph/me", &token("u1")).await?;
    assert_eq!(resp.status(), 401);
    let body: serde_json::Value = serde_json::from_slice(&resp.bytes().await?)?;
    assert_eq!(body["error"], "consent_required", "{body}");
    assert!(
        body["providers"]["entra"]["connect_url"].as_str().is_some_and(|u| u.starts_with("/connect/entra/")),
        "{body}"
    );

    let claims = r#"{"access_token":{"capolids":{"essential":true,"values":["c1"]}}}"#;
    sso.entra.obo_mode(OboMode::InteractionRequired { claims: claims.to_owned() });
    let body: serde_json::Value = serde_json::from_slice(&sso.get("/graph/me", &token("u2")).await?.bytes().await?)?;
    assert_eq!((body["error"].as_str(), body["claims"].as_str()), (Some("consent_required"), Some(claims)), "{body}");

    for mode in [OboMode::Down, OboMode::Unreachable] {
        sso.entra.obo_mode(mode.clone());
        let (status, _, error) = refusal(sso.get("/graph/me", &token("u3")).await?).await?;
        assert_eq!((status, error.as_str()), (502, "temporarily_unavailable"), "{mode:?}");
    }
    assert_eq!(sso.echo.targets()[before..], [] as [String; 0], "a request without its OBO token reached the upstream");
    // Entra back: the same user gets through, nothing of the failures was cached.
    sso.entra.obo_mode(OboMode::Success);
    assert_eq!(sso.get("/graph/me", &token("u1")).await?.status(), 200);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bearer_from_another_origin_is_no_ambient_credential_and_passes() -> anyhow::Result<()> {
    let sso = Sso::start(T1, "").await?;
    let token = sso.entra.access_token(&TokenSpec::new(T1, DEFAULT_CLIENT_ID));
    let resp = sso
        .gw
        .client()?
        .get(sso.gw.url("/api/x"))
        .bearer_auth(&token)
        .header("origin", "https://addin.example")
        .send()
        .await?;
    assert_eq!(resp.status(), 200, "a bearer request from another origin was refused");
    // A cookie-only request from that origin still gets no identity (403 on a protected route).
    let mut browser = Browser::new(sso.gw.endpoint())?;
    browser.session_info().await?;
    let page = browser.send(reqwest::Method::GET, "/api/x", &[("origin", "https://addin.example")], None).await?;
    assert_eq!(page.status, 403);
    Ok(())
}

/// Two gateways on one Redis, in front of `echo`, with single sign-on at `entra`; `teams` adds a
/// `[teams]` table with `sso = true` (bot tokens not checked: this is about the token exchange).
async fn two_on_redis(
    redis: &RedisServer,
    entra: &EntraStandIn,
    echo: &EchoUpstream,
    teams: bool,
) -> anyhow::Result<(TestGateway, TestGateway)> {
    let mut gateways = Vec::new();
    for _ in 0..2 {
        let mut config = GatewayConfig::on_free_port(&[echo.addr()])?
            .plain_http_cookies()
            .extra(&redis.store_table("sso:"))
            .extra(&sso_tables(
                &entra.authority(),
                T1,
                &format!("api_audiences = [\"{DEFAULT_CLIENT_ID}\", \"{BOT_AUDIENCE}\"]"),
            ));
        if teams {
            config = config.extra(&format!(
                "[teams]\nbot_path = \"/bot/messages\"\nprovider = \"entra\"\napp_id = \"{DEFAULT_CLIENT_ID}\"\n\
                 verify_bot_token = false\nsso = true\nscopes = [\"{GRAPH_SCOPE}\"]\n"
            ));
        }
        gateways.push(TestGateway::with_toml(config).env("ENTRA_SECRET", DEFAULT_CLIENT_SECRET).start().await?);
    }
    let b = gateways.pop().context("no gateway B")?;
    Ok((gateways.pop().context("no gateway A")?, b))
}

/// A Teams invoke `name` from the Teams user `oid` of tenant T1, with `value`.
fn teams_invoke(name: &str, oid: &str, value: serde_json::Value) -> String {
    json!({"type": "invoke", "name": name, "serviceUrl": "https://smba.trafficmanager.net/amer/",
           "from": {"id": format!("29:{oid}"), "aadObjectId": oid}, "channelData": {"tenant": {"id": T1}},
           "value": value})
    .to_string()
}

/// `body` POSTed to the bot path of `gw`.
async fn post_to_bot(gw: &TestGateway, body: String) -> anyhow::Result<reqwest::Response> {
    let request = gw.client()?.post(gw.url("/bot/messages")).header("content-type", "application/json");
    Ok(request.body(body).send().await?)
}

/// The Application ID URI of a Teams bot whose app registration is the add-in API's (v1 tokens
/// name it; v2 tokens, used here, name the client id).
const BOT_AUDIENCE: &str = "api://botid-5f0c6a1e-7b2d-4c3e-9a8f-1d2e3f4a5b6c";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_obo_token_is_shared_by_two_gateways_on_redis() -> anyhow::Result<()> {
    let redis = RedisServer::start().await?;
    let entra = EntraStandIn::start().await?;
    let echo = EchoUpstream::start("app").await?;
    let (a, b) = two_on_redis(&redis, &entra, &echo, false).await?;
    let token = entra.access_token(&TokenSpec::new(T1, DEFAULT_CLIENT_ID));
    let on = |gw: &TestGateway| {
        let request = gw.client().map(|c| c.get(gw.url("/graph/me")).bearer_auth(&token));
        async move { anyhow::Ok(Echo::parse(&request?.send().await?.bytes().await?)?) }
    };
    let first = on(&a).await?.header("x-forwarded-access-token").context("no OBO token on A")?;
    let second = on(&b).await?.header("x-forwarded-access-token").context("no OBO token on B")?;
    assert_eq!(first, second, "B exchanged again instead of using A's token from Redis");
    assert_eq!(entra.obo_requests(), 1);
    let keys = redis.keys("sso:v:*").await?;
    assert_eq!(keys.len(), 1, "{keys:?}");
    let stored = redis.get_raw(&keys[0]).await?.context("the OBO entry vanished")?;
    let probe = &first.as_bytes()[..first.len().min(40)];
    assert!(!stored.windows(probe.len()).any(|w| w == probe), "an OBO token is readable in Redis");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_teams_token_exchange_sent_to_two_gateways_is_answered_200_once_and_412_otherwise() -> anyhow::Result<()> {
    let redis = RedisServer::start().await?;
    let entra = EntraStandIn::start().await?;
    let echo = EchoUpstream::start("app").await?;
    let (a, b) = two_on_redis(&redis, &entra, &echo, true).await?;
    let good = entra.access_token(&TokenSpec::new(T1, DEFAULT_CLIENT_ID));
    let invoke = |id: &str, token: &str| {
        teams_invoke("signin/tokenExchange", DEFAULT_OID, json!({"id": id, "connectionName": "sso", "token": token}))
    };
    let post = |gw, body| async move { anyhow::Ok(post_to_bot(gw, body).await?.status().as_u16()) };
    let before = echo.targets().len();
    for round in 0..3 {
        let id = format!("exchange-{round}");
        let (x, y, z) =
            tokio::join!(post(&a, invoke(&id, &good)), post(&b, invoke(&id, &good)), post(&a, invoke(&id, &good)));
        let mut statuses = [x?, y?, z?];
        statuses.sort_unstable();
        assert_eq!(statuses, [200, 412, 412], "round {round}");
    }
    assert_eq!(entra.obo_requests(), 1, "copies of an exchange were exchanged again");
    let bad = entra.access_token(&TokenSpec::new(T1, "api://some-other-app"));
    assert_eq!(post(&a, invoke("exchange-bad", &bad)).await?, 412);
    assert_eq!(echo.targets()[before..], [] as [String; 0], "a token exchange reached the bot");

    // The validated Teams user (kept in the store) passes on both gateways, with the identity.
    let query = teams_invoke("composeExtension/query", DEFAULT_OID, json!({"commandId": "search", "parameters": []}));
    for gw in [&a, &b] {
        let seen = Echo::parse(&post_to_bot(gw, query.clone()).await?.bytes().await?)?;
        let user = seen.header("x-forwarded-user");
        assert_eq!(user.as_deref(), Some(DEFAULT_OID), "the validated user is unknown on {}", gw.url(""));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_messaging_extension_query_with_an_sso_token_is_signed_in_and_forwarded_without_it() -> anyhow::Result<()> {
    let redis = RedisServer::start().await?;
    let entra = EntraStandIn::start().await?;
    let echo = EchoUpstream::start("app").await?;
    let (a, _b) = two_on_redis(&redis, &entra, &echo, true).await?;
    let token = entra.access_token(&TokenSpec::new(T1, DEFAULT_CLIENT_ID).extra(json!({"oid": "me-user"})));
    let value = json!({"commandId": "search", "parameters": [], "authentication": {"token": token}});
    let resp = post_to_bot(&a, teams_invoke("composeExtension/query", "me-user", value)).await?;
    let seen = Echo::parse(&resp.bytes().await?)?;
    assert_eq!(seen.header("x-forwarded-user").as_deref(), Some("me-user"));
    assert!(seen.body_len < token.len() as u64, "the SSO token reached the bot ({} bytes forwarded)", seen.body_len);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_popup_flows_tokens_serve_obo_routes_too() -> anyhow::Result<()> {
    let sso = Sso::start(T1, "").await?;
    let mut browser = Browser::new(sso.gw.endpoint())?;
    let connect = browser.session_info().await?.connect_url("entra")?;
    // The popup, sharing the pane's cookies: connect → the stand-in's authorize → the callback.
    let to_entra = browser.get(&connect).await?;
    assert_eq!(to_entra.status, 302, "{}", to_entra.body);
    let authorize = to_entra.location()?.to_owned();
    assert!(authorize.starts_with(&format!("{}/{T1}/oauth2/v2.0/authorize?", sso.entra.authority())), "{authorize}");
    let back = browser.get(&authorize).await?;
    let callback = back.location()?.to_owned();
    let done = browser.get(&callback).await?;
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(done.outcome()?["status"], "success");

    let seen = browser.get("/graph/me").await?.echo()?;
    let forwarded = seen.header("x-forwarded-access-token").context("no access token forwarded")?;
    assert_eq!(sso.entra.issued_obo_tokens(), vec![forwarded], "not the on-behalf-of token");
    let popup_token = sso.entra.issued_interactive_tokens().pop().context("no interactive token issued")?;
    let form = sso.entra.last_obo_request().context("no OBO request")?;
    assert_eq!(form.get("assertion"), Some(popup_token.as_str()), "the OBO assertion is not the popup's token");
    assert_eq!(seen.header("x-forwarded-user").as_deref(), Some(DEFAULT_OID));
    Ok(())
}
