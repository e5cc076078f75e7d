//! HMAC-SHA256 signing (ring) with key rotation: the first key signs, every key verifies.
//!
//! A signed value is `base64url(payload) "." base64url(tag)`; the tag covers a purpose label,
//! so a ticket can never be replayed as a cookie or the other way round.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::hmac;

use crate::config::SessionSecret;

/// Longest signed value accepted, so a hostile cookie costs nothing to refuse.
pub const MAX_SIGNED_LEN: usize = 1024;

/// What a signature is for; part of the signed input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// The session cookie.
    SessionCookie,
    /// The store key of a handoff code (the code itself is never stored).
    HandoffCode,
    /// The store key of a value cached per user (user ids never appear in key names).
    StoreKey,
    /// A Teams user reference in a popup URL.
    TeamsUser,
}

impl Purpose {
    fn label(self) -> &'static [u8] {
        match self {
            Purpose::SessionCookie => b"gateway/session-cookie/v1\0",
            Purpose::HandoffCode => b"gateway/handoff-code/v1\0",
            Purpose::StoreKey => b"gateway/store-key/v1\0",
            Purpose::TeamsUser => b"gateway/teams-user/v1\0",
        }
    }
}

/// Why a signed value was refused. Small and `Copy`: refusing is on the hot path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// Not `payload.tag`, bad base64, or too long.
    #[error("malformed signed value")]
    Malformed,
    /// No key produced this tag.
    #[error("signature does not verify")]
    BadSignature,
}

/// The signing keys of `session.secret`.
#[derive(Clone)]
pub struct Keyring {
    keys: Vec<hmac::Key>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keyring({} keys, redacted)", self.keys.len())
    }
}

impl Keyring {
    /// One HMAC key per configured secret, newest first.
    pub fn from_secrets(secrets: &[SessionSecret]) -> Self {
        Self { keys: secrets.iter().map(|s| hmac::Key::new(hmac::HMAC_SHA256, s.expose())).collect() }
    }

    /// Signs `payload` for `purpose` with the newest key.
    pub fn sign(&self, purpose: Purpose, payload: &[u8]) -> String {
        let Some(key) = self.keys.first() else { return String::new() };
        let tag = Self::tag(key, purpose, payload);
        let mut out = URL_SAFE_NO_PAD.encode(payload);
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(tag.as_ref(), &mut out);
        out
    }

    /// The payload of `signed` if any key signed it for `purpose` (constant-time compare).
    pub fn verify(&self, purpose: Purpose, signed: &str) -> Result<Vec<u8>, SignatureError> {
        if signed.len() > MAX_SIGNED_LEN {
            return Err(SignatureError::Malformed);
        }
        let (payload, tag) = signed.split_once('.').ok_or(SignatureError::Malformed)?;
        let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| SignatureError::Malformed)?;
        // The tag and the signed input live on the stack: every request with a cookie checks one.
        // A tag that does not fit the buffer is no HMAC-SHA256 tag (32 bytes): malformed.
        let mut tag_buf = [0u8; 64];
        let tag_len = URL_SAFE_NO_PAD.decode_slice(tag, &mut tag_buf).map_err(|_| SignatureError::Malformed)?;
        let label = purpose.label();
        let mut input_buf = [0u8; MAX_SIGNED_LEN + 64];
        let input = input_buf.get_mut(..label.len() + payload.len()).ok_or(SignatureError::Malformed)?;
        input[..label.len()].copy_from_slice(label);
        input[label.len()..].copy_from_slice(&payload);
        if self.keys.iter().any(|k| hmac::verify(k, input, &tag_buf[..tag_len]).is_ok()) {
            Ok(payload)
        } else {
            Err(SignatureError::BadSignature)
        }
    }

    /// The tag of `payload` for `purpose` under the newest key, as base64url: a lookup key for
    /// a secret that must not be stored as itself.
    pub fn digest(&self, purpose: Purpose, payload: &[u8]) -> String {
        self.keys
            .first()
            .map(|key| URL_SAFE_NO_PAD.encode(Self::tag(key, purpose, payload).as_ref()))
            .unwrap_or_default()
    }

    /// A 32-byte key for `label` derived from the newest secret (HMAC as a PRF), e.g. for sealing.
    pub fn derive(&self, label: &[u8]) -> Option<[u8; 32]> {
        let key = self.keys.first()?;
        let tag = hmac::sign(key, label);
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        Some(out)
    }

    /// [`Self::derive`] for every key, newest first (to open values sealed before a rotation).
    pub fn derive_all(&self, label: &[u8]) -> Vec<[u8; 32]> {
        self.keys
            .iter()
            .map(|key| {
                let mut out = [0u8; 32];
                out.copy_from_slice(hmac::sign(key, label).as_ref());
                out
            })
            .collect()
    }

    fn tag(key: &hmac::Key, purpose: Purpose, payload: &[u8]) -> hmac::Tag {
        let mut ctx = hmac::Context::with_key(key);
        ctx.update(purpose.label());
        ctx.update(payload);
        ctx.sign()
    }
}

