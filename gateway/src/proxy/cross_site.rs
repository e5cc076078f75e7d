//! Requests made by a page of another site: they never carry the user's identity.
//!
//! The session cookie is `SameSite=None` (it must flow inside the Office iframe), so a foreign
//! page's request carries it; that says nothing of the user's intent. Browsers name the asking
//! page in `Origin` on cross-origin fetches, form posts and WebSocket handshakes, but not on the
//! GET of an `<img>`, `<script>`, `<link>` or a followed link; for those, Fetch Metadata's
//! `Sec-Fetch-Site` says `cross-site` or `same-site`, and `Referer` (origin-only by default)
//! names the page when it is sent.
//!
//! # Invariants
//! A request is foreign when its `Origin` is neither the gateway's nor in
//! `channel.allowed_origins`; or when `Sec-Fetch-Site` is `cross-site` or `same-site` and no
//! allowed page is named (by `Origin`, else by `Referer`'s origin). `same-origin`, `none` (the
//! user typed the address) and no header at all (not a browser, or an old one) are not.

use http::HeaderMap;

use crate::channel;

/// `Sec-Fetch-Site` (Fetch Metadata, W3C).
pub const SEC_FETCH_SITE: &str = "sec-fetch-site";

/// True when a page of another site sent the request (see the module's invariants).
pub fn is_foreign(headers: &HeaderMap, own_origin: &str, allowed: &[String]) -> bool {
    let is_allowed = |origin: &str| channel::origin_allowed(Some(origin), own_origin, allowed);
    let origins = headers.get_all(http::header::ORIGIN);
    if origins.iter().any(|o| !is_allowed(o.to_str().unwrap_or("null"))) {
        return true;
    }
    let site = headers.get(SEC_FETCH_SITE).map(|v| v.as_bytes().trim_ascii().to_ascii_lowercase());
    if !matches!(site.as_deref(), Some(b"cross-site" | b"same-site")) {
        return false;
    }
    if origins.iter().next().is_some() {
        // Every Origin sent was checked above and is allowed.
        return false;
    }
    let referer = headers.get(http::header::REFERER).and_then(|r| r.to_str().ok()).and_then(origin_of);
    !referer.is_some_and(|r| is_allowed(&r))
}

/// `scheme://host[:port]` of an absolute URL, as browsers serialise an origin.
fn origin_of(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    matches!(parsed.scheme(), "http" | "https").then(|| parsed.origin().ascii_serialization())
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWN: &str = "https://gw.example.com";

    fn foreign(pairs: &[(&'static str, &'static str)]) -> bool {
        let mut headers = HeaderMap::new();
        for (k, v) in pairs {
            headers.append(*k, http::HeaderValue::from_static(v));
        }
        is_foreign(&headers, OWN, &["https://addin.example.net".to_owned()])
    }

    #[test]
    fn fetch_metadata_marks_requests_without_origin() {
        assert!(foreign(&[("sec-fetch-site", "cross-site")]));
        assert!(foreign(&[("sec-fetch-site", "same-site"), ("referer", "https://evil.example.com/x")]));
        assert!(!foreign(&[("sec-fetch-site", "cross-site"), ("referer", "https://addin.example.net/pane?q")]));
        assert!(!foreign(&[("sec-fetch-site", "cross-site"), ("origin", "https://addin.example.net")]));
        assert!(!foreign(&[("sec-fetch-site", "same-origin")]));
        assert!(!foreign(&[("sec-fetch-site", "none")]));
        assert!(!foreign(&[]));
    }

    #[test]
    fn a_foreign_origin_is_foreign_whatever_else_is_sent() {
        assert!(foreign(&[("origin", "https://evil.example")]));
        assert!(foreign(&[("origin", "https://evil.example"), ("sec-fetch-site", "same-origin")]));
        assert!(!foreign(&[("origin", "https://gw.example.com")]));
    }
}
