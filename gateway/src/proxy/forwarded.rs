//! `Host` checking and the `X-Forwarded-*` headers the gateway sets upstream.

use std::net::IpAddr;

use http::HeaderValue;
use ipnet::IpNet;

use crate::config::types::AllowedHost;

/// `X-Forwarded-For`.
pub const X_FORWARDED_FOR: &str = "x-forwarded-for";
/// `X-Forwarded-Proto`.
pub const X_FORWARDED_PROTO: &str = "x-forwarded-proto";
/// `X-Forwarded-Host`.
pub const X_FORWARDED_HOST: &str = "x-forwarded-host";

/// True when `peer` is inside one of the trusted proxy networks.
pub fn is_trusted(peer: Option<IpAddr>, trusted: &[IpNet]) -> bool {
    peer.is_some_and(|ip| trusted.iter().any(|net| net.contains(&ip)))
}

/// The client's address: `peer` itself, or, when `peer` is a trusted proxy, the right-most
/// address of its `X-Forwarded-For` chain that is not itself a trusted proxy (addresses left of
/// it were written by the client and prove nothing). An unreadable chain gives `peer`.
pub fn client_address<'a>(
    peer: Option<IpAddr>,
    xff: impl Iterator<Item = &'a HeaderValue>,
    trusted: &[IpNet],
) -> Option<IpAddr> {
    if !is_trusted(peer, trusted) {
        return peer;
    }
    let values: Vec<&str> = xff.filter_map(|v| v.to_str().ok()).collect();
    let mut hops = values.iter().flat_map(|v| v.split(',')).map(str::trim).rev();
    let mut client = peer;
    for hop in hops.by_ref() {
        let Ok(ip) = hop.parse::<IpAddr>() else { return client };
        client = Some(ip);
        if !is_trusted(Some(ip), trusted) {
            break;
        }
    }
    client
}

/// Splits a `Host` value into host and port (`[v6]:port` included).
fn split_host(value: &str) -> Option<(&str, Option<u16>)> {
    if let Some(rest) = value.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return match after.strip_prefix(':') {
            Some(p) => Some((host, Some(p.parse().ok()?))),
            None if after.is_empty() => Some((host, None)),
            None => None,
        };
    }
    match value.rsplit_once(':') {
        Some((host, port)) => Some((host, Some(port.parse().ok()?))),
        None => Some((value, None)),
    }
}

/// True when the request's `Host` (or `:authority`) is one the gateway answers to.
pub fn is_allowed_host(host: Option<&str>, allowed: &[AllowedHost], default_port: u16) -> bool {
    let Some((name, port)) = host.and_then(split_host) else { return false };
    // A host name has no user info, no path and no trailing dot games.
    if name.is_empty() || name.ends_with('.') || name.contains(['@', '/', '\\']) {
        return false;
    }
    allowed.iter().any(|a| a.matches(name, port, default_port))
}

