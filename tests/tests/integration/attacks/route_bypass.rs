//! Route-matching bypasses: a protected path spelled so the gateway's rule misses it while the
//! upstream still serves it (Spring CVE-2016-5007 and CVE-2022-22978 case and pattern
//! mismatches, Shiro CVE-2020-1957 `/;/`, Tomcat `..;/`, IIS trailing dots and case folding).
//! Rules are matched on the normalised path only, never on the query or fragment; whatever an
//! upstream could read as a protected path is protected.
//!
//! Already asserted elsewhere: `popup_flow::protected_route_without_sign_in_answers_401_with_connect_urls`
//! (the plain 401); the normalisation's unit tests in `gateway::proxy::rules`.

use std::time::Duration;

use anyhow::Context;
use gateway_tests::signin::Browser;
use gateway_tests::teams_fixtures::{Activity, BotIssuer, BotService, TeamsClient, TeamsSetup, BOT_PATH};
use gateway_tests::RawRequest;

use super::{Target, IDENTITY_HEADERS};

/// What the gateway must do with one request target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// 401 `authentication_required` naming these providers; nothing reaches the upstream.
    SignIn(&'static [&'static str]),
    /// 400 "the request path is malformed"; nothing reaches the upstream.
    Malformed,
    /// Forwarded as sent, without identity headers.
    Public,
}

/// One request: method, target, extra headers, and what must happen to it.
type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], Expect);

const DEV: Expect = Expect::SignIn(&["dev"]);
const DEV2: Expect = Expect::SignIn(&["dev2"]);

/// `/api/` needs `dev` (from `dev_config`), `/api/admin/` needs the second dev provider `dev2`.
fn two_rules(config: gateway_tests::GatewayConfig) -> gateway_tests::GatewayConfig {
    config
        .extra("[providers.dev2]\nkind = \"dev\"\nclient_id = \"gateway-dev2\"\n")
        .extra("[[routes]]\nprefix = \"/api/admin/\"\nrequire = [\"dev2\"]\n")
}

