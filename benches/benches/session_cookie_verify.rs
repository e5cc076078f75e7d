//! `session::cookie::read_session_cookie`: the first thing every request with a cookie costs
//! (the generation lookup in the store that follows is `store_lookup`'s).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "bench setup: failing fast is the point")]

use std::hint::black_box;

use criterion::Criterion;
use gateway::session::cookie::{read_session_cookie, CookieRead};
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
    let session_of = |h, keys| match read_session_cookie(h, &name, keys) {
        CookieRead::One(c) => Some(c.session),
        _ => None,
    };
    assert_eq!(session_of(&valid, &keys), Some(session));
    assert_eq!(session_of(&forged, &keys), None);
    assert_eq!(session_of(&signed_by_old, &rotated), Some(session));

    let mut g = c.benchmark_group("session_cookie_verify");
    g.bench_function("valid", |b| b.iter(|| read_session_cookie(black_box(&valid), &name, &keys)));
    g.bench_function("absent", |b| b.iter(|| read_session_cookie(black_box(&absent), &name, &keys)));
    g.bench_function("forged", |b| b.iter(|| read_session_cookie(black_box(&forged), &name, &keys)));
    g.bench_function("rotated_old_key", |b| b.iter(|| read_session_cookie(black_box(&signed_by_old), &name, &rotated)));
    // The HMAC and base64 alone, without cookie parsing: what the parsing around it costs is
    // the difference to `valid`.
    let value = cookie.split_once('=').unwrap().1.to_owned();
    g.bench_function("keyring_verify_only", |b| b.iter(|| keys.verify(Purpose::SessionCookie, black_box(&value))));
    g.finish();
}
