//! The popup sign-in flow, done by the gateway for an unmodified add-in server.
//!
//! ```text
//!  task pane           gateway                                   provider
//!  GET /_gateway/session ─▶ session cookie + connect_url (signed ticket)
//!  window.open(connect_url)
//!  popup ─ GET /connect/{p}/{ticket} ─▶ verify ticket; state, PKCE, nonce stored (10 min, single use)
//!        ◀─ 302 authorize?state&code_challenge&nonce ───────────────▶ sign-in
//!  popup ─ GET /connect/{p}/callback?code&state ◀──────────────────── 302
//!                      take state → exchange code (PKCE) ───────────▶ token endpoint
//!                      verify ID token (JWKS) / userinfo
//!                      store tokens under the session (token_ttl) → auth_success on the channel
//!        ◀─ completion page: tells opener / Office / Teams, closes the popup
//! ```

pub mod callback;
pub mod completion;
pub mod connect;
pub mod dev_idp;
pub mod error;
pub mod guard;
pub mod logout;
pub mod refresh;
pub mod session_info;

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Method};

use crate::channel::{Hub, StatusEvent};
use crate::config::types::PublicUrl;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::providers::ProviderRegistry;
use crate::session::cookie::{self, CookieSettings};
use crate::session::{Keyring, SessionId};
use crate::store::TokenStore;

/// `/connect/` routes.
pub const CONNECT_PREFIX: &str = "/connect/";
/// `GET /_gateway/session`.
pub const SESSION_PATH: &str = "/_gateway/session";
/// `POST /connect/logout`.
pub const LOGOUT_PATH: &str = "/connect/logout";

/// A gateway answer: status, headers, body.
pub type Reply = http::Response<Bytes>;

/// The parts of a request the auth handlers read.
pub struct AuthRequest<'a> {
    /// Method.
    pub method: &'a Method,
    /// Query string, without `?`.
    pub query: Option<&'a str>,
    /// Headers (identity headers already stripped).
    pub headers: &'a HeaderMap,
    /// Body, for the few POST routes (bounded by the proxy).
    pub body: Bytes,
}

impl AuthRequest<'_> {
    /// The first value of query parameter `name`.
    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query
            .and_then(|q| url::form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == name))
            .map(|(_, v)| v.into_owned())
    }
}

/// Everything the flow needs, built once from the config.
pub struct AuthService {
    pub(crate) keys: Keyring,
    pub(crate) providers: ProviderRegistry,
    pub(crate) store: Arc<dyn TokenStore>,
    pub(crate) hub: Arc<Hub>,
    pub(crate) cookie: CookieSettings,
    pub(crate) ticket_ttl: std::time::Duration,
    pub(crate) public: PublicUrl,
    pub(crate) metrics: Metrics,
    pub(crate) refresh_locks: refresh::RefreshLocks,
    pub(crate) teams: Option<Arc<crate::teams::TeamsService>>,
}

impl AuthService {
    /// Wires the flow.
    pub fn new(
        config: &Config,
        providers: ProviderRegistry,
        store: Arc<dyn TokenStore>,
        hub: Arc<Hub>,
        metrics: Metrics,
    ) -> Self {
        Self {
            keys: Keyring::from_secrets(&config.session.secrets),
            providers,
            store,
            hub,
            cookie: CookieSettings::from_config(&config.session),
            ticket_ttl: config.session.ticket_ttl.get(),
            public: config.server.public_url.clone(),
            metrics,
            refresh_locks: refresh::RefreshLocks::default(),
            teams: None,
        }
    }

    /// Connects the Teams loop, so Teams sign-ins keep their tokens pending for a code.
    pub fn with_teams(mut self, teams: Option<Arc<crate::teams::TeamsService>>) -> Self {
        self.teams = teams;
        self
    }

    /// The session of a request's cookie, if genuine.
    pub fn session_of(&self, headers: &HeaderMap) -> Option<SessionId> {
        cookie::session_from_headers(headers, &self.cookie.name, &self.keys)
    }

    /// The request's session, or a new one with the `Set-Cookie` that establishes it.
    pub fn ensure_session(&self, headers: &HeaderMap) -> Option<(SessionId, Option<String>)> {
        if let Some(s) = self.session_of(headers) {
            return Some((s, None));
        }
        let s = SessionId::generate()?;
        let set = cookie::set_cookie(&s, &self.cookie, &self.keys);
        Some((s, Some(set)))
    }

    /// `/connect/{provider}/{ticket}` for `session`.
    pub fn connect_url(&self, provider: &str, session: &SessionId) -> String {
        let ticket = crate::session::ticket::issue_ticket(&self.keys, session, self.ticket_ttl);
        format!("{CONNECT_PREFIX}{provider}/{ticket}")
    }

    /// The redirect URI registered at providers: `{public_url}/connect/{provider}/callback`.
    pub fn redirect_uri(&self, provider: &str) -> String {
        self.public.join(&format!("{CONNECT_PREFIX}{provider}/callback"))
    }

    /// `(providerName, displayName)` of every live sign-in of `session`.
    pub async fn signed_in_list(&self, session: &SessionId) -> Vec<(String, String)> {
        let mut list = Vec::new();
        for p in self.providers.all() {
            if let Ok(Some(t)) = self.store.tokens(session, &p.name).await {
                list.push((p.name.to_string(), t.identity.display_name().to_owned()));
            }
        }
        list
    }

    /// Announces every provider `session` is signed in to (`auth_success`).
    pub async fn announce_signed_in(&self, session: &SessionId) {
        let list = self.signed_in_list(session).await;
        if !list.is_empty() {
            self.hub.announce(session, &StatusEvent::AuthSuccess(list));
        }
    }

    /// The signing keys (for tickets checked by other concerns, such as the channel).
    pub fn keys(&self) -> &Keyring {
        &self.keys
    }

    /// The gateway's origin (`scheme://host[:port]`).
    pub fn public_origin(&self) -> String {
        self.public.origin()
    }

    /// The token store.
    pub fn store(&self) -> &Arc<dyn TokenStore> {
        &self.store
    }

    /// The providers.
    pub fn providers(&self) -> &ProviderRegistry {
        &self.providers
    }
}

/// A reply with a body and content type; `no-store` always (these answers are per user).
pub(crate) fn reply(status: u16, content_type: &str, body: impl Into<Bytes>) -> Reply {
    let mut r = http::Response::new(body.into());
    *r.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    let h = r.headers_mut();
    if let Ok(v) = http::HeaderValue::from_str(content_type) {
        h.insert(http::header::CONTENT_TYPE, v);
    }
    h.insert(http::header::CACHE_CONTROL, http::HeaderValue::from_static("no-store"));
    h.insert("x-content-type-options", http::HeaderValue::from_static("nosniff"));
    r
}

/// A JSON reply.
pub(crate) fn json_reply(status: u16, value: &serde_json::Value) -> Reply {
    reply(status, "application/json", value.to_string())
}

/// Adds `Set-Cookie` when a session was just created.
pub(crate) fn with_cookie(mut r: Reply, set_cookie: Option<String>) -> Reply {
    if let Some(v) = set_cookie.and_then(|c| http::HeaderValue::from_str(&c).ok()) {
        r.headers_mut().append(http::header::SET_COOKIE, v);
    }
    r
}

/// Escapes text for HTML element content and attribute values.
pub(crate) fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[async_trait::async_trait]
impl crate::channel::SignedIn for AuthService {
    async fn signed_in(&self, session: &SessionId) -> Vec<(String, String)> {
        self.signed_in_list(session).await
    }
}
