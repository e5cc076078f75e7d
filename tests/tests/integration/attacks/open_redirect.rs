//! Open redirects and origin confusion, wherever the gateway takes a URL, an origin or a host
//! from a request: the `Host` header, the popup's start (`/connect/{p}/{ticket}`, redirects only
//! to the provider, with the configured `redirect_uri`), the built-in dev provider's
//! `redirect_uri`, logout's `Origin`, and the completion page's `postMessage` target.
//!
//! Already asserted elsewhere: `headers::unknown_host_is_misdirected_421` and
//! `headers::extra_host_is_accepted_and_others_still_refused`;
//! `popup_flow::logout_needs_the_gateways_origin_and_then_protects_again` (no, foreign, other
//! port and `null` origins); the status channel's `Origin` check is attacked in
//! [`super::channel`]; Teams `openUrl` answers are built from `public_url`
//! (`teams::unknown_users_extension_invokes_get_the_auth_answer_and_reach_no_bot`).

use anyhow::Context;
use gateway_tests::signin::{Browser, Decision, DEV_AUTHORIZE_PATH};
use gateway_tests::RawRequest;
use reqwest::Url;
use serde_json::Value;

use super::{short, Target};

/// Redirect targets attackers use against URL checks, built around the gateway's `authority`
/// (e.g. `127.0.0.1:4000`) and its registered callback path.
fn hostile_urls(authority: &str, callback: &str) -> Vec<String> {
    [
        "/\\evil.example".to_owned(),
        "\\\\evil.example".to_owned(),
        "//evil.example".to_owned(),
        "/%09/evil.example".to_owned(),
        "https:evil.example".to_owned(),
        "https://evil.example/".to_owned(),
        format!("http://{authority}@evil.example{callback}"),
        format!("http://evil.example%40{authority}{callback}"),
        format!("http://{authority}.evil.example{callback}"),
        format!("http://evil{authority}{callback}"),
        format!("http://{authority}{callback}%23@evil.example"),
        format!("http://{authority}{callback}#@evil.example"),
        format!("HTTP://{authority}{callback}"),
        format!("hTtP://{authority}{callback}"),
        format!("https://{authority}{callback}"),
        format!("http://{authority}{callback}/../../../evil"),
        format!("http://{authority}{callback}?next=https://evil.example"),
        format!("http://{authority}{callback}evil"),
        format!("http://{authority}{callback}/"),
        "javascript:alert(document.domain)//".to_owned(),
        "data:text/html,<script>alert(1)</script>".to_owned(),
    ]
    .into()
}

/// The `gateway-page` JSON of a completion page (its settings: the origin it posts to).
fn completion_data(html: &str) -> anyhow::Result<Value> {
    let marker = "id=\"gateway-page\">";
    let start = html.find(marker).with_context(|| format!("no gateway-page in {}", short(html)))? + marker.len();
    let len = html[start..].find("</script>").context("unterminated gateway-page")?;
    serde_json::from_str(&html[start..start + len].replace("<\\/", "</")).context("gateway-page is not JSON")
}

