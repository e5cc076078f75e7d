//! One gateway's sign-in layer and a browser's part in it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method};
use tokio::sync::broadcast;

use crate::auth::callback::CallbackFailure;
use crate::auth::flow::FlowRecord;
use crate::auth::{AuthRequest, AuthService, Completed};
use crate::channel::hub::Membership;
use crate::channel::{Hub, StatusEvent};
use crate::config::types::ProviderName;
use crate::config::{Config, RouteRule};
use crate::metrics::Metrics;
use crate::providers::dev::DevIdp;
use crate::providers::http_client::{HttpClient, HttpError, HttpRequest, HttpResponse, NetClient, RoutedClient};
use crate::providers::ProviderRegistry;
use crate::session::{Keyring, SessionId};
use crate::store::memory::MemoryStore;
use crate::store::{Handoff, Removal, StoreError, StoredTokens, TokenStore};

/// The gateway's origin.
pub(super) const ORIGIN: &str = "https://localhost:3001";

/// `dev` signs anyone in; `dev2` (another client of the same dev provider) only boss.
/// `/api/` forwards the access token; `/admin/` lets only boss pass.
const CONFIG: &str = r#"
[server]
listen = "127.0.0.1:3001"
public_url = "https://localhost:3001"
[upstream]
addrs = ["127.0.0.1:3000"]
[session]
secret = "env:GATEWAY_SECRET"
[providers.dev]
kind = "dev"
[providers.dev2]
kind = "dev"
client_id = "dev-two"
allowed_emails = ["boss@dev.example"]
[[routes]]
prefix = "/api/"
require = ["dev"]
forward_access_token = true
[[routes]]
prefix = "/admin/"
require = ["dev"]
allow = { emails = ["boss@dev.example"] }
"#;

fn env(name: &str) -> Option<String> {
    (name == "GATEWAY_SECRET").then(|| "0123456789abcdef0123456789abcdef0123".to_owned())
}

/// A store that answers like the memory store until it is broken, then fails every call.
pub(super) struct Breakable {
    inner: MemoryStore,
    broken: AtomicBool,
}

impl Breakable {
    /// Makes every further call fail (or work again).
    pub(super) fn set_broken(&self, broken: bool) {
        self.broken.store(broken, Ordering::SeqCst);
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.broken.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("broken on purpose".into()));
        }
        Ok(())
    }
}

#[async_trait]
impl TokenStore for Breakable {
    async fn put_tokens(&self, session: &SessionId, tokens: StoredTokens) -> Result<(), StoreError> {
        self.check()?;
        self.inner.put_tokens(session, tokens).await
    }
    async fn tokens(&self, s: &SessionId, p: &ProviderName) -> Result<Option<Arc<StoredTokens>>, StoreError> {
        self.check()?;
        self.inner.tokens(s, p).await
    }
    async fn remove_tokens(
        &self,
        session: &SessionId,
        provider: Option<&ProviderName>,
        all: &[ProviderName],
    ) -> Result<Vec<Arc<StoredTokens>>, StoreError> {
        self.check()?;
        self.inner.remove_tokens(session, provider, all).await
    }
    async fn put_flow(&self, state: &str, flow: FlowRecord) -> Result<(), StoreError> {
        self.check()?;
        self.inner.put_flow(state, flow).await
    }
    async fn take_flow(&self, state: &str) -> Result<Option<FlowRecord>, StoreError> {
        self.check()?;
        self.inner.take_flow(state).await
    }
    async fn session_generation(&self, session: &SessionId) -> Result<Option<u32>, StoreError> {
        self.check()?;
        self.inner.session_generation(session).await
    }
    async fn rotate_session(&self, session: &SessionId, keep_for: Duration) -> Result<u32, StoreError> {
        self.check()?;
        self.inner.rotate_session(session, keep_for).await
    }
    async fn put_handoff(&self, key: &str, handoff: Handoff, ttl: Duration) -> Result<(), StoreError> {
        self.check()?;
        self.inner.put_handoff(key, handoff, ttl).await
    }
    async fn take_handoff(&self, key: &str) -> Result<Option<Handoff>, StoreError> {
        self.check()?;
        self.inner.take_handoff(key).await
    }
    async fn claim_once(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        self.check()?;
        self.inner.claim_once(key, ttl).await
    }
    async fn put_cached(&self, key: &str, value: Vec<u8>, ttl: Duration) -> Result<(), StoreError> {
        self.check()?;
        self.inner.put_cached(key, value, ttl).await
    }
    async fn cached(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.check()?;
        self.inner.cached(key).await
    }
    async fn put_teams_state(&self, key: &str, value: Vec<u8>, ttl: Duration) -> Result<(), StoreError> {
        self.check()?;
        self.inner.put_teams_state(key, value, ttl).await
    }
    async fn teams_state(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.check()?;
        self.inner.teams_state(key).await
    }
    async fn take_teams_state(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.check()?;
        self.inner.take_teams_state(key).await
    }
    async fn count_teams(&self, key: &str, ttl: Duration) -> Result<u64, StoreError> {
        self.check()?;
        self.inner.count_teams(key, ttl).await
    }
    fn removals(&self) -> broadcast::Receiver<Removal> {
        self.inner.removals()
    }
    async fn run_maintenance(&self) {
        self.inner.run_maintenance().await;
    }
    fn token_count(&self) -> u64 {
        self.inner.token_count()
    }
}

