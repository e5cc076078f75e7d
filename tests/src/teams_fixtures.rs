//! Teams messaging-extension fixtures: activities from `tests/fixtures/teams/`, a bot service that
//! records every request whole, a local Bot Framework token issuer and its tokens, the `[teams]`
//! gateway config, and the popup sign-in that yields the security code.
//!
//! ```text
//! BotService::start()     any request ─▶ 200 {"composeExtension":{"type":"result",..}}, kept whole
//! BotIssuer::start()      GET /v1/.well-known/openidconfiguration, GET /keys (k1 msteams, k2 skype)
//! bot_token(key, &claims) "Bearer <RS256 JWT>"; bot_claims() is valid, tests break one claim
//! TeamsSetup::default()   .verifying(&issuer) .verifying_at(url) .code_ttl("1s") .token_ttl("2s") .pass_through()
//!     .start(&bot)        a gateway with [providers.dev] and [teams] in front of the bot service
//! Activity::load("query") .from_user("b") .with_state(code) .with_text(t) .bytes()
//! TeamsClient::new(&gw)   .post(bytes, headers) / .post_chunked(bytes, n) ─▶ BotAnswer { status, content_type, body }
//! sign_in(endpoint, url, "ada") the popup from the `auth` answer's URL ─▶ the 6-digit code
//! ```

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, ensure, Context};
use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::gateway::{Endpoint, TestGateway};
use crate::signin::{Browser, Page};
use crate::{ports, GatewayConfig};

/// The bot endpoint the gateway guards.
pub const BOT_PATH: &str = "/api/messages";
/// The bot's Microsoft app id: the audience of its tokens.
pub const APP_ID: &str = "test-bot-app";
/// The `serviceUrl` of every fixture activity (and the `serviceurl` claim of valid tokens).
pub const SERVICE_URL: &str = "https://smba.trafficmanager.net/amer/";
/// The issuer of Bot Framework tokens.
pub const BOT_ISSUER: &str = "https://api.botframework.com";
/// Where [`BotIssuer`] serves its OpenID metadata.
pub const METADATA_PATH: &str = "/v1/.well-known/openidconfiguration";
/// Where [`BotIssuer`] serves its keys.
pub const KEYS_PATH: &str = "/keys";
/// Largest activity the gateway accepts (bounded size; 64 KiB).
pub const MAX_ACTIVITY_BYTES: usize = 64 * 1024;

const RSA_A: &[u8] = include_bytes!("../fixtures/keys/rsa-a.der");
const RSA_A_N: &str = include_str!("../fixtures/keys/rsa-a.n");
const RSA_B: &[u8] = include_bytes!("../fixtures/keys/rsa-b.der");
const RSA_B_N: &str = include_str!("../fixtures/keys/rsa-b.n");

/// Largest request body the stub servers read.
const MAX_STUB_BODY: usize = 1024 * 1024;
/// How many binds a stub server tries before giving up.
const BIND_ATTEMPTS: u32 = 50;

/// What the bot service answers to every query it receives.
pub fn bot_result() -> Value {
    json!({"composeExtension": {"type": "result", "attachmentLayout": "list", "attachments": []}})
}

/// One request a stub server received, body included.
#[derive(Debug, Clone)]
pub struct Received {
    /// Method, e.g. `POST`.
    pub method: String,
    /// Path without the query.
    pub path: String,
    /// Every header: lower-case name → values in arrival order.
    pub headers: BTreeMap<String, Vec<String>>,
    /// The whole body.
    pub body: Vec<u8>,
}

impl Received {
    /// All values of header `name` (any case); empty when absent.
    pub fn header_values(&self, name: &str) -> &[String] {
        self.headers.get(&name.to_ascii_lowercase()).map_or(&[], Vec::as_slice)
    }

    /// The body as JSON.
    pub fn json(&self) -> anyhow::Result<Value> {
        serde_json::from_slice(&self.body).with_context(|| {
            format!("the bot received a body that is not JSON: {}", String::from_utf8_lossy(&self.body))
        })
    }
}