// Guards against Host-header poisoning and RFC 9112 §3.2.2 absolute-form confusion: only the
// configured authorities are served; everything else is 421 (or 400 when the request line and
// the Host disagree) and never reaches the upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_variants_are_refused_and_never_reach_the_upstream() -> anyhow::Result<()> {
    let target = Target::start(|c| c).await?;
    let authority = target.authority();
    let port = target.gw.addr().port();
    let addr = target.gw.addr();

    let mut failures = Vec::new();
    let hosts = [
        (format!("127.0.0.1.:{port}"), 421),
        (format!("{authority}."), 421),
        (format!("{authority}.evil.example"), 421),
        (format!("{authority}/evil.example"), 421),
        (format!("{authority}\\evil.example"), 421),
        (format!("{authority}, evil.example"), 421),
        (format!("{authority}:80"), 421),
        ("127.0.0.1".to_owned(), 421),
        (format!("127.1:{port}"), 421),
        (format!("[::ffff:127.0.0.1]:{port}"), 421),
        (format!("localhost:{port}"), 421),
        (String::new(), 421),
        (format!("{authority}@evil.example"), 400),
        (format!("evil.example@{authority}"), 400),
    ];
    for (host, expected) in &hosts {
        let answer =
            RawRequest::get("/public").header("Host", host).header("Accept", "application/json").send(addr).await?;
        if answer.status != *expected {
            failures.push(format!(
                "Host {host:?}: expected {expected}, got {} {}",
                answer.status,
                short(&answer.text())
            ));
        } else if *expected == 421 && !answer.text().contains("misdirected_request") {
            failures.push(format!("Host {host:?}: the 421 does not name the problem: {}", answer.text()));
        }
    }
    let forms = [
        ("absolute form, no Host", RawRequest::get("http://evil.example/public"), 421),
        ("absolute form, other Host", RawRequest::get("http://evil.example/public").header("Host", &authority), 400),
        ("absolute form with user info", RawRequest::get(&format!("http://{authority}@evil.example/public")), 400),
        ("no Host at all", RawRequest::get("/public"), 421),
    ];
    for (name, request, expected) in forms {
        let answer = request.send(addr).await?;
        if answer.status != expected {
            failures.push(format!("{name}: expected {expected}, got {} {}", answer.status, short(&answer.text())));
        }
    }

    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(target.echo.targets().is_empty(), "misdirected requests reached the upstream: {:?}", target.echo.targets());
    // The genuine authority, in the absolute form too, is served.
    assert_eq!(RawRequest::get("/public").header("Host", &authority).send(addr).await?.status, 200);
    let absolute = RawRequest::get(&format!("http://{authority}/public")).header("Host", &authority);
    assert_eq!(absolute.send(addr).await?.status, 200);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_popup_start_redirects_only_to_the_provider_whatever_the_request_says() -> anyhow::Result<()> {
    let target = Target::start(|c| c.trusted_proxies(&["127.0.0.1/32"]).extra_hosts(&["alias.test"])).await?;
    let public = target.gw.url("");
    let mut browser = Browser::new(target.gw.endpoint())?;
    let connect = browser.session_info().await?.connect_url("dev")?;
    let query = "?redirect_uri=https://evil.example/cb&return_to=//evil.example&next=https:evil.example\
                 &redirect=/%5Cevil.example&opener=https://evil.example";

    let answer = RawRequest::get(&format!("{connect}{query}"))
        .header("Host", "alias.test")
        .header("X-Forwarded-Host", "evil.example")
        .header("X-Forwarded-Proto", "https")
        .header("Origin", "https://evil.example")
        .header("Referer", "https://evil.example/")
        .send(target.gw.addr())
        .await?;

    assert_eq!(answer.status, 302, "{}", answer.text());
    let location = answer.header("location").context("no Location")?;
    assert!(location.starts_with(&format!("{public}{DEV_AUTHORIZE_PATH}?")), "redirected to {location}");
    assert!(!location.to_ascii_lowercase().contains("evil"), "request data reached the Location: {location}");
    let url = Url::parse(location)?;
    let redirect_uri = url.query_pairs().find(|(k, _)| k == "redirect_uri").map(|(_, v)| v.into_owned());
    assert_eq!(redirect_uri, Some(format!("{public}/connect/dev/callback")));
    Ok(())
}

