//! Who signed in, as the upstream will see it: what a provider vouched for, kept with the tokens
//! and turned into identity headers.

use crate::config::types::ProviderName;

/// Who signed in, as the upstream will see it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Identity {
    /// The provider.
    pub provider: ProviderName,
    /// Stable subject id at that provider.
    pub subject: String,
    /// Email, when the provider vouches for one.
    pub email: Option<String>,
    /// Preferred user name / login.
    pub preferred_username: Option<String>,
    /// Display name.
    pub name: Option<String>,
    /// Entra tenant id (`tid`), when the provider names one.
    pub tenant: Option<String>,
    /// Values of the `groups` claim.
    pub groups: Vec<String>,
    /// Values of the `roles` claim (app roles).
    pub roles: Vec<String>,
}

impl Identity {
    /// An identity with only a subject and a name (providers that say nothing else).
    pub fn new(provider: ProviderName, subject: String) -> Self {
        Self {
            provider,
            subject,
            email: None,
            preferred_username: None,
            name: None,
            tenant: None,
            groups: Vec::new(),
            roles: Vec::new(),
        }
    }

    /// The best name to show a person.
    pub fn display_name(&self) -> &str {
        self.name.as_deref().or(self.preferred_username.as_deref()).or(self.email.as_deref()).unwrap_or(&self.subject)
    }
}
