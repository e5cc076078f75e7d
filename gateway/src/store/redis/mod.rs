//! The shared store: Redis holds tokens and login transactions (sealed, with their TTL as key
//! expiry), a small moka L1 answers hot lookups, pub/sub keeps the L1s coherent and relays
//! status events between gateway instances, and key-expiry notifications become `auth_expired`.
//!
//! ```text
//!  instance A ── SET t:<tag>:<provider> (sealed, PX ttl) ── PUBLISH inv ──▶ every L1 drops it
//!             └─ SET s:<tag>:<provider> (the session id, sealed, PX ttl + margin)
//!  instance A ── GETDEL f:<state>   (single use across instances)
//!  instance A ── SET / GET / GETDEL m:s:<digest>, INCR m:n:<digest>   (the Teams loop)
//!  instance A ── PUBLISH ev {session, event} ──▶ every instance → its own sockets of that session
//!  Redis      ── __keyevent@N__:expired t:<tag>:<provider> ──▶ every instance: GET s:<tag>:<provider>
//!                                                              → the session → its own sockets
//! ```
//! Key names carry an HMAC tag of the session id, never the id ([`super::key_names`]).
//! Redis down or slow: every call fails within `store.timeout` with [`StoreError::Unavailable`]
//! (protected routes answer 503); the connection manager reconnects by itself.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use moka::future::Cache;
use redis::aio::ConnectionManager;
use redis::AsyncCommands;
use tokio::sync::{broadcast, watch, OnceCell};

use super::key_names::{KeyNames, COMPANION_MARGIN};
use super::sealed::Sealer;
pub use super::wire::{decode_flow, encode_flow};
use super::wire::{WireHandoff, WireTokens};
use super::{Handoff, Removal, RemovalCause, StoreError, StoredTokens, TokenStore, FLOW_TTL};
use crate::auth::flow::FlowRecord;
use crate::channel::hub::Relay;
use crate::channel::{Hub, StatusEvent};
use crate::config::types::ProviderName;
use crate::session::{Keyring, SessionId};

mod teams;

/// How long an L1 entry may be served without asking Redis.
const L1_TTL: Duration = Duration::from_secs(5);

/// The Redis-backed store.
pub struct RedisStore {
    client: redis::Client,
    conn: OnceCell<ConnectionManager>,
    prefix: String,
    names: KeyNames,
    sealer: Sealer,
    timeout: Duration,
    token_ttl: Duration,
    l1: Cache<(SessionId, ProviderName), Arc<StoredTokens>>,
    /// Cookie generations (`None`: never rotated), coherent through the `inv` channel.
    generations_l1: Cache<SessionId, Option<u32>>,
    removals: broadcast::Sender<Removal>,
    /// Set by the subscriber once its subscriptions are established, cleared when they are lost.
    subscribed: AtomicBool,
}

/// What an `inv` message names instead of a provider when a session's cookie rotated.
const GENERATION_MARK: &str = "#generation";

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

impl RedisStore {
    /// A store on `url` (no connection is made until first use).
    pub fn new(
        url: &str,
        prefix: &str,
        keys: &Keyring,
        timeout: Duration,
        token_ttl: Duration,
    ) -> Result<Self, StoreError> {
        let client = redis::Client::open(url).map_err(unavailable)?;
        let (removals, _) = broadcast::channel(1024);
        let l1 = Cache::builder().max_capacity(100_000).time_to_live(L1_TTL.min(token_ttl)).build();
        let generations_l1 = Cache::builder().max_capacity(100_000).time_to_live(L1_TTL).build();
        Ok(Self {
            client,
            conn: OnceCell::new(),
            prefix: prefix.to_owned(),
            names: KeyNames::new(prefix, keys),
            sealer: Sealer::from_keyring(keys),
            timeout,
            token_ttl,
            l1,
            generations_l1,
            removals,
            subscribed: AtomicBool::new(false),
        })
    }

    async fn conn(&self) -> Result<ConnectionManager, StoreError> {
        let cfg = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(1);
        let init = self.client.get_connection_manager_with_config(cfg);
        let conn = tokio::time::timeout(self.timeout * 2, self.conn.get_or_try_init(|| init))
            .await
            .map_err(|_| unavailable("connect timed out"))?
            .map_err(unavailable)?;
        Ok(conn.clone())
    }

