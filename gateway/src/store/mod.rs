//! The token store: tokens and login transactions live here and only here, with lifetimes.
//!
//! # Invariants
//! Tokens expire `session.token_ttl` after sign-in (absolute), login transactions after
//! [`FLOW_TTL`] or on first use, whichever comes first; every token removal is reported on
//! [`TokenStore::removals`] so the status channel can announce `auth_expired`. The Teams loop's
//! state (pending sign-ins, attempt counts, validated users, handled invokes) lives here too, in
//! its own namespace, so every instance sharing the store serves any step of the loop.

pub mod key_names;
pub mod memory;
pub mod redis;
pub mod sealed;
pub(crate) mod wire;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use secrecy::SecretString;
use tokio::sync::broadcast;

use crate::auth::flow::FlowRecord;
use crate::config::types::ProviderName;
use crate::identity::Identity;
use crate::session::SessionId;

/// Lifetime of a login transaction (the `state` of one popup sign-in).
pub const FLOW_TTL: Duration = Duration::from_secs(600);

/// Tokens of one session at one provider. `Debug` never shows a token.
#[derive(Debug, Clone)]
pub struct StoredTokens {
    /// Who.
    pub identity: Identity,
    /// The access token.
    pub access_token: SecretString,
    /// The refresh token, if the provider gave one.
    pub refresh_token: Option<SecretString>,
    /// When the access token stops working, if known.
    pub access_expires_at: Option<SystemTime>,
    /// When the user signed in (start of the `token_ttl` lifetime).
    pub signed_in_at: SystemTime,
    /// The identity headers' values, built by the first request that forwards them.
    pub header_values: crate::identity::HeaderValues,
}

/// A finished sign-in waiting for the task pane that asked for it to redeem its handoff code.
#[derive(Debug)]
pub struct Handoff {
    /// The session the sign-in was started for; only its cookie may redeem the code.
    pub session: SessionId,
    /// The result.
    pub tokens: StoredTokens,
}

/// Why tokens left the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemovalCause {
    /// `token_ttl` passed.
    Expired,
    /// Logout.
    LoggedOut,
    /// A new sign-in replaced them.
    Replaced,
}

/// A token removal, as reported to listeners.
#[derive(Debug, Clone)]
pub struct Removal {
    /// Whose.
    pub session: SessionId,
    /// Which provider.
    pub provider: ProviderName,
    /// Why.
    pub cause: RemovalCause,
}

/// A store that could not answer (Redis down, say). Never carries a token.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend failed.
    #[error("token store unavailable: {0}")]
    Unavailable(String),
}

