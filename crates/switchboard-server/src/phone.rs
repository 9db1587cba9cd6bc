//! Pseudonymous phone numbers for logs: country plus a keyed hash.
//!
//! An unkeyed hash of a phone number is reversible by enumeration (the space is small), so logs
//! carry HMAC-SHA256(key, E.164) truncated to 64 bits: enough to correlate one number's requests,
//! useless without the key.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use switchboard_core::Destination;

/// Computes log-safe phone references.
#[derive(Clone)]
pub(crate) struct PhoneHasher {
    /// The MAC with the key already absorbed: each digest clones it rather than hashing the key
    /// again (two SHA-256 blocks saved per digest, and the hook takes several per request).
    keyed: Hmac<Sha256>,
}

impl std::fmt::Debug for PhoneHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PhoneHasher(***)")
    }
}

impl PhoneHasher {
    pub(crate) fn new(key: &[u8]) -> PhoneHasher {
        PhoneHasher { keyed: Hmac::new_from_slice(key).expect("HMAC takes any key length") }
    }

    /// A key drawn at random: hashes correlate only within this process.
    pub(crate) fn random() -> PhoneHasher {
        PhoneHasher::new(&rand::random::<[u8; 32]>())
    }

    /// `US:3f2a…` (country, then 16 hex digits).
    pub(crate) fn reference(&self, destination: &Destination) -> String {
        let digest = self.key(destination);
        format!("{}:{}", destination.country(), hex::encode(&digest[..8]))
    }

    /// The full keyed digest, for in-memory lookups by number.
    pub(crate) fn key(&self, destination: &Destination) -> [u8; 32] {
        self.digest(destination.e164().as_bytes())
    }

    /// A keyed digest of anything personal (a number prefix, a user id) used as a map key.
    pub(crate) fn digest(&self, bytes: &[u8]) -> [u8; 32] {
        let mut mac = self.keyed.clone();
        mac.update(bytes);
        mac.finalize().into_bytes().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_core::Country;

    #[test]
    fn reference_is_keyed_and_hides_the_number() {
        let number = Destination::new("+14155550100".into(), Country::parse("US").unwrap());
        let first = PhoneHasher::new(b"key one").reference(&number);
        assert!(first.starts_with("US:"));
        assert_eq!(first.len(), 3 + 16);
        assert!(!first.contains("4155550100"));
        assert_eq!(first, PhoneHasher::new(b"key one").reference(&number));
        assert_ne!(first, PhoneHasher::new(b"key two").reference(&number));
    }
}
