//! Sessions: random ids, the signed session cookie, sealed tickets and the keys behind them.
//!
//! # Invariants
//! A session id comes only from the CSPRNG and reaches a browser only inside a signed cookie
//! (which its holder may read) or a sealed ticket (which nobody can read); any unsigned, forged,
//! expired or retired-key value is treated as no session at all.

pub mod cookie;
pub mod sealing;
pub mod signing;
pub mod ticket;

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::rand::{SecureRandom, SystemRandom};

pub use signing::{Keyring, Purpose, SignatureError};

/// Bytes in a session id.
pub const SESSION_ID_LEN: usize = 32;

/// A session id: 32 bytes from the CSPRNG. `Debug` and `Display` show only a short hash,
/// since the id is a bearer credential.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionId([u8; SESSION_ID_LEN]);

impl SessionId {
    /// A fresh random id, or `None` if the system RNG fails.
    pub fn generate() -> Option<Self> {
        let mut b = [0u8; SESSION_ID_LEN];
        SystemRandom::new().fill(&mut b).ok()?;
        Some(Self(b))
    }

    /// From exactly 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; SESSION_ID_LEN] {
        &self.0
    }

    /// A stable storage key (base64url of the id).
    pub fn storage_key(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }

    /// Parses [`Self::storage_key`].
    pub fn from_storage_key(key: &str) -> Option<Self> {
        URL_SAFE_NO_PAD.decode(key).ok().and_then(|b| Self::from_bytes(&b))
    }

    /// A short non-reversible tag for logs.
    pub fn log_tag(&self) -> String {
        let d = ring::digest::digest(&ring::digest::SHA256, &self.0);
        URL_SAFE_NO_PAD.encode(&d.as_ref()[..6])
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({})", self.log_tag())
    }
}

/// `n` random bytes as base64url, for state ids, nonces and codes; `None` if the RNG fails.
pub fn random_token(n: usize) -> Option<String> {
    let mut b = vec![0u8; n];
    SystemRandom::new().fill(&mut b).ok()?;
    Some(URL_SAFE_NO_PAD.encode(b))
}
