//! `session::cookie::session_from_headers`: the first thing every request with a cookie costs.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "bench setup: failing fast is the point")]

use std::hint::black_box;

use criterion::Criterion;
use gateway::session::cookie::session_from_headers;
use gateway::session::{Purpose, SessionId};
use gateway_benches as fx;

/// Registers this file's benchmarks.
pub(crate) fn bench(c: &mut Criterion) {
    let config = fx::config();
    let keys = fx::keyring(&config);
    let name = config.session.cookie_name.as_str().to_owned();
    let session = SessionId::generate().unwrap();
    let cookie = fx::session_cookie(&config, &keys, &session);
    let valid = fx::browser_headers(Some(&cookie));
    let absent = fx::browser_headers(None);
    let forged_cookie = format!("{}A", &cookie[..cookie.len() - 1]);
    let forged = fx::browser_headers(Some(&forged_cookie));
    let (rotated, old) = fx::rotated_keyring();
    let old_cookie = fx::session_cookie(&config, &old, &session);
    let signed_by_old = fx::browser_headers(Some(&old_cookie));
    assert_eq!(session_from_headers(&valid, &name, &keys), Some(session));
    assert_eq!(session_from_headers(&forged, &name, &keys), None);
    assert_eq!(session_from_headers(&signed_by_old, &name, &rotated), Some(session));

    let mut g = c.benchmark_group("session_cookie_verify");
    g.bench_function("valid", |b| b.iter(|| session_from_headers(black_box(&valid), &name, &keys)));
    g.bench_function("absent", |b| b.iter(|| session_from_headers(black_box(&absent), &name, &keys)));
    g.bench_function("forged", |b| b.iter(|| session_from_headers(black_box(&forged), &name, &keys)));
    g.bench_function("rotated_old_key", |b| {
        b.iter(|| session_from_headers(black_box(&signed_by_old), &name, &rotated))
    });
    // The HMAC and base64 alone, without cookie parsing: what the parsing around it costs is
    // the difference to `valid`.
    let value = cookie.split_once('=').unwrap().1.to_owned();
    g.bench_function("keyring_verify_only", |b| b.iter(|| keys.verify(Purpose::SessionCookie, black_box(&value))));
    g.finish();
}