type Answer = Arc<dyn Fn(&Received, SocketAddr) -> (u16, Value) + Send + Sync>;

/// A small HTTP/1.1 server on `127.0.0.1` that answers JSON and keeps every request; stops on drop.
struct Stub {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    shutdown: watch::Sender<bool>,
}

impl Stub {
    async fn start(what: &str, answer: Answer) -> anyhow::Result<Self> {
        for _ in 0..BIND_ATTEMPTS {
            let listener =
                TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.with_context(|| format!("{what}: cannot bind"))?;
            let addr = listener.local_addr().with_context(|| format!("{what}: listener has no address"))?;
            if ports::reserve(addr.port()) {
                let received = Arc::new(Mutex::new(Vec::new()));
                let (shutdown, stop) = watch::channel(false);
                tokio::spawn(accept_loop(listener, addr, Arc::clone(&received), answer, stop));
                return Ok(Self { addr, received, shutdown });
            }
        }
        bail!("{what}: every port the system offered was already handed out")
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.shutdown.send_replace(true);
    }
}

async fn accept_loop(
    listener: TcpListener,
    addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    answer: Answer,
    stop: watch::Receiver<bool>,
) {
    crate::http_serve::serve(listener, stop, || {
        let (received, answer) = (Arc::clone(&received), Arc::clone(&answer));
        service_fn(move |req| {
            let (received, answer) = (Arc::clone(&received), Arc::clone(&answer));
            async move { Ok::<_, Infallible>(handle(req, addr, &received, &answer).await) }
        })
    })
    .await;
}

async fn handle(
    req: Request<Incoming>,
    addr: SocketAddr,
    received: &Mutex<Vec<Received>>,
    answer: &Answer,
) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_STUB_BODY).collect().await {
        Ok(collected) => collected.to_bytes().to_vec(),
        Err(e) => return json_response(400, &json!({"error": format!("cannot read the body: {e}")})),
    };
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in &parts.headers {
        headers.entry(name.as_str().to_owned()).or_default().push(String::from_utf8_lossy(value.as_bytes()).into());
    }
    let request = Received { method: parts.method.to_string(), path: parts.uri.path().to_owned(), headers, body };
    let (status, json) = answer(&request, addr);
    received.lock().unwrap_or_else(PoisonError::into_inner).push(request);
    json_response(status, &json)
}

fn json_response(status: u16, json: &Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(json.to_string())))
        .unwrap_or_else(|_| Response::new(Full::default()))
}

/// The messaging-extension service behind the gateway: answers [`bot_result`] to everything and
/// keeps every request it received, body and headers included.
pub struct BotService(Stub);

impl BotService {
    /// Starts on an ephemeral `127.0.0.1` port.
    pub async fn start() -> anyhow::Result<Self> {
        Ok(Self(Stub::start("bot service", Arc::new(|_, _| (200, bot_result()))).await?))
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.0.addr
    }

    /// Every request that reached [`BOT_PATH`], in arrival order.
    pub fn activities(&self) -> Vec<Received> {
        self.0.received().into_iter().filter(|r| r.path == BOT_PATH).collect()
    }
}

/// Which key signs a bot token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BotKey {
    /// Key `k1` (rsa-a), published and endorsed for `msteams`.
    Teams,
    /// rsa-b under key id `k1`: a forged signature.
    Forged,
    /// Key `k2` (rsa-b), published but endorsed only for `skype`.
    SkypeOnly,
}

/// A local stand-in for the Bot Framework's OpenID metadata and signing keys.
pub struct BotIssuer(Stub);

impl BotIssuer {
    /// Starts on an ephemeral `127.0.0.1` port.
    pub async fn start() -> anyhow::Result<Self> {
        let answer: Answer = Arc::new(|req, addr| match req.path.as_str() {
            METADATA_PATH => (200, json!({"issuer": BOT_ISSUER, "jwks_uri": format!("http://{addr}{KEYS_PATH}")})),
            KEYS_PATH => {
                let key = |kid: &str, n: &str, endorsements: Value| json!({"kty": "RSA", "kid": kid, "use": "sig", "n": n.trim(), "e": "AQAB", "endorsements": endorsements});
                (200, json!({"keys": [key("k1", RSA_A_N, json!(["msteams"])), key("k2", RSA_B_N, json!(["skype"]))]}))
            }
            _ => (404, json!({"error": "not found"})),
        });
        Ok(Self(Stub::start("bot token issuer", answer).await?))
    }

