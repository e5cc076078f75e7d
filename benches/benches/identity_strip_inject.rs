//! `identity::HeaderPolicy::headers_to_strip` (every request, every route) and
//! `identity::WireNames::headers` (every request forwarded for a signed-in user).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "bench setup: failing fast is the point")]

use std::hint::black_box;

use criterion::{BatchSize, Criterion};
use gateway::identity::{HeaderPolicy, WireNames};
use gateway_benches as fx;

/// Registers this file's benchmarks.
pub(crate) fn bench(c: &mut Criterion) {
    let config = fx::config();
    let policy = HeaderPolicy::from_config(&config.identity);
    let wire = WireNames::new(&config.identity);
    let clean = fx::browser_headers(Some("gw_session=x"));
    let mut spoofed = clean.clone();
    fx::add_spoofed_identity(&mut spoofed);
    assert!(policy.headers_to_strip(clean.keys(), false).is_empty());
    assert_eq!(policy.headers_to_strip(spoofed.keys(), false).len(), 4);
    let tokens = fx::tokens(&fx::provider());

    let mut g = c.benchmark_group("identity_strip_inject");
    g.bench_function("strip_clean", |b| {
        b.iter_batched_ref(
            || clean.clone(),
            |h| {
                for name in policy.headers_to_strip(h.keys(), false) {
                    h.remove(&name);
                }
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("strip_spoofed", |b| {
        b.iter_batched_ref(
            || spoofed.clone(),
            |h| {
                for name in policy.headers_to_strip(h.keys(), false) {
                    h.remove(&name);
                }
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("inject", |b| {
        b.iter_batched_ref(
            || clean.clone(),
            |h| {
                for (name, value) in wire.headers(black_box(&tokens), false) {
                    h.insert(http::HeaderName::from_bytes(&name).unwrap(), value);
                }
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("inject_with_access_token", |b| {
        b.iter_batched_ref(
            || clean.clone(),
            |h| {
                for (name, value) in wire.headers(black_box(&tokens), true) {
                    h.insert(http::HeaderName::from_bytes(&name).unwrap(), value);
                }
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}
