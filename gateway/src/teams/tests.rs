//! The Teams loop's decisions, and Bot Framework token checks against real RS256 signatures.

use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::SecretString;
use serde_json::{json, Value};

use super::*;
use crate::config::types::{ProviderName, Ttl};
use crate::config::SessionSecret;
use crate::identity::Identity;
use crate::providers::http_client::{HttpClient, HttpError, HttpRequest, HttpResponse};

const RSA_A: &[u8] = include_bytes!("../../../tests/fixtures/keys/rsa-a.der");
const RSA_A_N: &str = include_str!("../../../tests/fixtures/keys/rsa-a.n");
const RSA_B: &[u8] = include_bytes!("../../../tests/fixtures/keys/rsa-b.der");
const APP_ID: &str = "bot-app-id";
const SERVICE_URL: &str = "https://smba.trafficmanager.net/amer/";
const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";

/// Serves the Bot Framework metadata and keys (one endorsed for msteams, one not).
struct BotKeys {
    fetches: AtomicUsize,
}

#[async_trait]
impl HttpClient for BotKeys {
    async fn send(&self, req: HttpRequest) -> Result<HttpResponse, HttpError> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        let path = req.uri().path();
        let body = if path.ends_with("openidconfiguration") {
            json!({"issuer": "https://api.botframework.com", "jwks_uri": "https://login.botframework.test/keys"})
        } else if path == format!("/{TENANT}/v2.0/.well-known/openid-configuration") {
            json!({"issuer": format!("https://login.entra.test/{TENANT}/v2.0"), "jwks_uri": format!("https://login.entra.test/{TENANT}/discovery/v2.0/keys")})
        } else if path.contains("/discovery/") {
            json!({"keys": [{"kty": "RSA", "kid": "entra", "use": "sig", "n": RSA_A_N.trim(), "e": "AQAB"}]})
        } else {
            let key = |kid: &str, endorsements: Value| json!({"kty": "RSA", "kid": kid, "use": "sig", "n": RSA_A_N.trim(), "e": "AQAB", "endorsements": endorsements});
            json!({"keys": [key("teams", json!(["msteams", "webchat"])), key("other", json!(["skype"]))]})
        };
        Ok(http::Response::builder().status(200).body(body.to_string().into_bytes()).unwrap())
    }
}

fn config(verify: bool) -> TeamsConfig {
    TeamsConfig {
        bot_path: "/api/messages".into(),
        provider: ProviderName::parse("entra").unwrap(),
        app_id: APP_ID.into(),
        verify_bot_token: verify,
        openid_metadata: url::Url::parse("https://login.botframework.test/v1/.well-known/openidconfiguration").unwrap(),
        tenant: None,
        sso: false,
        scopes: Vec::new(),
        code_ttl: Ttl::new(Duration::from_secs(600)).unwrap(),
        pass_through: false,
    }
}

fn service(verify: bool) -> TeamsService {
    service_with(config(verify))
}

fn service_with(config: TeamsConfig) -> TeamsService {
    let secret = SessionSecret::parse(SecretString::from("s".repeat(40))).unwrap();
    let keys = Keyring::from_secrets(&[secret]);
    let http = Arc::new(BotKeys { fetches: AtomicUsize::new(0) });
    let store = Arc::new(crate::store::memory::MemoryStore::new(Duration::from_secs(60)));
    TeamsService::new(&config, keys, store, Duration::from_secs(60), "https://gw.test".into(), http)
}

fn tokens() -> StoredTokens {
    StoredTokens {
        identity: Identity {
            provider: ProviderName::parse("entra").unwrap(),
            subject: "oid-1".into(),
            email: Some("ada@contoso.test".into()),
            preferred_username: None,
            name: Some("Ada".into()),
            tenant: Some("contoso-tid".into()),
            groups: Vec::new(),
            roles: Vec::new(),
        },
        access_token: SecretString::from("at".to_owned()),
        refresh_token: None,
        access_expires_at: None,
        signed_in_at: SystemTime::now(),
        header_values: Default::default(),
    }
}

fn query(user: &str, state: Option<&str>) -> Vec<u8> {
    let mut value = json!({"commandId": "search", "parameters": [{"name": "q", "value": "x"}]});
    if let Some(s) = state {
        value["state"] = json!(s);
    }
    json!({"type": "invoke", "name": "composeExtension/query", "serviceUrl": SERVICE_URL,
           "from": {"id": "29:x", "aadObjectId": user}, "channelData": {"tenant": {"id": "tid"}}, "value": value})
    .to_string()
    .into_bytes()
}

