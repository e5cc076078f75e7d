//! One popup sign-in in progress: what `connect` records under the flow's `state` and `callback`
//! takes back exactly once.

use secrecy::SecretString;

use crate::config::types::ProviderName;
use crate::session::SessionId;

/// One popup sign-in in progress, keyed by its `state`. `Debug` never shows the verifier.
#[derive(Debug)]
pub struct FlowRecord {
    /// The session that asked.
    pub session: SessionId,
    /// The provider it went to.
    pub provider: ProviderName,
    /// PKCE verifier (RFC 7636 §4.1).
    pub pkce_verifier: SecretString,
    /// OIDC nonce (OpenID Connect Core §3.1.2.1).
    pub nonce: String,
    /// Where the popup was opened from, for the completion page.
    pub opener: Opener,
    /// The Teams user this sign-in is for (messaging-extension loop), instead of a browser session.
    pub teams_user: Option<String>,
}

/// What opened the popup, so the completion page knows whom to tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opener {
    /// `window.open` from a page (task pane in a browser).
    Window,
    /// The Office dialog API (`messageParent`).
    Office,
    /// The Teams SDK (`notifySuccess` / `notifyFailure`).
    Teams,
}
