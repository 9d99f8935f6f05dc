//! RFC 9449 DPoP proofs, as the SDKs send them with an agent credential (reference §3.14): the
//! `DPoP` header's compact JWS `{"typ":"dpop+jwt","alg":"EdDSA","jwk":{OKP Ed25519}}` over
//! `{htm, htu, iat, jti, ath}`. This module owns every check of a proof:
//!
//! 1. the shape (three base64url segments, the header above, no other algorithm);
//! 2. the signature against the embedded key (Ed25519, strict);
//! 3. `htm` equals the request's method, `htu` the gateway's public URL plus the request's path
//!    (rebuilt here from the configured `--public-url`, never from the request's Host header);
//! 4. `iat` within the window; `ath` the hash of the presented access token;
//! 5. the key is the one the credential is bound to (the caller compares [`Proof::thumbprint`]);
//! 6. `jti` used once per key, remembered in the database so every replica refuses a replay.
//!
//! Every failure is a 401 with the reason in `message`.

use axum::http::Method;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::agent_key::{AgentPublicKey, OkpJwk, access_token_hash};
use crate::api::time;
use crate::store;

use super::AppState;
use super::error::ApiError;

/// The header carrying the proof.
pub const HEADER: &str = "dpop";
/// How old a proof may be (its `iat`), in seconds.
pub const MAX_AGE_SECONDS: i64 = 60;
/// How far ahead of the gateway's clock a proof's `iat` may be (clock skew), in seconds.
pub const FUTURE_LEEWAY_SECONDS: i64 = 5;
/// The longest proof accepted: an Ed25519 proof is about 400 bytes.
const MAX_PROOF_BYTES: usize = 2048;
/// The longest `jti` accepted.
const MAX_JTI_BYTES: usize = 128;

/// A proof whose every stateless check passed; [`Proof::redeem`] spends its `jti`.
#[derive(Debug)]
pub struct Proof {
    /// The RFC 7638 thumbprint of the key that signed it.
    pub thumbprint: String,
    jti: String,
    iat: i64,
}

#[derive(Deserialize)]
struct ProofHeader {
    typ: String,
    alg: String,
    jwk: OkpJwk,
}

#[derive(Deserialize)]
struct ProofClaims {
    htm: String,
    htu: String,
    iat: i64,
    jti: String,
    #[serde(default)]
    ath: Option<String>,
}

fn refuse(reason: impl Into<String>) -> ApiError {
    ApiError::unauthenticated(format!("DPoP proof refused: {}", reason.into()))
}

/// Checks `proof` (the `DPoP` header) for a `method` request to `path` carrying
/// `access_token`, against the gateway's public URL `public_url`: everything but the replay,
/// which [`Proof::redeem`] decides once the credential is known good.
pub fn verify(
    proof: &str,
    method: &Method,
    public_url: &str,
    path: &str,
    access_token: &str,
    now: i64,
) -> Result<Proof, ApiError> {
    if proof.len() > MAX_PROOF_BYTES {
        return Err(refuse("the proof is too long"));
    }
    let mut segments = proof.split('.');
    let (Some(header), Some(payload), Some(signature), None) = (
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
    ) else {
        return Err(refuse("not a compact JWS (three dot-separated parts)"));
    };
    let header: ProofHeader = decode_segment(header).ok_or_else(|| refuse("malformed header"))?;
    if header.typ != "dpop+jwt" {
        return Err(refuse("typ must be dpop+jwt"));
    }
    if header.alg != "EdDSA" {
        return Err(refuse("alg must be EdDSA"));
    }
    let key = AgentPublicKey::from_jwk(&header.jwk).map_err(|error| refuse(error.to_string()))?;
    let signing_input_end = proof.len() - signature.len() - 1;
    key.verify_base64url(&proof.as_bytes()[..signing_input_end], signature)
        .map_err(|_| refuse("the signature does not verify with the proof's jwk"))?;
    let claims: ProofClaims = decode_segment(payload).ok_or_else(|| refuse("malformed claims"))?;
    if claims.htm != method.as_str() {
        return Err(refuse(format!(
            "htm {:?} does not match the request method {method}",
            claims.htm
        )));
    }
    let expected = format!("{}{path}", public_url.trim_end_matches('/'));
    if !same_target(&claims.htu, &expected) {
        return Err(refuse(format!(
            "htu {:?} does not match {expected:?} (the gateway's public URL and the request path)",
            claims.htu
        )));
    }
    if claims.iat < now - MAX_AGE_SECONDS {
        return Err(refuse(format!(
            "iat is more than {MAX_AGE_SECONDS} s old (expired proof)"
        )));
    }
    if claims.iat > now + FUTURE_LEEWAY_SECONDS {
        return Err(refuse("iat is in the future"));
    }
    if claims.jti.is_empty() || claims.jti.len() > MAX_JTI_BYTES {
        return Err(refuse(format!("jti must be 1 to {MAX_JTI_BYTES} bytes")));
    }
    match claims.ath {
        Some(ath) if ath == access_token_hash(access_token) => {}
        Some(_) => return Err(refuse("ath does not match the access token")),
        None => return Err(refuse("ath is missing (the hash of the access token)")),
    }
    Ok(Proof {
        thumbprint: key.thumbprint(),
        jti: claims.jti,
        iat: claims.iat,
    })
}