    /// The OpenID metadata URL for `teams.openid_metadata`.
    pub fn metadata_url(&self) -> String {
        format!("http://{}{METADATA_PATH}", self.0.addr)
    }

    /// How many times the keys were fetched.
    pub fn key_fetches(&self) -> usize {
        self.0.received().iter().filter(|r| r.path == KEYS_PATH).count()
    }
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Valid claims of a Bot Framework token for [`APP_ID`] and [`SERVICE_URL`].
pub fn bot_claims() -> Value {
    let now = now_secs();
    json!({"iss": BOT_ISSUER, "aud": APP_ID, "iat": now - 10, "nbf": now - 10, "exp": now + 3600,
           "serviceurl": SERVICE_URL})
}

/// `Bearer <jwt>`: `claims` signed RS256 with `key`.
pub fn bot_token(key: BotKey, claims: &Value) -> anyhow::Result<String> {
    let (der, kid) = match key {
        BotKey::Teams => (RSA_A, "k1"),
        BotKey::Forged => (RSA_B, "k1"),
        BotKey::SkypeOnly => (RSA_B, "k2"),
    };
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    let jwt = jsonwebtoken::encode(&header, claims, &EncodingKey::from_rsa_der(der)).context("cannot sign")?;
    Ok(format!("Bearer {jwt}"))
}

/// The `[teams]` settings of a test gateway (provider `dev`, app id [`APP_ID`]).
#[derive(Debug, Clone, Default)]
pub struct TeamsSetup {
    metadata: Option<String>,
    code_ttl: Option<String>,
    token_ttl: Option<String>,
    pass_through: bool,
}

impl TeamsSetup {
    /// `verify_bot_token = true` against `issuer` (otherwise `false`).
    pub fn verifying(self, issuer: &BotIssuer) -> Self {
        self.verifying_at(&issuer.metadata_url())
    }

    /// `verify_bot_token = true` with `openid_metadata = url`.
    pub fn verifying_at(mut self, url: &str) -> Self {
        self.metadata = Some(url.to_owned());
        self
    }

    /// `teams.code_ttl`, e.g. `"1s"`.
    pub fn code_ttl(mut self, ttl: &str) -> Self {
        self.code_ttl = Some(ttl.to_owned());
        self
    }

    /// `session.token_ttl`, e.g. `"2s"`.
    pub fn token_ttl(mut self, ttl: &str) -> Self {
        self.token_ttl = Some(ttl.to_owned());
        self
    }

    /// `teams.pass_through = true`.
    pub fn pass_through(mut self) -> Self {
        self.pass_through = true;
        self
    }

    /// The gateway config: plain HTTP on a free port in front of `bot`, `dev` provider, `[teams]`.
    pub fn config(&self, bot: SocketAddr) -> anyhow::Result<GatewayConfig> {
        let mut teams = format!(
            "[teams]\nbot_path = \"{BOT_PATH}\"\nprovider = \"dev\"\napp_id = \"{APP_ID}\"\n\
             verify_bot_token = {}\npass_through = {}\n",
            self.metadata.is_some(),
            self.pass_through
        );
        if let Some(url) = &self.metadata {
            teams.push_str(&format!("openid_metadata = \"{url}\"\n"));
        }
        if let Some(ttl) = &self.code_ttl {
            teams.push_str(&format!("code_ttl = \"{ttl}\"\n"));
        }
        let mut config = GatewayConfig::on_free_port(&[bot])?.plain_http_cookies();
        if let Some(ttl) = &self.token_ttl {
            config = config.session_key(&format!("token_ttl = \"{ttl}\""));
        }
        Ok(config.extra("[providers.dev]\nkind = \"dev\"\n").extra(&teams))
    }