/// The dev provider as the gateway reaches it: every request gives way once before it is
/// served, as a network round trip would, so concurrent requests interleave.
struct GivesWay(Arc<DevIdp>);

#[async_trait]
impl HttpClient for GivesWay {
    async fn send(&self, req: HttpRequest) -> Result<HttpResponse, HttpError> {
        tokio::task::yield_now().await;
        self.0.send(req).await
    }
}

/// A gateway's sign-in layer over the dev provider.
pub(super) struct Gateway {
    pub(super) auth: Arc<AuthService>,
    pub(super) idp: Arc<DevIdp>,
    pub(super) store: Arc<Breakable>,
    pub(super) hub: Arc<Hub>,
    pub(super) config: Config,
}

/// A browser's cookie jar (one cookie: the session's) as request headers.
pub(super) fn headers(cookie: Option<&str>, origin: Option<&str>) -> HeaderMap {
    let mut h = HeaderMap::new();
    if let Some(c) = cookie {
        h.insert(http::header::COOKIE, HeaderValue::from_str(c).unwrap());
    }
    if let Some(o) = origin {
        h.insert(http::header::ORIGIN, HeaderValue::from_str(o).unwrap());
    }
    h
}

/// `name=value` of a `Set-Cookie`.
pub(super) fn cookie_of(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().trim().to_owned()
}

/// A GET with `query`.
pub(super) fn get<'a>(query: &'a str, headers: &'a HeaderMap) -> AuthRequest<'a> {
    AuthRequest { method: &Method::GET, query: Some(query), headers, body: Bytes::new() }
}

/// A POST with `body`.
pub(super) fn post<'a>(query: Option<&'a str>, headers: &'a HeaderMap, body: &str) -> AuthRequest<'a> {
    AuthRequest { method: &Method::POST, query, headers, body: Bytes::from(body.to_owned()) }
}

