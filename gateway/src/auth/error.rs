//! Why a sign-in failed. Each variant names the problem; `respond` turns it into the
//! completion page and the `auth_failure` event carries its OAuth error code.

use crate::providers::exchange::ExchangeError;
use crate::providers::id_token::IdTokenError;
use crate::providers::userinfo::UserInfoError;
use crate::providers::ProviderError;
use crate::session::ticket::TicketError;

/// A failed step of the popup flow.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FlowError {
    /// No provider has this name.
    #[error("no provider is called \"{0}\"")]
    UnknownProvider(String),
    /// The connect ticket is forged, damaged or expired.
    #[error("the sign-in link is not valid: {0}")]
    Ticket(#[from] TicketError),
    /// The provider's endpoints could not be resolved.
    #[error("the provider is unavailable: {0}")]
    ProviderUnavailable(#[from] ProviderError),
    /// The callback has no `state`.
    #[error("the sign-in response has no state")]
    MissingState,
    /// `state` is unknown, expired or already used.
    #[error("the sign-in response is unknown, expired or already used")]
    UnknownState,
    /// `state` belongs to a sign-in with another provider.
    #[error("the sign-in response belongs to another provider")]
    ProviderMismatch,
    /// The provider reported an error (RFC 6749 §4.1.2.1).
    #[error("the provider refused the sign-in: {error}")]
    Denied {
        /// Its error code.
        error: String,
        /// Its description, if any.
        description: String,
    },
    /// `iss` in the response is not the provider's (RFC 9207).
    #[error("the sign-in response comes from another issuer")]
    IssuerMismatch,
    /// No `code` in a successful response.
    #[error("the sign-in response has no code")]
    MissingCode,
    /// The code exchange failed.
    #[error(transparent)]
    Exchange(#[from] ExchangeError),
    /// The provider sent no ID token although `openid` was requested.
    #[error("the provider sent no ID token")]
    MissingIdToken,
    /// The ID token was refused.
    #[error(transparent)]
    IdToken(#[from] IdTokenError),
    /// The user could not be described.
    #[error(transparent)]
    UserInfo(#[from] UserInfoError),
    /// The user is outside the provider's `allowed_*` rules.
    #[error("this account may not sign in here ({0})")]
    NotAllowed(&'static str),
    /// The token store failed.
    #[error("the token store is unavailable")]
    Store,
    /// The system RNG failed.
    #[error("no randomness available")]
    Random,
}

impl FlowError {
    /// The OAuth-style error code for `auth_failure` and the page.
    pub fn oauth_code(&self) -> &str {
        match self {
            FlowError::Denied { error, .. } => error,
            FlowError::NotAllowed(_) => "access_denied",
            FlowError::UnknownProvider(_) | FlowError::Ticket(_) | FlowError::MissingCode => "invalid_request",
            FlowError::MissingState | FlowError::UnknownState | FlowError::ProviderMismatch => "invalid_state",
            // The provider's keys could not be had: the provider is failing, not the token.
            FlowError::IdToken(IdTokenError::Key(e)) if e.is_outage() => "temporarily_unavailable",
            FlowError::IssuerMismatch | FlowError::MissingIdToken | FlowError::IdToken(_) => "invalid_id_token",
            FlowError::Exchange(ExchangeError::Refused { error }) if !is_provider_outage(error) => {
                match error.as_str() {
                    "invalid_client" | "unauthorized_client" | "invalid_request" | "unsupported_grant_type" => {
                        error.as_str()
                    }
                    _ => "invalid_grant",
                }
            }
            FlowError::ProviderUnavailable(_)
            | FlowError::Exchange(_)
            | FlowError::UserInfo(_)
            | FlowError::Store
            | FlowError::Random => "temporarily_unavailable",
        }
    }

    /// A short label for metrics (bounded set).
    pub fn metric_reason(&self) -> &'static str {
        match self {
            FlowError::UnknownProvider(_) => "unknown_provider",
            FlowError::Ticket(_) => "ticket",
            FlowError::ProviderUnavailable(_) => "provider_unavailable",
            FlowError::IdToken(IdTokenError::Key(e)) if e.is_outage() => "provider_unavailable",
            FlowError::MissingState | FlowError::UnknownState | FlowError::ProviderMismatch => "state",
            FlowError::Denied { .. } => "denied",
            FlowError::NotAllowed(_) => "not_allowed",
            FlowError::IssuerMismatch => "issuer",
            FlowError::MissingCode => "no_code",
            FlowError::Exchange(_) => "exchange",
            FlowError::MissingIdToken | FlowError::IdToken(_) => "id_token",
            FlowError::UserInfo(_) => "userinfo",
            FlowError::Store | FlowError::Random => "internal",
        }
    }
}

/// A token-endpoint error that means the provider is failing, not that the request was wrong.
pub(crate) fn is_provider_outage(error: &str) -> bool {
    matches!(error, "server_error" | "temporarily_unavailable")
}
