//! URL, origin and host validation: `PublicUrl::parse` (public_url, channel.allowed_origins and
//! the redirect URI built from it), `AllowedHost::parse` (extra_hosts), the request `Host`
//! check (`is_allowed_host`) and the channel's `Origin` check (`origin_allowed`).
//!
//! The gateway takes no redirect target from a request: the only `Location` it sets is the
//! provider's authorization URL from config, and the redirect URI is `public_url` + a fixed path.
//! So the request-controlled inputs here are `Host` and `Origin`.
//!
//! Input: up to four lines: a public URL, an extra host, a `Host` header, an `Origin` header.
//!
//! Invariants: nothing panics; an accepted public URL is an origin (no user info, path, query
//! or fragment) whose `origin()` parses back to itself and whose redirect URI stays on it; an
//! accepted `Host` names no user info, path or trailing dot; an accepted `Origin` is the gateway's
//! own or a listed one, byte for byte.
#![no_main]

use gateway::channel::origin_allowed;
use gateway::config::types::{AllowedHost, PublicUrl};
use gateway::proxy::forwarded::is_allowed_host;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut lines = text.split('\n');
    let (public, extra, host, origin) = (lines.next(), lines.next(), lines.next(), lines.next());
    let public = public.and_then(|p| PublicUrl::parse(p).ok());
    let Some(public) = public.or_else(|| PublicUrl::parse("https://gw.example.com").ok()) else { return };

    let own = public.origin();
    let reparsed = PublicUrl::parse(&own);
    assert!(reparsed.as_ref().is_ok_and(|r| r.origin() == own), "origin() is a valid public URL: {own:?}");
    assert!(!own.contains('@') && !own.contains('?') && !own.contains('#'), "an origin carries no user info: {own:?}");
    assert_eq!(own.matches('/').count(), 2, "an origin has no path: {own:?}");
    let redirect = public.join("/connect/entra/callback");
    assert!(
        redirect.starts_with(&own) && redirect[own.len()..].starts_with("/connect/"),
        "redirect URI leaves the origin: {redirect:?}"
    );
    assert!(!public.authority().contains(['@', '/', '\\']), "authority is host[:port] only: {:?}", public.authority());

    let mut allowed = vec![AllowedHost::from_public_url(&public)];
    allowed.extend(extra.and_then(|e| AllowedHost::parse(e).ok()));
    let default_port = if public.is_https() { 443 } else { 80 };
    assert!(is_allowed_host(Some(public.authority()), &allowed, default_port), "the public authority is allowed");
    if let Some(h) = host {
        if is_allowed_host(Some(h), &allowed, default_port) {
            let name = h.rsplit_once(':').map_or(h, |(n, _)| n);
            assert!(!h.contains(['@', '/', '\\']) && !name.ends_with('.'), "accepted Host {h:?}");
        }
    }

    let listed: Vec<String> = extra.and_then(|e| PublicUrl::parse(e).ok()).map(|u| u.origin()).into_iter().collect();
    assert!(origin_allowed(Some(&own), &own, &listed));
    if let Some(o) = origin {
        if origin_allowed(Some(o), &own, &listed) {
            assert!(o == own || listed.iter().any(|l| l == o), "accepted Origin {o:?}");
        }
    }
});