/// The three forwarding headers for the upstream. From a trusted peer the client's
/// `X-Forwarded-For` chain is extended and its proto/host kept; otherwise they are replaced.
/// `host` is the request's own `Host` value (shared, not copied). A value that cannot be a
/// header is left out.
pub fn forwarding_values(
    client_ip: Option<IpAddr>,
    https: bool,
    host: Option<&HeaderValue>,
    trusted: Option<TrustedValues<'_>>,
) -> [(&'static str, Option<HeaderValue>); 3] {
    let trusted = trusted.unwrap_or_default();
    // An address is at most 45 characters; with the trusted chain the value is built once.
    let mut ip_text = [0u8; 48];
    let ip = client_ip.and_then(|ip| {
        let mut cursor = std::io::Cursor::new(&mut ip_text[..]);
        std::io::Write::write_fmt(&mut cursor, format_args!("{ip}")).ok()?;
        let len = usize::try_from(cursor.position()).ok()?;
        Some(&ip_text[..len])
    });
    let chain = match (trusted.xff, ip) {
        (Some(prev), Some(ip)) => HeaderValue::from_bytes(&[prev.as_bytes(), b", ", ip].concat()).ok(),
        (Some(prev), None) => HeaderValue::from_str(prev).ok(),
        (None, Some(ip)) => HeaderValue::from_bytes(ip).ok(),
        (None, None) => None,
    };
    let proto = match trusted.proto {
        Some(p) => HeaderValue::from_str(p).ok(),
        None => Some(HeaderValue::from_static(if https { "https" } else { "http" })),
    };
    let fwd_host = match trusted.host {
        Some(h) => HeaderValue::from_str(h).ok(),
        None => host.cloned(),
    };
    [(X_FORWARDED_FOR, chain), (X_FORWARDED_PROTO, proto), (X_FORWARDED_HOST, fwd_host)]
}

/// Forwarding values a trusted proxy sent.
#[derive(Debug, Default)]
pub struct TrustedValues<'a> {
    /// Its `X-Forwarded-For`.
    pub xff: Option<&'a str>,
    /// Its `X-Forwarded-Proto`.
    pub proto: Option<&'a str>,
    /// Its `X-Forwarded-Host`.
    pub host: Option<&'a str>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_check_accepts_only_allowed_authorities() {
        let allowed = [AllowedHost::parse("localhost:3001").unwrap(), AllowedHost::parse("alias.test").unwrap()];
        assert!(is_allowed_host(Some("localhost:3001"), &allowed, 443));
        assert!(is_allowed_host(Some("LOCALHOST:3001"), &allowed, 443));
        assert!(is_allowed_host(Some("alias.test"), &allowed, 443));
        assert!(!is_allowed_host(Some("localhost:3002"), &allowed, 443));
        assert!(!is_allowed_host(Some("evil.example"), &allowed, 443));
        assert!(!is_allowed_host(Some("alias.test."), &allowed, 443));
        assert!(!is_allowed_host(Some("u@alias.test"), &allowed, 443));
        assert!(!is_allowed_host(None, &allowed, 443));
    }

    #[test]
    fn the_client_is_the_first_untrusted_hop_from_the_right() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let lb = Some("10.0.0.5".parse().unwrap());
        let chain = HeaderValue::from_static("198.51.100.9, 203.0.113.7, 10.0.0.9");
        let got = client_address(lb, std::iter::once(&chain), &trusted);
        assert_eq!(got, Some("203.0.113.7".parse().unwrap()));
        let outsider = Some("192.0.2.1".parse().unwrap());
        assert_eq!(client_address(outsider, std::iter::once(&chain), &trusted), outsider);
        assert_eq!(client_address(lb, std::iter::empty(), &trusted), lb);
        let junk = HeaderValue::from_static("nonsense");
        assert_eq!(client_address(lb, std::iter::once(&junk), &trusted), lb);
    }

    #[test]
    fn untrusted_forwarding_values_are_the_gateways_own() {
        let text = |v: [(&'static str, Option<HeaderValue>); 3]| {
            v.map(|(k, v)| (k, v.map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default()))
        };
        let host = HeaderValue::from_static("gw.example");
        let v = forwarding_values(Some("10.1.2.3".parse().unwrap()), true, Some(&host), None);
        let want = |a: &str, b: &str, c: &str| {
            [(X_FORWARDED_FOR, a.to_owned()), (X_FORWARDED_PROTO, b.to_owned()), (X_FORWARDED_HOST, c.to_owned())]
        };
        assert_eq!(text(v), want("10.1.2.3", "https", "gw.example"));
        let v6 = "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff".parse().unwrap();
        assert_eq!(text(forwarding_values(Some(v6), false, None, None)), want(&v6.to_string(), "http", ""));
        let t = TrustedValues { xff: Some("203.0.113.7"), proto: Some("https"), host: Some("public.example") };
        let v = forwarding_values(Some("10.1.2.3".parse().unwrap()), false, Some(&host), Some(t));
        assert_eq!(text(v), want("203.0.113.7, 10.1.2.3", "https", "public.example"));
        // A trusted proxy's value that cannot be a header is left out, not passed on.
        let t = TrustedValues { xff: None, proto: Some("ht\ntp"), host: None };
        let v = forwarding_values(None, false, Some(&host), Some(t));
        assert_eq!(text(v), want("", "", "gw.example"));
    }
}