// Guards against RFC 9700 §4.1 (redirect URI validation attacks on an authorization endpoint):
// the built-in provider redirects only to the registered URI, compared exactly, and never with
// an error either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dev_provider_redirects_only_to_the_registered_redirect_uri() -> anyhow::Result<()> {
    let target = Target::start(|c| c).await?;
    let mut browser = Browser::new(target.gw.endpoint())?;
    let connect = browser.session_info().await?.connect_url("dev")?;
    let authorize = browser.start_sign_in(&connect).await?;
    let registered = authorize.params["redirect_uri"].clone();

    let mut failures = Vec::new();
    for hostile in hostile_urls(&target.authority(), "/connect/dev/callback").into_iter().chain([String::new()]) {
        let mut url = authorize.url.clone();
        let pairs: Vec<(String, String)> = authorize
            .params
            .iter()
            .map(|(k, v)| (k.clone(), if k == "redirect_uri" { hostile.clone() } else { v.clone() }))
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
        let page = browser.get(url.as_str()).await?;
        if page.status != 400
            || page.headers.get("location").is_some()
            || !page.body.contains("redirect_uri is not registered for this client")
        {
            failures.push(format!("redirect_uri {hostile:?}: {} {}", page.status, short(&page.body)));
        }
    }

    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The registered URI still works, denied or approved.
    let request = browser.login_form(&authorize).await?;
    let back = browser.submit_login(&request, "ada", Decision::Deny).await?;
    assert!(back.starts_with(&format!("{registered}?")), "{back}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_origin_must_be_exactly_the_gateways() -> anyhow::Result<()> {
    let target = Target::start(|c| c).await?;
    let mut browser = Browser::new(target.gw.endpoint())?;
    browser.sign_in_dev("ada").await?;
    let cookie = browser.cookie_header().context("no cookie")?;
    let authority = target.authority();
    let port = target.gw.addr().port();

    let mut failures = Vec::new();
    let origins: Vec<Vec<String>> = [
        format!("http://{authority}.evil.example"),
        format!("http://{authority}@evil.example"),
        format!("http://evil.example/http://{authority}"),
        format!("http://{authority}/"),
        format!("HTTP://{authority}"),
        format!("https://{authority}"),
        format!("http://localhost:{port}"),
        "http://127.0.0.1".to_owned(),
        format!("http://{authority}, http://evil.example"),
        format!("http://evil.example, http://{authority}"),
    ]
    .into_iter()
    .map(|o| vec![o])
    .chain([vec!["http://evil.example".to_owned(), format!("http://{authority}")]])
    .collect();
    for values in &origins {
        let mut request =
            RawRequest::new("POST", "/connect/logout").header("Host", &authority).header("Cookie", &cookie);
        for value in values {
            request = request.header("Origin", value);
        }
        let answer = request.send(target.gw.addr()).await?;
        let json: Value = serde_json::from_slice(&answer.body).unwrap_or_default();
        if answer.status != 403 || json["message"] != "logout must come from the gateway's origin" {
            failures.push(format!("Origin {values:?}: {} {}", answer.status, short(&answer.text())));
        }
        if browser.get("/api/x").await?.status != 200 {
            failures.push(format!("Origin {values:?} signed the session out"));
            break;
        }
    }

    assert!(failures.is_empty(), "{}", failures.join("\n"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_completion_page_posts_only_to_the_gateways_origin() -> anyhow::Result<()> {
    let target = Target::start(|c| c.trusted_proxies(&["127.0.0.1/32"]).extra_hosts(&["alias.test"])).await?;
    let public = target.gw.url("");
    let mut browser = Browser::new(target.gw.endpoint())?;
    let connect = browser.session_info().await?.connect_url("dev")?;
    let callback = Url::parse(&browser.callback_url(&connect, "ada", Decision::Approve).await?)?;
    let target_path = format!("{}?{}", callback.path(), callback.query().unwrap_or_default());
    let hostile = |path: &str| {
        RawRequest::get(path)
            .header("Host", "alias.test")
            .header("X-Forwarded-Host", "evil.example")
            .header("X-Forwarded-Proto", "https")
            .header("Origin", "https://evil.example")
            .header("Referer", "https://evil.example/")
    };

    let success = hostile(&target_path).send(target.gw.addr()).await?;
    let replay = hostile(&target_path).send(target.gw.addr()).await?;
    let forged_ticket = hostile("/connect/dev/forged.ticket").send(target.gw.addr()).await?;

    for (what, page, status) in
        [("success", &success, 200), ("replay", &replay, 400), ("forged ticket", &forged_ticket, 400)]
    {
        assert_eq!(page.status, status, "{what}: {}", short(&page.text()));
        let data = completion_data(&page.text()).with_context(|| what.to_owned())?;
        assert_eq!(data["origin"], Value::String(public.clone()), "{what}: {data}");
        assert!(!page.text().contains("evil"), "{what}: request data reached the page");
    }
    Ok(())
}
