//! `providers::id_token::verify` of an ES256 ID token, keys cached: the callback's CPU cost
//! once the code exchange has answered.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "bench setup: failing fast is the point")]

use criterion::Criterion;
use gateway_benches as fx;

/// Registers this file's benchmarks.
pub(crate) fn bench(c: &mut Criterion) {
    let rt = fx::runtime();
    let case = fx::IdTokenCase::es256();
    // The first call fetches the JWKS; every later one uses the cache, as in production.
    assert_eq!(rt.block_on(case.verify()).unwrap().name.as_deref(), Some("Adele Vance"));
    let mut g = c.benchmark_group("id_token_verify_es256");
    g.bench_function("cached_keys", |b| b.to_async(&rt).iter(|| async { case.verify().await.unwrap() }));
    g.finish();
}
