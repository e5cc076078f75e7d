//! What the sign-in layer answers, in its own terms: `respond` turns each into the HTTP answer
//! (`docs/architecture.md#routes`).

use crate::auth::flow::Opener;
use crate::providers::bearer::BearerError;

/// Why a request or a gateway route was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthRefusal {
    /// The token store could not be asked; nobody is known to be signed in (fail closed).
    StoreUnavailable,
    /// The route needs a sign-in the request does not carry: these are the ways to get one.
    SignInRequired {
        /// Each accepted provider and the URL that starts its sign-in for this session.
        links: Vec<SignInLink>,
        /// The `Set-Cookie` of a session created to hold the sign-in.
        set_cookie: Option<String>,
    },
    /// Signed in, but the route's `allow` does not list this user.
    Forbidden,
    /// A page of another origin asked for a protected route (the cookie rides along with its
    /// requests and says nothing of the user's intent).
    ForeignPage,
    /// A state-changing gateway route (`what`) asked by another origin.
    NotSameOrigin(&'static str),
    /// `?provider=` names no configured provider.
    UnknownProvider(String),
    /// An `Authorization: Bearer` token was refused; `scopes` are the ones the provider requires.
    Bearer {
        /// Why.
        error: BearerError,
        /// The scopes the token must carry.
        scopes: Vec<String>,
    },
    /// The on-behalf-of exchange needs the user (consent, MFA, a claims challenge).
    ConsentRequired {
        /// Entra's error code.
        entra_error: String,
        /// Entra's claims challenge, if any.
        claims: Option<String>,
        /// The sign-in to fall back to, when a session could be had.
        links: Vec<SignInLink>,
        /// The `Set-Cookie` of a session created for it.
        set_cookie: Option<String>,
    },
    /// The on-behalf-of exchange failed on Entra's side.
    OboFailed(String),
    /// A handoff redemption was refused.
    Handoff(HandoffRefusal),
}

/// One way to sign in: the provider's name and the URL that starts its popup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignInLink {
    /// The provider.
    pub provider: String,
    /// `/connect/{provider}/{ticket}` on the gateway (`None` when no ticket could be sealed).
    pub connect_url: Option<String>,
}

/// Why a redemption was refused: each is a 4xx that attaches nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandoffRefusal {
    /// No `Origin`, or one that is neither the gateway's nor in `channel.allowed_origins`.
    ForeignOrigin,
    /// The body is not `{"code": "..."}`.
    Malformed,
    /// The request carries no current session cookie.
    NoSession,
    /// The code is unknown, expired or already used.
    UnknownCode,
    /// The code was issued to another session (it is spent now).
    OtherSession,
}

impl HandoffRefusal {
    /// The login-funnel step it counts as.
    pub fn metric(self) -> &'static str {
        match self {
            HandoffRefusal::ForeignOrigin => "handoff_refused_origin",
            HandoffRefusal::Malformed => "handoff_refused_malformed",
            HandoffRefusal::NoSession => "handoff_refused_no_session",
            HandoffRefusal::UnknownCode => "handoff_refused_unknown_code",
            HandoffRefusal::OtherSession => "handoff_refused_other_session",
        }
    }
}

/// What the session route reports: each provider's state and a status-channel ticket.
#[derive(Debug, Clone)]
pub struct SessionState {
    /// Per configured provider, in configuration order.
    pub providers: Vec<ProviderState>,
    /// A channel ticket for this session (`?ticket=`), when one could be sealed.
    pub ticket: Option<String>,
    /// The `Set-Cookie` of a session created by this request.
    pub set_cookie: Option<String>,
}

/// One provider's sign-in state for a session; never a token.
#[derive(Debug, Clone)]
pub struct ProviderState {
    /// The provider's name.
    pub name: String,
    /// Its display name.
    pub display_name: String,
    /// Who is signed in, if anyone.
    pub user: Option<crate::identity::Identity>,
    /// The URL that starts its sign-in for this session (`None` when no ticket could be sealed).
    pub connect_url: Option<String>,
}

/// A sign-in the callback finished, as its completion page reports it.
#[derive(Debug, Clone)]
pub struct Completed {
    /// The provider.
    pub provider: String,
    /// Who opened the popup.
    pub opener: Opener,
    /// The user's display name.
    pub user: String,
    /// Where the sign-in went.
    pub delivery: Delivery,
    /// The `Set-Cookie` of the rotated session, when it attached to the callback's own session.
    pub set_cookie: Option<String>,
    /// The session to tell `auth_success` (with [`super::AuthService::announce_signed_in`]) once
    /// the answer carrying `set_cookie` is written: told earlier, a task pane acts on the event
    /// while its browser still holds the cookie value the rotation ended.
    pub announce: Option<crate::session::SessionId>,
}

/// A redeemed handoff code.
#[derive(Debug, Clone)]
pub struct Redeemed {
    /// The `Set-Cookie` of the rotated session.
    pub set_cookie: String,
    /// The session to tell `auth_success` once the answer carrying `set_cookie` is written.
    pub announce: crate::session::SessionId,
}

/// Where a finished sign-in went.
#[derive(Debug, Clone)]
pub enum Delivery {
    /// Stored under the session the callback's cookie named.
    Attached,
    /// Parked under this handoff code for the opener to redeem.
    Handoff(String),
    /// Pending for a Teams user under this security code.
    TeamsCode(String),
}
