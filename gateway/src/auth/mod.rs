//! The popup sign-in flow, done by the gateway for an unmodified add-in server.
//!
//! ```text
//!  task pane           gateway                                   provider
//!  GET /_gateway/session ─▶ session cookie + connect_url (sealed, single-use ticket)
//!  window.open(connect_url)
//!  popup ─ GET /connect/{p}/{ticket} ─▶ open + claim ticket; state, PKCE, nonce stored (10 min, single use)
//!        ◀─ 302 authorize?state&code_challenge&nonce ───────────────▶ sign-in
//!  popup ─ GET /connect/{p}/callback?code&state ◀──────────────────── 302
//!                      take state → exchange code (PKCE) ───────────▶ token endpoint
//!                      verify ID token (JWKS) / userinfo; allowed_* rules
//!                      callback carries the ticket session's cookie (same cookie jar)?
//!                        yes: store tokens, rotate the cookie (Set-Cookie), auth_success
//!                        no:  park the result under a single-use handoff code (handoff_ttl)
//!        ◀─ completion page: gives the outcome (and code) only to its opener / Office / Teams
//!  pane  ─ POST /_gateway/handoff {"code"} with its cookie ─▶ code bound to this session?
//!                        store tokens, rotate the cookie, auth_success; 204
//! ```
//!
//! # Invariants
//! A sign-in is attached only to a session that proves it started it: its cookie on the
//! callback, or its cookie on the redemption of a code that only its opener could receive. A
//! connect URL alone never signs anyone in (unless `session.popup_binding = "ticket"`).

pub mod callback;
pub mod connect;
pub mod error;
pub mod flow;
pub mod guard;
pub mod handoff;
pub mod logout;
pub mod obo;
pub mod refresh;
mod refusal;
pub mod session_info;

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Method};

use crate::channel::{Hub, StatusEvent};
use crate::config::types::PublicUrl;
use crate::config::{Config, PopupBinding};
use crate::metrics::Metrics;
use crate::providers::ProviderRegistry;
use crate::session::cookie::{self, CookieRead, CookieSettings, SessionCookie};
use crate::session::ticket::Tickets;
use crate::session::{Keyring, SessionId};
use crate::store::{StoreError, TokenStore};
pub use callback::CallbackFailure;
pub use refusal::{
    AuthRefusal, Completed, Delivery, HandoffRefusal, ProviderState, Redeemed, SessionState, SignInLink,
};

/// `/connect/` routes.
pub const CONNECT_PREFIX: &str = "/connect/";
/// `GET /_gateway/session`.
pub const SESSION_PATH: &str = "/_gateway/session";
/// `POST /connect/logout`.
pub const LOGOUT_PATH: &str = "/connect/logout";

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
    pub(crate) tickets: Tickets,
    pub(crate) lifetime: std::time::Duration,
    pub(crate) handoff_ttl: std::time::Duration,
    pub(crate) binding: PopupBinding,
    pub(crate) allowed_origins: Vec<String>,
    pub(crate) providers: ProviderRegistry,
    pub(crate) store: Arc<dyn TokenStore>,
    pub(crate) hub: Arc<Hub>,
    pub(crate) cookie: CookieSettings,
    pub(crate) public: PublicUrl,
    pub(crate) metrics: Metrics,
    pub(crate) refresh_locks: refresh::RefreshLocks,
    pub(crate) obo_locks: obo::OboLocks,
    pub(crate) teams: Option<Arc<crate::teams::TeamsService>>,
    /// Trace export, when `[telemetry] otlp_endpoint` is set.
    pub(crate) telemetry: Option<Arc<crate::telemetry::Telemetry>>,
}

impl AuthService {
    /// Wires the flow; `keys` are those of `config.session.secrets`.
    pub fn new(
        config: &Config,
        keys: Keyring,
        providers: ProviderRegistry,
        store: Arc<dyn TokenStore>,
        hub: Arc<Hub>,
        metrics: Metrics,
    ) -> Self {
        Self {
            tickets: Tickets::new(&keys, config.session.ticket_ttl.get()),
            keys,
            lifetime: config.session.lifetime.get(),
            handoff_ttl: config.session.handoff_ttl.get(),
            binding: config.session.popup_binding,
            allowed_origins: config.channel.allowed_origins.clone(),
            providers,
            store,
            hub,
            cookie: CookieSettings::from_config(&config.session),
            public: config.server.public_url.clone(),
            metrics,
            refresh_locks: refresh::RefreshLocks::default(),
            obo_locks: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(std::time::Duration::from_secs(60))
                .build(),
            teams: None,
            telemetry: None,
        }
    }

    /// Exports spans of the sign-in steps through `telemetry` (when set).
    pub fn with_telemetry(mut self, telemetry: Option<Arc<crate::telemetry::Telemetry>>) -> Self {
        self.telemetry = telemetry;
        self
    }

