//! `POST /connect/logout`: only the gateway's own pages sign a session out.

use std::time::Duration;

use super::harness::{headers, next_event, post, Gateway, ORIGIN};
use crate::auth::AuthRefusal;
use crate::channel::StatusEvent;
use crate::respond::Answer;
use crate::store::{RemovalCause, TokenStore};

#[tokio::test]
async fn a_logout_from_another_origin_or_none_is_refused_and_signs_nobody_out() {
    let gw = Gateway::new();
    let (session, cookie) = gw.sign_in("dev", "ada").await;
    for origin in [Some("https://evil.example"), Some("http://localhost:3001"), None] {
        let h = headers(Some(&cookie), origin);
        let refused = gw.auth.logout(&post(None, &h, "")).await.unwrap_err();
        assert_eq!(refused, AuthRefusal::NotSameOrigin("logout"), "{origin:?}");
        assert_eq!(Answer::from(refused).status(), 403);
    }
    assert!(gw.tokens(&session, "dev").await.is_some());
}

#[tokio::test]
async fn a_logout_naming_an_unknown_provider_is_400_and_signs_nobody_out() {
    let gw = Gateway::new();
    let (session, cookie) = gw.sign_in("dev", "ada").await;
    let h = headers(Some(&cookie), Some(ORIGIN));
    let refused = gw.auth.logout(&post(Some("provider=nope"), &h, "")).await.unwrap_err();
    assert_eq!(refused, AuthRefusal::UnknownProvider("nope".into()));
    assert_eq!(Answer::from(refused).status(), 400);
    assert!(gw.tokens(&session, "dev").await.is_some());
}

#[tokio::test]
async fn a_logout_signs_the_session_out_and_its_sockets_hear_auth_expired() {
    let gw = Gateway::new();
    let (session, cookie) = gw.sign_in("dev", "ada").await;
    let (other, _) = gw.sign_in("dev", "bob").await;
    let mut removals = gw.store.removals();
    let mut events = gw.hub.join(session, "test").unwrap();
    let h = headers(Some(&cookie), Some(ORIGIN));
    gw.auth.logout(&post(None, &h, "")).await.unwrap();
    assert!(gw.tokens(&session, "dev").await.is_none());
    assert!(gw.tokens(&other, "dev").await.is_some(), "another session stays signed in");
    assert_eq!(gw.session_of(&cookie).await, Some(session), "the session itself lives on");

    // The store reports the removal; the server relays it to the session's sockets.
    let mut removal = None;
    for _ in 0..20 {
        if let Ok(r) = removals.try_recv() {
            removal = Some(r);
            break;
        }
        gw.store.run_maintenance().await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let removal = removal.expect("no removal reported within a second");
    assert_eq!((removal.session, removal.provider.as_str(), removal.cause), (session, "dev", RemovalCause::LoggedOut));
    gw.hub.removed(&removal);
    assert_eq!(next_event(&mut events).await, Some(StatusEvent::AuthExpired(vec!["dev".into()])));
}

#[tokio::test]
async fn a_logout_without_a_session_is_a_no_op() {
    let gw = Gateway::new();
    let h = headers(None, Some(ORIGIN));
    assert_eq!(gw.auth.logout(&post(None, &h, "")).await, Ok(()));
}