/// The value of query parameter `name` of `url`.
pub(super) fn param(url: &url::Url, name: &str) -> Option<String> {
    url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

/// The next event of `m`, waiting at most a second.
pub(super) async fn next_event(m: &mut Membership) -> Option<StatusEvent> {
    tokio::time::timeout(Duration::from_secs(1), m.next_event()).await.ok().flatten()
}

/// No event is waiting for `m` (the auth layer announces before returning, except `auth_success`
/// after a cookie rotation, which its caller announces once the answer is written).
pub(super) fn no_event(m: &mut Membership) -> bool {
    m.events.try_recv().is_err()
}

impl Gateway {
    /// A gateway whose dev provider issues access tokens of the default lifetime.
    pub(super) fn new() -> Self {
        Self::build(None)
    }

    /// A gateway whose dev provider's access tokens live `lifetime`.
    pub(super) fn with_access_lifetime(lifetime: Duration) -> Self {
        Self::build(Some(lifetime))
    }

    fn build(lifetime: Option<Duration>) -> Self {
        let config = crate::config::load_str(CONFIG, "t.toml", &env).unwrap();
        let keys = Keyring::from_secrets(&config.session.secrets);
        let mut idp = DevIdp::new(&config.server.public_url.origin(), crate::providers::dev::clients(&config)).unwrap();
        if let Some(l) = lifetime {
            idp = idp.with_access_lifetime(l);
        }
        let idp = Arc::new(idp);
        let local = Some((idp.issuer().to_owned(), Arc::new(GivesWay(Arc::clone(&idp))) as Arc<dyn HttpClient>));
        let http: Arc<dyn HttpClient> = Arc::new(RoutedClient::new(NetClient::new().unwrap(), local));
        let providers = ProviderRegistry::from_config(&config, http);
        let store = Arc::new(Breakable {
            inner: MemoryStore::new(config.session.token_ttl.get()),
            broken: AtomicBool::new(false),
        });
        let hub = Arc::new(Hub::new(config.channel.max_sockets_per_session, None));
        let metrics = Metrics::new().unwrap();
        let dyn_store: Arc<dyn TokenStore> = Arc::clone(&store) as Arc<dyn TokenStore>;
        let auth = Arc::new(AuthService::new(&config, keys, providers, dyn_store, Arc::clone(&hub), metrics));
        Self { auth, idp, store, hub, config }
    }

    /// The route rule of `prefix`.
    pub(super) fn route(&self, prefix: &str) -> &RouteRule {
        self.config.routes.iter().find(|r| r.prefix == prefix).unwrap()
    }

    /// A new session and its cookie (`name=value`).
    pub(super) async fn new_session(&self) -> (SessionId, String) {
        let (session, set_cookie) = self.auth.ensure_session(&HeaderMap::new()).await.unwrap().unwrap();
        (session, cookie_of(&set_cookie.unwrap()))
    }

    /// Starts a sign-in at `provider` for `session`: the provider's authorization URL.
    pub(super) async fn start(&self, provider: &str, session: &SessionId) -> url::Url {
        let connect = self.auth.connect_url(provider, session).unwrap();
        let ticket = connect.rsplit('/').next().unwrap();
        let h = HeaderMap::new();
        self.auth.connect(provider, ticket, &get("", &h)).await.unwrap()
    }

    /// The user's answer on the dev provider's login page for `authorize`: approves as
    /// `username` or (with `None`) cancels. Returns the redirect back to the gateway.
    pub(super) async fn answer(&self, authorize: &url::Url, username: Option<&str>) -> url::Url {
        let form = self.idp.handle(&Method::GET, "/authorize", authorize.query(), b"").await;
        assert_eq!(form.status(), 200, "{:?}", form.body());
        let page = String::from_utf8(form.body().to_vec()).unwrap();
        let at = page.find(r#"name="request" value=""#).unwrap() + r#"name="request" value=""#.len();
        let request = &page[at..at + page[at..].find('"').unwrap()];
        let body = match username {
            Some(u) => format!("request={request}&username={u}&action=approve"),
            None => format!("request={request}&action=deny"),
        };
        let sent = self.idp.handle(&Method::POST, "/authorize", None, body.as_bytes()).await;
        assert_eq!(sent.status(), 302, "{:?}", sent.body());
        let location = sent.headers().get(http::header::LOCATION).unwrap().to_str().unwrap();
        url::Url::parse(location).unwrap()
    }

    /// The gateway's callback for `redirect` (to `/connect/{provider}/callback`) with `cookie`.
    pub(super) async fn callback(
        &self,
        redirect: &url::Url,
        cookie: Option<&str>,
    ) -> Result<Completed, CallbackFailure> {
        let provider = redirect.path().trim_start_matches("/connect/").trim_end_matches("/callback").to_owned();
        self.callback_at(&provider, redirect.query().unwrap_or(""), cookie).await
    }

    /// The gateway's callback at `provider` with `query` and `cookie`.
    pub(super) async fn callback_at(
        &self,
        provider: &str,
        query: &str,
        cookie: Option<&str>,
    ) -> Result<Completed, CallbackFailure> {
        let h = headers(cookie, None);
        self.auth.callback(provider, &get(query, &h)).await
    }

    /// A full sign-in of `username` at `provider` in the session's own cookie jar: the session
    /// and its (rotated) cookie.
    pub(super) async fn sign_in(&self, provider: &str, username: &str) -> (SessionId, String) {
        let (session, cookie) = self.new_session().await;
        let redirect = self.answer(&self.start(provider, &session).await, Some(username)).await;
        let done = self.callback(&redirect, Some(&cookie)).await.unwrap();
        (session, cookie_of(&done.set_cookie.unwrap()))
    }

    /// The tokens the store holds for `session` at `provider`.
    pub(super) async fn tokens(&self, session: &SessionId, provider: &str) -> Option<Arc<StoredTokens>> {
        self.store.tokens(session, &ProviderName::parse(provider).unwrap()).await.unwrap()
    }

    /// The session the gateway finds in `cookie`.
    pub(super) async fn session_of(&self, cookie: &str) -> Option<SessionId> {
        self.auth.session_of(&headers(Some(cookie), None)).await.unwrap()
    }
}
