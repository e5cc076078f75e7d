//! Binding a sign-in to the task pane that started it: a connect link opened in another browser,
//! handoff codes (single use, session-bound, Origin-checked, short-lived), cookie rotation, two
//! session cookies at once, and who may sign in or pass.
//!
//! Already asserted elsewhere:
//! `popup_flow::a_popup_without_the_panes_cookies_signs_in_only_once_the_pane_redeems_its_code`,
//! `popup_flow::two_interleaved_sign_ins_of_one_session_both_succeed` (two popups in flight),
//! `popup_flow::tampered_ticket_is_refused_with_400_and_unknown_provider_with_404` (single use),
//! `redis_store::redis_handoff_parked_on_one_instance_is_redeemed_once_on_the_other_and_rotates_everywhere`,
//! `redis_store::redis_sign_in_on_one_instance_reaches_the_socket_on_the_other` (sockets keep
//! their session across a rotation).

use std::time::Duration;

use anyhow::Context;
use gateway_tests::idp::{TestIdp, CLIENT_ID, CLIENT_SECRET};
use gateway_tests::signin::{dev_config, Browser, SESSION_COOKIE};
use gateway_tests::{EchoUpstream, GatewayConfig, TestGateway};
use reqwest::Method;
use serde_json::json;

use super::Target;

// Guards against account takeover by link: the attacker's connect URL, opened and completed by
// a victim in another browser, must not sign the attacker's session in as the victim. The code
// the completion page carries goes only to an opener of the gateway's origin, and it redeems
// for the attacker's session only; the victim's own pane cannot redeem it either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connect_link_opened_in_another_browser_signs_nobody_in() -> anyhow::Result<()> {
    let target = Target::start(|c| c).await?;
    let mut attacker = Browser::new(target.gw.endpoint())?;
    let mut victim = Browser::new(target.gw.endpoint())?;
    let link = attacker.session_info().await?.connect_url("dev")?;
    victim.session_info().await?;
    let before = target.echo.targets().len();

    let page = victim.sign_in_via(&link, "victim").await?;
    let code = page.handoff_code()?.context("no handoff code: the sign-in was attached at the callback")?;
    assert!(code.len() >= 43, "a handoff code of {} characters carries less than 256 bits", code.len());
    assert!(!page.body.contains("postMessage(msg, '*')") && page.body.contains("postMessage(msg, page.origin)"));

    assert_eq!(attacker.get("/api/x").await?.status, 401, "the link signed its owner's session in");
    assert_eq!(victim.get("/api/x").await?.status, 401, "the victim's own session was signed in");
    let wrong = victim.redeem(&code).await?;
    assert_eq!((wrong.status, wrong.json()?["error"].clone()), (403, json!("invalid_grant")), "{}", wrong.body);
    // Spent by the refused attempt: even the session it was issued for cannot use it now.
    let late = attacker.redeem(&code).await?;
    assert_eq!(late.status, 400, "{}", late.body);
    assert_eq!(attacker.get("/api/x").await?.status, 401);
    assert_eq!(victim.get("/api/x").await?.status, 401);
    assert_eq!(target.echo.targets()[before..], [] as [String; 0], "a protected request reached the upstream");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handoff_code_needs_the_gateways_origin_its_own_session_and_works_once_within_its_ttl() -> anyhow::Result<()>
{
    let target = Target::start(|c| c.session_key("handoff_ttl = \"1s\"")).await?;
    let mut pane = Browser::new(target.gw.endpoint())?;
    let mut popup = Browser::new(target.gw.endpoint())?;
    let page = popup.sign_in_via(&pane.session_info().await?.connect_url("dev")?, "ada").await?;
    let code = page.handoff_code()?.context("no handoff code")?;
    let old_cookie = pane.session_cookie().context("no cookie")?;

    // Refusals that leave the code unspent: a foreign or missing Origin, no session, a bad body.
    let body = json!({ "code": code });
    for (origin, status) in [(Some("http://evil.example"), 403), (Some("null"), 403), (None, 403)] {
        let headers: Vec<(&str, &str)> = origin.map(|o| ("origin", o)).into_iter().collect();
        let page = pane.send_json(Method::POST, "/_gateway/handoff", &headers, &body).await?;
        assert_eq!(page.status, status, "Origin {origin:?}: {}", page.body);
    }
    let mut stranger = Browser::new(target.gw.endpoint())?;
    assert_eq!(stranger.redeem(&code).await?.status, 401, "a request without a session cookie");
    let origin = pane.origin();
    for bad in ["", "{}", "{\"code\":1}", "[\"code\"]", &format!("{{\"code\":\"{}\"}}", "a".repeat(200))] {
        let page = pane.send_body(Method::POST, "/_gateway/handoff", &[("origin", &origin)], bad.to_owned()).await?;
        assert_eq!(page.status, 400, "body {bad:?}: {}", page.body);
    }
    assert_eq!(pane.get("/_gateway/handoff").await?.status, 405);
    assert_eq!(pane.get("/api/x").await?.status, 401, "a refused redemption attached something");

    // The real one: 204, a new cookie, and the old value authenticates nothing afterwards.
    let redeemed = pane.redeem(&code).await?;
    assert_eq!(redeemed.status, 204, "{}", redeemed.body);
    let new_cookie = pane.session_cookie().context("no cookie")?;
    assert_ne!(new_cookie, old_cookie, "the cookie did not rotate");
    assert_eq!(pane.get("/api/x").await?.echo()?.header("x-forwarded-user").as_deref(), Some("ada"));
    assert_eq!(pane.redeem(&code).await?.status, 400, "a code was redeemed twice");
    let mut old = Browser::new(target.gw.endpoint())?;
    old.set_cookie(SESSION_COOKIE, &old_cookie);
    assert_eq!(old.get("/api/x").await?.status, 401, "the rotated-away cookie still authenticates");
    let info = old.session_info().await?;
    assert!(!info.signed_in("dev"), "the rotated-away cookie sees the session: {}", info.0);
    assert_ne!(old.session_cookie().as_deref(), Some(old_cookie.as_str()), "no fresh session for the old value");

    // A code not redeemed within handoff_ttl is gone.
    let late = popup.sign_in_via(&pane.session_info().await?.connect_url("dev")?, "bob").await?;
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let expired = pane.redeem(&late.handoff_code()?.context("no handoff code")?).await?;
    assert_eq!(expired.status, 400, "{}", expired.body);
    assert_eq!(pane.get("/api/x").await?.echo()?.header("x-forwarded-user").as_deref(), Some("ada"));
    Ok(())
}