/// Sends each `(method, target, headers, expected)` raw (no client normalises the path) and
/// returns every way the gateway's answer or the upstream's view differed from `expected`.
async fn check(target: &Target, browser: Option<&Browser>, cases: &[Case<'_>]) -> anyhow::Result<Vec<String>> {
    let cookie = browser.and_then(Browser::cookie_header);
    let mut failures = Vec::new();
    for (method, path, headers, expected) in cases {
        let mut all: Vec<(&str, &str)> = headers.to_vec();
        if let Some(cookie) = &cookie {
            all.push(("Cookie", cookie));
        }
        let before = target.echo.targets().len();
        let what = format!("{method} {path} {headers:?}");
        if *method == "HEAD" {
            // No body to read: the status line decides.
            let mut request = RawRequest::new(method, path).header("Host", &target.authority());
            for (name, value) in &all {
                request = request.header(name, value);
            }
            let answer = super::exchange(target.gw.addr(), &request.to_bytes(), Duration::from_secs(30)).await?;
            let reached = target.targets_since(before);
            let ok = match expected {
                Expect::SignIn(_) => answer.statuses() == [401] && reached.is_empty(),
                Expect::Malformed => answer.statuses() == [400] && reached.is_empty(),
                Expect::Public => answer.statuses() == [200] && reached.len() == 1,
            };
            if !ok {
                failures
                    .push(format!("{what}: expected {expected:?}, got {:?} reaching {reached:?}", answer.statuses()));
            }
            continue;
        }
        let resp = target.raw(method, path, &all).await?;
        let reached = target.targets_since(before);
        match expected {
            Expect::SignIn(_) | Expect::Malformed if !reached.is_empty() => {
                failures.push(format!("{what}: reached the upstream as {reached:?} (answer {})", resp.status));
            }
            Expect::SignIn(providers) => {
                let json: serde_json::Value = serde_json::from_slice(&resp.body).unwrap_or_default();
                let named: Vec<&str> =
                    json["providers"].as_object().map(|p| p.keys().map(String::as_str).collect()).unwrap_or_default();
                if resp.status != 401 || json["error"] != "authentication_required" || named != *providers {
                    failures.push(format!(
                        "{what}: expected 401 naming {providers:?}, got {} {}",
                        resp.status,
                        resp.text()
                    ));
                }
            }
            Expect::Malformed => {
                let json: serde_json::Value = serde_json::from_slice(&resp.body).unwrap_or_default();
                if resp.status != 400 || json["message"] != "the request path is malformed" {
                    failures.push(format!("{what}: expected 400 malformed path, got {} {}", resp.status, resp.text()));
                }
            }
            Expect::Public => match resp.echo() {
                Ok(seen) => {
                    let identity: Vec<&&str> = IDENTITY_HEADERS.iter().filter(|h| seen.header(h).is_some()).collect();
                    if seen.method != *method || reached.len() != 1 || !identity.is_empty() {
                        failures.push(format!("{what}: forwarded as {reached:?} with identity {identity:?}"));
                    }
                }
                Err(e) => failures.push(format!("{what}: expected to be forwarded: {e:#}")),
            },
        }
    }
    Ok(failures)
}

// Guards against CVE-2020-1957 (Shiro `/;/`), CVE-2016-5007 (Spring case and whitespace) and
// CVE-2022-22978 (Spring pattern mismatch), and the classic dot-segment and encoded-slash
// bypasses: rules meet every spelling of a path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_spelling_of_a_protected_path_needs_the_sign_in() -> anyhow::Result<()> {
    let target = Target::start(two_rules).await?;
    let none: &[(&str, &str)] = &[];
    let cases: Vec<Case<'_>> = [
        // Dot segments, duplicate slashes, encodings.
        ("/api/x", DEV),
        ("/api", DEV),
        ("//api/x", DEV),
        ("/./api/x", DEV),
        ("/api/./x", DEV),
        ("/public/../api/x", DEV),
        ("/public/%2e%2e/api/x", DEV),
        ("/public/%2E%2E/api/x", DEV),
        ("/public/.%2e/api/x", DEV),
        ("/public/..%2fapi/x", DEV),
        ("/public%2f..%2fapi%2fx", DEV),
        ("/public/..%5capi/x", DEV),
        ("/%2fapi/x", DEV),
        ("/%61pi/x", DEV),
        // The query and fragment never decide.
        ("/api/x?next=/public", DEV),
        ("/api/x?/../../public", DEV),
        // Case, as case-insensitive servers (IIS, ASP.NET, Express by default) read it.
        ("/API/x", DEV),
        ("/Api/x", DEV),
        ("/%41PI/x", DEV),
        // Trailing dots and spaces of a segment, as Windows file names drop them.
        ("/api./x", DEV),
        ("/api%2e/x", DEV),
        ("/api%20/x", DEV),
        // Path parameters, as servlet containers drop them.
        ("/api;x=1/y", DEV),
        ("/;/api/x", DEV),
        ("/public/..;/api/x", DEV),
        // The stricter rule is never traded for the looser one.
        ("/api/admin/x", DEV2),
        ("/api//admin/x", DEV2),
        ("/api/ADMIN/x", DEV2),
        ("/api/x/../admin/x", DEV2),
        ("/api/admin;/x", DEV2),
        // Overlong UTF-8, NUL and broken escapes are refused, not guessed.
        ("/%c0%ae%c0%ae/api/x", Expect::Malformed),
        ("/public/%c0%af../api/x", Expect::Malformed),
        ("/%e0%80%ae%e0%80%ae/api/x", Expect::Malformed),
        ("/api%00/x", Expect::Malformed),
        ("/api/%zz", Expect::Malformed),
        ("/api/%", Expect::Malformed),
        // Controls: these are public, and reach the upstream as sent.
        ("/public/x", Expect::Public),
        ("/public/x?next=/api/x", Expect::Public),
        ("/public?/api/x", Expect::Public),
        ("/apix", Expect::Public),
        ("/api-docs/x", Expect::Public),
    ]
    .into_iter()
    .map(|(path, expect)| ("GET", path, none, expect))
    .collect();

    let failures = check(&target, None, &cases).await?;

    assert!(
        failures.is_empty(),
        "{} of {} spellings handled wrongly:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_signed_in_for_the_looser_rule_gets_nothing_under_the_stricter_one() -> anyhow::Result<()> {
    let target = Target::start(two_rules).await?;
    let mut browser = Browser::new(target.gw.endpoint())?;
    browser.sign_in_dev("ada").await?;
    let none: &[(&str, &str)] = &[];
    let cases: Vec<Case<'_>> =
        ["/api/admin/x", "/api//admin/x", "/API/Admin/x", "/api/./admin/x", "/api/x/..%2fadmin/x", "/api/admin./x"]
            .into_iter()
            .map(|path| ("GET", path, none, DEV2))
            .collect();

    let failures = check(&target, Some(&browser), &cases).await?;

    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The looser rule itself lets the user through, as the user.
    let seen =
        target.raw("GET", "/api/x", &[("Cookie", &browser.cookie_header().context("no cookie")?)]).await?.echo()?;
    assert_eq!(seen.header("x-forwarded-user").as_deref(), Some("ada"));
    Ok(())
}

