//! Config parsing and validation from text (`config::load_str`): TOML syntax, the serde schema
//! with unknown-key hints, and every semantic check.
//!
//! Input: the TOML text. `env:` references resolve to a marker secret (a Redis URL with a
//! password, long enough for a session secret). Inputs that name device or proc files are
//! skipped, since `file:` secrets and TLS paths are read from disk.
//!
//! Invariants: nothing panics; a refused file has at least one error;
//! neither the error messages nor the `Debug` of an accepted config show the secret.
#![no_main]

use gateway::config::load_str;
use libfuzzer_sys::fuzz_target;

const MARKER: &str = "fuzzmarkerpassword0123456789";
const ENV_VALUE: &str = "redis://:fuzzmarkerpassword0123456789@127.0.0.1:6379/0";

fn env(_name: &str) -> Option<String> {
    Some(ENV_VALUE.to_owned())
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    // Reading a device (/dev/zero, a tty) would hang the run; escapes could spell a path out.
    if ["/dev", "dev/", "/proc", "proc/", "/sys", "sys/", "\\u", "\\U"].iter().any(|p| text.contains(p)) {
        return;
    }
    let shows_marker = text.contains(MARKER);
    match load_str(text, "fuzz.toml", &env) {
        Ok(config) => {
            let shown = format!("{config:?}");
            assert!(shows_marker || !shown.contains(MARKER), "Debug of a config shows a secret: {shown}");
        }
        Err(errors) => {
            assert!(!errors.errors.is_empty(), "a refused config names a problem");
            let shown = errors.to_string();
            assert!(shows_marker || !shown.contains(MARKER), "a config error shows a secret: {shown}");
        }
    }
});