    async fn run<T, F>(&self, f: impl FnOnce(ConnectionManager) -> F) -> Result<T, StoreError>
    where
        F: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let conn = self.conn().await?;
        tokio::time::timeout(self.timeout, f(conn)).await.map_err(|_| unavailable("timed out"))?.map_err(unavailable)
    }

    /// The session and provider of an expired `t:` key, from its sealed `s:` companion.
    async fn expired_token_owner(&self, token_key: &str) -> Option<(SessionId, ProviderName)> {
        let provider = self.names.token_provider(token_key)?;
        let companion = self.names.companion(token_key)?;
        let name = companion.clone();
        let raw: Option<Vec<u8>> = self.run(|mut c| async move { c.get(name).await }).await.ok()?;
        let plain = self.sealer.open(&companion, &raw?)?;
        let session = SessionId::from_storage_key(std::str::from_utf8(&plain).ok()?)?;
        Some((session, provider))
    }

    fn decode_tokens(&self, key: &str, sealed: &[u8]) -> Option<StoredTokens> {
        let plain = self.sealer.open(key, sealed)?;
        serde_json::from_slice::<WireTokens>(&plain).ok()?.into_tokens()
    }

    /// The session's cookie generation under each of its names, newest secret first.
    async fn stored_generations(&self, session: &SessionId) -> Result<Vec<Option<u32>>, StoreError> {
        let keys = self.names.generation_all(session);
        self.run(|mut c| async move { redis::cmd("MGET").arg(keys).query_async(&mut c).await }).await
    }

    async fn invalidate_everywhere(&self, session: &SessionId, provider: &ProviderName) {
        self.l1.invalidate(&(*session, provider.clone())).await;
        let channel = format!("{}inv", self.prefix);
        let msg = format!("{} {}", session.storage_key(), provider);
        let _ = self.run(|mut c| async move { c.publish::<_, _, i64>(channel, msg).await }).await;
    }

    /// Listens for L1 invalidations, relayed events and key expiry until `shutdown`,
    /// reconnecting with a short back-off while Redis is away.
    pub async fn run_subscriber(&self, hub: Arc<Hub>, mut shutdown: watch::Receiver<bool>) {
        let inv = format!("{}inv", self.prefix);
        let ev = format!("{}ev", self.prefix);
        loop {
            let result = self.subscribe_once(&hub, &inv, &ev, &mut shutdown).await;
            self.subscribed.store(false, Ordering::SeqCst);
            if *shutdown.borrow() {
                return;
            }
            if let Err(e) = result {
                tracing::warn!(error = %e, "redis subscription lost; retrying");
            }
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    async fn subscribe_once(
        &self,
        hub: &Arc<Hub>,
        inv: &str,
        ev: &str,
        shutdown: &mut watch::Receiver<bool>,
    ) -> redis::RedisResult<()> {
        // Key-expiry events need `notify-keyspace-events` to include `Ex`; ask for it (a managed
        // Redis may refuse: then configure it there).
        // A fresh connection: after a Redis restart the setting is gone and must be set again.
        let mut c = self.client.get_multiplexed_async_connection().await?;
        let set: redis::RedisResult<()> =
            redis::cmd("CONFIG").arg("SET").arg("notify-keyspace-events").arg("Ex").query_async(&mut c).await;
        if let Err(e) = set {
            tracing::warn!(error = %e, "cannot enable Redis key-expiry notifications; auth_expired needs them");
        }
        let mut pubsub = self.client.get_async_pubsub().await?;
        pubsub.subscribe(inv).await?;
        pubsub.subscribe(ev).await?;
        pubsub.psubscribe("__keyevent@*__:expired").await?;
        self.subscribed.store(true, Ordering::SeqCst);
        tracing::info!("redis subscription established");
        let mut messages = pubsub.on_message();
        loop {
            let msg = tokio::select! {
                _ = shutdown.changed() => return Ok(()),
                m = messages.next() => match m { Some(m) => m, None => return Ok(()) },
            };
            let channel = msg.get_channel_name().to_owned();
            let Ok(payload) = msg.get_payload::<String>() else { continue };
            if channel == inv {
                if let Some((s, p)) = payload.split_once(' ') {
                    if p == GENERATION_MARK {
                        if let Some(s) = SessionId::from_storage_key(s) {
                            self.generations_l1.invalidate(&s).await;
                        }
                        continue;
                    }
                    if let (Some(s), Ok(p)) = (SessionId::from_storage_key(s), ProviderName::parse(p)) {
                        self.l1.invalidate(&(s, p)).await;
                    }
                }
            } else if channel == ev {
                if let Some((s, e)) = payload.split_once(' ') {
                    if let (Some(s), Some(e)) = (SessionId::from_storage_key(s), StatusEvent::from_native_json(e)) {
                        hub.publish(&s, &e);
                    }
                }
            } else if let Some((session, provider)) = self.expired_token_owner(&payload).await {
                self.l1.invalidate(&(session, provider.clone())).await;
                let _ = self.removals.send(Removal { session, provider, cause: RemovalCause::Expired });
            }
        }
    }
}

/// The Redis relay of status events (fire and forget; local delivery when Redis is away).
pub struct RedisRelay {
    store: Arc<RedisStore>,
}

impl RedisRelay {
    /// Relays through `store`'s connection.
    pub fn new(store: Arc<RedisStore>) -> Self {
        Self { store }
    }
}

impl Relay for RedisRelay {
    fn relay(&self, session: &SessionId, event: &StatusEvent) -> bool {
        let Some(conn) = self.store.conn.get().cloned() else { return false };
        let channel = format!("{}ev", self.store.prefix);
        let msg = format!("{} {}", session.storage_key(), event.to_native_json());
        let timeout = self.store.timeout;
        tokio::spawn(async move {
            let mut c = conn;
            let sent = tokio::time::timeout(timeout, c.publish::<_, _, i64>(channel, msg)).await;
            if !matches!(sent, Ok(Ok(_))) {
                tracing::warn!("status event relay through redis failed");
            }
        });
        true
    }
}

#[async_trait]
impl TokenStore for RedisStore {
    async fn put_tokens(&self, session: &SessionId, tokens: StoredTokens) -> Result<(), StoreError> {
        let provider = tokens.identity.provider.clone();
        let key = self.names.tokens(session, &provider);
        let companion = self.names.companion(&key).ok_or_else(|| unavailable("bad key name"))?;
        let age = tokens.signed_in_at.elapsed().unwrap_or_default();
        let wire = WireTokens::from_tokens(&tokens);
        let plain = serde_json::to_vec(&wire).map_err(unavailable)?;
        let sealed = self.sealer.seal(&key, &plain).ok_or_else(|| unavailable("sealing failed"))?;
        let owner = self
            .sealer
            .seal(&companion, session.storage_key().as_bytes())
            .ok_or_else(|| unavailable("sealing failed"))?;
        let remaining = self.token_ttl.saturating_sub(age);
        let px = u64::try_from(remaining.as_millis()).unwrap_or(u64::MAX).max(1);
        let companion_px = px.saturating_add(u64::try_from(COMPANION_MARGIN.as_millis()).unwrap_or(0));
        // Names under older secrets are dropped (DEL notifies no expiry): their later expiry
        // would announce the end of a sign-in that lives on under the new name.
        let old_names = self.names.tokens_all(session, &provider).into_iter().skip(1);
        let stale: Vec<String> = old_names.flat_map(|k| [self.names.companion(&k), Some(k)]).flatten().collect();
        self.run(|mut c| async move {
            let mut pipe = redis::pipe();
            pipe.atomic().pset_ex(&companion, owner, companion_px).ignore().pset_ex(&key, sealed, px).ignore();
            if !stale.is_empty() {
                pipe.del(stale).ignore();
            }
            pipe.query_async::<()>(&mut c).await
        })
        .await?;
        self.invalidate_everywhere(session, &provider).await;
        Ok(())
    }

    async fn tokens(
        &self,
        session: &SessionId,
        provider: &ProviderName,
    ) -> Result<Option<Arc<StoredTokens>>, StoreError> {
        let l1_key = (*session, provider.clone());
        if let Some(t) = self.l1.get(&l1_key).await {
            return Ok(Some(t));
        }
        let keys = self.names.tokens_all(session, provider);
        let k = keys.clone();
        let raw: Vec<Option<Vec<u8>>> =
            self.run(|mut c| async move { redis::cmd("MGET").arg(k).query_async(&mut c).await }).await?;
        let found = keys.iter().zip(raw).find_map(|(key, r)| r.and_then(|r| self.decode_tokens(key, &r)));
        let Some(t) = found else { return Ok(None) };
        let t = Arc::new(t);
        self.l1.insert(l1_key, Arc::clone(&t)).await;
        Ok(Some(t))
    }

    async fn remove_tokens(
        &self,
        session: &SessionId,
        provider: Option<&ProviderName>,
        all: &[ProviderName],
    ) -> Result<Vec<Arc<StoredTokens>>, StoreError> {
        let names: Vec<&ProviderName> = match provider {
            Some(p) => vec![p],
            None => all.iter().collect(),
        };
        let mut removed = Vec::new();
        for p in names {
            let keys = self.names.tokens_all(session, p);
            let companions: Vec<String> = keys.iter().filter_map(|k| self.names.companion(k)).collect();
            let k = keys.clone();
            let raw: Vec<Option<Vec<u8>>> = self
                .run(|mut c| async move {
                    let mut pipe = redis::pipe();
                    pipe.atomic();
                    for key in &k {
                        pipe.get_del(key);
                    }
                    pipe.del(&companions).ignore();
                    pipe.query_async(&mut c).await
                })
                .await?;
            self.invalidate_everywhere(session, p).await;
            let found = keys.iter().zip(raw).find_map(|(key, r)| r.and_then(|r| self.decode_tokens(key, &r)));
            if let Some(t) = found {
                removed.push(Arc::new(t));
                let _ = self.removals.send(Removal {
                    session: *session,
                    provider: p.clone(),
                    cause: RemovalCause::LoggedOut,
                });
            }
        }
        Ok(removed)
    }

    async fn put_flow(&self, state: &str, flow: FlowRecord) -> Result<(), StoreError> {
        let key = format!("{}f:{state}", self.prefix);
        let plain = encode_flow(&flow)?;
        let sealed = self.sealer.seal(&key, &plain).ok_or_else(|| unavailable("sealing failed"))?;
        let px = u64::try_from(FLOW_TTL.as_millis()).unwrap_or(u64::MAX);
        self.run(|mut c| async move { c.pset_ex::<_, _, ()>(key, sealed, px).await }).await
    }

    async fn take_flow(&self, state: &str) -> Result<Option<FlowRecord>, StoreError> {
        let key = format!("{}f:{state}", self.prefix);
        let k = key.clone();
        // GETDEL is atomic: of two instances taking one state, exactly one gets it.
        let raw: Option<Vec<u8>> = self.run(|mut c| async move { c.get_del(k).await }).await?;
        Ok(raw.and_then(|r| self.sealer.open(&key, &r)).and_then(|plain| decode_flow(&plain)))
    }

    async fn session_generation(&self, session: &SessionId) -> Result<Option<u32>, StoreError> {
        if let Some(g) = self.generations_l1.get(session).await {
            return Ok(g);
        }
        let raw = self.stored_generations(session).await?.into_iter().flatten().next();
        self.generations_l1.insert(*session, raw).await;
        Ok(raw)
    }

    async fn rotate_session(&self, session: &SessionId, keep_for: Duration) -> Result<u32, StoreError> {
        let key = self.names.generation(session);
        let px = u64::try_from(keep_for.as_millis()).unwrap_or(u64::MAX).max(1);
        let px = i64::try_from(px).unwrap_or(i64::MAX);
        // After a secret rotation the generation may live under an older name only: carry it
        // over, so the count never goes back (an older cookie would be accepted again).
        let stored = self.stored_generations(session).await?;
        if let (Some(None), Some(older)) = (stored.first(), stored.iter().skip(1).flatten().next()) {
            let (k, older) = (key.clone(), *older);
            self.run(|mut c| async move {
                redis::cmd("SET").arg(k).arg(older).arg("NX").arg("PX").arg(px).query_async::<()>(&mut c).await
            })
            .await?;
        }
        let (next,): (u32,) = self
            .run(|mut c| async move {
                redis::pipe().atomic().incr(&key, 1).pexpire(&key, px).ignore().query_async(&mut c).await
            })
            .await?;
        self.generations_l1.insert(*session, Some(next)).await;
        let channel = format!("{}inv", self.prefix);
        let msg = format!("{} {GENERATION_MARK}", session.storage_key());
        // Best effort, like every invalidation: the other instances' L1 entries age out in
        // `L1_TTL` anyway, and the rotation itself has happened.
        let _ = self.run(|mut c| async move { c.publish::<_, _, i64>(channel, msg).await }).await;
        Ok(next)
    }

    async fn put_handoff(&self, key: &str, handoff: Handoff, ttl: Duration) -> Result<(), StoreError> {
        let name = format!("{}h:{key}", self.prefix);
        let wire =
            WireHandoff { session: handoff.session.storage_key(), tokens: WireTokens::from_tokens(&handoff.tokens) };
        let plain = serde_json::to_vec(&wire).map_err(unavailable)?;
        let sealed = self.sealer.seal(&name, &plain).ok_or_else(|| unavailable("sealing failed"))?;
        let px = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        self.run(|mut c| async move { c.pset_ex::<_, _, ()>(name, sealed, px).await }).await
    }

    async fn take_handoff(&self, key: &str) -> Result<Option<Handoff>, StoreError> {
        let name = format!("{}h:{key}", self.prefix);
        let k = name.clone();
        // GETDEL is atomic: of two instances taking one code, exactly one gets it.
        let raw: Option<Vec<u8>> = self.run(|mut c| async move { c.get_del(k).await }).await?;
        let Some(plain) = raw.and_then(|r| self.sealer.open(&name, &r)) else { return Ok(None) };
        let Ok(wire) = serde_json::from_slice::<WireHandoff>(&plain) else { return Ok(None) };
        let session = SessionId::from_storage_key(&wire.session);
        Ok(session.zip(wire.tokens.into_tokens()).map(|(session, tokens)| Handoff { session, tokens }))
    }

    async fn claim_once(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        let name = format!("{}c:{key}", self.prefix);
        let px = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let set: Option<String> = self
            .run(|mut c| async move {
                redis::cmd("SET").arg(name).arg(1).arg("NX").arg("PX").arg(px).query_async(&mut c).await
            })
            .await?;
        Ok(set.is_some())
    }

    async fn put_cached(&self, key: &str, value: Vec<u8>, ttl: Duration) -> Result<(), StoreError> {
        let name = format!("{}v:{key}", self.prefix);
        let sealed = self.sealer.seal(&name, &value).ok_or_else(|| unavailable("sealing failed"))?;
        let px = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        self.run(|mut c| async move { c.pset_ex::<_, _, ()>(name, sealed, px).await }).await
    }

    async fn cached(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let name = format!("{}v:{key}", self.prefix);
        let k = name.clone();
        let raw: Option<Vec<u8>> = self.run(|mut c| async move { c.get(k).await }).await?;
        Ok(raw.and_then(|r| self.sealer.open(&name, &r)))
    }

    async fn put_teams_state(&self, key: &str, value: Vec<u8>, ttl: Duration) -> Result<(), StoreError> {
        self.put_teams(key, value, ttl).await
    }

    async fn teams_state(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.get_teams(key, false).await
    }

    async fn take_teams_state(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.get_teams(key, true).await
    }

    async fn count_teams(&self, key: &str, ttl: Duration) -> Result<u64, StoreError> {
        self.incr_teams(key, ttl).await
    }

    fn removals(&self) -> broadcast::Receiver<Removal> {
        self.removals.subscribe()
    }

    async fn run_maintenance(&self) {
        self.l1.run_pending_tasks().await;
        self.generations_l1.run_pending_tasks().await;
    }

    fn token_count(&self) -> u64 {
        self.l1.entry_count()
    }

    async fn is_ready(&self) -> bool {
        if !self.subscribed.load(Ordering::SeqCst) {
            return false;
        }
        let pong: Result<String, StoreError> =
            self.run(|mut c| async move { redis::cmd("PING").query_async(&mut c).await }).await;
        pong.is_ok()
    }
}
