//! The session cookie: reading it from `Cookie` headers and writing its `Set-Cookie`.
//!
//! # Invariants
//! The value is signed (`Keyring`) over the session id, a rotation generation and an expiry.
//! Whether the generation is still the session's current one is the token store's to say
//! (`auth::AuthService::session_of`), so a rotated-away value authenticates nothing.

use cookie::{Cookie, SameSite as CookieSameSite};
use http::header::COOKIE;
use http::HeaderMap;

use super::ticket::now_secs;
use super::{Keyring, Purpose, SessionId, SESSION_ID_LEN};
use crate::config::{types::SameSite, SessionConfig};

/// The session cookie's name and attributes.
#[derive(Debug, Clone)]
pub struct CookieSettings {
    /// Cookie name.
    pub name: String,
    /// `Secure`.
    pub secure: bool,
    /// `SameSite`.
    pub same_site: SameSite,
    /// `Partitioned`.
    pub partitioned: bool,
}

impl CookieSettings {
    /// From `[session]`.
    pub fn from_config(cfg: &SessionConfig) -> Self {
        Self {
            name: cfg.cookie_name.as_str().to_owned(),
            secure: cfg.cookie_secure,
            same_site: cfg.cookie_same_site,
            partitioned: cfg.cookie_partitioned,
        }
    }
}

/// Bytes of a cookie's signed payload: session id, generation, expiry.
const PAYLOAD_LEN: usize = SESSION_ID_LEN + 4 + 8;

/// What a genuine session cookie says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionCookie {
    /// The session.
    pub session: SessionId,
    /// Which rotation of the session's cookie this is; only the current one counts (the token
    /// store keeps the current number once a session has rotated).
    pub generation: u32,
    /// When this value stops counting, seconds since the Unix epoch (`session.lifetime` after
    /// it was issued).
    pub expires_at: u64,
}

impl SessionCookie {
    /// A cookie of `session` at `generation`, alive for `lifetime` from now.
    pub fn new(session: SessionId, generation: u32, lifetime: std::time::Duration) -> Self {
        Self { session, generation, expires_at: now_secs().saturating_add(lifetime.as_secs()) }
    }

    fn payload(&self) -> [u8; PAYLOAD_LEN] {
        let mut p = [0u8; PAYLOAD_LEN];
        p[..SESSION_ID_LEN].copy_from_slice(self.session.as_bytes());
        p[SESSION_ID_LEN..SESSION_ID_LEN + 4].copy_from_slice(&self.generation.to_be_bytes());
        p[SESSION_ID_LEN + 4..].copy_from_slice(&self.expires_at.to_be_bytes());
        p
    }

    fn from_payload(p: &[u8]) -> Option<Self> {
        if p.len() != PAYLOAD_LEN {
            return None;
        }
        let (id, rest) = p.split_at(SESSION_ID_LEN);
        let (generation, expires) = rest.split_at(4);
        Some(Self {
            session: SessionId::from_bytes(id)?,
            generation: u32::from_be_bytes(generation.try_into().ok()?),
            expires_at: u64::from_be_bytes(expires.try_into().ok()?),
        })
    }
}

/// The session cookies of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CookieRead {
    /// No genuine, unexpired session cookie.
    Absent,
    /// Exactly one genuine value (possibly sent more than once).
    One(SessionCookie),
    /// Two different genuine values: neither is used, since a cookie planted with a longer
    /// `Path` or another `Domain` would otherwise shadow the real one.
    Conflicting,
}

/// The genuine, unexpired session cookies among the request's `Cookie` headers.
pub fn read_session_cookie(headers: &HeaderMap, name: &str, keys: &Keyring) -> CookieRead {
    let now = now_secs();
    let mut found: Option<SessionCookie> = None;
    for value in headers.get_all(COOKIE) {
        let Ok(value) = value.to_str() else { continue };
        for c in Cookie::split_parse(value).flatten() {
            if c.name() != name {
                continue;
            }
            let Some(cookie) = keys
                .verify(Purpose::SessionCookie, c.value())
                .ok()
                .and_then(|p| SessionCookie::from_payload(&p))
                .filter(|c| c.expires_at >= now)
            else {
                continue;
            };
            match found {
                Some(seen) if seen != cookie => return CookieRead::Conflicting,
                _ => found = Some(cookie),
            }
        }
    }
    found.map_or(CookieRead::Absent, CookieRead::One)
}

