//! `GET /connect/{provider}/callback`: a sign-in attaches only to the session that started it.

use super::harness::{cookie_of, headers, next_event, no_event, post, Gateway, ORIGIN};
use crate::auth::error::FlowError;
use crate::auth::flow::Opener;
use crate::auth::Delivery;
use crate::channel::StatusEvent;

#[tokio::test]
async fn a_sign_in_with_the_sessions_own_cookie_attaches_and_rotates_the_cookie() {
    let gw = Gateway::new();
    let (session, cookie) = gw.new_session().await;
    let mut events = gw.hub.join(session, "test").unwrap();
    let redirect = gw.answer(&gw.start("dev", &session).await, Some("ada")).await;
    assert_eq!(redirect.as_str().split('?').next().unwrap(), format!("{ORIGIN}/connect/dev/callback"));

    let done = gw.callback(&redirect, Some(&cookie)).await.unwrap();
    assert!(matches!(done.delivery, Delivery::Attached), "{:?}", done.delivery);
    assert_eq!((done.provider.as_str(), done.user.as_str(), done.opener), ("dev", "Dev User ada", Opener::Window));
    let tokens = gw.tokens(&session, "dev").await.expect("the tokens are stored under the session");
    assert_eq!(tokens.identity.subject, "ada");
    assert_eq!(tokens.identity.email.as_deref(), Some("ada@dev.example"));

    let rotated = cookie_of(&done.set_cookie.expect("the cookie is rotated"));
    assert_ne!(rotated, cookie);
    assert_eq!(gw.session_of(&rotated).await, Some(session));
    assert_eq!(gw.session_of(&cookie).await, None, "the old cookie no longer names the session");
    // `auth_success` waits for the answer that carries the rotated cookie: the caller tells it.
    assert!(no_event(&mut events), "nothing is told before the answer with the new cookie is written");
    assert_eq!(done.announce, Some(session));
    gw.auth.announce_signed_in(&session).await;
    assert_eq!(
        next_event(&mut events).await,
        Some(StatusEvent::AuthSuccess(vec![("dev".into(), "Dev User ada".into())]))
    );
}