    /// The trace export, when on.
    pub fn telemetry(&self) -> Option<&crate::telemetry::Telemetry> {
        self.telemetry.as_deref()
    }

    /// Notes sign-in step `name` at `provider` (a configured name, or `unknown`), begun at
    /// `start`, for the request's trace. Nothing happens (and nothing is allocated) when export
    /// is off.
    pub fn note_step(&self, name: &'static str, provider: &str, outcome: &'static str, start: std::time::SystemTime) {
        if let Some(t) = &self.telemetry {
            let provider = self.providers.get(provider).map_or("unknown", |p| p.name.as_str());
            t.step(name, provider, outcome, start);
        }
    }

    /// Connects the Teams loop, so Teams sign-ins keep their tokens pending for a code.
    pub fn with_teams(mut self, teams: Option<Arc<crate::teams::TeamsService>>) -> Self {
        self.teams = teams;
        self
    }

    /// The session of a request's cookie: genuine, unexpired, the only one, and of the session's
    /// current generation (a value that a rotation replaced counts for nothing). `Err` when the
    /// store cannot say.
    pub async fn session_of(&self, headers: &HeaderMap) -> Result<Option<SessionId>, StoreError> {
        match cookie::read_session_cookie(headers, &self.cookie.name, &self.keys) {
            CookieRead::Absent => Ok(None),
            CookieRead::Conflicting => {
                tracing::warn!("two different session cookies in one request; neither is used");
                Ok(None)
            }
            CookieRead::One(c) => match self.store.session_generation(&c.session).await? {
                Some(current) if current != c.generation => Ok(None),
                _ => Ok(Some(c.session)),
            },
        }
    }

    /// The request's session, or a new one with the `Set-Cookie` that establishes it; `Ok(None)`
    /// when the system RNG fails.
    pub async fn ensure_session(&self, headers: &HeaderMap) -> Result<Option<(SessionId, Option<String>)>, StoreError> {
        if let Some(s) = self.session_of(headers).await? {
            return Ok(Some((s, None)));
        }
        let Some(s) = SessionId::generate() else { return Ok(None) };
        Ok(Some((s, Some(self.cookie_for(s, 0)))))
    }

    /// `Set-Cookie` for `session` at `generation`, alive for `session.lifetime`.
    fn cookie_for(&self, session: SessionId, generation: u32) -> String {
        cookie::set_cookie(&SessionCookie::new(session, generation, self.lifetime), &self.cookie, &self.keys)
    }

    /// Rotates `session`'s cookie: its current value stops counting everywhere; returns the
    /// `Set-Cookie` of the new one. Tokens, tickets, codes and sockets stay bound to the session.
    pub(crate) async fn rotate(&self, session: &SessionId) -> Result<String, StoreError> {
        let generation = self.store.rotate_session(session, self.lifetime).await?;
        Ok(self.cookie_for(*session, generation))
    }

    /// `/connect/{provider}/{ticket}` for `session`; `None` when the system RNG fails.
    pub fn connect_url(&self, provider: &str, session: &SessionId) -> Option<String> {
        let ticket = self.tickets.issue_connect(session, provider)?;
        Some(format!("{CONNECT_PREFIX}{provider}/{ticket}"))
    }

    /// A channel ticket for `session` (joins the status channel where no cookie is sent).
    pub fn channel_ticket(&self, session: &SessionId) -> Option<String> {
        self.tickets.issue_channel(session)
    }

    /// The session of a genuine, unexpired channel ticket.
    pub fn channel_session(&self, ticket: &str) -> Option<SessionId> {
        self.tickets.open_channel(ticket).ok()
    }

    /// The session a status-channel request joins: its cookie's, else its `?ticket=`'s. A store
    /// outage joins by ticket only, so the socket still hears the events of a ticket's session.
    pub async fn channel_member(&self, headers: &HeaderMap, query: Option<&str>) -> Option<SessionId> {
        if let Ok(Some(session)) = self.session_of(headers).await {
            return Some(session);
        }
        let ticket = query.and_then(|q| {
            url::form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "ticket").map(|(_, v)| v.into_owned())
        })?;
        self.channel_session(&ticket)
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

    /// Announces every provider `session` is signed in to (`auth_success`). After a sign-in that
    /// rotated the cookie, only once the answer carrying the new cookie is written.
    pub async fn announce_signed_in(&self, session: &SessionId) {
        let list = self.signed_in_list(session).await;
        if !list.is_empty() {
            self.hub.announce(session, &StatusEvent::AuthSuccess(list));
        }
    }

    /// The signing keys (for Teams user references).
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

#[async_trait::async_trait]
impl crate::channel::SignedIn for AuthService {
    async fn signed_in(&self, session: &SessionId) -> Vec<(String, String)> {
        self.signed_in_list(session).await
    }
}

#[cfg(test)]
mod tests;