    /// Starts the gateway of [`TeamsSetup::config`] in this process.
    pub async fn start(&self, bot: &BotService) -> anyhow::Result<TestGateway> {
        TestGateway::with_toml(self.config(bot.addr())?).start().await
    }
}

/// A Bot Framework activity loaded from `tests/fixtures/teams/NAME.json`, to adjust and send.
#[derive(Debug, Clone, PartialEq)]
pub struct Activity(pub Value);

impl Activity {
    /// Loads `tests/fixtures/teams/{name}.json` (`query`, `verify-state`, `message`).
    pub fn load(name: &str) -> anyhow::Result<Self> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/teams").join(format!("{name}.json"));
        let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let json: Value = serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
        ensure!(json.is_object(), "{} is not an activity", path.display());
        Ok(Self(json))
    }

    /// The same activity from another Teams user of the same tenant (`from.id`, `from.aadObjectId`).
    pub fn from_user(mut self, aad_object_id: &str) -> Self {
        self.0["from"]["id"] = json!(format!("29:{aad_object_id}"));
        self.0["from"]["aadObjectId"] = json!(aad_object_id);
        self
    }

    /// Sets `value.state` (the code Teams sends back after the sign-in).
    pub fn with_state(mut self, code: &str) -> Self {
        self.0["value"]["state"] = json!(code);
        self
    }

    /// Sets `name` (which invoke).
    pub fn named(mut self, name: &str) -> Self {
        self.0["name"] = json!(name);
        self
    }

    /// Sets `text` (messages).
    pub fn with_text(mut self, text: &str) -> Self {
        self.0["text"] = json!(text);
        self
    }

    /// Sets any field by JSON pointer-like path of object keys, e.g. `["value", "queryOptions"]`.
    pub fn with(mut self, keys: &[&str], value: Value) -> Self {
        let mut at = &mut self.0;
        for key in keys {
            at = &mut at[*key];
        }
        *at = value;
        self
    }

    /// The serialised activity.
    pub fn bytes(&self) -> Vec<u8> {
        self.0.to_string().into_bytes()
    }
}

/// What the gateway answered on [`BOT_PATH`].
#[derive(Debug, Clone)]
pub struct BotAnswer {
    /// Status code.
    pub status: u16,
    /// `Content-Type`, empty when absent.
    pub content_type: String,
    /// Body (lossy text).
    pub body: String,
}

impl BotAnswer {
    /// The body as JSON.
    pub fn json(&self) -> anyhow::Result<Value> {
        serde_json::from_str(&self.body).with_context(|| format!("not JSON ({}): {}", self.status, self.body))
    }

    /// The sign-in URL of an `auth` answer; fails unless this is exactly a 200 JSON `auth` answer.
    pub fn sign_in_url(&self) -> anyhow::Result<String> {
        ensure!(self.status == 200, "expected the 200 auth answer, got {}: {}", self.status, self.body);
        ensure!(self.content_type.starts_with("application/json"), "auth answer typed {:?}", self.content_type);
        let json = self.json()?;
        let url = json["composeExtension"]["suggestedActions"]["actions"][0]["value"]
            .as_str()
            .with_context(|| format!("no openUrl value in {json}"))?
            .to_owned();
        let expected = json!({"composeExtension": {"type": "auth", "suggestedActions": {"actions": [
            {"type": "openUrl", "value": url, "title": "Sign in to this app"}]}}});
        ensure!(json == expected, "not the auth answer: {json}");
        Ok(url)
    }
}

/// Sends activities to a gateway's [`BOT_PATH`] as the Bot Framework service would.
pub struct TeamsClient {
    client: reqwest::Client,
    url: String,
}

impl TeamsClient {
    /// A client for `gateway`.
    pub fn new(gateway: &TestGateway) -> anyhow::Result<Self> {
        Ok(Self { client: gateway.client()?, url: gateway.url(BOT_PATH) })
    }