fn auth_url(d: &BotDecision) -> String {
    match d {
        BotDecision::Reply(v) => {
            v["composeExtension"]["suggestedActions"]["actions"][0]["value"].as_str().unwrap().to_owned()
        }
        other => panic!("expected the auth answer, got {other:?}"),
    }
}

#[tokio::test]
async fn unknown_user_gets_the_auth_answer_with_a_signed_reference_to_that_user() {
    let t = service(false);
    let d = t.handle(None, &query("u1", None), None).await;
    let url = auth_url(&d);
    assert!(url.starts_with("https://gw.test/connect/entra/t."), "{url}");
    let ticket = url.split('/').nth(5).unwrap().split('?').next().unwrap();
    assert_eq!(TeamsService::verify_reference(&t.keys, ticket).as_deref(), Some("tid/u1"));
    let mut forged = ticket.to_owned();
    forged.replace_range(5..6, if &forged[5..6] == "A" { "B" } else { "A" });
    assert!(TeamsService::verify_reference(&t.keys, &forged).is_none());
}

#[tokio::test]
async fn the_right_code_forwards_without_state_and_later_queries_pass() {
    let t = service(false);
    let code = t.begin_pending("tid/u1", tokens()).await.unwrap();
    match t.handle(None, &query("u1", Some(&code)), None).await {
        BotDecision::Forward { tokens: Some(tk), body: Some(body) } => {
            assert_eq!(tk.identity.subject, "oid-1");
            let v: Value = serde_json::from_slice(&body).unwrap();
            assert!(v["value"].get("state").is_none());
            assert_eq!(v["value"]["commandId"], "search");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        t.handle(None, &query("u1", None), None).await,
        BotDecision::Forward { tokens: Some(_), body: None }
    ));
    // Single use: the same code again is not a sign-in for someone else.
    assert!(matches!(t.handle(None, &query("u2", Some(&code)), None).await, BotDecision::Reply(_)));
}

#[tokio::test]
async fn wrong_codes_answer_auth_again_and_the_fifth_discards_the_sign_in() {
    let t = service(false);
    let code = t.begin_pending("tid/u1", tokens()).await.unwrap();
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for _ in 0..4 {
        assert!(matches!(t.handle(None, &query("u1", Some(wrong)), None).await, BotDecision::Reply(_)));
    }
    // Another user's attempt with the right code does not count for or against u1.
    assert!(matches!(t.handle(None, &query("u2", Some(&code)), None).await, BotDecision::Reply(_)));
    assert!(matches!(t.handle(None, &query("u1", Some(wrong)), None).await, BotDecision::Reply(_)));
    assert!(
        matches!(t.handle(None, &query("u1", Some(&code)), None).await, BotDecision::Reply(_)),
        "discarded after 5"
    );
}

#[tokio::test]
async fn verify_state_invoke_and_a_typed_code_validate_without_forwarding() {
    let t = service(false);
    let code = t.begin_pending("tid/u1", tokens()).await.unwrap();
    let verify = json!({"type": "invoke", "name": "signin/verifyState", "from": {"aadObjectId": "u1", "id": "29:x"},
                        "channelData": {"tenant": {"id": "tid"}}, "value": {"state": code}});
    assert!(matches!(t.handle(None, verify.to_string().as_bytes(), None).await, BotDecision::Reply(_)));
    assert!(matches!(t.handle(None, &query("u1", None), None).await, BotDecision::Forward { tokens: Some(_), .. }));

    let code = t.begin_pending("tid/u2", tokens()).await.unwrap();
    let message = json!({"type": "message", "text": code, "from": {"aadObjectId": "u2", "id": "29:y"},
                         "channelData": {"tenant": {"id": "tid"}}});
    assert!(matches!(t.handle(None, message.to_string().as_bytes(), None).await, BotDecision::Reply(_)));
}

#[tokio::test]
async fn malformed_and_oversized_activities_are_refused() {
    let t = service(false);
    assert_eq!(refusal_status(t.handle(None, b"{not json", None).await), Some(400));
    let big = vec![b'a'; activity::MAX_ACTIVITY_BYTES + 1];
    assert_eq!(refusal_status(t.handle(None, &big, None).await), Some(413));
}

