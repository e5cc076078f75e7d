//! One test per [`FlowError`] variant the dev provider can produce that `connect.rs` and
//! `callback.rs` do not already produce (`UnknownProvider`, `Ticket`, `MissingState`,
//! `UnknownState`, `ProviderMismatch`, `Denied` and `IssuerMismatch` are there).
//!
//! Not reachable through the dev provider:
//! - `ProviderUnavailable`: its endpoints are fixed under the gateway's own origin, so resolving
//!   them never fetches or fails;
//! - `MissingIdToken`: every token response it gives carries an ID token;
//! - `UserInfo`: its users are described by the ID token, never by a userinfo endpoint;
//! - `Random`: only a failing system RNG produces it.

use http::HeaderMap;

use super::harness::{get, next_event, Gateway};
use crate::auth::error::FlowError;
use crate::auth::Delivery;
use crate::channel::StatusEvent;
use crate::providers::exchange::ExchangeError;
use crate::providers::id_token::IdTokenError;

/// `redirect`'s query with `name` set to `value` (removed when `None`).
fn with_param(redirect: &url::Url, name: &str, value: Option<&str>) -> String {
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in redirect.query_pairs() {
        match (k == name, value) {
            (false, _) => drop(out.append_pair(&k, &v)),
            (true, Some(new)) => drop(out.append_pair(&k, new)),
            (true, None) => {}
        }
    }
    out.finish()
}

#[tokio::test]
async fn a_response_without_code_is_missing_code() {
    let gw = Gateway::new();
    let (session, cookie) = gw.new_session().await;
    let redirect = gw.answer(&gw.start("dev", &session).await, Some("ada")).await;
    let e = gw.callback_at("dev", &with_param(&redirect, "code", None), Some(&cookie)).await.unwrap_err();
    assert!(matches!(e.error, FlowError::MissingCode), "{:?}", e.error);
    assert_eq!(e.error.oauth_code(), "invalid_request");
    assert!(gw.tokens(&session, "dev").await.is_none());
}

#[tokio::test]
async fn a_code_of_another_sign_in_fails_the_exchange_on_pkce() {
    let gw = Gateway::new();
    let (session, cookie) = gw.new_session().await;
    let mut events = gw.hub.join(session, "test").unwrap();
    let mine = gw.answer(&gw.start("dev", &session).await, Some("ada")).await;
    let (other_session, _) = gw.new_session().await;
    let theirs = gw.answer(&gw.start("dev", &other_session).await, Some("mallory")).await;
    // The other sign-in's code under this sign-in's state: its verifier does not match the code's challenge.
    let code = theirs.query_pairs().find(|(k, _)| k == "code").unwrap().1.into_owned();
    let e = gw.callback_at("dev", &with_param(&mine, "code", Some(&code)), Some(&cookie)).await.unwrap_err();
    assert!(matches!(&e.error, FlowError::Exchange(ExchangeError::Refused { error }) if error == "invalid_grant"));
    assert_eq!(e.error.oauth_code(), "invalid_grant");
    assert!(gw.tokens(&session, "dev").await.is_none());
    let Some(StatusEvent::AuthFailure { error, .. }) = next_event(&mut events).await else { panic!("no auth_failure") };
    assert_eq!(error, "invalid_grant");
}

#[tokio::test]
async fn an_id_token_for_another_nonce_is_refused() {
    let gw = Gateway::new();
    let (session, cookie) = gw.new_session().await;
    let mut authorize = gw.start("dev", &session).await;
    // The browser swapped the nonce on its way to the provider: the code and PKCE still match.
    let pairs: Vec<(String, String)> = authorize.query_pairs().into_owned().collect();
    {
        let mut q = authorize.query_pairs_mut();
        q.clear();
        for (k, v) in &pairs {
            q.append_pair(k, if k == "nonce" { "a-nonce-of-the-attackers" } else { v });
        }
    }
    let redirect = gw.answer(&authorize, Some("ada")).await;
    let e = gw.callback(&redirect, Some(&cookie)).await.unwrap_err();
    assert!(matches!(e.error, FlowError::IdToken(IdTokenError::NonceMismatch)), "{:?}", e.error);
    assert_eq!(e.error.oauth_code(), "invalid_id_token");
    assert!(gw.tokens(&session, "dev").await.is_none());
}

#[tokio::test]
async fn a_user_outside_the_providers_allowed_emails_is_not_allowed() {
    let gw = Gateway::new();
    let (session, cookie) = gw.new_session().await;
    let redirect = gw.answer(&gw.start("dev2", &session).await, Some("ada")).await;
    let e = gw.callback(&redirect, Some(&cookie)).await.unwrap_err();
    assert!(matches!(e.error, FlowError::NotAllowed("email")), "{:?}", e.error);
    assert_eq!(e.error.oauth_code(), "access_denied");
    assert!(gw.tokens(&session, "dev2").await.is_none());

    let redirect = gw.answer(&gw.start("dev2", &session).await, Some("boss")).await;
    let done = gw.callback(&redirect, Some(&cookie)).await.unwrap();
    assert!(matches!(done.delivery, Delivery::Attached));
    assert_eq!(gw.tokens(&session, "dev2").await.unwrap().identity.subject, "boss");
}

#[tokio::test]
async fn a_failing_store_fails_the_sign_in() {
    let gw = Gateway::new();
    let (session, cookie) = gw.new_session().await;
    let ticket = gw.auth.connect_url("dev", &session).unwrap().rsplit('/').next().unwrap().to_owned();
    gw.store.set_broken(true);
    let h = HeaderMap::new();
    let e = gw.auth.connect("dev", &ticket, &get("", &h)).await.unwrap_err();
    assert!(matches!(e, FlowError::Store), "{e:?}");
    assert_eq!(e.oauth_code(), "temporarily_unavailable");

    gw.store.set_broken(false);
    let redirect = gw.answer(&gw.start("dev", &session).await, Some("ada")).await;
    gw.store.set_broken(true);
    let e = gw.callback(&redirect, Some(&cookie)).await.unwrap_err();
    assert!(matches!(e.error, FlowError::Store), "{:?}", e.error);
    gw.store.set_broken(false);
    assert!(gw.tokens(&session, "dev").await.is_none());
}
