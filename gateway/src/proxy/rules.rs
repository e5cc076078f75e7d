//! The `[[routes]]` table: which paths need sign-in, matched on the normalised path only.
//!
//! # Invariants
//! Matching sees the path after percent-decoding, dot-segment removal and duplicate-slash
//! collapsing, and never the query or fragment, so `/public/..%2fapi/x`, `//api/x` and
//! `/api/./x` all meet the rule for `/api/`. Whatever a common upstream could read as a protected
//! path is protected too: prefixes and methods compare ASCII case-insensitively (IIS, ASP.NET,
//! Express), `;parameters` are cut from segments (servlet containers: `/..;/`, `/;/`), trailing
//! dots and spaces are cut from segments (Windows file names), `HEAD` counts as `GET`, and
//! method overrides count as methods: the override headers, `_method` in the query, and, for a
//! `POST` with a form body (where Rails, Laravel and Symfony read `_method`), every method,
//! since the body is not read before the rule is chosen. A path that cannot be normalised (bad escape,
//! invalid UTF-8, NUL, a segment of only dots and spaces other than `.` and `..`) is refused
//! rather than guessed.

use http::{HeaderMap, Method};

use crate::config::RouteRule;

/// Why a path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Bad percent-escape, invalid UTF-8 after decoding, a control character, or a segment of
    /// dots and spaces that servers disagree on (`...`, `. .`).
    #[error("the request path cannot be normalised")]
    Malformed,
}

/// Decodes and normalises `path` (RFC 3986 §5.2.4 dot segments, `//` → `/`). A path already in
/// normal form (the usual one) is returned as it is, without being copied.
pub fn normalize_path(path: &str) -> Result<std::borrow::Cow<'_, str>, PathError> {
    if is_normal(path) {
        return Ok(std::borrow::Cow::Borrowed(path));
    }
    normalize_copy(path).map(std::borrow::Cow::Owned)
}

/// True when normalising `path` would give `path` itself: it starts with `/`, holds only
/// letters, digits and `-._~!$&'()*+,=:@/` (so no escape, `\`, `;`, space, query or control
/// character), and has no empty segment but a final one and no segment ending in a dot (which
/// covers `.` and `..`). Anything else takes the full normalisation.
fn is_normal(path: &str) -> bool {
    let Some(rest) = path.strip_prefix('/') else { return false };
    if !rest.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,=:@/".contains(&b)) {
        return false;
    }
    let mut segments = rest.split('/').peekable();
    while let Some(seg) = segments.next() {
        let last = segments.peek().is_none();
        if (seg.is_empty() && !last) || seg.ends_with('.') {
            return false;
        }
    }
    true
}

fn normalize_copy(path: &str) -> Result<String, PathError> {
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
        // Servlet containers drop `;parameters` from each segment (`/..;/` is `/../`).
        let seg = seg.split(';').next().unwrap_or("");
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => {
                // Windows drops trailing dots and spaces from file names (`/api./` is `/api/`).
                let trimmed = s.trim_end_matches(['.', ' ']);
                if trimmed.is_empty() {
                    return Err(PathError::Malformed);
                }
                out.push(trimmed);
            }
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
        self.find_any(normalized, std::slice::from_ref(method))
    }

    /// The rule for a normalised path and a request's method, or any method an override names
    /// (headers, `query`'s `_method`; a form `POST` could name any): of every rule one of them
    /// meets, the longest prefix.
    pub fn find_for(
        &self,
        normalized: &str,
        method: &Method,
        headers: &HeaderMap,
        query: Option<&str>,
    ) -> Option<&RouteRule> {
        if *method == Method::POST && has_form_body(headers) {
            return self.find_matching(normalized, |_| true);
        }
        let from_headers = METHOD_OVERRIDE_HEADERS.iter().flat_map(|name| headers.get_all(*name));
        let from_headers = from_headers.filter_map(|v| Method::from_bytes(v.as_bytes().trim_ascii()).ok());
        let params = url::form_urlencoded::parse(query.unwrap_or("").as_bytes());
        let from_query = params
            .filter(|(k, _)| k == METHOD_OVERRIDE_PARAM)
            .filter_map(|(_, v)| Method::from_bytes(v.trim().as_bytes()).ok());
        let mut overrides = from_headers.chain(from_query).peekable();
        // The usual request names no other method: its own is matched without collecting a list.
        if overrides.peek().is_none() {
            return self.find_any(normalized, std::slice::from_ref(method));
        }
        let methods: Vec<Method> = std::iter::once(method.clone()).chain(overrides).collect();
        self.find_any(normalized, &methods)
    }

    fn find_any(&self, normalized: &str, methods: &[Method]) -> Option<&RouteRule> {
        self.find_matching(normalized, |allowed| methods.iter().any(|m| method_matches(allowed, m)))
    }

    fn find_matching(&self, normalized: &str, methods_ok: impl Fn(&[Method]) -> bool) -> Option<&RouteRule> {
        self.rules
            .iter()
            .filter(|r| r.methods.as_deref().is_none_or(&methods_ok))
            .filter(|r| prefix_matches(&r.prefix, normalized))
            .max_by_key(|r| r.prefix.len())
    }
}