/// `Set-Cookie` for `cookie` with the configured attributes (default `Secure; HttpOnly;
/// SameSite=None; Partitioned`, path `/`, no `Domain`, so a `__Host-` name is accepted by
/// browsers; no `Expires`: the value carries its own expiry and the tokens behind it expire on
/// their own).
pub fn set_cookie(cookie: &SessionCookie, cfg: &CookieSettings, keys: &Keyring) -> String {
    let value = keys.sign(Purpose::SessionCookie, &cookie.payload());
    let same_site = match cfg.same_site {
        SameSite::None => CookieSameSite::None,
        SameSite::Lax => CookieSameSite::Lax,
        SameSite::Strict => CookieSameSite::Strict,
    };
    Cookie::build((cfg.name.clone(), value))
        .path("/")
        .http_only(true)
        .secure(cfg.secure)
        .same_site(same_site)
        .partitioned(cfg.partitioned)
        .build()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn keys(secret: &str) -> Keyring {
        crate::session::signing::test_keyring(&[secret])
    }

    fn settings() -> CookieSettings {
        CookieSettings { name: "__Host-gw".into(), secure: true, same_site: SameSite::None, partitioned: true }
    }

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(COOKIE, v.parse().unwrap());
        }
        h
    }

    fn value_of(set_cookie: &str) -> String {
        set_cookie.split(';').next().unwrap().split_once('=').unwrap().1.to_owned()
    }

    #[test]
    fn a_cookie_reads_back_with_its_generation_and_host_prefix_attributes() {
        let k = keys("a");
        let c = SessionCookie::new(SessionId::generate().unwrap(), 3, Duration::from_secs(60));
        let set = set_cookie(&c, &settings(), &k);
        for attr in ["Path=/", "Secure", "HttpOnly", "SameSite=None", "Partitioned"] {
            assert!(set.contains(attr), "{attr} missing from {set}");
        }
        assert!(!set.to_ascii_lowercase().contains("domain"), "{set}");
        let v = value_of(&set);
        assert_eq!(read_session_cookie(&headers(&[&format!("__Host-gw={v}")]), "__Host-gw", &k), CookieRead::One(c));
        // The same value twice (two headers, or repeated) is still one cookie.
        let twice = headers(&[&format!("__Host-gw={v}; other=1"), &format!("__Host-gw={v}")]);
        assert_eq!(read_session_cookie(&twice, "__Host-gw", &k), CookieRead::One(c));
    }

    #[test]
    fn two_different_genuine_values_give_neither_and_forged_or_expired_ones_count_for_nothing() {
        let k = keys("a");
        let s = SessionId::generate().unwrap();
        let a = value_of(&set_cookie(&SessionCookie::new(s, 0, Duration::from_secs(60)), &settings(), &k));
        let b = value_of(&set_cookie(&SessionCookie::new(s, 1, Duration::from_secs(60)), &settings(), &k));
        let both = headers(&[&format!("__Host-gw={a}; __Host-gw={b}")]);
        assert_eq!(read_session_cookie(&both, "__Host-gw", &k), CookieRead::Conflicting);
        let forged = value_of(&set_cookie(&SessionCookie::new(s, 0, Duration::from_secs(60)), &settings(), &keys("b")));
        let with_forged = headers(&[&format!("__Host-gw={forged}; __Host-gw={a}")]);
        assert!(matches!(read_session_cookie(&with_forged, "__Host-gw", &k), CookieRead::One(_)));
        let mut expired = SessionCookie::new(s, 0, Duration::ZERO);
        expired.expires_at -= 1;
        let e = value_of(&set_cookie(&expired, &settings(), &k));
        assert_eq!(read_session_cookie(&headers(&[&format!("__Host-gw={e}")]), "__Host-gw", &k), CookieRead::Absent);
        assert_eq!(read_session_cookie(&headers(&[&format!("gw={a}")]), "__Host-gw", &k), CookieRead::Absent);
    }
}
