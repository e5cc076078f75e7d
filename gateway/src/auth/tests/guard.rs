//! The request path's access decision: public routes never require a sign-in, protected ones
//! answer 401 with the ways to sign in, `allow` answers 403, a failing store fails closed.

use super::harness::{cookie_of, get, headers, Gateway};
use crate::auth::guard::Access;
use crate::auth::AuthRefusal;
use crate::respond::Answer;

fn refusal(access: Access) -> AuthRefusal {
    match access {
        Access::Denied(r) => r,
        Access::Allowed(t) => panic!("allowed: {:?}", t.map(|t| t.identity.subject.clone())),
    }
}

#[tokio::test]
async fn a_public_route_passes_with_and_without_a_sign_in() {
    let gw = Gateway::new();
    let Access::Allowed(None) = gw.auth.authorize(&headers(None, None), None).await else { panic!("refused") };
    let (_, cookie) = gw.sign_in("dev", "ada").await;
    let Access::Allowed(Some(t)) = gw.auth.authorize(&headers(Some(&cookie), None), None).await else {
        panic!("no identity on a public route")
    };
    assert_eq!(t.identity.subject, "ada");
}

#[tokio::test]
async fn a_protected_route_without_a_sign_in_answers_401_with_links_and_a_new_session() {
    let gw = Gateway::new();
    let refused = refusal(gw.auth.authorize(&headers(None, None), Some(gw.route("/api/"))).await);
    let AuthRefusal::SignInRequired { links, set_cookie } = refused.clone() else { panic!("{refused:?}") };
    assert_eq!(links.len(), 1);
    assert_eq!(links[0].provider, "dev");
    let connect = links[0].connect_url.clone().unwrap();
    let set_cookie = set_cookie.expect("a session is created to hold the sign-in");
    let answer = Answer::from(refused);
    assert_eq!(answer.status(), 401);
    assert_eq!(answer.headers().get(http::header::SET_COOKIE).unwrap().to_str().unwrap(), set_cookie);
    let body: serde_json::Value = serde_json::from_slice(answer.body()).unwrap();
    assert_eq!(body["providers"]["dev"]["connect_url"], connect.as_str());

    // The link signs this new session in.
    let cookie = cookie_of(&set_cookie);
    let session = gw.session_of(&cookie).await.unwrap();
    let h = headers(Some(&cookie), None);
    let ticket = connect.rsplit('/').next().unwrap();
    let authorize = gw.auth.connect("dev", ticket, &get("", &h)).await.unwrap();
    let done = gw.callback(&gw.answer(&authorize, Some("ada")).await, Some(&cookie)).await.unwrap();
    assert_eq!(gw.tokens(&session, "dev").await.unwrap().identity.subject, "ada");
    let cookie = cookie_of(&done.set_cookie.unwrap());
    let Access::Allowed(Some(t)) = gw.auth.authorize(&headers(Some(&cookie), None), Some(gw.route("/api/"))).await
    else {
        panic!("refused after signing in")
    };
    assert_eq!(t.identity.subject, "ada");
}

#[tokio::test]
async fn a_session_without_a_sign_in_keeps_its_cookie_on_a_401() {
    let gw = Gateway::new();
    let (_, cookie) = gw.new_session().await;
    let refused = refusal(gw.auth.authorize(&headers(Some(&cookie), None), Some(gw.route("/api/"))).await);
    let AuthRefusal::SignInRequired { set_cookie, links } = refused else { panic!("{refused:?}") };
    assert!(set_cookie.is_none(), "the existing session holds the sign-in");
    assert!(links[0].connect_url.is_some());
}

#[tokio::test]
async fn a_signed_in_user_outside_allow_gets_403_and_a_listed_one_passes() {
    let gw = Gateway::new();
    let (_, ada) = gw.sign_in("dev", "ada").await;
    let refused = refusal(gw.auth.authorize(&headers(Some(&ada), None), Some(gw.route("/admin/"))).await);
    assert_eq!(refused, AuthRefusal::Forbidden);
    assert_eq!(Answer::from(refused).status(), 403);
    let (_, boss) = gw.sign_in("dev", "boss").await;
    let Access::Allowed(Some(t)) = gw.auth.authorize(&headers(Some(&boss), None), Some(gw.route("/admin/"))).await
    else {
        panic!("boss refused")
    };
    assert_eq!(t.identity.subject, "boss");
}

#[tokio::test]
async fn a_failing_store_fails_closed_on_protected_routes_only() {
    let gw = Gateway::new();
    let (_, cookie) = gw.sign_in("dev", "ada").await;
    gw.store.set_broken(true);
    let h = headers(Some(&cookie), None);
    let refused = refusal(gw.auth.authorize(&h, Some(gw.route("/api/"))).await);
    assert_eq!(refused, AuthRefusal::StoreUnavailable);
    assert_eq!(Answer::from(refused).status(), 503);
    let Access::Allowed(None) = gw.auth.authorize(&h, None).await else { panic!("a public route needs no store") };
    gw.store.set_broken(false);
    assert!(matches!(gw.auth.authorize(&h, Some(gw.route("/api/"))).await, Access::Allowed(Some(_))));
}
