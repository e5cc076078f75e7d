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

/// The identity headers for `identity` (and the access token when `forward_token`), with
/// values that cannot form a valid header (control characters) left out.
pub fn identity_headers(
    names: &IdentityHeaderNames,
    tokens: &crate::store::StoredTokens,
    forward_token: bool,
) -> Vec<(HeaderName, http::HeaderValue)> {
    use secrecy::ExposeSecret;
    let id = &tokens.identity;
    let mut out = Vec::with_capacity(6);
    let mut push = |name: &HeaderName, value: &str| {
        if let Ok(v) = http::HeaderValue::from_bytes(value.as_bytes()) {
            out.push((name.clone(), v));
        }
    };
    push(&names.user, &id.subject);
    push(&names.provider, id.provider.as_str());
    if let Some(v) = &id.email {
        push(&names.email, v);
    }
    if let Some(v) = &id.preferred_username {
        push(&names.preferred_username, v);
    }
    if let Some(v) = &id.name {
        push(&names.name, v);
    }
    if forward_token {
        push(&names.access_token, tokens.access_token.expose_secret());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::defaults::*;

    fn policy() -> HeaderPolicy {
        let h = |s: &str| HeaderName::from_bytes(s.as_bytes()).unwrap();
        HeaderPolicy::from_config(&IdentityHeaderNames {
            user: h("X-Remote-User"),
            email: h(DEFAULT_EMAIL_HEADER),
            preferred_username: h(DEFAULT_PREFERRED_USERNAME_HEADER),
            name: h(DEFAULT_NAME_HEADER),
            provider: h(DEFAULT_PROVIDER_HEADER),
            access_token: h(DEFAULT_ACCESS_TOKEN_HEADER),
        })
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