fn bot_token(key: &[u8], kid: &str, claims: Value) -> String {
    let mut h = Header::new(Algorithm::RS256);
    h.kid = Some(kid.into());
    format!("Bearer {}", jsonwebtoken::encode(&h, &claims, &EncodingKey::from_rsa_der(key)).unwrap())
}

fn claims() -> Value {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    json!({"iss": "https://api.botframework.com", "aud": APP_ID, "exp": now + 600, "nbf": now - 10, "serviceurl": SERVICE_URL})
}

/// The status the bot endpoint answers for a refused request; `None` when not refused.
fn refusal_status(decision: BotDecision) -> Option<u16> {
    match decision {
        BotDecision::Refuse(r) => Some(crate::respond::bot_refusal(&r).status()),
        _ => None,
    }
}

async fn refused(t: &TeamsService, auth: Option<&str>) -> Option<u16> {
    refusal_status(t.handle(auth, &query("u1", None), None).await)
}

#[tokio::test]
async fn bot_tokens_are_checked_before_anything_else() {
    let t = service(true);
    let good = bot_token(RSA_A, "teams", claims());
    assert!(matches!(t.handle(Some(&good), &query("u1", None), None).await, BotDecision::Reply(_)));
    assert_eq!(refused(&t, None).await, Some(401));
    assert_eq!(refused(&t, Some(&bot_token(RSA_B, "teams", claims()))).await, Some(401), "forged signature");
    let mut c = claims();
    c["aud"] = json!("another-bot");
    assert_eq!(refused(&t, Some(&bot_token(RSA_A, "teams", c))).await, Some(401), "wrong audience");
    let mut c = claims();
    c["exp"] = json!(1_000_000);
    assert_eq!(refused(&t, Some(&bot_token(RSA_A, "teams", c))).await, Some(401), "expired");
    let mut c = claims();
    c["nbf"] = json!(c["exp"].as_u64().unwrap() + 3000);
    assert_eq!(refused(&t, Some(&bot_token(RSA_A, "teams", c))).await, Some(401), "not valid before an hour from now");
    let mut c = claims();
    c["serviceurl"] = json!("https://evil.example/");
    assert_eq!(refused(&t, Some(&bot_token(RSA_A, "teams", c))).await, Some(401), "wrong serviceUrl");
    assert_eq!(refused(&t, Some(&bot_token(RSA_A, "other", claims()))).await, Some(401), "not endorsed for msteams");
    let mut c = claims();
    c["iss"] = json!("https://sts.windows.net/x/");
    assert_eq!(refused(&t, Some(&bot_token(RSA_A, "teams", c))).await, Some(401), "wrong issuer");
}

#[tokio::test]
async fn a_single_tenant_bot_accepts_its_tenants_entra_tokens_and_nothing_else() {
    let mut single = config(true);
    single.tenant = Some((TENANT.to_owned(), url::Url::parse("https://login.entra.test").unwrap()));
    let t = service_with(single);
    let entra = |iss: String, kid: &str| {
        let mut c = claims();
        c["iss"] = json!(iss);
        bot_token(RSA_A, kid, c)
    };
    let v1 = entra(format!("https://sts.windows.net/{TENANT}/"), "entra");
    let v2 = entra(format!("https://login.entra.test/{TENANT}/v2.0"), "entra");
    for token in [&v1, &v2] {
        assert!(matches!(t.handle(Some(token), &query("u1", None), None).await, BotDecision::Reply(_)), "{token}");
    }
    assert!(matches!(
        t.handle(Some(bot_token(RSA_A, "teams", claims()).as_str()), &query("u1", None), None).await,
        BotDecision::Reply(_)
    ));
    let other_tenant = entra("https://sts.windows.net/00000000-0000-0000-0000-000000000001/".into(), "entra");
    assert_eq!(refused(&t, Some(&other_tenant)).await, Some(401), "another tenant's issuer");
    let bot_key = entra(format!("https://sts.windows.net/{TENANT}/"), "teams");
    assert_eq!(refused(&t, Some(&bot_key)).await, Some(401), "a Bot Framework key for the tenant's issuer");
    let entra_key = bot_token(RSA_A, "entra", claims());
    assert_eq!(refused(&t, Some(&entra_key)).await, Some(401), "an Entra key for the Bot Framework issuer");
    let mut future = claims();
    future["iss"] = json!(format!("https://sts.windows.net/{TENANT}/"));
    future["nbf"] = json!(future["exp"].as_u64().unwrap() + 3000);
    assert_eq!(refused(&t, Some(&bot_token(RSA_A, "entra", future))).await, Some(401), "nbf in an hour");
    // Without `tenant`, Entra-issued tokens are refused.
    assert_eq!(refused(&service(true), Some(&v1)).await, Some(401));
}

