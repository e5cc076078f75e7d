//! The `[[routes]]` table: which paths need sign-in, matched on the normalised path only.
//!
//! # Invariants
//! Matching sees the path after percent-decoding, dot-segment removal and duplicate-slash
//! collapsing, and never the query or fragment, so `/public/..%2fapi/x`, `//api/x` and
//! `/api/./x` all meet the rule for `/api/`. A path that cannot be normalised (bad escape,
//! invalid UTF-8, NUL) is refused rather than guessed.

use http::Method;

use crate::config::RouteRule;

/// Why a path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Bad percent-escape, invalid UTF-8 after decoding, or a control character.
    #[error("the request path cannot be normalised")]
    Malformed,
}

/// Decodes and normalises `path` (RFC 3986 §5.2.4 dot segments, `//` → `/`).
pub fn normalize_path(path: &str) -> Result<String, PathError> {
    let raw = path.split(['?', '#']).next().unwrap_or("");
    let bytes = raw.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'%' {
            let ok = bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
            if !ok {
                return Err(PathError::Malformed);
            }
        }
    }
    let decoded = percent_encoding::percent_decode_str(raw).decode_utf8().map_err(|_| PathError::Malformed)?;
    if decoded.chars().any(|c| c.is_control()) {
        return Err(PathError::Malformed);
    }
    // Backslashes are path separators to some servers; treat them as such.
    let unified = decoded.replace('\\', "/");
    let mut out: Vec<&str> = Vec::new();
    for seg in unified.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let mut path = String::with_capacity(unified.len() + 1);
    for seg in &out {
        path.push('/');
        path.push_str(seg);
    }
    if path.is_empty() || (unified.ends_with('/') && !out.is_empty()) {
        path.push('/');
    }
    Ok(path)
}

/// The route rules, in config order; the longest matching prefix wins.
pub struct RouteRules {
    rules: Vec<RouteRule>,
}

impl RouteRules {
    /// From `[[routes]]`.
    pub fn new(rules: Vec<RouteRule>) -> Self {
        Self { rules }
    }

    /// True when no route needs sign-in.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The rule for a normalised path and method, if any.
    pub fn find(&self, normalized: &str, method: &Method) -> Option<&RouteRule> {
        self.rules
            .iter()
            .filter(|r| r.methods.as_ref().is_none_or(|m| m.contains(method)))
            .filter(|r| prefix_matches(&r.prefix, normalized))
            .max_by_key(|r| r.prefix.len())
    }
}

/// `/api/` matches `/api/x` and `/api`; `/api` matches `/api`, `/api/x`, not `/apix`.
fn prefix_matches(prefix: &str, path: &str) -> bool {
    let bare = prefix.trim_end_matches('/');
    if bare.is_empty() {
        return true;
    }
    match path.strip_prefix(bare) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Require;

    #[test]
    fn normalisation_defeats_encoding_tricks() {
        assert_eq!(normalize_path("/public/..%2fapi/x").unwrap(), "/api/x");
        assert_eq!(normalize_path("//api//x").unwrap(), "/api/x");
        assert_eq!(normalize_path("/api/./x/").unwrap(), "/api/x/");
        assert_eq!(normalize_path("/a/%2e%2e/api").unwrap(), "/api");
        assert_eq!(normalize_path("/..\\api").unwrap(), "/api");
        assert_eq!(normalize_path("/").unwrap(), "/");
        assert_eq!(normalize_path("/%zz").unwrap_err(), PathError::Malformed);
        assert_eq!(normalize_path("/%c0%ae%c0%ae/api").unwrap_err(), PathError::Malformed);
        assert_eq!(normalize_path("/a%00b").unwrap_err(), PathError::Malformed);
    }

    #[test]
    fn longest_prefix_wins_and_methods_filter() {
        let rule = |prefix: &str, methods: Option<Vec<Method>>| RouteRule {
            prefix: prefix.into(),
            methods,
            require: Require::Any,
            forward_access_token: false,
        };
        let rules = RouteRules::new(vec![rule("/api/", None), rule("/api/admin", Some(vec![Method::POST]))]);
        assert_eq!(rules.find("/api/x", &Method::GET).unwrap().prefix, "/api/");
        assert_eq!(rules.find("/api", &Method::GET).unwrap().prefix, "/api/");
        assert_eq!(rules.find("/api/admin/x", &Method::POST).unwrap().prefix, "/api/admin");
        assert_eq!(rules.find("/api/admin/x", &Method::GET).unwrap().prefix, "/api/");
        assert!(rules.find("/apix", &Method::GET).is_none());
        assert!(rules.find("/public", &Method::GET).is_none());
    }
}
