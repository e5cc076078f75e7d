//! Validated config values: once one of these exists, its rule holds and nobody re-checks it.

use std::fmt;
use std::time::Duration;

use url::Url;

/// Provider names the gateway uses for its own routes (`/connect/callback`, `/connect/logout`).
pub const RESERVED_PROVIDER_NAMES: [&str; 2] = ["callback", "logout"];

/// A provider's name: 1–32 of `a-z 0-9 _ -`, starting with a letter or digit, not reserved.
/// Shared, not copied: a clone (a token-store key on every request) allocates nothing.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProviderName(std::sync::Arc<str>);

impl serde::Serialize for ProviderName {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl ProviderName {
    /// Checks the name, or says what is wrong with it.
    pub fn parse(name: &str) -> Result<Self, String> {
        if RESERVED_PROVIDER_NAMES.contains(&name) {
            return Err(format!(
                "provider name \"{name}\" is reserved for the gateway's own routes (reserved: callback, logout)"
            ));
        }
        let valid_chars = name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        let valid_start = name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
        if name.is_empty() || name.len() > 32 || !valid_chars || !valid_start {
            return Err(format!(
                "provider name \"{name}\" must be 1 to 32 of a-z, 0-9, '_' and '-', starting with a letter or digit"
            ));
        }
        Ok(Self(name.into()))
    }

    /// The name as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ProviderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The URL browsers use to reach the gateway: http(s), a host, no path, query or user info.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl {
    url: Url,
    authority: String,
}

impl PublicUrl {
    /// Checks the URL, or says what is wrong with it.
    pub fn parse(text: &str) -> Result<Self, String> {
        let url = Url::parse(text).map_err(|e| format!("\"{text}\" is not a URL: {e}"))?;
        if url.scheme() != "https" && url.scheme() != "http" {
            return Err(format!("\"{text}\" must use https (or http behind a TLS hop)"));
        }
        let Some(host) = url.host_str() else {
            return Err(format!("\"{text}\" has no host"));
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(format!("\"{text}\" must not contain user info"));
        }
        if host.ends_with('.') {
            // The `Host` check refuses trailing-dot names, so this gateway could answer no one.
            return Err(format!("\"{text}\" must name its host without a trailing dot"));
        }
        if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
            return Err(format!(
                "\"{text}\" must be an origin only (scheme, host, port), with no path, query or fragment"
            ));
        }
        let authority = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        Ok(Self { url, authority })
    }

    /// `scheme://host[:port]`, as browsers send it in `Origin`.
    pub fn origin(&self) -> String {
        self.url.origin().ascii_serialization()
    }

    /// `host[:port]` with the scheme's default port omitted, as browsers send it in `Host`.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// True when the gateway is reached over https.
    pub fn is_https(&self) -> bool {
        self.url.scheme() == "https"
    }

    /// An absolute URL for a gateway path such as `/connect/entra/callback`.
    pub fn join(&self, path: &str) -> String {
        format!("{}{}", self.origin(), path)
    }
}

/// A lifetime that is longer than zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ttl(Duration);

impl Ttl {
    /// Refuses a zero duration.
    pub fn new(d: Duration) -> Result<Self, String> {
        if d.is_zero() {
            Err("must be longer than zero, as in \"2m\"".to_owned())
        } else {
            Ok(Self(d))
        }
    }

    /// The duration.
    pub fn get(self) -> Duration {
        self.0
    }
}

/// `SameSite` cookie attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    /// Sent in every context, including the Office iframe (needs `Secure`).
    None,
    /// Sent on top-level navigations.
    Lax,
    /// Sent only first-party.
    Strict,
}

impl SameSite {
    /// Parses `none`, `lax` or `strict` (any case).
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.to_ascii_lowercase().as_str() {
            "none" => Ok(Self::None),
            "lax" => Ok(Self::Lax),
            "strict" => Ok(Self::Strict),
            _ => Err(format!("\"{text}\" is not a SameSite value; valid: none, lax, strict")),
        }
    }
}

/// A cookie name made of RFC 6265 token characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieName(String);