// Guards against session fixation by cookie injection: a genuine cookie the attacker obtained
// and planted before the victim signs in is rotated away by the sign-in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_genuine_cookie_planted_before_sign_in_is_worthless_after_it() -> anyhow::Result<()> {
    let target = Target::start(|c| c).await?;
    let mut attacker = Browser::new(target.gw.endpoint())?;
    attacker.session_info().await?;
    let planted = attacker.session_cookie().context("no cookie")?;
    let mut victim = Browser::new(target.gw.endpoint())?;
    victim.set_cookie(SESSION_COOKIE, &planted);

    let page = victim.sign_in_dev("victim").await?;
    assert!(page.set_cookies().iter().any(|c| c.starts_with(SESSION_COOKIE)), "the callback set no rotated cookie");
    assert_eq!(victim.get("/api/x").await?.echo()?.header("x-forwarded-user").as_deref(), Some("victim"));
    assert_eq!(attacker.get("/api/x").await?.status, 401, "the planted cookie carries the victim's sign-in");
    Ok(())
}

// Guards against cookie shadowing: a second genuine session cookie (planted with a longer Path
// or for a parent domain) must not win over the real one; a request with two gets neither.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_with_two_different_session_cookies_gets_neither() -> anyhow::Result<()> {
    let target = Target::start(|c| c).await?;
    let mut signed = Browser::new(target.gw.endpoint())?;
    signed.sign_in_dev("ada").await?;
    let mut other = Browser::new(target.gw.endpoint())?;
    other.session_info().await?;
    let (a, b) = (signed.session_cookie().context("no cookie")?, other.session_cookie().context("no cookie")?);
    let before = target.echo.targets().len();
    for cookie in
        [format!("{SESSION_COOKIE}={b}; {SESSION_COOKIE}={a}"), format!("{SESSION_COOKIE}={a}; {SESSION_COOKIE}={b}")]
    {
        let page = target.raw("GET", "/api/x", &[("Cookie", &cookie)]).await?;
        assert_eq!(page.status, 401, "two session cookies: {cookie}");
    }
    assert_eq!(target.echo.targets()[before..], [] as [String; 0]);
    let twice = format!("{SESSION_COOKIE}={a}; {SESSION_COOKIE}={a}");
    let page = target.raw("GET", "/api/x", &[("Cookie", &twice)]).await?;
    assert_eq!(page.status, 200, "the same value twice is one cookie");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_emails_decide_who_signs_in_and_route_allow_decides_who_passes() -> anyhow::Result<()> {
    let echo = EchoUpstream::start("app").await?;
    let config = GatewayConfig::on_free_port(&[echo.addr()])?
        .plain_http_cookies()
        .extra("[providers.dev]\nkind = \"dev\"\nallowed_emails = [\"ada@dev.example\", \"bob@dev.example\"]\n")
        .extra("[[routes]]\nprefix = \"/api/\"\nrequire = [\"dev\"]\n")
        .extra("[[routes]]\nprefix = \"/admin/\"\nrequire = [\"dev\"]\nallow = { emails = [\"ada@dev.example\"], roles = [\"Admin\"] }\n");
    let gw = TestGateway::with_toml(config).start().await?;

    // Outside allowed_emails: access_denied at the callback, nothing stored.
    let mut eve = Browser::new(gw.endpoint())?;
    let connect = eve.session_info().await?.connect_url("dev")?;
    let callback = eve.callback_url(&connect, "eve", gateway_tests::signin::Decision::Approve).await?;
    let refused = eve.get(&callback).await?;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert_eq!(refused.outcome()?["error"], "access_denied");
    assert!(!eve.session_info().await?.signed_in("dev"));
    assert_eq!(eve.get("/api/x").await?.status, 401);

    // Route allow: ada passes /admin/, bob (signed in) gets 403 and nothing is forwarded.
    let mut ada = Browser::new(gw.endpoint())?;
    ada.sign_in_dev("ada").await?;
    assert_eq!(ada.get("/admin/x").await?.echo()?.header("x-forwarded-user").as_deref(), Some("ada"));
    let mut bob = Browser::new(gw.endpoint())?;
    bob.sign_in_dev("bob").await?;
    assert_eq!(bob.get("/api/x").await?.echo()?.header("x-forwarded-user").as_deref(), Some("bob"));
    let before = echo.targets().len();
    let forbidden = bob.get("/admin/x").await?;
    assert_eq!(forbidden.status, 403, "{}", forbidden.body);
    assert_eq!(forbidden.json()?["error"], "forbidden");
    assert_eq!(echo.targets()[before..], [] as [String; 0], "a forbidden request reached the upstream");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ticket_binding_is_an_explicit_opt_in_that_keeps_the_old_behaviour() -> anyhow::Result<()> {
    let echo = EchoUpstream::start("app").await?;
    let gw =
        TestGateway::with_toml(dev_config(echo.addr(), &[])?.session_key("popup_binding = \"ticket\"")).start().await?;
    let mut pane = Browser::new(gw.endpoint())?;
    let mut popup = Browser::new(gw.endpoint())?;
    let page = popup.sign_in_via(&pane.session_info().await?.connect_url("dev")?, "ada").await?;
    assert_eq!(page.handoff_code()?, None);
    assert_eq!(pane.get("/api/x").await?.echo()?.header("x-forwarded-user").as_deref(), Some("ada"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_and_group_rules_read_the_id_token_and_route_roles_decide_who_passes() -> anyhow::Result<()> {
    let idp = TestIdp::start().await;
    let echo = EchoUpstream::start("app").await?;
    let toml = GatewayConfig::on_free_port(&[echo.addr()])?
        .plain_http_cookies()
        .extra(&format!(
            "[providers.idp]\nkind = \"oidc\"\nissuer = \"{}\"\nclient_id = \"{CLIENT_ID}\"\n\
             client_secret = \"env:IDP_SECRET\"\nallowed_tenants = [\"T1\"]\nallowed_groups = [\"g-admins\"]\n",
            idp.issuer()
        ))
        .extra("[[routes]]\nprefix = \"/api/\"\nrequire = [\"idp\"]\n")
        .extra("[[routes]]\nprefix = \"/reports/\"\nrequire = [\"idp\"]\nallow = { roles = [\"Reader\"] }\n");
    let gw = TestGateway::with_toml(toml).env("IDP_SECRET", CLIENT_SECRET).start().await?;
    let sign_in = |claims: serde_json::Value| {
        idp.set_extra_claims(claims);
        let endpoint = gw.endpoint().clone();
        async move {
            let mut browser = Browser::new(&endpoint)?;
            let connect = browser.session_info().await?.connect_url("idp")?;
            let to_idp = browser.get(&connect).await?;
            let from_idp = browser.get(to_idp.location()?).await?;
            let page = browser.get(from_idp.location()?).await?;
            anyhow::Ok((browser, page))
        }
    };

    for (claims, why) in [
        (json!({"tid": "t2", "groups": ["g-admins"]}), "another tenant"),
        (json!({"groups": ["g-admins"]}), "no tenant at all"),
        (json!({"tid": "t1", "groups": ["g-users"]}), "not in the group"),
        (json!({"tid": "t1", "groups": "g-admins"}), "a groups claim that is not a list"),
    ] {
        let (mut browser, page) = sign_in(claims).await?;
        assert_eq!(page.status, 403, "{why}: {}", page.body);
        assert_eq!(page.outcome()?["error"], "access_denied", "{why}");
        assert_eq!(browser.get("/api/x").await?.status, 401, "{why}: something was stored");
    }
    let (mut member, page) = sign_in(json!({"tid": "t1", "groups": ["g-admins"]})).await?;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(member.get("/api/x").await?.status, 200);
    let before = echo.targets().len();
    let forbidden = member.get("/reports/q3").await?;
    assert_eq!((forbidden.status, forbidden.json()?["error"].clone()), (403, json!("forbidden")));
    assert_eq!(echo.targets()[before..], [] as [String; 0]);
    let (mut reader, _) = sign_in(json!({"tid": "t1", "groups": ["x"], "roles": ["Reader", "g-admins"]})).await?;
    assert_eq!(reader.get("/reports/q3").await?.status, 200, "a role listed in allowed_groups admits, and roles pass");
    Ok(())
}
