//! Refresh tokens with a one-second access-token lifetime: a route that forwards the access
//! token gets a fresh one, the refresh token rotates, and a refused refresh keeps the old tokens
//! (`fresh_tokens` returns what it was given; the user stays signed in).

use std::time::{Duration, SystemTime};

use secrecy::ExposeSecret;

use super::harness::{headers, Gateway, ORIGIN};
use crate::auth::guard::Access;
use crate::providers::dev::DevIdp;
use crate::providers::http_client::HttpClient;
use crate::store::StoredTokens;

/// A refresh grant sent straight to the dev provider's token endpoint.
async fn refresh_at(idp: &DevIdp, refresh_token: &str, client_id: &str) -> (u16, serde_json::Value) {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "refresh_token")
        .append_pair("refresh_token", refresh_token)
        .append_pair("client_id", client_id)
        .finish();
    let req = http::Request::post(format!("{ORIGIN}/_gateway/dev/token"))
        .header(http::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body.into_bytes())
        .unwrap();
    let resp = idp.send(req).await.unwrap();
    (resp.status().as_u16(), serde_json::from_slice(resp.body()).unwrap())
}

fn refresh_token(t: &StoredTokens) -> String {
    t.refresh_token.as_ref().expect("a refresh token").expose_secret().to_owned()
}

fn access_token(t: &StoredTokens) -> String {
    t.access_token.expose_secret().to_owned()
}

/// Waits (at most 1.5 s) until the access token in `t` has expired.
async fn until_expired(t: &StoredTokens) {
    let at = t.access_expires_at.expect("an expiry");
    let wait = at.duration_since(SystemTime::now()).unwrap_or_default() + Duration::from_millis(50);
    assert!(wait <= Duration::from_millis(1500), "the access token lives {wait:?}");
    tokio::time::sleep(wait).await;
}

/// The tokens `/api/` (which forwards the access token) would forward for `cookie`.
async fn forwarded(gw: &Gateway, cookie: &str) -> std::sync::Arc<StoredTokens> {
    match gw.auth.authorize(&headers(Some(cookie), None), Some(gw.route("/api/"))).await {
        Access::Allowed(Some(t)) => t,
        Access::Allowed(None) => panic!("no tokens"),
        Access::Denied(r) => panic!("refused: {r:?}"),
    }
}

#[tokio::test]
async fn the_dev_provider_rotates_refresh_tokens_and_binds_them_to_their_client() {
    let gw = Gateway::new();
    let (session, _) = gw.sign_in("dev", "ada").await;
    let first = gw.tokens(&session, "dev").await.unwrap();
    let left = first.access_expires_at.unwrap().duration_since(SystemTime::now()).unwrap();
    assert!(left > Duration::from_secs(3500), "the default lifetime is an hour: {left:?}");
    let r0 = refresh_token(&first);
    assert_eq!(refresh_at(&gw.idp, &r0, "dev-two").await, (400, serde_json::json!({"error": "invalid_grant"})));
    // Presented by another client, it is spent.
    assert_eq!(refresh_at(&gw.idp, &r0, "gateway-dev").await.0, 400);

    let (_, cookie) = gw.sign_in("dev", "bob").await;
    let bob = gw.tokens(&gw.session_of(&cookie).await.unwrap(), "dev").await.unwrap();
    let (status, body) = refresh_at(&gw.idp, &refresh_token(&bob), "gateway-dev").await;
    assert_eq!(status, 200, "{body}");
    let r1 = body["refresh_token"].as_str().unwrap();
    assert_ne!(r1, refresh_token(&bob));
    assert_ne!(body["access_token"].as_str().unwrap(), access_token(&bob));
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(refresh_at(&gw.idp, &refresh_token(&bob), "gateway-dev").await.0, 400, "used once");
    assert_eq!(refresh_at(&gw.idp, r1, "gateway-dev").await.0, 200);
    assert_eq!(refresh_at(&gw.idp, "never-issued", "gateway-dev").await.0, 400);
}

#[tokio::test]
async fn an_expired_access_token_is_refreshed_before_it_is_forwarded() {
    let gw = Gateway::with_access_lifetime(Duration::from_secs(1));
    let (session, cookie) = gw.sign_in("dev", "ada").await;
    let old = gw.tokens(&session, "dev").await.unwrap();
    until_expired(&old).await;

    let new = forwarded(&gw, &cookie).await;
    assert_ne!(access_token(&new), access_token(&old));
    assert_ne!(refresh_token(&new), refresh_token(&old), "the refresh token rotated");
    assert!(new.access_expires_at.unwrap() > SystemTime::now(), "the forwarded token is alive");
    assert_eq!(new.identity.subject, "ada");
    assert_eq!(new.signed_in_at, old.signed_in_at, "the sign-in's lifetime is not extended");
    let stored = gw.tokens(&session, "dev").await.unwrap();
    assert_eq!(access_token(&stored), access_token(&new), "the fresh tokens are kept");
    assert_eq!(refresh_at(&gw.idp, &refresh_token(&old), "gateway-dev").await.0, 400, "the old one is spent");
}

#[tokio::test]
async fn concurrent_requests_share_one_refresh_chain() {
    let gw = Gateway::with_access_lifetime(Duration::from_secs(1));
    let (session, cookie) = gw.sign_in("dev", "ada").await;
    let old = gw.tokens(&session, "dev").await.unwrap();
    until_expired(&old).await;
    // Each refresh spends the refresh token the other would use: unserialised, one would fail.
    let (a, b) = tokio::join!(forwarded(&gw, &cookie), forwarded(&gw, &cookie));
    assert_ne!(access_token(&a), access_token(&old));
    assert_ne!(access_token(&b), access_token(&old));
    let stored = gw.tokens(&session, "dev").await.unwrap();
    assert_eq!(refresh_at(&gw.idp, &refresh_token(&stored), "gateway-dev").await.0, 200, "the kept one works");
}

#[tokio::test]
async fn a_refused_refresh_keeps_the_old_tokens_and_the_sign_in() {
    let gw = Gateway::with_access_lifetime(Duration::from_secs(1));
    let (session, cookie) = gw.sign_in("dev", "ada").await;
    let old = gw.tokens(&session, "dev").await.unwrap();
    // Someone else spends the refresh token first.
    assert_eq!(refresh_at(&gw.idp, &refresh_token(&old), "gateway-dev").await.0, 200);
    until_expired(&old).await;

    let kept = forwarded(&gw, &cookie).await;
    assert_eq!(access_token(&kept), access_token(&old), "refresh.rs gives back the tokens it was handed");
    let stored = gw.tokens(&session, "dev").await.expect("still signed in");
    assert_eq!(access_token(&stored), access_token(&old));
    assert_eq!(refresh_token(&stored), refresh_token(&old));
}
