//! `TokenStore::{put_flow, take_flow}` on the memory store: the login transaction saved at
//! `/connect/...` and taken, once, at the callback.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "bench setup: failing fast is the point")]

use std::hint::black_box;

use criterion::Criterion;
use gateway::auth::flow::{FlowRecord, Opener};
use gateway::session::{random_token, SessionId};
use gateway::store::memory::MemoryStore;
use gateway::store::TokenStore;
use gateway_benches as fx;
use secrecy::SecretString;

fn flow(session: SessionId) -> FlowRecord {
    FlowRecord {
        session,
        provider: fx::provider(),
        pkce_verifier: SecretString::from(random_token(32).unwrap()),
        nonce: random_token(16).unwrap(),
        opener: Opener::Office,
        teams_user: None,
    }
}

/// Registers this file's benchmarks.
pub(crate) fn bench(c: &mut Criterion) {
    let rt = fx::runtime();
    let store = MemoryStore::new(std::time::Duration::from_secs(3600));
    let session = SessionId::generate().unwrap();
    // Other logins in flight, so the cache is not a one-entry map.
    rt.block_on(async {
        for _ in 0..10_000 {
            store.put_flow(&random_token(32).unwrap(), flow(session)).await.unwrap();
        }
    });
    let mut g = c.benchmark_group("flow_state_take");
    g.bench_function("put_then_take", |b| {
        b.to_async(&rt).iter_batched(
            || (random_token(32).unwrap(), flow(session)),
            |(state, record)| {
                let store = &store;
                async move {
                    store.put_flow(&state, record).await.unwrap();
                    store.take_flow(black_box(&state)).await.unwrap().unwrap()
                }
            },
            criterion::BatchSize::SmallInput,
        )
    });
    let unknown = random_token(32).unwrap();
    g.bench_function("take_unknown", |b| {
        b.to_async(&rt).iter(|| async { store.take_flow(black_box(&unknown)).await.unwrap() })
    });
    g.finish();
}