/// A keyring of `secrets`, newest first, each repeated to at least 32 bytes: for unit tests.
#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "test fixture: a secret of 32 bytes always parses")]
pub(crate) fn test_keyring(secrets: &[&str]) -> Keyring {
    let secrets: Vec<SessionSecret> = secrets
        .iter()
        .map(|s| SessionSecret::parse(secrecy::SecretString::from(s.repeat(32usize.div_ceil(s.len().max(1))))).unwrap())
        .collect();
    Keyring::from_secrets(&secrets)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyring(secrets: &[&str]) -> Keyring {
        test_keyring(secrets)
    }

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    #[test]
    fn signed_value_verifies_only_for_its_purpose() {
        let k = keyring(&[A]);
        let s = k.sign(Purpose::HandoffCode, b"hello");
        assert_eq!(k.verify(Purpose::HandoffCode, &s).unwrap(), b"hello");
        assert_eq!(k.verify(Purpose::SessionCookie, &s), Err(SignatureError::BadSignature));
    }

    #[test]
    fn rotation_verifies_old_keys_and_signs_with_the_first() {
        let old = keyring(&[B]);
        let rotated = keyring(&[A, B]);
        let s = old.sign(Purpose::SessionCookie, b"x");
        assert!(rotated.verify(Purpose::SessionCookie, &s).is_ok());
        let retired = keyring(&[A]);
        assert_eq!(retired.verify(Purpose::SessionCookie, &s), Err(SignatureError::BadSignature));
        let new = rotated.sign(Purpose::SessionCookie, b"x");
        assert!(retired.verify(Purpose::SessionCookie, &new).is_ok());
    }

    #[test]
    fn tampered_and_malformed_values_are_refused() {
        let k = keyring(&[A]);
        let s = k.sign(Purpose::HandoffCode, b"hello");
        let tampered = format!("{}{}", URL_SAFE_NO_PAD.encode(b"hellO"), &s[s.find('.').unwrap()..]);
        assert_eq!(k.verify(Purpose::HandoffCode, &tampered), Err(SignatureError::BadSignature));
        assert_eq!(k.verify(Purpose::HandoffCode, "no-dot"), Err(SignatureError::Malformed));
        assert_eq!(k.verify(Purpose::HandoffCode, "!!.??"), Err(SignatureError::Malformed));
        assert_eq!(k.verify(Purpose::HandoffCode, &"a".repeat(5000)), Err(SignatureError::Malformed));
    }

    #[test]
    fn a_tag_of_the_wrong_length_is_refused_and_the_longest_payload_still_verifies() {
        let k = keyring(&[A]);
        let s = k.sign(Purpose::SessionCookie, b"hello");
        let (payload, tag) = s.split_once('.').unwrap();
        let mut raw = URL_SAFE_NO_PAD.decode(tag).unwrap();
        raw.pop();
        let short = format!("{payload}.{}", URL_SAFE_NO_PAD.encode(&raw));
        assert_eq!(k.verify(Purpose::SessionCookie, &short), Err(SignatureError::BadSignature));
        raw.extend_from_slice(&[0; 9]);
        let long = format!("{payload}.{}", URL_SAFE_NO_PAD.encode(&raw));
        assert_eq!(k.verify(Purpose::SessionCookie, &long), Err(SignatureError::BadSignature));
        let too_long = format!("{payload}.{}", URL_SAFE_NO_PAD.encode([7u8; 65]));
        assert_eq!(k.verify(Purpose::SessionCookie, &too_long), Err(SignatureError::Malformed));

        // The longest payload whose signed value fits MAX_SIGNED_LEN: base64 of 735 bytes (980
        // characters), the dot and a 43-character tag.
        let big = vec![0xa5u8; 735];
        let signed = k.sign(Purpose::TeamsUser, &big);
        assert_eq!(signed.len(), MAX_SIGNED_LEN);
        assert_eq!(k.verify(Purpose::TeamsUser, &signed), Ok(big));
    }
}
