//! The in-process store: moka caches with absolute lifetimes and an eviction listener.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use moka::future::Cache;
use moka::notification::RemovalCause as MokaCause;
use tokio::sync::broadcast;

use super::{FlowRecord, Removal, RemovalCause, SinceSignIn, StoreError, StoredTokens, TokenStore, FLOW_TTL};
use crate::config::types::ProviderName;
use crate::session::SessionId;

/// Most token entries held; beyond it the least recently used go first (bounded memory).
pub const MAX_TOKEN_ENTRIES: u64 = 1_000_000;
/// Most login transactions in flight.
pub const MAX_FLOWS: u64 = 200_000;

type Key = (SessionId, ProviderName);

/// Tokens and transactions in this process.
pub struct MemoryStore {
    tokens: Cache<Key, Arc<StoredTokens>>,
    flows: Cache<String, Arc<FlowRecord>>,
    removals: broadcast::Sender<Removal>,
}

impl MemoryStore {
    /// A store whose tokens live `token_ttl` after sign-in.
    pub fn new(token_ttl: Duration) -> Self {
        let (removals, _) = broadcast::channel(1024);
        let tx = removals.clone();
        let tokens = Cache::builder()
            .max_capacity(MAX_TOKEN_ENTRIES)
            .expire_after(SinceSignIn::new(token_ttl))
            .eviction_listener(move |key: Arc<Key>, _value, cause| {
                let cause = match cause {
                    MokaCause::Expired | MokaCause::Size => RemovalCause::Expired,
                    MokaCause::Explicit => RemovalCause::LoggedOut,
                    MokaCause::Replaced => RemovalCause::Replaced,
                };
                let _ = tx.send(Removal { session: key.0, provider: key.1.clone(), cause });
            })
            .build();
        let flows = Cache::builder().max_capacity(MAX_FLOWS).time_to_live(FLOW_TTL).build();
        Self { tokens, flows, removals }
    }
}

#[async_trait]
impl TokenStore for MemoryStore {
    async fn put_tokens(&self, session: &SessionId, tokens: StoredTokens) -> Result<(), StoreError> {
        let key = (*session, tokens.identity.provider.clone());
        self.tokens.insert(key, Arc::new(tokens)).await;
        Ok(())
    }

    async fn tokens(
        &self,
        session: &SessionId,
        provider: &ProviderName,
    ) -> Result<Option<Arc<StoredTokens>>, StoreError> {
        Ok(self.tokens.get(&(*session, provider.clone())).await)
    }

    async fn remove_tokens(
        &self,
        session: &SessionId,
        provider: Option<&ProviderName>,
        all: &[ProviderName],
    ) -> Result<Vec<Arc<StoredTokens>>, StoreError> {
        let mut removed = Vec::new();
        let names: Vec<&ProviderName> = match provider {
            Some(p) => vec![p],
            None => all.iter().collect(),
        };
        for p in names {
            if let Some(t) = self.tokens.remove(&(*session, p.clone())).await {
                removed.push(t);
            }
        }
        Ok(removed)
    }

    async fn put_flow(&self, state: &str, flow: FlowRecord) -> Result<(), StoreError> {
        self.flows.insert(state.to_owned(), Arc::new(flow)).await;
        Ok(())
    }

    async fn take_flow(&self, state: &str) -> Result<Option<FlowRecord>, StoreError> {
        // `remove` is atomic: of two concurrent callbacks with one state, exactly one gets it.
        Ok(self.flows.remove(state).await.map(|f| Arc::try_unwrap(f).unwrap_or_else(|a| clone_flow(&a))))
    }

    fn removals(&self) -> broadcast::Receiver<Removal> {
        self.removals.subscribe()
    }

    async fn run_maintenance(&self) {
        self.tokens.run_pending_tasks().await;
        self.flows.run_pending_tasks().await;
    }

    fn token_count(&self) -> u64 {
        self.tokens.entry_count()
    }
}

fn clone_flow(f: &FlowRecord) -> FlowRecord {
    FlowRecord {
        session: f.session,
        provider: f.provider.clone(),
        pkce_verifier: f.pkce_verifier.clone(),
        nonce: f.nonce.clone(),
        opener: f.opener,
        teams_user: f.teams_user.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Identity, Opener};
    use secrecy::SecretString;
    use std::time::SystemTime;

    fn tokens(provider: &ProviderName) -> StoredTokens {
        StoredTokens {
            identity: Identity {
                provider: provider.clone(),
                subject: "u1".into(),
                email: None,
                preferred_username: None,
                name: None,
            },
            access_token: SecretString::from("at".to_owned()),
            refresh_token: None,
            access_expires_at: None,
            signed_in_at: SystemTime::now(),
        }
    }

    #[tokio::test]
    async fn tokens_expire_after_ttl_and_the_removal_is_reported() {
        let store = MemoryStore::new(Duration::from_millis(200));
        let mut removals = store.removals();
        let s = SessionId::generate().unwrap();
        let p = ProviderName::parse("dev").unwrap();
        store.put_tokens(&s, tokens(&p)).await.unwrap();
        assert!(store.tokens(&s, &p).await.unwrap().is_some());
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(store.tokens(&s, &p).await.unwrap().is_none());
        // Expiry notifications come from moka's timer wheel (about one-second buckets).
        let mut got = None;
        for _ in 0..40 {
            store.run_maintenance().await;
            if let Ok(r) = removals.try_recv() {
                got = Some(r);
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let r = got.expect("no removal reported within 4 s");
        assert_eq!((r.session, r.provider, r.cause), (s, p, RemovalCause::Expired));
    }

    #[tokio::test]
    async fn replacing_with_the_same_sign_in_time_keeps_the_absolute_lifetime() {
        let store = MemoryStore::new(Duration::from_millis(400));
        let s = SessionId::generate().unwrap();
        let p = ProviderName::parse("dev").unwrap();
        let first = tokens(&p);
        let signed_in_at = first.signed_in_at;
        store.put_tokens(&s, first).await.unwrap();
        tokio::time::sleep(Duration::from_millis(250)).await;
        let mut refreshed = tokens(&p);
        refreshed.signed_in_at = signed_in_at;
        store.put_tokens(&s, refreshed).await.unwrap();
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(store.tokens(&s, &p).await.unwrap().is_none(), "a refresh must not extend token_ttl");
    }

    #[tokio::test]
    async fn second_sign_in_replaces_and_a_flow_is_taken_once() {
        let store = MemoryStore::new(Duration::from_secs(60));
        let s = SessionId::generate().unwrap();
        let p = ProviderName::parse("dev").unwrap();
        store.put_tokens(&s, tokens(&p)).await.unwrap();
        store.put_tokens(&s, tokens(&p)).await.unwrap();
        assert!(store.tokens(&s, &p).await.unwrap().is_some());
        let flow = FlowRecord {
            session: s,
            provider: p.clone(),
            pkce_verifier: SecretString::from("v".to_owned()),
            nonce: "n".into(),
            opener: Opener::Window,
            teams_user: None,
        };
        store.put_flow("st", flow).await.unwrap();
        assert!(store.take_flow("st").await.unwrap().is_some());
        assert!(store.take_flow("st").await.unwrap().is_none());
    }
}
