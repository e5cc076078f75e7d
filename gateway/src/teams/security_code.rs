//! Security codes for the Teams loop: 6 digits from the CSPRNG, kept only as an HMAC bound to
//! the Teams user, compared in constant time, single use, at most [`MAX_ATTEMPTS`] wrong tries.

use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

/// Wrong codes allowed before the pending sign-in is discarded.
pub const MAX_ATTEMPTS: u32 = 5;
/// Digits in a code.
pub const CODE_DIGITS: usize = 6;

/// A fresh code, or `None` if the RNG fails. Uniform over 000000–999999 (rejection sampling).
pub fn generate() -> Option<String> {
    let rng = SystemRandom::new();
    let limit = u32::MAX - (u32::MAX % 1_000_000);
    loop {
        let mut b = [0u8; 4];
        rng.fill(&mut b).ok()?;
        let n = u32::from_be_bytes(b);
        if n < limit {
            return Some(format!("{:0width$}", n % 1_000_000, width = CODE_DIGITS));
        }
    }
}

/// The stored form of `code` for `user`.
pub fn seal(key: &hmac::Key, user: &str, code: &str) -> Vec<u8> {
    hmac::sign(key, format!("{user}\0{code}").as_bytes()).as_ref().to_vec()
}

/// Constant-time check of `candidate` against the stored form.
pub fn matches(key: &hmac::Key, user: &str, candidate: &str, stored: &[u8]) -> bool {
    hmac::verify(key, format!("{user}\0{}", candidate.trim()).as_bytes(), stored).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_six_digits_and_bound_to_their_user() {
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"k");
        let code = generate().unwrap();
        assert_eq!(code.len(), 6);
        assert!(code.chars().all(|c| c.is_ascii_digit()));
        let stored = seal(&key, "t/u1", &code);
        assert!(matches(&key, "t/u1", &code, &stored));
        assert!(!matches(&key, "t/u2", &code, &stored), "another user's code must not match");
        assert!(!matches(&key, "t/u1", "000000x", &stored));
    }
}
