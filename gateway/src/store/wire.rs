//! The JSON form of tokens in the shared store (always sealed before it is written): tokens,
//! parked handoffs and the Teams loop's state use it. `Debug` is never derived, so a token cannot
//! reach a log line through these types.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::{StoreError, StoredTokens};
use crate::auth::flow::{FlowRecord, Opener};
use crate::config::types::ProviderName;
use crate::identity::Identity;
use crate::session::SessionId;

#[derive(Serialize, Deserialize)]
pub(crate) struct WireTokens {
    provider: String,
    subject: String,
    email: Option<String>,
    preferred_username: Option<String>,
    name: Option<String>,
    access_token: String,
    refresh_token: Option<String>,
    access_expires_ms: Option<u64>,
    signed_in_ms: u64,
    #[serde(default)]
    tenant: Option<String>,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    roles: Vec<String>,
}

impl WireTokens {
    pub(crate) fn from_tokens(tokens: &StoredTokens) -> Self {
        let i = &tokens.identity;
        Self {
            provider: i.provider.to_string(),
            subject: i.subject.clone(),
            email: i.email.clone(),
            preferred_username: i.preferred_username.clone(),
            name: i.name.clone(),
            access_token: tokens.access_token.expose_secret().to_owned(),
            refresh_token: tokens.refresh_token.as_ref().map(|r| r.expose_secret().to_owned()),
            access_expires_ms: tokens.access_expires_at.map(ms),
            signed_in_ms: ms(tokens.signed_in_at),
            tenant: i.tenant.clone(),
            groups: i.groups.clone(),
            roles: i.roles.clone(),
        }
    }

    pub(crate) fn into_tokens(self) -> Option<StoredTokens> {
        Some(StoredTokens {
            identity: Identity {
                provider: ProviderName::parse(&self.provider).ok()?,
                subject: self.subject,
                email: self.email,
                preferred_username: self.preferred_username,
                name: self.name,
                tenant: self.tenant,
                groups: self.groups,
                roles: self.roles,
            },
            access_token: SecretString::from(self.access_token),
            refresh_token: self.refresh_token.map(SecretString::from),
            access_expires_at: self.access_expires_ms.map(from_ms),
            signed_in_at: from_ms(self.signed_in_ms),
            header_values: Default::default(),
        })
    }
}

#[derive(Serialize, Deserialize)]
pub(crate) struct WireHandoff {
    pub(crate) session: String,
    pub(crate) tokens: WireTokens,
}

pub(crate) fn ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

pub(crate) fn from_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

#[derive(Serialize, Deserialize)]
struct WireFlow {
    session: String,
    provider: String,
    verifier: String,
    nonce: String,
    opener: u8,
    teams_user: Option<String>,
}

/// A login transaction as the JSON stored (sealed) in Redis.
pub fn encode_flow(flow: &FlowRecord) -> Result<Vec<u8>, StoreError> {
    let wire = WireFlow {
        session: flow.session.storage_key(),
        provider: flow.provider.to_string(),
        verifier: flow.pkce_verifier.expose_secret().to_owned(),
        nonce: flow.nonce.clone(),
        opener: match flow.opener {
            Opener::Window => 0,
            Opener::Office => 1,
            Opener::Teams => 2,
        },
        teams_user: flow.teams_user.clone(),
    };
    serde_json::to_vec(&wire).map_err(|e| StoreError::Unavailable(e.to_string()))
}

/// The login transaction in [`encode_flow`]'s JSON (already unsealed); `None` for anything
/// else, so a damaged or foreign value counts as an unknown `state`.
pub fn decode_flow(plain: &[u8]) -> Option<FlowRecord> {
    let w = serde_json::from_slice::<WireFlow>(plain).ok()?;
    Some(FlowRecord {
        session: SessionId::from_storage_key(&w.session)?,
        provider: ProviderName::parse(&w.provider).ok()?,
        pkce_verifier: SecretString::from(w.verifier),
        nonce: w.nonce,
        opener: match w.opener {
            1 => Opener::Office,
            2 => Opener::Teams,
            _ => Opener::Window,
        },
        teams_user: w.teams_user,
    })
}