/// Where tokens and login transactions live.
#[async_trait]
pub trait TokenStore: Send + Sync {
    /// Stores tokens for `session`; replaces (never fails on) an existing entry for the provider.
    async fn put_tokens(&self, session: &SessionId, tokens: StoredTokens) -> Result<(), StoreError>;
    /// Live tokens of `session` at `provider`.
    async fn tokens(
        &self,
        session: &SessionId,
        provider: &ProviderName,
    ) -> Result<Option<Arc<StoredTokens>>, StoreError>;
    /// Removes the tokens of `session` at `provider`, or at every provider in `all` when `None`;
    /// returns what was removed.
    async fn remove_tokens(
        &self,
        session: &SessionId,
        provider: Option<&ProviderName>,
        all: &[ProviderName],
    ) -> Result<Vec<Arc<StoredTokens>>, StoreError>;
    /// Records a login transaction under `state`.
    async fn put_flow(&self, state: &str, flow: FlowRecord) -> Result<(), StoreError>;
    /// Takes (and so consumes) the transaction of `state`; `None` when unknown, expired or used.
    async fn take_flow(&self, state: &str) -> Result<Option<FlowRecord>, StoreError>;
    /// The current cookie generation of `session`, `None` while it has never rotated (or its
    /// record outlived `session.lifetime`, when every older cookie has expired too).
    async fn session_generation(&self, session: &SessionId) -> Result<Option<u32>, StoreError>;
    /// Moves `session` to its next cookie generation and returns it; the record is kept for
    /// `keep_for` (the cookie lifetime), on every instance sharing the store.
    async fn rotate_session(&self, session: &SessionId, keep_for: Duration) -> Result<u32, StoreError>;
    /// Parks a finished sign-in under `key` (the digest of its handoff code) for `ttl`.
    async fn put_handoff(&self, key: &str, handoff: Handoff, ttl: Duration) -> Result<(), StoreError>;
    /// Takes (and so consumes) the sign-in parked under `key`; `None` when unknown, expired or
    /// already taken. Of two concurrent takes, exactly one gets it.
    async fn take_handoff(&self, key: &str) -> Result<Option<Handoff>, StoreError>;
    /// Records `key` as used for `ttl`: `true` the first time, `false` while it is recorded
    /// (single-use tickets, on every instance sharing the store).
    async fn claim_once(&self, key: &str, ttl: Duration) -> Result<bool, StoreError>;
    /// Keeps `value` under `key` for `ttl` (values derived from tokens, such as on-behalf-of
    /// tokens; sealed in Redis so every instance shares them).
    async fn put_cached(&self, key: &str, value: Vec<u8>, ttl: Duration) -> Result<(), StoreError>;
    /// The value under `key`, while it lives.
    async fn cached(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Keeps a piece of the Teams loop's state under `key` (a keyed digest, never a user id or
    /// a code) for `ttl`, replacing any earlier value, in the Teams key namespace (sealed in
    /// Redis, so every instance sharing the store sees it).
    async fn put_teams_state(&self, key: &str, value: Vec<u8>, ttl: Duration) -> Result<(), StoreError>;
    /// The Teams state under `key`, while it lives.
    async fn teams_state(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Takes (and so consumes) the Teams state under `key`; of two concurrent takes, on any
    /// instances sharing the store, exactly one gets it.
    async fn take_teams_state(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Adds one to the Teams counter under `key` and returns the new count (1 the first time);
    /// a new counter lives `ttl`, which later additions do not extend.
    async fn count_teams(&self, key: &str, ttl: Duration) -> Result<u64, StoreError>;
    /// Token removals from now on.
    fn removals(&self) -> broadcast::Receiver<Removal>;
    /// Runs housekeeping (expiry notifications); called every second by a background task.
    async fn run_maintenance(&self);
    /// Live token entries, for the store-size metric.
    fn token_count(&self) -> u64;
    /// True when the store can serve (readiness): reachable and, for a shared store, subscribed
    /// to the other instances' messages. The in-process store always is.
    async fn is_ready(&self) -> bool {
        true
    }
}

/// Absolute lifetime for moka caches of tokens: an entry expires `ttl` after its sign-in,
/// whether it was inserted then or replaced later by a refresh (which keeps `signed_in_at`).
pub struct SinceSignIn {
    ttl: Duration,
}

impl SinceSignIn {
    /// Entries live `ttl` from their `signed_in_at`.
    pub fn new(ttl: Duration) -> Self {
        Self { ttl }
    }

    fn remaining(&self, value: &StoredTokens) -> Option<Duration> {
        let age = value.signed_in_at.elapsed().unwrap_or_default();
        Some(self.ttl.saturating_sub(age))
    }
}

impl<K> moka::Expiry<K, Arc<StoredTokens>> for SinceSignIn {
    fn expire_after_create(&self, _k: &K, v: &Arc<StoredTokens>, _now: std::time::Instant) -> Option<Duration> {
        self.remaining(v)
    }

    fn expire_after_update(
        &self,
        _k: &K,
        v: &Arc<StoredTokens>,
        _now: std::time::Instant,
        _current: Option<Duration>,
    ) -> Option<Duration> {
        self.remaining(v)
    }
}