    /// `POST {BOT_PATH}` with a JSON body and extra `headers` (e.g. `authorization`).
    pub async fn post(&self, body: impl Into<Vec<u8>>, headers: &[(&str, &str)]) -> anyhow::Result<BotAnswer> {
        let mut request = self.client.post(&self.url).header(CONTENT_TYPE, "application/json").body(body.into());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        Self::answer(request).await
    }

    /// `POST {BOT_PATH}` with the body sent chunked (`Transfer-Encoding: chunked`), `chunk` bytes a piece.
    pub async fn post_chunked(&self, body: Vec<u8>, chunk: usize) -> anyhow::Result<BotAnswer> {
        let pieces: Vec<Result<Vec<u8>, std::io::Error>> = body.chunks(chunk.max(1)).map(|c| Ok(c.to_vec())).collect();
        let stream = reqwest::Body::wrap_stream(futures_util::stream::iter(pieces));
        let request = self.client.post(&self.url).header(CONTENT_TYPE, "application/json").body(stream);
        Self::answer(request).await
    }

    async fn answer(request: reqwest::RequestBuilder) -> anyhow::Result<BotAnswer> {
        let resp = request.send().await.context("POST to the bot path")?;
        let status = resp.status().as_u16();
        let content_type =
            resp.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        let body = resp.text().await.context("cannot read the gateway's answer")?;
        Ok(BotAnswer { status, content_type, body })
    }

    /// Posts `activity` and returns the sign-in URL of the `auth` answer it must get.
    pub async fn expect_auth(&self, activity: &Activity, headers: &[(&str, &str)]) -> anyhow::Result<String> {
        self.post(activity.bytes(), headers).await?.sign_in_url()
    }
}

/// The security code on a completion page: in its JSON data (`"code":"NNNNNN"`) and in the text
/// (`type this code in Teams: NNNNNN`), which must agree.
pub fn security_code(html: &str) -> anyhow::Result<String> {
    let digits_after = |marker: &str| -> anyhow::Result<String> {
        let start = html.find(marker).with_context(|| format!("no {marker:?} on the completion page: {html}"))?;
        Ok(html[start + marker.len()..].chars().take_while(char::is_ascii_digit).collect())
    };
    let in_data = digits_after("\"code\":\"")?;
    let in_text = digits_after("type this code in Teams: ")?;
    ensure!(in_data.len() >= 6, "the code {in_data:?} has fewer than 6 digits");
    ensure!(in_data == in_text, "the page's data says {in_data} but its text says {in_text}");
    Ok(in_data)
}

/// Opens the `auth` answer's `url` as the Teams popup would, signs in to `dev` as `username`, and
/// returns the security code the completion page shows.
pub async fn sign_in(endpoint: &Endpoint, url: &str, username: &str) -> anyhow::Result<String> {
    security_code(&sign_in_page(endpoint, url, username).await?.body)
}

/// [`sign_in`]'s popup in a fresh browser, ending on the completion page (200 required).
pub async fn sign_in_page(endpoint: &Endpoint, url: &str, username: &str) -> anyhow::Result<Page> {
    Browser::new(endpoint)?.sign_in_via(url, username).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn security_code_reads_matching_data_and_text() {
        let page = r#"<script type="application/json">{"code":"042917","status":"success"}</script>
            <p>Signed in as Dev User ada. If this window stays open, type this code in Teams: 042917</p>"#;
        assert_eq!(security_code(page).unwrap(), "042917");
        assert!(security_code(&page.replace("Teams: 042917", "Teams: 111111")).is_err());
    }

    #[test]
    fn fixtures_are_teams_shaped() {
        let query = Activity::load("query").unwrap();
        assert_eq!(query.0["name"], "composeExtension/query");
        assert_eq!(query.0["serviceUrl"], SERVICE_URL);
        assert!(query.0["value"]["queryOptions"].is_object() && query.0["channelData"]["tenant"]["id"].is_string());
        assert_eq!(Activity::load("verify-state").unwrap().0["name"], "signin/verifyState");
        assert_eq!(Activity::load("message").unwrap().0["type"], "message");
    }
}
