//! Idempotency keys: one per intended change, reused only to retry that
//! change, so the coordinator never applies it twice.
//!
//! Commands use a random 128-bit key per invocation. `apply` derives its
//! keys from the file's content and the change, so re-running an apply that
//! was interrupted after a change was committed (but before its reply came
//! back) sends the same key again.

use ring::digest::{Context, SHA256};
use ring::rand::{SecureRandom, SystemRandom};

use crate::error::Error;

/// A key for the `Mutation` of one change: printable ASCII, at most 128
/// bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// A fresh random key (128 bits from the operating system, hex).
    pub fn random() -> Result<IdempotencyKey, Error> {
        let mut bytes = [0u8; 16];
        SystemRandom::new().fill(&mut bytes).map_err(|_| Error::NoRandomness)?;
        Ok(IdempotencyKey(hex(&bytes)))
    }

    /// A key derived from `parts` (SHA-256, first 128 bits, hex), prefixed
    /// so the coordinator's memory shows where it came from.
    pub fn derived(prefix: &str, parts: &[&[u8]]) -> IdempotencyKey {
        let mut hash = Context::new(&SHA256);
        for part in parts {
            // Length-prefixed, so ("ab", "c") and ("a", "bc") differ.
            hash.update(&(part.len() as u64).to_be_bytes());
            hash.update(part);
        }
        let digest = hash.finish();
        IdempotencyKey(format!("{prefix}-{}", hex(&digest.as_ref()[..16])))
    }

    /// The key as sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_keys_are_128_bit_hex_and_differ() {
        let a = IdempotencyKey::random().unwrap();
        let b = IdempotencyKey::random().unwrap();
        assert_eq!(a.as_str().len(), 32);
        assert!(a.as_str().bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn derived_keys_are_stable_and_separate_their_parts() {
        let a = IdempotencyKey::derived("apply", &[b"ab", b"c"]);
        assert_eq!(a, IdempotencyKey::derived("apply", &[b"ab", b"c"]));
        assert_ne!(a, IdempotencyKey::derived("apply", &[b"a", b"bc"]));
        assert!(a.as_str().starts_with("apply-"));
        assert_eq!(a.as_str().len(), "apply-".len() + 32);
    }
}
