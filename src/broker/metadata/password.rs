//! Passwords as RabbitMQ keeps them, so that users exported from RabbitMQ keep working: a hash
//! is base64 of 4 random salt bytes followed by a digest of salt ‖ the UTF-8 password.
//! Warren writes `rabbit_password_hashing_sha256`; it also checks sha512 and md5 hashes, which
//! older RabbitMQ definitions carry.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use md5::Md5;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256, Sha512};

/// RabbitMQ's names for its hashing algorithms, as definitions files spell them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Hashing {
    #[default]
    #[serde(rename = "rabbit_password_hashing_sha256")]
    Sha256,
    #[serde(rename = "rabbit_password_hashing_sha512")]
    Sha512,
    #[serde(rename = "rabbit_password_hashing_md5")]
    Md5,
}

impl Hashing {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "rabbit_password_hashing_sha256" => Some(Self::Sha256),
            "rabbit_password_hashing_sha512" => Some(Self::Sha512),
            "rabbit_password_hashing_md5" => Some(Self::Md5),
            _ => None,
        }
    }

    fn digest(self, salt: &[u8], password: &str) -> Vec<u8> {
        fn run<D: Digest>(salt: &[u8], password: &str) -> Vec<u8> {
            let mut d = D::new();
            d.update(salt);
            d.update(password.as_bytes());
            d.finalize().to_vec()
        }
        match self {
            Self::Sha256 => run::<Sha256>(salt, password),
            Self::Sha512 => run::<Sha512>(salt, password),
            Self::Md5 => run::<Md5>(salt, password),
        }
    }
}

const SALT: usize = 4;

/// A new hash of `password` with a random salt, as RabbitMQ's `rabbitmqctl add_user` makes it.
pub fn hash(password: &str) -> String {
    let mut salt = [0u8; SALT];
    rand::rng().fill_bytes(&mut salt);
    hash_with_salt(Hashing::Sha256, salt, password)
}

fn hash_with_salt(hashing: Hashing, salt: [u8; SALT], password: &str) -> String {
    let mut salted = salt.to_vec();
    salted.extend(hashing.digest(&salt, password));
    STANDARD.encode(salted)
}

/// Whether `password` matches a stored hash (false for a hash that cannot be read).
pub fn verify(hashing: Hashing, stored: &str, password: &str) -> bool {
    let Ok(bytes) = STANDARD.decode(stored) else {
        return false;
    };
    if bytes.len() <= SALT {
        return false;
    }
    let (salt, digest) = bytes.split_at(SALT);
    // Not a secret-dependent early exit: the digests are compared whole.
    let expected = hashing.digest(salt, password);
    expected.len() == digest.len()
        && expected
            .iter()
            .zip(digest)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_made_by_rabbitmq_verify() {
        // From `rabbitmqctl add_user` on RabbitMQ 3.10.8 and its exported definitions.
        let cases = [
            ("UclMGAgN/EqdnV+52Wf4tgHfIMT13OQBfesk052nENbC4D8r", "s3cret"),
            (
                "gzdgDStAhGfLxX2u/lWwEdK5Yho/xKza9UabZ2ohr+sgk+tP",
                "pässwörd",
            ),
            ("aCuF8xCqkq9zH1xchlgIxISp7nFhCHq2a4jNEpd6OYDEzgP4", "guest"),
        ];
        for (stored, password) in cases {
            assert!(verify(Hashing::Sha256, stored, password), "{password}");
            assert!(!verify(Hashing::Sha256, stored, "wrong"));
        }
    }

    #[test]
    fn our_hashes_are_salted_and_verify() {
        let (a, b) = (hash("pw"), hash("pw"));
        assert_ne!(a, b, "each hash has its own salt");
        assert!(verify(Hashing::Sha256, &a, "pw"));
        assert!(!verify(Hashing::Sha256, &a, "pw "));
        assert!(!verify(Hashing::Sha256, "not base64!", "pw"));
        assert!(!verify(Hashing::Sha256, "AAAA", "pw"), "salt only");
    }

    #[test]
    fn sha512_and_md5_hashes_verify() {
        for hashing in [Hashing::Sha512, Hashing::Md5] {
            let stored = hash_with_salt(hashing, [1, 2, 3, 4], "old");
            assert!(verify(hashing, &stored, "old"));
            assert!(!verify(Hashing::Sha256, &stored, "old"));
        }
        assert_eq!(
            Hashing::parse("rabbit_password_hashing_md5"),
            Some(Hashing::Md5)
        );
    }
}