impl CookieName {
    /// Checks the name.
    pub fn parse(text: &str) -> Result<Self, String> {
        let ok = !text.is_empty()
            && text.len() <= 64
            && text.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if ok {
            Ok(Self(text.to_owned()))
        } else {
            Err(format!("\"{text}\" is not a valid cookie name (1 to 64 token characters)"))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A `Host` value the gateway answers to: a host name with an optional port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHost {
    host: String,
    port: Option<u16>,
}

impl AllowedHost {
    /// Parses `host` or `host:port` (lower-cased).
    pub fn parse(text: &str) -> Result<Self, String> {
        let url = Url::parse(&format!("http://{text}/"))
            .map_err(|e| format!("\"{text}\" is not a host or host:port: {e}"))?;
        let host = bare_host(&url).ok_or_else(|| format!("\"{text}\" has no host"))?;
        if url.path() != "/" || !url.username().is_empty() {
            return Err(format!("\"{text}\" is not a host or host:port"));
        }
        if host.ends_with('.') {
            return Err(format!("\"{text}\" must name its host without a trailing dot"));
        }
        Ok(Self { host, port: url.port() })
    }

    /// From the public URL: host and port must both match.
    pub fn from_public_url(public: &PublicUrl) -> Self {
        let port = public.url.port_or_known_default();
        Self { host: bare_host(&public.url).unwrap_or_default(), port }
    }

    /// True when `host` (the name of a `Host` header value or `:authority`, an IPv6 address
    /// without its brackets) names this host.
    /// `default_port` is the listener scheme's default, used when the value has no port.
    pub fn matches(&self, host: &str, port: Option<u16>, default_port: u16) -> bool {
        if !self.host.eq_ignore_ascii_case(host) {
            return false;
        }
        match self.port {
            None => true,
            Some(p) => p == port.unwrap_or(default_port),
        }
    }
}

/// The host of `url` as it is compared with a `Host` header's name: lower-case, and an IPv6
/// address without the brackets that `Host` puts around it (`[::1]:8443` names `::1`).
fn bare_host(url: &Url) -> Option<String> {
    match url.host()? {
        url::Host::Ipv6(addr) => Some(addr.to_string()),
        host => Some(host.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_and_malformed_provider_names_are_refused() {
        assert!(ProviderName::parse("callback").unwrap_err().contains("reserved"));
        assert!(ProviderName::parse("Entra").is_err());
        assert!(ProviderName::parse("-x").is_err());
        assert_eq!(ProviderName::parse("entra-2").unwrap().as_str(), "entra-2");
    }

    #[test]
    fn public_url_must_be_an_origin() {
        assert!(PublicUrl::parse("https://gw.example.com/app").is_err());
        assert!(PublicUrl::parse("ftp://gw.example.com").is_err());
        assert!(PublicUrl::parse("https://u:p@gw.example.com").is_err());
        let u = PublicUrl::parse("https://localhost:3001").unwrap();
        assert_eq!(u.origin(), "https://localhost:3001");
        assert_eq!(u.authority(), "localhost:3001");
        assert_eq!(PublicUrl::parse("https://gw.example.com:443").unwrap().authority(), "gw.example.com");
    }

    #[test]
    fn allowed_host_matches_host_and_port() {
        let public = PublicUrl::parse("https://gw.example.com").unwrap();
        let h = AllowedHost::from_public_url(&public);
        assert!(h.matches("GW.example.com", None, 443));
        assert!(h.matches("gw.example.com", Some(443), 443));
        assert!(!h.matches("gw.example.com", Some(8443), 443));
        assert!(!h.matches("evil.example", None, 443));
        let any_port = AllowedHost::parse("alias.test").unwrap();
        assert!(any_port.matches("alias.test", Some(9), 80));
    }

    #[test]
    fn ipv6_public_url_and_extra_host_accept_their_own_host_header() {
        // Found by tests/fuzz (url_validation): with public_url "https://[::1]:8443" every
        // request got 421, since the bracketed host never equalled the `Host` header's address.
        use crate::proxy::forwarded::is_allowed_host;
        let public = PublicUrl::parse("https://[::1]:8443").unwrap();
        let allowed = [AllowedHost::from_public_url(&public), AllowedHost::parse("[fd00::2]").unwrap()];
        assert!(is_allowed_host(Some(public.authority()), &allowed, 443));
        assert!(is_allowed_host(Some("[::1]:8443"), &allowed, 443));
        assert!(is_allowed_host(Some("[FD00::2]"), &allowed, 443));
        assert!(!is_allowed_host(Some("[::1]:443"), &allowed, 443));
        assert!(!is_allowed_host(Some("[::2]:8443"), &allowed, 443));
    }

    #[test]
    fn trailing_dot_hosts_are_refused_at_load() {
        // Found by tests/fuzz (url_validation): "https://gw.example.com.:8443" loaded, but the
        // `Host` check refuses trailing-dot names, so every request would have got 421.
        let e = PublicUrl::parse("https://gw.example.com.:8443").unwrap_err();
        assert_eq!(e, "\"https://gw.example.com.:8443\" must name its host without a trailing dot");
        assert!(AllowedHost::parse("alias.test.").is_err());
        assert!(AllowedHost::parse("alias.test").is_ok());
    }
}