/// A sign-in service that accepts the token "good" (and counts the exchanges).
struct FakeSso {
    exchanges: AtomicUsize,
}

#[async_trait]
impl TeamsSso for FakeSso {
    async fn sign_in_with_token(
        &self,
        _provider: &str,
        token: &str,
        scopes: &[String],
    ) -> Result<Arc<StoredTokens>, String> {
        self.exchanges.fetch_add(1, Ordering::SeqCst);
        assert_eq!(scopes, ["https://graph.microsoft.com/User.Read"]);
        (token == "good").then(|| Arc::new(tokens())).ok_or_else(|| "invalid_token".to_owned())
    }
}

fn exchange(id: &str, token: &str) -> Vec<u8> {
    json!({"type": "invoke", "name": "signin/tokenExchange", "serviceUrl": SERVICE_URL,
           "from": {"id": "29:1", "aadObjectId": "u1"}, "channelData": {"tenant": {"id": "tid"}},
           "value": {"id": id, "connectionName": "sso", "token": token}})
    .to_string()
    .into_bytes()
}

#[tokio::test]
async fn token_exchange_invokes_validate_the_user_once_and_copies_or_bad_tokens_get_412() {
    let mut c = config(false);
    c.sso = true;
    c.scopes = vec!["https://graph.microsoft.com/User.Read".to_owned()];
    let t = service_with(c);
    let sso = FakeSso { exchanges: AtomicUsize::new(0) };
    let invoke = |d: BotDecision| match d {
        BotDecision::Invoke { status, json } => (status, json),
        other => panic!("expected an invoke response, got {other:?}"),
    };
    assert!(
        matches!(t.handle(None, &query("u1", None), Some(&sso)).await, BotDecision::Reply(_)),
        "signed in too early"
    );
    let (status, json) = invoke(t.handle(None, &exchange("x1", "good"), Some(&sso)).await);
    assert_eq!((status, json["id"].as_str(), json["failureDetail"].is_null()), (200, Some("x1"), true));
    // The copy Teams sends from the user's other client: 412, no second exchange.
    let (status, _) = invoke(t.handle(None, &exchange("x1", "good"), Some(&sso)).await);
    assert_eq!(status, 412);
    assert_eq!(sso.exchanges.load(Ordering::SeqCst), 1);
    match t.handle(None, &query("u1", None), Some(&sso)).await {
        BotDecision::Forward { tokens: Some(tok), .. } => assert_eq!(tok.identity.subject, "oid-1"),
        other => panic!("the validated user's query was not forwarded: {other:?}"),
    }
    let (status, json) = invoke(t.handle(None, &exchange("x2", "bad"), Some(&sso)).await);
    assert_eq!((status, json["failureDetail"].is_string()), (412, true));

    // A query reissued with value.authentication.token: validated, forwarded without the token.
    let mut q: Value = serde_json::from_slice(&query("u2", None)).unwrap();
    q["value"]["authentication"] = json!({"token": "good"});
    match t.handle(None, q.to_string().as_bytes(), Some(&sso)).await {
        BotDecision::Forward { tokens: Some(_), body: Some(body) } => {
            assert!(!String::from_utf8(body).unwrap().contains("authentication"), "the token reached the bot");
        }
        other => panic!("{other:?}"),
    }
    q["value"]["authentication"] = json!({"token": "bad"});
    q["from"]["aadObjectId"] = json!("u3");
    assert_eq!(refusal_status(t.handle(None, q.to_string().as_bytes(), Some(&sso)).await), Some(412));

    // Without `sso = true` the gateway leaves token exchanges to the bot.
    let plain = service(false);
    assert!(matches!(plain.handle(None, &exchange("x3", "good"), Some(&sso)).await, BotDecision::Forward { .. }));
}
