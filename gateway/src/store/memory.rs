//! The in-process store: moka caches with absolute lifetimes and an eviction listener.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use moka::future::Cache;
use moka::notification::RemovalCause as MokaCause;
use tokio::sync::broadcast;

use super::{Handoff, Removal, RemovalCause, SinceSignIn, StoreError, StoredTokens, TokenStore, FLOW_TTL};
use crate::auth::flow::FlowRecord;
use crate::config::types::ProviderName;
use crate::session::SessionId;

/// Most token entries held; beyond it the least recently used go first (bounded memory).
pub const MAX_TOKEN_ENTRIES: u64 = 1_000_000;
/// Most login transactions in flight.
pub const MAX_FLOWS: u64 = 200_000;
/// Most rotated sessions remembered (one small entry each).
pub const MAX_GENERATIONS: u64 = 1_000_000;
/// Most handoffs waiting and tickets remembered as used.
pub const MAX_HANDOFFS: u64 = 200_000;

type Key = (SessionId, ProviderName);

/// A value that lives for its own `ttl` from its last write.
struct Timed<T> {
    value: T,
    ttl: Duration,
}

struct OwnTtl;

impl<K, T> moka::Expiry<K, Arc<Timed<T>>> for OwnTtl {
    fn expire_after_create(&self, _k: &K, v: &Arc<Timed<T>>, _now: std::time::Instant) -> Option<Duration> {
        Some(v.ttl)
    }

    fn expire_after_update(
        &self,
        _k: &K,
        v: &Arc<Timed<T>>,
        _now: std::time::Instant,
        _current: Option<Duration>,
    ) -> Option<Duration> {
        Some(v.ttl)
    }
}

fn timed_cache<K, T>(capacity: u64) -> Cache<K, Arc<Timed<T>>>
where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
    T: Send + Sync + 'static,
{
    Cache::builder().max_capacity(capacity).expire_after(OwnTtl).build()
}

/// A handoff and its deadline (moka's `remove` may still return an entry past its lifetime).
struct ParkedHandoff {
    until: std::time::Instant,
    slot: std::sync::Mutex<Option<Handoff>>,
}

/// A value and its deadline (moka's `remove` may still return an entry past its lifetime).
struct Expiring {
    until: std::time::Instant,
    bytes: Vec<u8>,
}

/// Tokens and transactions in this process.
pub struct MemoryStore {
    tokens: Cache<Key, Arc<StoredTokens>>,
    flows: Cache<String, Arc<FlowRecord>>,
    generations: Cache<SessionId, Arc<Timed<u32>>>,
    handoffs: Cache<String, Arc<Timed<ParkedHandoff>>>,
    claims: Cache<String, Arc<Timed<()>>>,
    values: Cache<String, Arc<Timed<Vec<u8>>>>,
    teams_state: Cache<String, Arc<Timed<Expiring>>>,
    teams_counts: Cache<String, Arc<Timed<std::sync::atomic::AtomicU64>>>,
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
        Self {
            tokens,
            flows,
            generations: timed_cache(MAX_GENERATIONS),
            handoffs: timed_cache(MAX_HANDOFFS),
            claims: timed_cache(MAX_HANDOFFS),
            values: timed_cache(MAX_HANDOFFS),
            teams_state: timed_cache(MAX_HANDOFFS),
            teams_counts: timed_cache(MAX_HANDOFFS),
            removals,
        }
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

    async fn session_generation(&self, session: &SessionId) -> Result<Option<u32>, StoreError> {
        Ok(self.generations.get(session).await.map(|t| t.value))
    }

    async fn rotate_session(&self, session: &SessionId, keep_for: Duration) -> Result<u32, StoreError> {
        let entry = self
            .generations
            .entry(*session)
            .and_upsert_with(|old| {
                let next = old.map_or(1, |e| e.into_value().value.wrapping_add(1));
                std::future::ready(Arc::new(Timed { value: next, ttl: keep_for }))
            })
            .await;
        Ok(entry.into_value().value)
    }

    async fn put_handoff(&self, key: &str, handoff: Handoff, ttl: Duration) -> Result<(), StoreError> {
        let parked =
            ParkedHandoff { until: std::time::Instant::now() + ttl, slot: std::sync::Mutex::new(Some(handoff)) };
        let value = Arc::new(Timed { value: parked, ttl });
        self.handoffs.insert(key.to_owned(), value).await;
        Ok(())
    }