/// The query or form field frameworks read as the request's real method (Rails, Laravel,
/// Symfony, Express's method-override).
pub const METHOD_OVERRIDE_PARAM: &str = "_method";

/// True when the body is a form (`application/x-www-form-urlencoded` or `multipart/form-data`),
/// where a `_method` field may hide.
fn has_form_body(headers: &HeaderMap) -> bool {
    headers.get_all(http::header::CONTENT_TYPE).iter().any(|v| {
        let v = v.as_bytes().to_ascii_lowercase();
        v.starts_with(b"application/x-www-form-urlencoded") || v.starts_with(b"multipart/form-data")
    }) || (!headers.contains_key(http::header::CONTENT_TYPE) && carries_body(headers))
}

/// A `Content-Length` above zero or a `Transfer-Encoding`.
fn carries_body(headers: &HeaderMap) -> bool {
    let length = headers.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok());
    headers.contains_key(http::header::TRANSFER_ENCODING) || length.is_some_and(|l| l.trim() != "0")
}

/// Headers that frameworks read as the request's real method (ASP.NET, Express's
/// method-override, Symfony, Google APIs); a rule filtered by method also meets these.
pub const METHOD_OVERRIDE_HEADERS: [&str; 3] = ["x-http-method-override", "x-http-method", "x-method-override"];

/// `method` is one of `allowed`, in any case; `HEAD` is answered by `GET` handlers, so a
/// `GET` rule covers it.
fn method_matches(allowed: &[Method], method: &Method) -> bool {
    let name = method.as_str();
    allowed.iter().any(|a| {
        a.as_str().eq_ignore_ascii_case(name) || (*a == Method::GET && name.eq_ignore_ascii_case(Method::HEAD.as_str()))
    })
}

/// `/api/` matches `/api/x` and `/api`; `/api` matches `/api`, `/api/x`, not `/apix`; ASCII case
/// is ignored.
fn prefix_matches(prefix: &str, path: &str) -> bool {
    let bare = prefix.trim_end_matches('/');
    if bare.is_empty() {
        return true;
    }
    match path.get(..bare.len()) {
        Some(head) if head.eq_ignore_ascii_case(bare) => {
            let rest = &path[bare.len()..];
            rest.is_empty() || rest.starts_with('/')
        }
        _ => false,
    }
}

