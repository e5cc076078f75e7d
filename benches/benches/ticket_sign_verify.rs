//! `session::ticket::Tickets`: a sealed connect ticket is issued per provider in every session
//! JSON and 401 answer, and opened once per popup sign-in.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "bench setup: failing fast is the point")]

use std::hint::black_box;
use std::time::Duration;

use criterion::Criterion;
use gateway::session::ticket::Tickets;
use gateway::session::SessionId;
use gateway_benches as fx;

/// Registers this file's benchmarks.
pub(crate) fn bench(c: &mut Criterion) {
    let config = fx::config();
    let keys = fx::keyring(&config);
    let session = SessionId::generate().unwrap();
    let ttl = Duration::from_secs(300);
    let tickets = Tickets::new(&keys, ttl);
    let ticket = tickets.issue_connect(&session, "dev").unwrap();
    assert_eq!(tickets.open_connect(&ticket).unwrap().session, session);

    let mut g = c.benchmark_group("ticket_sign_verify");
    g.bench_function("issue", |b| b.iter(|| tickets.issue_connect(black_box(&session), "dev")));
    g.bench_function("verify", |b| b.iter(|| tickets.open_connect(black_box(&ticket))));
    g.bench_function("issue_then_verify", |b| {
        b.iter(|| tickets.open_connect(&tickets.issue_connect(black_box(&session), "dev").unwrap()))
    });
    g.finish();
}
