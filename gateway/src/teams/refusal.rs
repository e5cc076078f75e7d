//! Why a request to the bot endpoint was answered with a refusal instead of being forwarded.

use super::activity::ActivityError;
use super::bot_token::BotTokenError;

/// A refused bot request; `respond` chooses its status.
#[derive(Debug, thiserror::Error)]
pub enum BotRefusal {
    /// The activity is larger than the gateway reads.
    #[error("{0}")]
    TooLarge(ActivityError),
    /// The activity cannot be read, or names no user.
    #[error("{0}")]
    BadActivity(ActivityError),
    /// The Bot Framework token is missing or invalid, or its keys cannot be had.
    #[error("{0}")]
    Unauthenticated(BotTokenError),
    /// A `signin/tokenExchange` invoke without `value.id` or `value.token`.
    #[error("a token exchange without value.id or value.token")]
    BadExchange,
    /// The single sign-on token of a messaging-extension query could not be used.
    #[error("the single sign-on token could not be used")]
    SsoTokenRefused,
    /// The sign-in code of a `signin/verifyState` invoke does not match.
    #[error("the code does not match")]
    CodeMismatch,
}
