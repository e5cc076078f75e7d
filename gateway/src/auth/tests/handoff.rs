//! `POST /_gateway/handoff`: a parked sign-in attaches only to its own session, once.

use super::harness::{headers, post, Gateway, ORIGIN};
use crate::auth::{AuthRefusal, Delivery, HandoffRefusal};
use crate::respond::Answer;
use crate::session::SessionId;

/// A sign-in of ada finished in a popup without the session's cookie: its handoff code.
async fn parked(gw: &Gateway, session: &SessionId) -> String {
    let redirect = gw.answer(&gw.start("dev", session).await, Some("ada")).await;
    match gw.callback(&redirect, None).await.unwrap().delivery {
        Delivery::Handoff(code) => code,
        other => panic!("not parked: {other:?}"),
    }
}

async fn redeem(gw: &Gateway, cookie: Option<&str>, origin: Option<&str>, code: &str) -> Result<String, AuthRefusal> {
    let h = headers(cookie, origin);
    gw.auth.redeem_handoff(&post(None, &h, &format!(r#"{{"code":"{code}"}}"#))).await.map(|r| r.set_cookie)
}

fn status(r: Result<String, AuthRefusal>) -> (u16, AuthRefusal) {
    let refusal = r.unwrap_err();
    (Answer::from(refusal.clone()).status(), refusal)
}

#[tokio::test]
async fn a_redemption_from_a_foreign_origin_or_without_a_session_is_refused_and_keeps_the_code() {
    let gw = Gateway::new();
    let (session, cookie) = gw.new_session().await;
    let code = parked(&gw, &session).await;
    for origin in [Some("https://evil.example"), None] {
        let refused = status(redeem(&gw, Some(&cookie), origin, &code).await);
        assert_eq!(refused, (403, AuthRefusal::Handoff(HandoffRefusal::ForeignOrigin)), "{origin:?}");
    }
    let refused = status(redeem(&gw, None, Some(ORIGIN), &code).await);
    assert_eq!(refused, (401, AuthRefusal::Handoff(HandoffRefusal::NoSession)));
    assert!(gw.tokens(&session, "dev").await.is_none());
    assert!(redeem(&gw, Some(&cookie), Some(ORIGIN), &code).await.is_ok(), "the code was not spent");
    assert!(gw.tokens(&session, "dev").await.is_some());
}

#[tokio::test]
async fn another_sessions_code_is_refused_and_spent() {
    let gw = Gateway::new();
    let (session, cookie) = gw.new_session().await;
    let (intruder, intruder_cookie) = gw.new_session().await;
    let code = parked(&gw, &session).await;
    let refused = status(redeem(&gw, Some(&intruder_cookie), Some(ORIGIN), &code).await);
    assert_eq!(refused, (403, AuthRefusal::Handoff(HandoffRefusal::OtherSession)));
    assert!(gw.tokens(&intruder, "dev").await.is_none());
    assert_eq!(gw.session_of(&intruder_cookie).await, Some(intruder), "no rotation for a refusal");
    let late = status(redeem(&gw, Some(&cookie), Some(ORIGIN), &code).await);
    assert_eq!(late, (400, AuthRefusal::Handoff(HandoffRefusal::UnknownCode)));
    assert!(gw.tokens(&session, "dev").await.is_none());
}

#[tokio::test]
async fn a_code_is_redeemed_once() {
    let gw = Gateway::new();
    let (session, cookie) = gw.new_session().await;
    let code = parked(&gw, &session).await;
    let set_cookie = redeem(&gw, Some(&cookie), Some(ORIGIN), &code).await.unwrap();
    let rotated = super::harness::cookie_of(&set_cookie);
    let again = status(redeem(&gw, Some(&rotated), Some(ORIGIN), &code).await);
    assert_eq!(again, (400, AuthRefusal::Handoff(HandoffRefusal::UnknownCode)));
    assert_eq!(gw.session_of(&rotated).await, Some(session), "a refused reuse does not rotate the cookie");
    let unknown = status(redeem(&gw, Some(&rotated), Some(ORIGIN), "not-a-code").await);
    assert_eq!(unknown, (400, AuthRefusal::Handoff(HandoffRefusal::UnknownCode)));
}
