//! Identity headers: which incoming headers a client may not set, and (later) what the gateway injects.
//!
//! # Invariants
//! Every identity header is removed from every request, whatever its case and whether it is
//! spelled with `_` for `-` (servers such as PHP, CGI and some frameworks treat them alike).
//! Forwarding headers (`Forwarded`, `X-Forwarded-*`, `X-Real-IP`, `X-Original-URL`,
//! `X-Rewrite-URL`) are removed unless the peer is a trusted proxy; an `_` spelling of any of
//! them is always removed, since no well-behaved proxy sends one.

mod user;

use http::HeaderName;

use crate::config::{defaults, IdentityHeaderNames};
pub use user::Identity;

/// Forwarding headers only a trusted proxy may send.
const FORWARDING_HEADERS: [&str; 5] = ["forwarded", "x-real-ip", "x-original-url", "x-rewrite-url", "x-forwarded-"];

/// Headers the gateway uses between its own parts; never accepted from a client.
const INTERNAL_PREFIX: &str = "x-gateway-";

/// The rules for one gateway: configured identity names plus the defaults, normalised.
#[derive(Debug, Clone)]
pub struct HeaderPolicy {
    identity: Vec<String>,
}

impl HeaderPolicy {
    /// From the configured header names.
    pub fn from_config(names: &IdentityHeaderNames) -> Self {
        let defaults = [
            defaults::DEFAULT_USER_HEADER,
            defaults::DEFAULT_EMAIL_HEADER,
            defaults::DEFAULT_PREFERRED_USERNAME_HEADER,
            defaults::DEFAULT_NAME_HEADER,
            defaults::DEFAULT_PROVIDER_HEADER,
            defaults::DEFAULT_ACCESS_TOKEN_HEADER,
        ];
        let mut identity: Vec<String> = names.all().iter().map(|n| n.as_str().to_owned()).collect();
        identity.extend(defaults.iter().map(|d| d.to_ascii_lowercase()));
        identity.sort();
        identity.dedup();
        Self { identity }
    }

    /// The names among `present` to remove from a request whose peer is `trusted` or not.
    pub fn headers_to_strip<'a>(
        &self,
        present: impl Iterator<Item = &'a HeaderName>,
        trusted: bool,
    ) -> Vec<HeaderName> {
        let mut out: Vec<HeaderName> = Vec::new();
        for name in present {
            if !out.contains(name) && self.must_strip(name.as_str(), trusted) {
                out.push(name.clone());
            }
        }
        out
    }

    fn must_strip(&self, name: &str, trusted: bool) -> bool {
        let has_underscore = name.contains('_');
        let normalised;
        let name = if has_underscore {
            normalised = name.replace('_', "-");
            normalised.as_str()
        } else {
            name
        };
        if self.identity.iter().any(|i| i == name) || name.starts_with(INTERNAL_PREFIX) {
            return true;
        }
        let forwarding =
            FORWARDING_HEADERS.iter().any(|f| if f.ends_with('-') { name.starts_with(f) } else { name == *f });
        forwarding && (!trusted || has_underscore)
    }
}

/// The identity header names of a config as the upstream request takes them: built once per
/// config, so a request neither copies nor re-spells a name (custom names go out in lower case,
/// as they did when Pingora spelled them).
#[derive(Debug, Clone)]
pub struct WireNames([bytes::Bytes; 6]);

impl WireNames {
    /// From the configured names, in the order of [`IdentityHeaderNames::all`].
    pub fn new(names: &IdentityHeaderNames) -> Self {
        Self(names.all().map(|n| bytes::Bytes::copy_from_slice(n.as_str().as_bytes())))
    }

    /// The identity headers of `tokens` (and the access token when `forward_token`); values
    /// that cannot form a valid header (control characters) are left out.
    pub fn headers<'a>(
        &'a self,
        tokens: &'a crate::store::StoredTokens,
        forward_token: bool,
    ) -> impl Iterator<Item = (bytes::Bytes, http::HeaderValue)> + 'a {
        use secrecy::ExposeSecret;
        let identity = self.0.iter().zip(tokens.header_values.get(tokens).iter());
        let identity = identity.filter_map(|(n, v)| Some((n.clone(), v.clone()?)));
        // The token is copied per request, not kept: it would double what a session holds.
        let token = forward_token
            .then(|| http::HeaderValue::from_str(tokens.access_token.expose_secret()).ok())
            .flatten()
            .map(|mut v| {
                v.set_sensitive(true);
                (self.0[ACCESS_TOKEN].clone(), v)
            });
        identity.chain(token)
    }
}

/// The index of the access token in [`IdentityHeaderNames::all`] order (the last one).
const ACCESS_TOKEN: usize = 5;

