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
pub fn forwarding_values(
    client_ip: Option<IpAddr>,
    https: bool,
    host: Option<&str>,
    trusted: Option<TrustedValues<'_>>,
) -> Vec<(&'static str, HeaderValue)> {
    let mut out = Vec::with_capacity(3);
    let ip = client_ip.map(|ip| ip.to_string());
    let chain = match (trusted.as_ref().and_then(|t| t.xff), ip.as_deref()) {
        (Some(prev), Some(ip)) => Some(format!("{prev}, {ip}")),
        (Some(prev), None) => Some(prev.to_owned()),
        (None, Some(ip)) => Some(ip.to_owned()),
        (None, None) => None,
    };
    if let Some(v) = chain.and_then(|c| HeaderValue::from_str(&c).ok()) {
        out.push((X_FORWARDED_FOR, v));
    }
    let proto = trusted.as_ref().and_then(|t| t.proto).unwrap_or(if https { "https" } else { "http" });
    if let Ok(v) = HeaderValue::from_str(proto) {
        out.push((X_FORWARDED_PROTO, v));
    }
    let fwd_host = trusted.as_ref().and_then(|t| t.host).or(host);
    if let Some(v) = fwd_host.and_then(|h| HeaderValue::from_str(h).ok()) {
        out.push((X_FORWARDED_HOST, v));
    }
    out
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
        let v = forwarding_values(Some("10.1.2.3".parse().unwrap()), true, Some("gw.example"), None);
        let v: Vec<(&str, &str)> = v.iter().map(|(k, v)| (*k, v.to_str().unwrap())).collect();
        assert_eq!(v, [(X_FORWARDED_FOR, "10.1.2.3"), (X_FORWARDED_PROTO, "https"), (X_FORWARDED_HOST, "gw.example")]);
        let t = TrustedValues { xff: Some("203.0.113.7"), proto: Some("https"), host: Some("public.example") };
        let v = forwarding_values(Some("10.1.2.3".parse().unwrap()), false, Some("gw"), Some(t));
        assert_eq!(v[0].1, "203.0.113.7, 10.1.2.3");
        assert_eq!(v[1].1, "https");
        assert_eq!(v[2].1, "public.example");
    }
}
