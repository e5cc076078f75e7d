//! `GET /_gateway/session`: who is signed in where, with the links to sign in; never a token.

use secrecy::ExposeSecret;

use super::harness::{cookie_of, get, headers, Gateway};
use crate::auth::AuthRefusal;
use crate::respond::Answer;

#[tokio::test]
async fn a_new_visitor_gets_a_session_and_a_link_per_provider() {
    let gw = Gateway::new();
    let h = headers(None, None);
    let state = gw.auth.session_info(&get("", &h)).await.unwrap();
    let cookie = cookie_of(state.set_cookie.as_deref().expect("a session is created"));
    let session = gw.session_of(&cookie).await.unwrap();
    let names: Vec<&str> = state.providers.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["dev", "dev2"]);
    for p in &state.providers {
        assert!(p.user.is_none());
        assert!(p.connect_url.as_deref().unwrap().starts_with(&format!("/connect/{}/", p.name)));
    }
    assert_eq!(gw.auth.channel_session(state.ticket.as_deref().unwrap()), Some(session));
    let answer = Answer::from(state);
    assert_eq!(answer.status(), 200);
    assert!(answer.headers().get(http::header::SET_COOKIE).is_some());
}

#[tokio::test]
async fn a_signed_in_session_reports_its_user_and_never_a_token() {
    let gw = Gateway::new();
    let (session, cookie) = gw.sign_in("dev", "ada").await;
    let tokens = gw.tokens(&session, "dev").await.unwrap();
    let h = headers(Some(&cookie), None);
    let state = gw.auth.session_info(&get("", &h)).await.unwrap();
    assert!(state.set_cookie.is_none(), "the session exists");
    assert_eq!(state.providers[0].user.as_ref().unwrap().subject, "ada");
    assert!(state.providers[1].user.is_none(), "not signed in to dev2");
    let answer = Answer::from(state);
    assert_eq!(answer.status(), 200);
    let body = String::from_utf8(answer.body().to_vec()).unwrap();
    assert!(body.contains("Dev User ada"), "{body}");
    assert!(!body.contains(tokens.access_token.expose_secret()), "the access token leaked: {body}");
    let refresh = tokens.refresh_token.as_ref().expect("the dev provider issues refresh tokens");
    assert!(!body.contains(refresh.expose_secret()), "the refresh token leaked: {body}");
}

#[tokio::test]
async fn a_failing_store_is_an_outage_not_a_signed_out_session() {
    let gw = Gateway::new();
    let (_, cookie) = gw.sign_in("dev", "ada").await;
    gw.store.set_broken(true);
    let h = headers(Some(&cookie), None);
    let refused = gw.auth.session_info(&get("", &h)).await.unwrap_err();
    assert_eq!(refused, AuthRefusal::StoreUnavailable);
    assert_eq!(Answer::from(refused).status(), 503);
}
