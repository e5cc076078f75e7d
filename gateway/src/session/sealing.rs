//! AES-256-GCM sealing (ring) under keys derived from `session.secret`: sealed with the newest,
//! opened with any (rotation). Used for everything written to Redis (the key name is the
//! associated data, so a value cannot be moved to another key) and for the opaque tickets that
//! travel in URLs (the ticket kind is the associated data).

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};

use super::Keyring;

/// Key-derivation label of the Redis sealing keys.
pub const REDIS_LABEL: &[u8] = b"gateway/redis-seal/v1";

/// The sealing keys.
pub struct Sealer {
    keys: Vec<LessSafeKey>,
    rng: SystemRandom,
}

impl Sealer {
    /// The Redis sealing keys: one AEAD key per session secret, newest first.
    pub fn from_keyring(keys: &Keyring) -> Self {
        Self::for_label(keys, REDIS_LABEL)
    }

    /// One AEAD key per session secret for `label` (keys of different labels are unrelated).
    pub fn for_label(keys: &Keyring, label: &[u8]) -> Self {
        let keys = keys
            .derive_all(label)
            .into_iter()
            .filter_map(|k| UnboundKey::new(&AES_256_GCM, &k).ok().map(LessSafeKey::new))
            .collect();
        Self { keys, rng: SystemRandom::new() }
    }

    /// `nonce ‖ ciphertext ‖ tag` of `plain`, bound to `name`.
    pub fn seal(&self, name: &str, plain: &[u8]) -> Option<Vec<u8>> {
        let key = self.keys.first()?;
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).ok()?;
        let mut buf = plain.to_vec();
        key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(name.as_bytes()), &mut buf).ok()?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        Some(out)
    }

    /// The plaintext, if any key opens it for `name`.
    pub fn open(&self, name: &str, sealed: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < NONCE_LEN {
            return None;
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        self.keys.iter().find_map(|key| {
            let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
            let mut buf = body.to_vec();
            let plain = key.open_in_place(nonce, Aad::from(name.as_bytes()), &mut buf).ok()?;
            Some(plain.to_vec())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::signing::test_keyring as keyring;

    #[test]
    fn sealed_values_open_only_under_their_name_and_keys() {
        let s = Sealer::from_keyring(&keyring(&["a"]));
        let sealed = s.seal("gw:t:1", b"access-token-value").unwrap();
        assert!(!sealed.windows(6).any(|w| w == b"access"), "ciphertext must not contain the plaintext");
        assert_eq!(s.open("gw:t:1", &sealed).unwrap(), b"access-token-value");
        assert!(s.open("gw:t:2", &sealed).is_none(), "moved to another key");
        assert!(Sealer::from_keyring(&keyring(&["b"])).open("gw:t:1", &sealed).is_none());
        let rotated = Sealer::from_keyring(&keyring(&["c", "a"]));
        assert_eq!(rotated.open("gw:t:1", &sealed).unwrap(), b"access-token-value");
    }
}