/// The values of one sign-in's identity headers (all but the access token), in
/// [`IdentityHeaderNames::all`] order, built on first use and kept with its tokens: a request
/// clones them (a reference count) instead of copying and validating each value again. Tokens
/// are never changed in place (a refresh stores new ones), so the values cannot go stale.
#[derive(Clone, Default)]
pub struct HeaderValues(std::sync::OnceLock<std::sync::Arc<[Option<http::HeaderValue>; ACCESS_TOKEN]>>);

impl std::fmt::Debug for HeaderValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HeaderValues(..)")
    }
}

impl HeaderValues {
    fn get(&self, tokens: &crate::store::StoredTokens) -> &[Option<http::HeaderValue>; ACCESS_TOKEN] {
        self.0.get_or_init(|| {
            let id = &tokens.identity;
            let value = |v: &str| http::HeaderValue::from_bytes(v.as_bytes()).ok();
            std::sync::Arc::new([
                value(&id.subject),
                id.email.as_deref().and_then(value),
                id.preferred_username.as_deref().and_then(value),
                id.name.as_deref().and_then(value),
                value(id.provider.as_str()),
            ])
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::defaults::*;

    fn policy() -> HeaderPolicy {
        HeaderPolicy::from_config(&names())
    }

    fn names() -> IdentityHeaderNames {
        let h = |s: &str| HeaderName::from_bytes(s.as_bytes()).unwrap();
        IdentityHeaderNames {
            user: h("X-Remote-User"),
            email: h(DEFAULT_EMAIL_HEADER),
            preferred_username: h(DEFAULT_PREFERRED_USERNAME_HEADER),
            name: h(DEFAULT_NAME_HEADER),
            provider: h(DEFAULT_PROVIDER_HEADER),
            access_token: h(DEFAULT_ACCESS_TOKEN_HEADER),
        }
    }

    fn tokens(access_token: &str) -> crate::store::StoredTokens {
        let mut identity = Identity::new(crate::config::types::ProviderName::parse("dev").unwrap(), "user-1".into());
        identity.email = Some("ada@example.com".into());
        identity.name = Some("bad\nname\u{7}".to_owned());
        crate::store::StoredTokens {
            identity,
            access_token: access_token.to_owned().into(),
            refresh_token: None,
            access_expires_at: None,
            signed_in_at: std::time::SystemTime::now(),
            header_values: HeaderValues::default(),
        }
    }

    fn sent(wire: &WireNames, tokens: &crate::store::StoredTokens, forward_token: bool) -> Vec<(String, String)> {
        wire.headers(tokens, forward_token)
            .map(|(n, v)| (String::from_utf8(n.to_vec()).unwrap(), v.to_str().unwrap().to_owned()))
            .collect()
    }

    #[test]
    fn identity_headers_carry_the_identity_and_the_token_only_when_forwarded() {
        let wire = WireNames::new(&names());
        let t = tokens("at-1");
        let pair = |n: &str, v: &str| (n.to_ascii_lowercase(), v.to_owned());
        let without = vec![
            pair("x-remote-user", "user-1"),
            pair(DEFAULT_EMAIL_HEADER, "ada@example.com"),
            pair(DEFAULT_PROVIDER_HEADER, "dev"),
        ];
        // No preferred user name; a name with control characters cannot be a header value.
        assert_eq!(sent(&wire, &t, false), without);
        let mut with = without.clone();
        with.push(pair(DEFAULT_ACCESS_TOKEN_HEADER, "at-1"));
        assert_eq!(sent(&wire, &t, true), with);
        assert!(wire.headers(&t, true).last().unwrap().1.is_sensitive(), "the token is marked sensitive");
        assert_eq!(sent(&wire, &t, false), without, "the cached values do not carry the token into the next request");
        // New tokens (a refresh stores new ones) carry their own values.
        assert_eq!(sent(&wire, &tokens("at-2"), true).last().unwrap().1, "at-2");
    }

    fn strip(names: &[&str], trusted: bool) -> Vec<String> {
        let names: Vec<HeaderName> = names.iter().map(|n| HeaderName::from_bytes(n.as_bytes()).unwrap()).collect();
        policy().headers_to_strip(names.iter(), trusted).iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn identity_headers_go_in_every_spelling_even_from_trusted_peers() {
        let got = strip(
            &[
                "X_Forwarded_User",
                "x-remote-user",
                "X_REMOTE_USER",
                "x-forwarded-email",
                "accept",
                "x-gateway-channel-session",
            ],
            true,
        );
        assert_eq!(
            got,
            ["x_forwarded_user", "x-remote-user", "x_remote_user", "x-forwarded-email", "x-gateway-channel-session"]
        );
    }

    #[test]
    fn forwarding_headers_stay_only_from_trusted_peers() {
        let all = ["forwarded", "x-forwarded-for", "x-forwarded-proto", "x-real-ip", "x-original-url", "host"];
        assert_eq!(strip(&all, false).len(), 5);
        assert!(strip(&all, true).is_empty());
        assert_eq!(strip(&["x_forwarded_for"], true), ["x_forwarded_for"]);
    }
}
