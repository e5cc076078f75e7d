//! Redis key names of the shared store: a session appears only as an HMAC of its id, so listing
//! the keys (`KEYS`, `SCAN`, a monitoring tool) shows no session id, which is a bearer credential.
//!
//! ```text
//!  {prefix}t:{tag}:{provider}   sealed tokens, expiring with the sign-in
//!  {prefix}s:{tag}:{provider}   the session id, sealed, outliving its `t:` key by COMPANION_MARGIN
//!  {prefix}g:{tag}              the session's cookie generation
//!  tag = base64url(HMAC-SHA256(derive("redis key names"), session id))
//! ```
//! A key-expiry notification names only the expired `t:` key; its `s:` companion (same name
//! after the kind) gives the session back, on every instance, so `auth_expired` reaches sockets
//! wherever they are. The companion is sealed with its own name as associated data, so it cannot
//! be moved to another name.
//!
//! # Invariants
//! Names are made with the newest session secret; reads also try the names of the older secrets
//! ([`KeyNames::all_tags`]), so rotating `session.secret` keeps live sign-ins and generations.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::hmac;

use crate::config::types::ProviderName;
use crate::session::{Keyring, SessionId};

/// How much longer a companion `s:` key lives than its `t:` key: the time every instance has to
/// read it after the expiry notification.
pub const COMPANION_MARGIN: Duration = Duration::from_secs(60);

/// The label the naming key is derived under (`Keyring::derive`).
const LABEL: &[u8] = b"gateway redis key names v1";

/// Makes and reads the store's key names.
pub struct KeyNames {
    prefix: String,
    /// Newest secret first.
    keys: Vec<hmac::Key>,
}

impl KeyNames {
    /// Names under `prefix`, keyed by `keys` (every secret, newest first).
    pub fn new(prefix: &str, keys: &Keyring) -> Self {
        let keys = keys.derive_all(LABEL).iter().map(|k| hmac::Key::new(hmac::HMAC_SHA256, k)).collect();
        Self { prefix: prefix.to_owned(), keys }
    }

    /// The key prefix (`store.key_prefix`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn tag(key: &hmac::Key, session: &SessionId) -> String {
        URL_SAFE_NO_PAD.encode(hmac::sign(key, session.as_bytes()).as_ref())
    }

    /// The session's tag under the newest secret (what writes use).
    fn newest_tag(&self, session: &SessionId) -> String {
        self.keys.first().map(|k| Self::tag(k, session)).unwrap_or_default()
    }

    /// The session's tag under every secret, newest first (what reads try).
    fn all_tags(&self, session: &SessionId) -> Vec<String> {
        self.keys.iter().map(|k| Self::tag(k, session)).collect()
    }

    /// The `t:` key a write of `session`'s tokens at `provider` uses.
    pub fn tokens(&self, session: &SessionId, provider: &ProviderName) -> String {
        format!("{}t:{}:{provider}", self.prefix, self.newest_tag(session))
    }

    /// Every `t:` key `session`'s tokens at `provider` may be under, newest secret first.
    pub fn tokens_all(&self, session: &SessionId, provider: &ProviderName) -> Vec<String> {
        self.all_tags(session).into_iter().map(|t| format!("{}t:{t}:{provider}", self.prefix)).collect()
    }

    /// The `s:` companion of a `t:` key; `None` for any other name.
    pub fn companion(&self, token_key: &str) -> Option<String> {
        let rest = token_key.strip_prefix(&self.prefix)?.strip_prefix("t:")?;
        Some(format!("{}s:{rest}", self.prefix))
    }

    /// The provider a `t:` key is for; `None` for any other name.
    pub fn token_provider(&self, token_key: &str) -> Option<ProviderName> {
        let rest = token_key.strip_prefix(&self.prefix)?.strip_prefix("t:")?;
        let (_, provider) = rest.split_once(':')?;
        ProviderName::parse(provider).ok()
    }

    /// The `g:` key a write of `session`'s cookie generation uses.
    pub fn generation(&self, session: &SessionId) -> String {
        format!("{}g:{}", self.prefix, self.newest_tag(session))
    }

    /// Every `g:` key `session`'s generation may be under, newest secret first.
    pub fn generation_all(&self, session: &SessionId) -> Vec<String> {
        self.all_tags(session).into_iter().map(|t| format!("{}g:{t}", self.prefix)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::signing::test_keyring as keyring;

    #[test]
    fn names_show_no_session_id_and_map_back_through_the_companion() {
        let names = KeyNames::new("gw:", &keyring(&["a-session-secret-of-at-least-32-bytes!!"]));
        let session = SessionId::generate().unwrap();
        let dev = ProviderName::parse("dev").unwrap();
        let key = names.tokens(&session, &dev);
        assert!(!key.contains(&session.storage_key()), "{key}");
        assert!(!names.generation(&session).contains(&session.storage_key()));
        assert!(key.starts_with("gw:t:") && key.ends_with(":dev"), "{key}");
        assert_eq!(names.token_provider(&key), Some(dev.clone()));
        let companion = names.companion(&key).unwrap();
        assert_eq!(companion, key.replacen("gw:t:", "gw:s:", 1));
        assert_eq!(names.companion("gw:g:x"), None);
        assert_eq!(names.tokens_all(&session, &dev), vec![key]);
    }

    #[test]
    fn after_a_secret_rotation_reads_also_try_the_old_names() {
        let old = KeyNames::new("gw:", &keyring(&["the-old-session-secret-of-32-bytes-or-more"]));
        let rotated = KeyNames::new(
            "gw:",
            &keyring(&["the-new-session-secret-of-32-bytes-or-more", "the-old-session-secret-of-32-bytes-or-more"]),
        );
        let session = SessionId::generate().unwrap();
        let dev = ProviderName::parse("dev").unwrap();
        let written_before = old.tokens(&session, &dev);
        assert_ne!(rotated.tokens(&session, &dev), written_before);
        assert_eq!(rotated.tokens_all(&session, &dev)[1], written_before);
        assert_eq!(rotated.generation_all(&session)[1], old.generation(&session));
    }
}
