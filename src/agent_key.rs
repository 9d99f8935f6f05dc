//! An agent's Ed25519 identity key, in the three forms it travels in: the SPKI "PUBLIC KEY" PEM
//! an SDK registers (reference §3.14), the OKP JWK a card or a DPoP proof carries (RFC 8037), and
//! the RFC 7638 thumbprint a sender-constrained token binds (`cnf.jkt`). The private half (PKCS#8
//! "PRIVATE KEY" PEM) is what `agents create --generate-key` keeps on the operator's machine.
//!
//! Shared by the gateway (validating a registered key, publishing it, verifying proofs) and the
//! CLI (generating and using a key), so it lives outside both and needs no server feature.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::Signer as _;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Longest PEM accepted for a public key: an Ed25519 SPKI PEM is about 113 bytes; the slack
/// allows CRLF line ends and surrounding whitespace, never a pasted certificate chain.
pub const MAX_PUBLIC_KEY_PEM_BYTES: usize = 512;

/// Why a key, a JWK or a signature was refused. The messages are meant for an API caller.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AgentKeyError {
    #[error("public_key must be an Ed25519 public key as a PEM \"PUBLIC KEY\" (SPKI) block")]
    NotEd25519PublicKeyPem,
    #[error("the private key must be an Ed25519 key as a PEM \"PRIVATE KEY\" (PKCS#8) block")]
    NotEd25519PrivateKeyPem,
    #[error("the JWK must be {{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":<32 bytes, base64url>}}")]
    NotEd25519Jwk,
    #[error("the signature must be 64 bytes")]
    MalformedSignature,
    #[error("the signature does not verify with the agent's key")]
    BadSignature,
}

/// An Ed25519 public key as an RFC 8037 OKP JWK: `{"kty":"OKP","crv":"Ed25519","x":…}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OkpJwk {
    pub kty: String,
    pub crv: String,
    /// The 32 raw key bytes, base64url without padding.
    pub x: String,
}

/// A validated Ed25519 public key (a registered agent key, or the key of a DPoP proof).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentPublicKey {
    key: ed25519_dalek::VerifyingKey,
}

impl AgentPublicKey {
    /// Parses an SPKI "PUBLIC KEY" PEM (what the SDKs send as `public_key`). Anything else (an
    /// RSA or P-256 key, a certificate, a truncated block) is refused.
    pub fn from_pem(pem: &str) -> Result<Self, AgentKeyError> {
        if pem.len() > MAX_PUBLIC_KEY_PEM_BYTES {
            return Err(AgentKeyError::NotEd25519PublicKeyPem);
        }
        ed25519_dalek::VerifyingKey::from_public_key_pem(pem.trim())
            .map(|key| AgentPublicKey { key })
            .map_err(|_| AgentKeyError::NotEd25519PublicKeyPem)
    }

    /// Reads an OKP JWK (a DPoP header's `jwk`, a card's `ati_agent_key`).
    pub fn from_jwk(jwk: &OkpJwk) -> Result<Self, AgentKeyError> {
        if jwk.kty != "OKP" || jwk.crv != "Ed25519" {
            return Err(AgentKeyError::NotEd25519Jwk);
        }
        let bytes: [u8; 32] = URL_SAFE_NO_PAD
            .decode(&jwk.x)
            .ok()
            .and_then(|raw| raw.try_into().ok())
            .ok_or(AgentKeyError::NotEd25519Jwk)?;
        ed25519_dalek::VerifyingKey::from_bytes(&bytes)
            .map(|key| AgentPublicKey { key })
            .map_err(|_| AgentKeyError::NotEd25519Jwk)
    }

    /// The key as an SPKI PEM, normalised (LF line ends, one trailing newline).
    pub fn to_pem(&self) -> String {
        // Encoding 32 bytes into a fixed SPKI structure cannot fail.
        self.key
            .to_public_key_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
            .unwrap_or_default()
    }

    /// The key as an OKP JWK.
    pub fn jwk(&self) -> OkpJwk {
        OkpJwk {
            kty: "OKP".to_string(),
            crv: "Ed25519".to_string(),
            x: URL_SAFE_NO_PAD.encode(self.key.as_bytes()),
        }
    }

    /// The RFC 7638 JWK thumbprint: base64url(SHA-256) of the required members in lexicographic
    /// order with no whitespace, `{"crv":"Ed25519","kty":"OKP","x":"…"}`.
    pub fn thumbprint(&self) -> String {
        let canonical = format!(
            r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
            URL_SAFE_NO_PAD.encode(self.key.as_bytes())
        );
        URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
    }

    /// Checks a raw 64-byte Ed25519 signature over `message`. Strict verification: rejects the
    /// malleable and small-order forms that plain RFC 8032 verification lets through.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), AgentKeyError> {
        let signature = ed25519_dalek::Signature::from_slice(signature)
            .map_err(|_| AgentKeyError::MalformedSignature)?;
        self.key
            .verify_strict(message, &signature)
            .map_err(|_| AgentKeyError::BadSignature)
    }

    /// Like [`AgentPublicKey::verify`], for a signature given as base64url (padding tolerated).
    pub fn verify_base64url(&self, message: &[u8], signature: &str) -> Result<(), AgentKeyError> {
        let raw = URL_SAFE_NO_PAD
            .decode(signature.trim_end_matches('='))
            .map_err(|_| AgentKeyError::MalformedSignature)?;
        self.verify(message, &raw)
    }
}

/// `base64url(SHA-256(access_token))`: the `ath` claim binding a DPoP proof to the access token
/// it comes with (RFC 9449 §4.2), made by [`AgentPrivateKey::dpop_proof`] and checked by the
/// gateway.
pub fn access_token_hash(access_token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(access_token.as_bytes()))
}