/// True when `path` (a raw request path) names the same resource as the configured `route`
/// after normalisation, ignoring ASCII case and a trailing slash, as rules match.
pub fn is_same_path(path: &str, route: &str) -> bool {
    normalize_path(path).is_ok_and(|p| p.trim_end_matches('/').eq_ignore_ascii_case(route.trim_end_matches('/')))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Require;

    #[test]
    fn a_path_taken_as_it_is_is_what_full_normalisation_gives() {
        // Every path of up to 5 characters over an alphabet of the characters that matter,
        // plus a sample of longer ones: the shortcut never disagrees with the full work.
        const ALPHABET: &[u8] = b"/a.%2e;\\ ~-";
        let mut checked = 0;
        let mut shortcut = 0;
        let mut check = |path: &str| {
            let full = normalize_copy(path);
            let got = normalize_path(path);
            assert_eq!(got.as_deref().map_err(|e| *e), full.as_deref().map_err(|e| *e), "{path:?}");
            if matches!(got, Ok(std::borrow::Cow::Borrowed(_))) {
                shortcut += 1;
            }
            checked += 1;
        };
        let mut path = Vec::new();
        for len in 0..=5u32 {
            for mut n in 0..ALPHABET.len().pow(len) {
                path.clear();
                for _ in 0..len {
                    path.push(ALPHABET[n % ALPHABET.len()]);
                    n /= ALPHABET.len();
                }
                check(std::str::from_utf8(&path).unwrap());
            }
        }
        for p in ["/api/items", "/api/items/", "/.well-known/x", "/a.b/c", "/a/b/c/d/e/f/g.html", "/@x/~y/$z"] {
            check(p);
        }
        assert!(checked > 100_000 && shortcut > 1_000, "{checked} paths, {shortcut} taken as they are");
        assert!(matches!(normalize_path("/api/items"), Ok(std::borrow::Cow::Borrowed(_))));
    }

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
    fn normalisation_reads_paths_as_lenient_servers_do() {
        assert_eq!(normalize_path("/public/..;/api/x").unwrap(), "/api/x");
        assert_eq!(normalize_path("/;/api;jsessionid=1/x").unwrap(), "/api/x");
        assert_eq!(normalize_path("/api./x").unwrap(), "/api/x");
        assert_eq!(normalize_path("/api%20/x.").unwrap(), "/api/x");
        assert_eq!(normalize_path("/a.b/c").unwrap(), "/a.b/c");
        assert_eq!(normalize_path("/public/.../api").unwrap_err(), PathError::Malformed);
        assert_eq!(normalize_path("/public/.. /api").unwrap_err(), PathError::Malformed);
        assert!(is_same_path("/API//messages/", "/api/messages"));
        assert!(is_same_path("/api/x/../messages", "/api/messages"));
        assert!(!is_same_path("/api/messages/x", "/api/messages"));
    }

    #[test]
    fn longest_prefix_wins_and_methods_filter() {
        let rule = |prefix: &str, methods: Option<Vec<Method>>| RouteRule {
            prefix: prefix.into(),
            methods,
            require: Require::Any,
            forward_access_token: false,
            allow: None,
            obo_scopes: Vec::new(),
        };
        let rules = RouteRules::new(vec![rule("/api/", None), rule("/api/admin", Some(vec![Method::POST]))]);
        assert_eq!(rules.find("/api/x", &Method::GET).unwrap().prefix, "/api/");
        assert_eq!(rules.find("/api", &Method::GET).unwrap().prefix, "/api/");
        assert_eq!(rules.find("/api/admin/x", &Method::POST).unwrap().prefix, "/api/admin");
        assert_eq!(rules.find("/api/admin/x", &Method::GET).unwrap().prefix, "/api/");
        assert!(rules.find("/apix", &Method::GET).is_none());
        assert!(rules.find("/public", &Method::GET).is_none());
        assert_eq!(rules.find("/API/Admin/x", &Method::POST).unwrap().prefix, "/api/admin");
    }

    #[test]
    fn method_filters_cover_head_case_and_overrides() {
        let rule = |prefix: &str, methods: Vec<Method>| RouteRule {
            prefix: prefix.into(),
            methods: Some(methods),
            require: Require::Any,
            forward_access_token: false,
            allow: None,
            obo_scopes: Vec::new(),
        };
        let rules = RouteRules::new(vec![rule("/items/", vec![Method::DELETE]), rule("/reports/", vec![Method::GET])]);
        let none = HeaderMap::new();
        assert!(rules.find("/reports/1", &Method::HEAD).is_some());
        assert!(rules.find("/items/1", &Method::from_bytes(b"delete").unwrap()).is_some());
        let json = {
            let mut h = HeaderMap::new();
            h.insert("content-type", http::HeaderValue::from_static("application/json"));
            h
        };
        assert!(rules.find_for("/items/1", &Method::POST, &json, None).is_none());
        assert!(rules.find_for("/items/1", &Method::GET, &none, Some("a=1")).is_none());
        let mut overridden = json.clone();
        overridden.insert("x-http-method-override", http::HeaderValue::from_static("DELETE"));
        assert!(rules.find_for("/items/1", &Method::POST, &overridden, None).is_some());
    }

    #[test]
    fn method_parameters_count_as_methods() {
        let rule = RouteRule {
            prefix: "/items/".into(),
            methods: Some(vec![Method::DELETE]),
            require: Require::Any,
            forward_access_token: false,
            allow: None,
            obo_scopes: Vec::new(),
        };
        let rules = RouteRules::new(vec![rule]);
        let mut json = HeaderMap::new();
        json.insert("content-type", http::HeaderValue::from_static("application/json"));
        assert!(rules.find_for("/items/1", &Method::POST, &json, Some("_method=DELETE")).is_some());
        assert!(rules.find_for("/items/1", &Method::POST, &json, Some("x=1&_method=delete")).is_some());
        // The parameter's name is read decoded, as the frameworks that honour it read it.
        assert!(rules.find_for("/items/1", &Method::POST, &json, Some("%5Fmethod=DELETE")).is_some());
        assert!(rules.find_for("/items/1", &Method::POST, &json, Some("_method2=DELETE")).is_none());
        for name in METHOD_OVERRIDE_HEADERS {
            let mut h = json.clone();
            h.insert(name, http::HeaderValue::from_static("delete"));
            assert!(rules.find_for("/items/1", &Method::POST, &h, None).is_some(), "{name}");
            h.insert(name, http::HeaderValue::from_static("not a method"));
            assert!(rules.find_for("/items/1", &Method::POST, &h, None).is_none(), "{name}");
        }
        let mut form = HeaderMap::new();
        form.insert("content-type", http::HeaderValue::from_static("application/x-www-form-urlencoded"));
        assert!(rules.find_for("/items/1", &Method::POST, &form, None).is_some());
        form.insert("content-type", http::HeaderValue::from_static("multipart/form-data; boundary=x"));
        assert!(rules.find_for("/items/1", &Method::POST, &form, None).is_some());
        // A POST body with no Content-Type may still be read as a form by a lenient framework.
        assert!(rules.find_for("/items/1", &Method::POST, &HeaderMap::new(), None).is_none());
        let mut untyped = HeaderMap::new();
        untyped.insert("content-length", http::HeaderValue::from_static("12"));
        assert!(rules.find_for("/items/1", &Method::POST, &untyped, None).is_some());
    }
}