/// How long past its window a spent `jti` is remembered (clock differences between replicas).
const REPLAY_MEMORY_SLACK_SECONDS: i64 = 300;

impl Proof {
    /// Spends the proof's `jti` (per key) in the database every replica shares; a second use
    /// within the window is refused as a replay.
    pub async fn redeem(&self, state: &AppState) -> Result<(), ApiError> {
        let digest = hex::encode(Sha256::digest(
            format!("dpop:{}:{}", self.thumbprint, self.jti).as_bytes(),
        ));
        // Kept well past the proof's window: replicas prune by their own clocks, and one running
        // ahead must not forget a jti another still accepts.
        let expires_at = self.iat + MAX_AGE_SECONDS + REPLAY_MEMORY_SLACK_SECONDS;
        let fresh =
            store::agent_keys::remember_proof(&state.store, &digest, expires_at, time::now())
                .await?;
        if fresh {
            Ok(())
        } else {
            Err(refuse("this proof (its jti) was already used: a replay"))
        }
    }
}

/// The JSON a base64url segment of a compact JWS (or JWT) holds, as `T`; `None` if it is not
/// base64url, not JSON or not a `T`. Decoding only: nothing is verified.
pub fn decode_segment<T: serde::de::DeserializeOwned>(segment: &str) -> Option<T> {
    let bytes = URL_SAFE_NO_PAD.decode(segment).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Whether `htu` names `expected` (RFC 9449 §4.3: without query and fragment; scheme and host
/// compared as URLs do, case-insensitively, default ports implied).
fn same_target(htu: &str, expected: &str) -> bool {
    let normal = |text: &str| {
        let mut url = reqwest::Url::parse(text).ok()?;
        url.set_query(None);
        url.set_fragment(None);
        Some(url)
    };
    match (normal(htu), normal(expected)) {
        (Some(htu), Some(expected)) => htu == expected,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent_key::AgentPrivateKey;

    fn proof(key: &AgentPrivateKey, claims: serde_json::Value) -> String {
        let header =
            serde_json::json!({"typ": "dpop+jwt", "alg": "EdDSA", "jwk": key.public().jwk()});
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = key.sign_base64url(input.as_bytes());
        format!("{input}.{signature}")
    }

    fn claims(htu: &str, iat: i64, ath: &str) -> serde_json::Value {
        serde_json::json!({"htm": "POST", "htu": htu, "iat": iat, "jti": "j-1", "ath": ath})
    }

    const URL: &str = "http://127.0.0.1:8080";
    const PATH: &str = "/api/v1/agenttrust/check";

    #[test]
    fn a_good_proof_passes_and_names_its_key() {
        let key = AgentPrivateKey::generate();
        let now = 1_800_000_000;
        let text = proof(
            &key,
            claims(&format!("{URL}{PATH}"), now, &access_token_hash("tok")),
        );
        let verified = verify(&text, &Method::POST, URL, PATH, "tok", now).unwrap();
        assert_eq!(verified.thumbprint, key.public().thumbprint());
    }

    #[test]
    fn every_binding_is_checked() {
        let key = AgentPrivateKey::generate();
        let now = 1_800_000_000;
        let ath = access_token_hash("tok");
        let good = format!("{URL}{PATH}");
        let cases = [
            (
                claims("http://evil.example/api/v1/agenttrust/check", now, &ath),
                "htu",
            ),
            (claims(&good, now - MAX_AGE_SECONDS - 1, &ath), "expired"),
            (claims(&good, now + 60, &ath), "future"),
            (claims(&good, now, &access_token_hash("other")), "ath"),
        ];
        for (claims, expected) in cases {
            let text = proof(&key, claims);
            let error = verify(&text, &Method::POST, URL, PATH, "tok", now).unwrap_err();
            assert!(error.message.contains(expected), "{}", error.message);
        }
        let text = proof(&key, claims(&good, now, &ath));
        let error = verify(&text, &Method::GET, URL, PATH, "tok", now).unwrap_err();
        assert!(error.message.contains("htm"), "{}", error.message);
        // A proof whose signature was made by another key than its jwk says.
        let other = AgentPrivateKey::generate();
        let (input, _) = text.rsplit_once('.').unwrap();
        let forged = format!("{input}.{}", other.sign_base64url(input.as_bytes()));
        let error = verify(&forged, &Method::POST, URL, PATH, "tok", now).unwrap_err();
        assert!(error.message.contains("signature"), "{}", error.message);
    }

    #[test]
    fn query_and_default_port_do_not_matter_in_htu() {
        assert!(same_target(
            "HTTP://LOCALHOST:80/api/v1/agenttrust/check?x=1",
            "http://localhost/api/v1/agenttrust/check"
        ));
        assert!(!same_target(
            "http://localhost:8081/api/v1/agenttrust/check",
            "http://localhost:8080/api/v1/agenttrust/check"
        ));
    }
}
