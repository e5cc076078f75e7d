//! `GET /connect/{provider}/{ticket}`: a ticket starts one sign-in at its own provider.

use http::HeaderMap;

use super::harness::{get, param, Gateway, ORIGIN};
use crate::auth::error::FlowError;
use crate::session::ticket::TicketError;

fn ticket_of(connect_url: &str) -> String {
    connect_url.rsplit('/').next().unwrap().to_owned()
}

#[tokio::test]
async fn a_valid_ticket_redirects_to_the_provider_with_state_pkce_and_nonce() {
    let gw = Gateway::new();
    let (session, _) = gw.new_session().await;
    let connect = gw.auth.connect_url("dev", &session).unwrap();
    assert!(connect.starts_with("/connect/dev/"), "{connect}");
    let h = HeaderMap::new();
    let url = gw.auth.connect("dev", &ticket_of(&connect), &get("", &h)).await.unwrap();
    assert_eq!(url.as_str().split('?').next().unwrap(), format!("{ORIGIN}/_gateway/dev/authorize"));
    assert_eq!(param(&url, "response_type").as_deref(), Some("code"));
    assert_eq!(param(&url, "client_id").as_deref(), Some("gateway-dev"));
    assert_eq!(param(&url, "redirect_uri"), Some(format!("{ORIGIN}/connect/dev/callback")));
    assert_eq!(param(&url, "code_challenge_method").as_deref(), Some("S256"));
    let challenge = param(&url, "code_challenge").unwrap();
    assert_eq!(challenge.len(), 43, "a base64url SHA-256: {challenge}");
    assert!(param(&url, "state").unwrap().len() >= 43, "state carries at least 256 bits");
    assert!(param(&url, "nonce").unwrap().len() >= 43, "nonce carries at least 256 bits");
    assert!(param(&url, "scope").unwrap().split(' ').any(|s| s == "openid"));

    // Two sign-ins of one session never share a state or a nonce.
    let other = gw.start("dev", &session).await;
    assert_ne!(param(&other, "state"), param(&url, "state"));
    assert_ne!(param(&other, "nonce"), param(&url, "nonce"));
    assert_ne!(param(&other, "code_challenge"), param(&url, "code_challenge"));
}

#[tokio::test]
async fn a_ticket_starts_one_sign_in_only() {
    let gw = Gateway::new();
    let (session, _) = gw.new_session().await;
    let ticket = ticket_of(&gw.auth.connect_url("dev", &session).unwrap());
    let h = HeaderMap::new();
    assert!(gw.auth.connect("dev", &ticket, &get("", &h)).await.is_ok());
    let again = gw.auth.connect("dev", &ticket, &get("", &h)).await.unwrap_err();
    assert!(matches!(again, FlowError::Ticket(TicketError::Used)), "{again:?}");
    assert_eq!(again.oauth_code(), "invalid_request");
}

#[tokio::test]
async fn a_ticket_for_another_provider_is_refused_and_stays_good_for_its_own() {
    let gw = Gateway::new();
    let (session, _) = gw.new_session().await;
    let ticket = ticket_of(&gw.auth.connect_url("dev2", &session).unwrap());
    let h = HeaderMap::new();
    let e = gw.auth.connect("dev", &ticket, &get("", &h)).await.unwrap_err();
    assert!(matches!(e, FlowError::Ticket(TicketError::Invalid)), "{e:?}");
    let url = gw.auth.connect("dev2", &ticket, &get("", &h)).await.unwrap();
    assert_eq!(param(&url, "client_id").as_deref(), Some("dev-two"));
}

#[tokio::test]
async fn an_unknown_provider_or_a_forged_ticket_starts_nothing() {
    let gw = Gateway::new();
    let (session, _) = gw.new_session().await;
    let ticket = ticket_of(&gw.auth.connect_url("dev", &session).unwrap());
    let h = HeaderMap::new();
    let e = gw.auth.connect("nope", &ticket, &get("", &h)).await.unwrap_err();
    assert!(matches!(&e, FlowError::UnknownProvider(name) if name == "nope"), "{e:?}");
    // The refusal did not spend the ticket.
    assert!(gw.auth.connect("dev", &ticket, &get("", &h)).await.is_ok());

    let mut forged = ticket.clone().into_bytes();
    let last = forged.len() - 2;
    forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
    let e = gw.auth.connect("dev", std::str::from_utf8(&forged).unwrap(), &get("", &h)).await.unwrap_err();
    assert!(matches!(e, FlowError::Ticket(TicketError::Invalid)), "{e:?}");
}
