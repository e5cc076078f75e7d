//! The criterion benches of the gateway's hot paths: one module per measured function, all in one
//! binary so that `cargo bench` links Pingora once, not eight times (minutes each on 2 cores).
//! Run one with a filter: `cargo bench -p gateway-benches -- request_decision`.

mod flow_state_take;
mod id_token_verify_es256;
mod id_token_verify_rs256;
mod identity_strip_inject;
mod request_decision;
mod session_cookie_verify;
mod store_lookup;
mod ticket_sign_verify;

criterion::criterion_group!(
    benches,
    session_cookie_verify::bench,
    ticket_sign_verify::bench,
    store_lookup::bench,
    identity_strip_inject::bench,
    request_decision::bench,
    flow_state_take::bench,
    id_token_verify_rs256::bench,
    id_token_verify_es256::bench
);
criterion::criterion_main!(benches);