// Guards against method-filter bypasses (X-HTTP-Method-Override honoured upstream, HEAD served
// by GET handlers, methods compared case-insensitively by ASP.NET): a method filter covers every
// method the upstream may act on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn method_filters_cover_head_any_case_and_method_override_headers() -> anyhow::Result<()> {
    let target = Target::start(|c| {
        c.extra("[[routes]]\nprefix = \"/items/\"\nmethods = [\"DELETE\", \"PUT\"]\nrequire = \"any\"\n")
            .extra("[[routes]]\nprefix = \"/reports/\"\nmethods = [\"GET\"]\nrequire = \"any\"\n")
    })
    .await?;
    let cases: [Case<'_>; 12] = [
        ("DELETE", "/items/1", &[], DEV),
        ("delete", "/items/1", &[], DEV),
        ("Put", "/items/1", &[], DEV),
        ("POST", "/items/1", &[("X-HTTP-Method-Override", "DELETE")], DEV),
        ("POST", "/items/1", &[("X-HTTP-Method", "put")], DEV),
        ("POST", "/items/1", &[("X-Method-Override", "DELETE")], DEV),
        ("GET", "/reports/1", &[], DEV),
        ("HEAD", "/reports/1", &[], DEV),
        ("get", "/reports/1", &[], DEV),
        // Controls: methods the rules leave public still pass.
        ("POST", "/items/1", &[], Expect::Public),
        ("OPTIONS", "/items/1", &[], Expect::Public),
        ("POST", "/reports/1", &[], Expect::Public),
    ];

    let failures = check(&target, None, &cases).await?;

    assert!(
        failures.is_empty(),
        "{} of {} cases handled wrongly:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    Ok(())
}