/// An agent's private key, held by the CLI. Never sent to the gateway.
pub struct AgentPrivateKey {
    key: ed25519_dalek::SigningKey,
}

impl std::fmt::Debug for AgentPrivateKey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key itself is never printed, even by `{:?}` in an error chain.
        formatter
            .debug_struct("AgentPrivateKey")
            .field("public", &self.public().jwk().x)
            .finish_non_exhaustive()
    }
}

impl AgentPrivateKey {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> Self {
        AgentPrivateKey {
            key: ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng),
        }
    }

    /// Parses a PKCS#8 "PRIVATE KEY" PEM.
    pub fn from_pem(pem: &str) -> Result<Self, AgentKeyError> {
        ed25519_dalek::SigningKey::from_pkcs8_pem(pem.trim())
            .map(|key| AgentPrivateKey { key })
            .map_err(|_| AgentKeyError::NotEd25519PrivateKeyPem)
    }

    /// The key as a PKCS#8 PEM. The returned buffer wipes itself when dropped.
    pub fn to_pem(
        &self,
    ) -> Result<ed25519_dalek::pkcs8::spki::der::zeroize::Zeroizing<String>, AgentKeyError> {
        self.key
            .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
            .map_err(|_| AgentKeyError::NotEd25519PrivateKeyPem)
    }

    /// The public half.
    pub fn public(&self) -> AgentPublicKey {
        AgentPublicKey {
            key: self.key.verifying_key(),
        }
    }

    /// A raw 64-byte Ed25519 signature over `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message).to_bytes()
    }

    /// The signature as base64url without padding (the form §3.14 proofs and JWS segments use).
    pub fn sign_base64url(&self, message: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(self.sign(message))
    }

    /// An RFC 9449 DPoP proof for a `method` request to `url` (no query) carrying
    /// `access_token`, made at `iat` (unix seconds) with the unique `jti`: the compact JWS the
    /// SDKs send in the `DPoP` header.
    pub fn dpop_proof(
        &self,
        method: &str,
        url: &str,
        access_token: &str,
        iat: i64,
        jti: &str,
    ) -> String {
        let header = serde_json::json!({
            "typ": "dpop+jwt",
            "alg": "EdDSA",
            "jwk": self.public().jwk(),
        });
        let claims = serde_json::json!({
            "htm": method,
            "htu": url,
            "iat": iat,
            "jti": jti,
            "ath": access_token_hash(access_token),
        });
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = self.sign_base64url(input.as_bytes());
        format!("{input}.{signature}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_jwk_and_thumbprint_round_trip() {
        let private = AgentPrivateKey::generate();
        let public = private.public();
        let pem = public.to_pem();
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"));
        assert_eq!(AgentPublicKey::from_pem(&pem).unwrap(), public);
        assert_eq!(AgentPublicKey::from_jwk(&public.jwk()).unwrap(), public);
        let private_pem = private.to_pem().unwrap();
        assert!(private_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        assert_eq!(
            AgentPrivateKey::from_pem(&private_pem).unwrap().public(),
            public
        );
        assert!(!format!("{private:?}").contains(private_pem.as_str()));
    }

    #[test]
    fn rfc8037_thumbprint_vector() {
        // RFC 8037 appendix A.3: the thumbprint of the example Ed25519 key.
        let jwk = OkpJwk {
            kty: "OKP".into(),
            crv: "Ed25519".into(),
            x: "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo".into(),
        };
        let key = AgentPublicKey::from_jwk(&jwk).unwrap();
        assert_eq!(
            key.thumbprint(),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }

    #[test]
    fn signatures_verify_only_with_their_key_and_message() {
        let private = AgentPrivateKey::generate();
        let signature = private.sign_base64url(b"pop-v1:n:a::1");
        let public = private.public();
        assert_eq!(
            public.verify_base64url(b"pop-v1:n:a::1", &signature),
            Ok(())
        );
        assert_eq!(
            public.verify_base64url(b"pop-v1:n:a::2", &signature),
            Err(AgentKeyError::BadSignature)
        );
        let other = AgentPrivateKey::generate().public();
        assert_eq!(
            other.verify_base64url(b"pop-v1:n:a::1", &signature),
            Err(AgentKeyError::BadSignature)
        );
        assert_eq!(
            public.verify_base64url(b"x", "AAAA"),
            Err(AgentKeyError::MalformedSignature)
        );
    }

    #[test]
    fn refuses_what_is_not_an_ed25519_key() {
        // A P-256 SPKI key (from RFC 9500's test keys, public half).
        let p256 = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEQiVI+I+3gv+17KN0RFLHKh5Vj71v\nc75eSOkyMsxFxbFsTNEMTLjVuKFxOelIgsiZJXKZNCX0FBmrfpCkKklCcg==\n-----END PUBLIC KEY-----\n";
        assert_eq!(
            AgentPublicKey::from_pem(p256),
            Err(AgentKeyError::NotEd25519PublicKeyPem)
        );
        assert_eq!(
            AgentPublicKey::from_pem("-----BEGIN PUBLIC KEY-----\nabc\n-----END PUBLIC KEY-----"),
            Err(AgentKeyError::NotEd25519PublicKeyPem)
        );
        let wrong_curve = OkpJwk {
            kty: "OKP".into(),
            crv: "X25519".into(),
            x: "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo".into(),
        };
        assert_eq!(
            AgentPublicKey::from_jwk(&wrong_curve),
            Err(AgentKeyError::NotEd25519Jwk)
        );
    }
}
