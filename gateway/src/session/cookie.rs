//! The session cookie: reading it from `Cookie` headers and writing its `Set-Cookie`.

use cookie::{Cookie, SameSite as CookieSameSite};
use http::header::COOKIE;
use http::HeaderMap;

use super::{Keyring, Purpose, SessionId};
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

/// The session in the request's cookie, if one is present and genuine.
pub fn session_from_headers(headers: &HeaderMap, name: &str, keys: &Keyring) -> Option<SessionId> {
    for value in headers.get_all(COOKIE) {
        let Ok(value) = value.to_str() else { continue };
        for c in Cookie::split_parse(value).flatten() {
            if c.name() == name {
                if let Some(id) =
                    keys.verify(Purpose::SessionCookie, c.value()).ok().and_then(|p| SessionId::from_bytes(&p))
                {
                    return Some(id);
                }
            }
        }
    }
    None
}

/// `Set-Cookie` for `session` with the configured attributes (default `Secure; HttpOnly;
/// SameSite=None; Partitioned`, path `/`, no expiry: the tokens behind it expire on their own).
pub fn set_cookie(session: &SessionId, cfg: &CookieSettings, keys: &Keyring) -> String {
    let value = keys.sign(Purpose::SessionCookie, session.as_bytes());
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