    async fn take_handoff(&self, key: &str) -> Result<Option<Handoff>, StoreError> {
        // `remove` is atomic, and the slot is emptied as well, so a clone of the Arc that
        // another task still holds yields nothing.
        let Some(parked) = self.handoffs.remove(key).await else { return Ok(None) };
        if parked.value.until <= std::time::Instant::now() {
            return Ok(None);
        }
        let taken = parked.value.slot.lock().ok().and_then(|mut slot| slot.take());
        Ok(taken)
    }

    async fn claim_once(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        let entry =
            self.claims.entry(key.to_owned()).or_insert_with(async { Arc::new(Timed { value: (), ttl }) }).await;
        Ok(entry.is_fresh())
    }

    async fn put_cached(&self, key: &str, value: Vec<u8>, ttl: Duration) -> Result<(), StoreError> {
        self.values.insert(key.to_owned(), Arc::new(Timed { value, ttl })).await;
        Ok(())
    }

    async fn cached(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.values.get(key).await.map(|t| t.value.clone()))
    }

    async fn put_teams_state(&self, key: &str, value: Vec<u8>, ttl: Duration) -> Result<(), StoreError> {
        let value = Expiring { until: std::time::Instant::now() + ttl, bytes: value };
        self.teams_state.insert(key.to_owned(), Arc::new(Timed { value, ttl })).await;
        Ok(())
    }

    async fn teams_state(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let live = self.teams_state.get(key).await.filter(|t| t.value.until > std::time::Instant::now());
        Ok(live.map(|t| t.value.bytes.clone()))
    }

    async fn take_teams_state(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        // `remove` is atomic: of two concurrent takes, exactly one gets the entry.
        let taken = self.teams_state.remove(key).await.filter(|t| t.value.until > std::time::Instant::now());
        Ok(taken.map(|t| t.value.bytes.clone()))
    }

    async fn count_teams(&self, key: &str, ttl: Duration) -> Result<u64, StoreError> {
        let fresh = async { Arc::new(Timed { value: std::sync::atomic::AtomicU64::new(0), ttl }) };
        let counter = self.teams_counts.entry(key.to_owned()).or_insert_with(fresh).await.into_value();
        Ok(counter.value.fetch_add(1, std::sync::atomic::Ordering::SeqCst).saturating_add(1))
    }

    fn removals(&self) -> broadcast::Receiver<Removal> {
        self.removals.subscribe()
    }

    async fn run_maintenance(&self) {
        self.tokens.run_pending_tasks().await;
        self.flows.run_pending_tasks().await;
        self.handoffs.run_pending_tasks().await;
        self.claims.run_pending_tasks().await;
        self.values.run_pending_tasks().await;
        self.teams_state.run_pending_tasks().await;
        self.teams_counts.run_pending_tasks().await;
        self.generations.run_pending_tasks().await;
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
    use crate::auth::flow::Opener;
    use crate::identity::Identity;
    use secrecy::SecretString;
    use std::time::SystemTime;

    fn tokens(provider: &ProviderName) -> StoredTokens {
        StoredTokens {
            identity: Identity::new(provider.clone(), "u1".into()),
            access_token: SecretString::from("at".to_owned()),
            refresh_token: None,
            access_expires_at: None,
            signed_in_at: SystemTime::now(),
            header_values: Default::default(),
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
    async fn generations_rotate_handoffs_are_taken_once_and_claims_hold_once() {
        let store = MemoryStore::new(Duration::from_secs(60));
        let s = SessionId::generate().unwrap();
        assert_eq!(store.session_generation(&s).await.unwrap(), None);
        assert_eq!(store.rotate_session(&s, Duration::from_secs(60)).await.unwrap(), 1);
        assert_eq!(store.rotate_session(&s, Duration::from_secs(60)).await.unwrap(), 2);
        assert_eq!(store.session_generation(&s).await.unwrap(), Some(2));

        let p = ProviderName::parse("dev").unwrap();
        let handoff = Handoff { session: s, tokens: tokens(&p) };
        store.put_handoff("k", handoff, Duration::from_secs(60)).await.unwrap();
        assert_eq!(store.take_handoff("k").await.unwrap().map(|h| h.session), Some(s));
        assert!(store.take_handoff("k").await.unwrap().is_none(), "a handoff was taken twice");
        let short = Handoff { session: s, tokens: tokens(&p) };
        store.put_handoff("short", short, Duration::from_millis(100)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(store.take_handoff("short").await.unwrap().is_none(), "an expired handoff was taken");

        assert!(store.claim_once("t", Duration::from_secs(60)).await.unwrap());
        assert!(!store.claim_once("t", Duration::from_secs(60)).await.unwrap());
        assert!(store.claim_once("u", Duration::from_secs(60)).await.unwrap());
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
