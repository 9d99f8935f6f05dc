//! Opaque secrets: API keys (`sk_live_…`) and agent tokens (`at_…`). 43 base62 characters carry
//! 256 bits from a CSPRNG. Only the SHA-256 digest is stored and looked up (an index lookup by
//! digest leaks at most digest bits through timing, which say nothing usable about the secret);
//! the secret is shown once.

use rand::Rng;
use rand::distributions::Alphanumeric;
use sha2::{Digest, Sha256};

pub const API_KEY_PREFIX: &str = "sk_live_";
pub const AGENT_TOKEN_PREFIX: &str = "at_";

/// Random characters after the prefix: 43 × log2(62) ≈ 256 bits.
const RANDOM_CHARACTERS: usize = 43;
/// How much of a key is kept in clear to tell keys apart in listings.
const DISPLAY_PREFIX_CHARACTERS: usize = 4;

/// A fresh secret with `prefix`.
pub fn generate(prefix: &str) -> String {
    // thread_rng is a CSPRNG seeded from the operating system; Alphanumeric is exactly base62.
    let random: String = rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(RANDOM_CHARACTERS)
        .map(char::from)
        .collect();
    format!("{prefix}{random}")
}

/// The digest under which a secret is stored and looked up.
pub fn digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// The part of a key shown in listings: `sk_live_AbCd`.
pub fn display_prefix(secret: &str) -> String {
    let keep = API_KEY_PREFIX.len() + DISPLAY_PREFIX_CHARACTERS;
    secret.chars().take(keep).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_prefixed_base62_and_distinct() {
        let first = generate(AGENT_TOKEN_PREFIX);
        let second = generate(AGENT_TOKEN_PREFIX);
        assert_ne!(first, second);
        assert!(first.starts_with("at_"));
        assert_eq!(first.len(), 3 + 43);
        assert!(first[3..].chars().all(|c| c.is_ascii_alphanumeric()));
    }

    #[test]
    fn digest_is_sha256_hex() {
        assert_eq!(
            digest("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn display_prefix_keeps_four_random_characters() {
        assert_eq!(display_prefix("sk_live_AbCdEfGh"), "sk_live_AbCd");
    }
}
