//! `TokenStore::tokens` on the moka memory store: one lookup per request that carries a session.
//! The Redis store gets its rows here once it exists.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "bench setup: failing fast is the point")]

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion};
use gateway::session::SessionId;
use gateway::store::TokenStore;
use gateway_benches as fx;

/// Registers this file's benchmarks.
pub(crate) fn bench(c: &mut Criterion) {
    let rt = fx::runtime();
    let config = fx::config();
    let provider = fx::provider();
    let mut g = c.benchmark_group("store_lookup");
    for live in [1_000usize, 100_000] {
        let signed_in = rt.block_on(fx::signed_in(&config, live - 1));
        let store = signed_in.store;
        let hit = signed_in.session;
        let miss = SessionId::generate().unwrap();
        assert!(rt.block_on(store.tokens(&hit, &provider)).unwrap().is_some());
        g.bench_with_input(BenchmarkId::new("memory_hit", live), &hit, |b, s| {
            b.to_async(&rt).iter(|| async { store.tokens(black_box(s), &provider).await.unwrap() })
        });
        g.bench_with_input(BenchmarkId::new("memory_miss", live), &miss, |b, s| {
            b.to_async(&rt).iter(|| async { store.tokens(black_box(s), &provider).await.unwrap() })
        });
    }
    g.finish();
}
