//! The loop's state, kept in the token store's Teams namespace so that every gateway sharing
//! the store serves any step: the sign-in card on A, the popup on A, the code typed on B.
//!
//! ```text
//!  pending  digest("teams-pending\0" user)            {id, code HMAC, tokens}   code_ttl
//!  attempts digest("teams-attempts\0" pending id)     wrong codes (a counter)   code_ttl
//!  user     digest("teams-user\0" provider "\0" user) the validated tokens      token_ttl after sign-in
//!  invoke   digest("teams-exchange\0" invoke id)      copies seen (a counter)   EXCHANGE_ID_TTL
//! ```
//! Digests are keyed ([`Purpose::StoreKey`]), so no key carries a user id or a code, and the
//! store seals every value in Redis. A pending sign-in is redeemed with an atomic take, so a code
//! works once across all instances; wrong codes are counted in the store, so the limit holds
//! wherever they are typed.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::hmac;
use serde::{Deserialize, Serialize};

use super::security_code;
use crate::config::types::ProviderName;
use crate::session::{random_token, Keyring, Purpose};
use crate::store::wire::WireTokens;
use crate::store::{StoredTokens, TokenStore};

/// How long an exchanged invoke id is remembered (Teams sends its copies within seconds).
const EXCHANGE_ID_TTL: Duration = Duration::from_secs(300);

/// Why a pending sign-in could not be kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PendingError {
    /// The random source failed.
    Random,
    /// The token store did not answer.
    Store,
}

/// A pending sign-in as stored (sealed by the store). No `Debug`: it holds tokens.
#[derive(Serialize, Deserialize)]
struct Pending {
    /// Random id of this sign-in: its attempt counter, and the check that a take got this one.
    id: String,
    /// The code's HMAC, base64url.
    code: String,
    tokens: WireTokens,
    /// End of its life (ms since the epoch), to put it back with what is left of it.
    until_ms: u64,
}

fn now_ms() -> u64 {
    crate::store::wire::ms(SystemTime::now())
}

/// The Teams loop's view of the token store.
pub(super) struct TeamsState {
    store: Arc<dyn TokenStore>,
    keys: Keyring,
    code_key: hmac::Key,
    code_ttl: Duration,
    token_ttl: Duration,
}

impl TeamsState {
    pub(super) fn new(
        store: Arc<dyn TokenStore>,
        keys: Keyring,
        code_key: hmac::Key,
        code_ttl: Duration,
        token_ttl: Duration,
    ) -> Self {
        Self { store, keys, code_key, code_ttl, token_ttl }
    }

    fn key(&self, kind: &str, id: &str) -> String {
        self.keys.digest(Purpose::StoreKey, format!("teams-{kind}\0{id}").as_bytes())
    }

    /// Keeps `tokens` pending for `user` under a fresh code, which it returns; replaces any
    /// earlier pending sign-in of `user` (and so its code).
    pub(super) async fn begin(&self, user: &str, tokens: &StoredTokens) -> Result<String, PendingError> {
        let code = security_code::generate().ok_or(PendingError::Random)?;
        let id = random_token(16).ok_or(PendingError::Random)?;
        let mac = security_code::seal(&self.code_key, user, &code);
        let until_ms = now_ms().saturating_add(u64::try_from(self.code_ttl.as_millis()).unwrap_or(u64::MAX));
        let pending =
            Pending { id, code: URL_SAFE_NO_PAD.encode(mac), tokens: WireTokens::from_tokens(tokens), until_ms };
        let bytes = serde_json::to_vec(&pending).map_err(|_| PendingError::Store)?;
        let key = self.key("pending", user);
        self.store.put_teams_state(&key, bytes, self.code_ttl).await.map_err(|_| PendingError::Store)?;
        Ok(code)
    }

    async fn pending(&self, key: &str, take: bool) -> Option<Pending> {
        let got = if take { self.store.take_teams_state(key).await } else { self.store.teams_state(key).await };
        serde_json::from_slice(&got.ok()??).ok()
    }

    /// Puts back a pending sign-in taken by mistake (a newer one replaced the one a code was
    /// checked against), for what is left of its life.
    async fn put_back(&self, key: &str, pending: &Pending) {
        let left = Duration::from_millis(pending.until_ms.saturating_sub(now_ms()));
        if left.is_zero() {
            return;
        }
        if let Ok(bytes) = serde_json::to_vec(pending) {
            let _ = self.store.put_teams_state(key, bytes, left).await;
        }
    }

    /// The pending tokens of `user` if `candidate` is their code: taken, so the code works once
    /// on every instance. Wrong codes are counted; at [`security_code::MAX_ATTEMPTS`] the pending
    /// sign-in is discarded. A store that does not answer redeems nothing.
    pub(super) async fn redeem(&self, user: &str, candidate: &str) -> Option<StoredTokens> {
        let key = self.key("pending", user);
        let seen = self.pending(&key, false).await?;
        let mac = URL_SAFE_NO_PAD.decode(&seen.code).ok()?;
        if !security_code::matches(&self.code_key, user, candidate, &mac) {
            // A count the store cannot make counts as the last one: the limit holds regardless.
            let count = self.store.count_teams(&self.key("attempts", &seen.id), self.code_ttl).await;
            if count.unwrap_or(u64::MAX) >= u64::from(security_code::MAX_ATTEMPTS) {
                if let Some(taken) = self.pending(&key, true).await {
                    if taken.id != seen.id {
                        self.put_back(&key, &taken).await;
                    }
                }
                tracing::warn!("teams pending sign-in discarded after too many wrong codes");
            }
            return None;
        }
        // Of two instances redeeming the same code, exactly one takes it.
        let taken = self.pending(&key, true).await?;
        if taken.id != seen.id {
            self.put_back(&key, &taken).await;
            return None;
        }
        taken.tokens.into_tokens()
    }

    /// Records `user` as signed in with `tokens` until `session.token_ttl` after their sign-in.
    pub(super) async fn validate(&self, user: &str, tokens: &StoredTokens) {
        let age = tokens.signed_in_at.elapsed().unwrap_or_default();
        let left = self.token_ttl.saturating_sub(age);
        if left.is_zero() {
            return;
        }
        let Ok(bytes) = serde_json::to_vec(&WireTokens::from_tokens(tokens)) else { return };
        let key = self.key("user", &format!("{}\0{user}", tokens.identity.provider));
        if let Err(e) = self.store.put_teams_state(&key, bytes, left).await {
            tracing::warn!(error = %e, "cannot keep a validated Teams user");
        }
    }

    /// The tokens `user` validated with at `provider`, while they live.
    pub(super) async fn validated(&self, user: &str, provider: &ProviderName) -> Option<Arc<StoredTokens>> {
        let key = self.key("user", &format!("{provider}\0{user}"));
        let bytes = self.store.teams_state(&key).await.ok()??;
        let tokens = serde_json::from_slice::<WireTokens>(&bytes).ok()?.into_tokens()?;
        let alive = tokens.signed_in_at.elapsed().unwrap_or_default() < self.token_ttl;
        alive.then(|| Arc::new(tokens))
    }

    /// True the first time invoke `id` is seen by any gateway sharing the store. A store that
    /// does not answer lets no copy through (Teams falls back to the sign-in card).
    pub(super) async fn first_invoke(&self, id: &str) -> bool {
        matches!(self.store.count_teams(&self.key("exchange", id), EXCHANGE_ID_TTL).await, Ok(1))
    }
}