#[tokio::test]
async fn without_the_cookie_the_sign_in_waits_under_a_code_only_its_session_redeems() {
    let gw = Gateway::new();
    let (session, cookie) = gw.new_session().await;
    let mut events = gw.hub.join(session, "test").unwrap();
    let redirect = gw.answer(&gw.start("dev", &session).await, Some("ada")).await;
    let done = gw.callback(&redirect, None).await.unwrap();
    let Delivery::Handoff(code) = done.delivery else { panic!("not parked: {:?}", done.delivery) };
    assert!(done.set_cookie.is_none(), "a cookie-less popup gets no session cookie");
    assert!(gw.tokens(&session, "dev").await.is_none(), "nothing is attached before the code is redeemed");
    assert!(no_event(&mut events), "nobody is signed in yet");

    let h = headers(Some(&cookie), Some(ORIGIN));
    let redeemed = gw.auth.redeem_handoff(&post(None, &h, &format!(r#"{{"code":"{code}"}}"#))).await.unwrap();
    assert_eq!(gw.tokens(&session, "dev").await.unwrap().identity.subject, "ada");
    assert_eq!(gw.session_of(&cookie_of(&redeemed.set_cookie)).await, Some(session));
    assert_eq!(gw.session_of(&cookie).await, None, "redeeming rotates the cookie");
    assert!(no_event(&mut events), "nothing is told before the answer with the new cookie is written");
    assert_eq!(redeemed.announce, session);
    gw.auth.announce_signed_in(&session).await;
    assert_eq!(
        next_event(&mut events).await,
        Some(StatusEvent::AuthSuccess(vec![("dev".into(), "Dev User ada".into())]))
    );
}

#[tokio::test]
async fn another_sessions_cookie_on_the_callback_parks_the_sign_in_for_its_own_session() {
    let gw = Gateway::new();
    let (session, _) = gw.new_session().await;
    let (intruder, intruder_cookie) = gw.new_session().await;
    let redirect = gw.answer(&gw.start("dev", &session).await, Some("ada")).await;
    let done = gw.callback(&redirect, Some(&intruder_cookie)).await.unwrap();
    assert!(matches!(done.delivery, Delivery::Handoff(_)), "{:?}", done.delivery);
    assert!(done.set_cookie.is_none());
    assert!(gw.tokens(&intruder, "dev").await.is_none());
    assert_eq!(gw.session_of(&intruder_cookie).await, Some(intruder), "the intruder's cookie is untouched");
}

#[tokio::test]
async fn a_replayed_state_is_refused_and_the_first_sign_in_stands() {
    let gw = Gateway::new();
    let (session, cookie) = gw.new_session().await;
    let redirect = gw.answer(&gw.start("dev", &session).await, Some("ada")).await;
    let rotated = cookie_of(&gw.callback(&redirect, Some(&cookie)).await.unwrap().set_cookie.unwrap());
    let replay = gw.callback(&redirect, Some(&rotated)).await.unwrap_err();
    assert!(matches!(replay.error, FlowError::UnknownState), "{:?}", replay.error);
    assert_eq!(replay.error.oauth_code(), "invalid_state");
    assert_eq!(gw.session_of(&rotated).await, Some(session), "a replay does not rotate the cookie");
    assert!(gw.tokens(&session, "dev").await.is_some());
}

#[tokio::test]
async fn a_response_without_state_is_refused() {
    let gw = Gateway::new();
    let (session, cookie) = gw.new_session().await;
    let redirect = gw.answer(&gw.start("dev", &session).await, Some("ada")).await;
    let query: Vec<String> = redirect
        .query_pairs()
        .filter(|(k, _)| k != "state")
        .map(|(k, v)| format!("{k}={}", url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>()))
        .collect();
    let e = gw.callback_at("dev", &query.join("&"), Some(&cookie)).await.unwrap_err();
    assert!(matches!(e.error, FlowError::MissingState), "{:?}", e.error);
    assert_eq!(e.error.oauth_code(), "invalid_state");
    assert!(gw.tokens(&session, "dev").await.is_none());
}

#[tokio::test]
async fn a_cancelled_sign_in_reports_access_denied_to_the_session() {
    let gw = Gateway::new();
    let (session, cookie) = gw.new_session().await;
    let mut events = gw.hub.join(session, "test").unwrap();
    let redirect = gw.answer(&gw.start("dev", &session).await, None).await;
    let e = gw.callback(&redirect, Some(&cookie)).await.unwrap_err();
    let FlowError::Denied { error, description } = &e.error else { panic!("{:?}", e.error) };
    assert_eq!((error.as_str(), description.as_str()), ("access_denied", "The user cancelled the sign-in"));
    assert_eq!(e.error.oauth_code(), "access_denied");
    assert!(gw.tokens(&session, "dev").await.is_none());
    assert_eq!(gw.session_of(&cookie).await, Some(session), "a failure does not rotate the cookie");
    let expected = StatusEvent::AuthFailure {
        provider: "dev".into(),
        error: "access_denied".into(),
        description: "The user cancelled the sign-in".into(),
    };
    assert_eq!(next_event(&mut events).await, Some(expected));
}

#[tokio::test]
async fn a_state_started_for_another_provider_is_refused_and_spent() {
    let gw = Gateway::new();
    let (session, cookie) = gw.new_session().await;
    let redirect = gw.answer(&gw.start("dev", &session).await, Some("ada")).await;
    let query = redirect.query().unwrap();
    let e = gw.callback_at("dev2", query, Some(&cookie)).await.unwrap_err();
    assert!(matches!(e.error, FlowError::ProviderMismatch), "{:?}", e.error);
    assert_eq!(e.error.oauth_code(), "invalid_state");
    assert!(gw.tokens(&session, "dev2").await.is_none());
    let again = gw.callback_at("dev", query, Some(&cookie)).await.unwrap_err();
    assert!(matches!(again.error, FlowError::UnknownState), "{:?}", again.error);
}

#[tokio::test]
async fn a_response_naming_another_issuer_is_refused() {
    let gw = Gateway::new();
    let (session, cookie) = gw.new_session().await;
    let mut events = gw.hub.join(session, "test").unwrap();
    let mut redirect = gw.answer(&gw.start("dev", &session).await, Some("ada")).await;
    let pairs: Vec<(String, String)> = redirect.query_pairs().into_owned().collect();
    {
        let mut q = redirect.query_pairs_mut();
        q.clear();
        for (k, v) in &pairs {
            q.append_pair(k, if k == "iss" { "https://evil.example/_gateway/dev" } else { v });
        }
    }
    let e = gw.callback(&redirect, Some(&cookie)).await.unwrap_err();
    assert!(matches!(e.error, FlowError::IssuerMismatch), "{:?}", e.error);
    assert!(gw.tokens(&session, "dev").await.is_none());
    let Some(StatusEvent::AuthFailure { error, .. }) = next_event(&mut events).await else { panic!("no auth_failure") };
    assert_eq!(error, "invalid_id_token");
}
