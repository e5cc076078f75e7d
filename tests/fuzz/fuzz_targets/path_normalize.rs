//! Path normalisation for route matching (`proxy::rules::normalize_path`) and the rule lookup
//! on its result (`RouteRules::find`).
//!
//! Input: the request target's path (with query or fragment, as a client may send it).
//!
//! Invariants: nothing panics; the result starts with `/`, has no empty, `.` or `..` segment, no
//! `\`, no `;parameters`, no segment ending in a dot or space, no control character, ignores the
//! query and fragment, and normalising it again changes nothing (when it holds no `%`, `?` or `#`
//! that decoding produced); the protected `/api` rule matches a path exactly when the path is
//! `/api` or under `/api/`, in any ASCII case.
#![no_main]

use gateway::config::{Require, RouteRule};
use gateway::proxy::rules::{normalize_path, RouteRules};
use http::Method;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else { return };
    let Ok(path) = normalize_path(raw) else { return };
    assert!(path.starts_with('/'), "{raw:?} → {path:?}");
    let inner = path.strip_suffix('/').unwrap_or(&path);
    for seg in inner.split('/').skip(1) {
        assert!(!seg.is_empty() && seg != "." && seg != "..", "{raw:?} → {path:?} has segment {seg:?}");
        // Servlet `;parameters` and Windows trailing dots and spaces are cut, as upstreams read them.
        assert!(!seg.contains(';') && !seg.ends_with(['.', ' ']), "{raw:?} → {path:?} has segment {seg:?}");
    }
    assert!(!path.contains('\\') && !path.chars().any(char::is_control), "{raw:?} → {path:?}");
    let before_query = raw.split(['?', '#']).next().unwrap_or("");
    assert_eq!(normalize_path(before_query).as_deref(), Ok(&*path), "the query never matters");
    if !path.contains(['%', '?', '#']) {
        assert_eq!(normalize_path(&path).as_deref(), Ok(&*path), "normalising twice changes {raw:?}");
    }

    let rule = |prefix: &str| RouteRule {
        prefix: prefix.into(),
        methods: None,
        require: Require::Any,
        forward_access_token: false,
        allow: None,
        obo_scopes: Vec::new(),
    };
    let rules = RouteRules::new(vec![rule("/api/"), rule("/")]);
    let matched = rules.find(&path, &Method::GET).map(|r| r.prefix.as_str());
    let lower = path.to_ascii_lowercase();
    let under_api = lower == "/api" || lower.starts_with("/api/");
    assert_eq!(matched == Some("/api/"), under_api, "{raw:?} → {path:?} matched {matched:?}");
});
