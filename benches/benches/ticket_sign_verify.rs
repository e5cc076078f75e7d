//! `session::ticket::{issue_ticket, verify_ticket}`: one of each per popup sign-in and per
//! 401 answer (the connect URL carries a fresh ticket).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "bench setup: failing fast is the point")]

use std::hint::black_box;
use std::time::Duration;

use criterion::Criterion;
use gateway::session::ticket::{issue_ticket, verify_ticket};
use gateway::session::SessionId;
use gateway_benches as fx;

/// Registers this file's benchmarks.
pub(crate) fn bench(c: &mut Criterion) {
    let config = fx::config();
    let keys = fx::keyring(&config);
    let session = SessionId::generate().unwrap();
    let ttl = Duration::from_secs(300);
    let ticket = issue_ticket(&keys, &session, ttl);
    assert_eq!(verify_ticket(&keys, &ticket), Ok(session));

    let mut g = c.benchmark_group("ticket_sign_verify");
    g.bench_function("issue", |b| b.iter(|| issue_ticket(&keys, black_box(&session), ttl)));
    g.bench_function("verify", |b| b.iter(|| verify_ticket(&keys, black_box(&ticket))));
    g.bench_function("issue_then_verify", |b| {
        b.iter(|| verify_ticket(&keys, &issue_ticket(&keys, black_box(&session), ttl)))
    });
    g.finish();
}