// Guards against a bot-token check bypass (a seed hole found by this suite): the Bot Framework
// JWT is checked on every spelling of `teams.bot_path` that a bot framework routes to its handler
// (Express and ASP.NET match paths case-insensitively and ignore a trailing slash).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_spelling_of_the_bot_path_has_its_bot_token_checked() -> anyhow::Result<()> {
    let issuer = BotIssuer::start().await?;
    let bot = BotService::start().await?;
    let gw = TeamsSetup::default().verifying(&issuer).start(&bot).await?;
    let query = Activity::load("query")?;
    assert_eq!(TeamsClient::new(&gw)?.post(query.bytes(), &[]).await?.status, 401, "the bot path itself");

    let mut failures = Vec::new();
    for path in [
        "/api/messages/",
        "/api//messages",
        "//api/messages",
        "/api/./messages",
        "/api/x/../messages",
        "/API/messages",
        "/api/Messages",
        "/api/%6Dessages",
        "/api/messages%2f",
        "/api/messages;x",
        "/api/messages.",
    ] {
        assert_ne!(path, BOT_PATH);
        let resp = RawRequest::new("POST", path)
            .header("Host", gw.endpoint().authority())
            .header("Content-Type", "application/json")
            .body(query.bytes())
            .send(gw.addr())
            .await
            .with_context(|| format!("POST {path}"))?;
        let (status, body) = (resp.status, resp.text());
        if status != 401 || !body.contains("\"error\"") {
            failures.push(format!("POST {path} without a bot token answered {status}: {body}"));
        }
    }

    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(bot.activities().is_empty(), "requests without a bot token reached the bot: {:?}", bot.activities());
    Ok(())
}

// Guards against method-override bypasses of method-limited rules (Rails, Laravel and Symfony
// read `_method` from a POST's form body or the query as the real method): a rule limited to
// `DELETE` also meets `POST ?_method=DELETE` and a form `POST`, which get 401 without a sign-in
// and never reach the upstream; a JSON `POST` stays public; the signed-in user, a bystander,
// keeps being served (latency printed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn method_override_parameters_meet_method_limited_rules() -> anyhow::Result<()> {
    use gateway_tests::load::{describe_failures, Latency, Load, Probe, Sample, Tally};
    let target =
        Target::start(|c| c.extra("[[routes]]\nprefix = \"/items/\"\nmethods = [\"DELETE\"]\nrequire = [\"dev\"]\n"))
            .await?;
    let mut user = Browser::new(target.gw.endpoint())?;
    user.sign_in_dev("ada").await?;
    let load = Load::start(target.gw.endpoint(), vec![Probe::with_cookie("user", "/api/whoami", &user, Some("ada"))?])?;
    load.run_for(20).await?;

    let before = target.echo.targets().len();
    let mut anonymous = Browser::new(target.gw.endpoint())?;
    let json = [("Content-Type", "application/json")];
    let query = anonymous.send(http::Method::POST, "/items/1?_method=DELETE", &json, None).await?;
    assert_eq!(query.status, 401, "POST ?_method=DELETE: {}", query.body);
    let form = anonymous.send(http::Method::POST, "/items/1", &[], Some(&[("_method", "DELETE")])).await?;
    assert_eq!(form.status, 401, "a form POST with _method=DELETE: {}", form.body);
    let header = anonymous.send(http::Method::POST, "/items/1", &[("X-HTTP-Method-Override", "DELETE")], None).await?;
    assert_eq!(header.status, 401, "X-HTTP-Method-Override: DELETE: {}", header.body);
    let reached: Vec<String> = target.targets_since(before).into_iter().filter(|t| t.contains("/items")).collect();
    assert_eq!(reached, Vec::<String>::new(), "an overridden DELETE reached the upstream");
    let plain = anonymous.send(http::Method::POST, "/items/1", &json, None).await?;
    assert_eq!(plain.status, 200, "a JSON POST is not limited by the DELETE rule: {}", plain.body);
    let signed = user.send(http::Method::POST, "/items/1", &[], Some(&[("_method", "DELETE")])).await?;
    assert_eq!(signed.echo()?.header("x-forwarded-user").as_deref(), Some("ada"), "{}", signed.body);

    let samples = load.finish().await?;
    let tally = Tally::of(&samples);
    println!("route_bypass: method overrides: bystander {tally}; latency {}", Latency::of(&samples));
    assert_eq!(tally.non_2xx(), 0, "{tally}:\n{}", describe_failures(&samples, Sample::is_2xx));
    Ok(())
}
