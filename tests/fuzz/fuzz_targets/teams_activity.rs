//! Bot Framework activity parsing (`teams::activity::Activity`): the body of every request to
//! `bot_path`, and every field the auth loop reads from it.
//!
//! Input: the request body.
//!
//! Invariants: nothing panics; what is forwarded upstream (`without_state`) is a JSON object that
//! parses again as an activity with the same type, name, sender and no `value.state`.
#![no_main]

use gateway::teams::activity::Activity;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(a) = Activity::parse(data) else { return };
    let (kind, name, user) = (a.kind().to_owned(), a.name().to_owned(), a.user_key());
    let _ = (a.service_url(), a.text(), a.state(), a.is_query());
    let forwarded = a.without_state();
    let b = Activity::parse(&forwarded);
    // Serialising may grow the body (escapes), past the size limit: only then may it be refused.
    let Ok(b) = b else {
        assert!(forwarded.len() > gateway::teams::activity::MAX_ACTIVITY_BYTES, "forwarded body no longer parses");
        return;
    };
    assert_eq!((b.kind(), b.name()), (kind.as_str(), name.as_str()));
    assert_eq!(b.user_key(), user);
    assert_eq!(b.state(), None, "the security code is never forwarded");
});
