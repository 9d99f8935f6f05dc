//! The key sets of federation providers, cached per replica. A provider's JWKS is fetched on
//! first use and kept for [`MAX_AGE`]; a token naming a key the cached set lacks (the issuer
//! rotated) makes it fetch again, but never more often than once per [`MIN_REFRESH_INTERVAL`]
//! per provider, and one fetch at a time: a flood of tokens with made-up `kid`s costs the
//! issuer one request per interval, not one per token. When a fetch fails, the keys already
//! known keep working until they are [`MAX_STALE`] old.
//!
//! Keys are taken from the set one by one: a key of a type this gateway does not verify with
//! (`oct`: never an HMAC secret), meant for encryption (`use: enc`), or malformed is skipped,
//! not fatal to the others.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::DecodingKey;

use crate::gateway::outbound::{FetchError, Outbound};

/// How long a fetched set is used before it is fetched again.
pub const MAX_AGE: Duration = Duration::from_secs(10 * 60);
/// The least time between two fetches of one provider's set.
pub const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(30);
/// How long known keys keep working while the issuer cannot be reached.
pub const MAX_STALE: Duration = Duration::from_secs(60 * 60);
/// The smallest RSA modulus accepted, in bits.
const MIN_RSA_BITS: usize = 2048;

/// The signature algorithms this gateway verifies: the allow-list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Rs256,
    Ps256,
    Es256,
    EdDsa,
}

impl Algorithm {
    /// `None` for every name outside the allow-list (`none`, `HS256`, `RS512`, …).
    pub fn from_name(name: &str) -> Option<Algorithm> {
        match name {
            "RS256" => Some(Algorithm::Rs256),
            "PS256" => Some(Algorithm::Ps256),
            "ES256" => Some(Algorithm::Es256),
            "EdDSA" => Some(Algorithm::EdDsa),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Rs256 => "RS256",
            Algorithm::Ps256 => "PS256",
            Algorithm::Es256 => "ES256",
            Algorithm::EdDsa => "EdDSA",
        }
    }

    pub fn to_jsonwebtoken(self) -> jsonwebtoken::Algorithm {
        match self {
            Algorithm::Rs256 => jsonwebtoken::Algorithm::RS256,
            Algorithm::Ps256 => jsonwebtoken::Algorithm::PS256,
            Algorithm::Es256 => jsonwebtoken::Algorithm::ES256,
            Algorithm::EdDsa => jsonwebtoken::Algorithm::EdDSA,
        }
    }
}

/// One usable key of a set.
#[derive(Clone)]
pub struct Key {
    pub kid: Option<String>,
    /// The algorithm the key is for (from its type and curve; its `alg`, when stated, agrees).
    pub algorithms: Vec<Algorithm>,
    pub decoding: DecodingKey,
}

/// Why no key verifies a token.
#[derive(Debug)]
pub enum KeyError {
    /// The set has no key for this `kid` and algorithm, even after a fetch.
    Unknown,
    /// The named key exists but is not for the token's algorithm.
    WrongAlgorithm { key_type: String },
    /// The set could not be fetched, and no fresh-enough copy is known.
    Unavailable(FetchError),
}

/// Parses a JWK Set, keeping the keys this gateway can verify with.
pub fn parse_set(set: &serde_json::Map<String, serde_json::Value>) -> Vec<Key> {
    let Some(keys) = set.get("keys").and_then(serde_json::Value::as_array) else {
        return Vec::new();
    };
    keys.iter().filter_map(parse_key).collect()
}

fn parse_key(jwk: &serde_json::Value) -> Option<Key> {
    let text = |name: &str| jwk.get(name).and_then(serde_json::Value::as_str);
    if text("use").is_some_and(|usage| usage != "sig") {
        return None;
    }
    let (algorithms, decoding) = match (text("kty")?, text("crv")) {
        ("RSA", _) => {
            let modulus = URL_SAFE_NO_PAD.decode(text("n")?).ok()?;
            let significant = modulus.iter().skip_while(|byte| **byte == 0).count();
            if significant * 8 < MIN_RSA_BITS {
                return None;
            }
            (
                vec![Algorithm::Rs256, Algorithm::Ps256],
                DecodingKey::from_rsa_components(text("n")?, text("e")?).ok()?,
            )
        }
        ("EC", Some("P-256")) => (
            vec![Algorithm::Es256],
            DecodingKey::from_ec_components(text("x")?, text("y")?).ok()?,
        ),
        ("OKP", Some("Ed25519")) => (
            vec![Algorithm::EdDsa],
            DecodingKey::from_ed_components(text("x")?).ok()?,
        ),
        _ => return None,
    };
    // A key that names its algorithm is used for that one only.
    let algorithms = match text("alg") {
        Some(stated) => algorithms
            .into_iter()
            .filter(|algorithm| algorithm.name() == stated)
            .collect(),
        None => algorithms,
    };
    if algorithms.is_empty() {
        return None;
    }
    Some(Key {
        kid: text("kid").map(str::to_string),
        algorithms,
        decoding,
    })
}

/// Picks the key for `kid` (or, for a token without one, the only key for the algorithm).
fn pick(keys: &[Key], kid: Option<&str>, algorithm: Algorithm) -> Result<Key, KeyError> {
    match kid {
        Some(kid) => {
            let named: Vec<&Key> = keys
                .iter()
                .filter(|key| key.kid.as_deref() == Some(kid))
                .collect();
            if named.is_empty() {
                return Err(KeyError::Unknown);
            }
            named
                .iter()
                .find(|key| key.algorithms.contains(&algorithm))
                .map(|key| (*key).clone())
                .ok_or_else(|| KeyError::WrongAlgorithm {
                    key_type: named[0]
                        .algorithms
                        .iter()
                        .map(|algorithm| algorithm.name())
                        .collect::<Vec<_>>()
                        .join("/"),
                })
        }
        None => {
            let mut fitting = keys
                .iter()
                .filter(|key| key.algorithms.contains(&algorithm));
            match (fitting.next(), fitting.next()) {
                (Some(key), None) => Ok(key.clone()),
                _ => Err(KeyError::Unknown),
            }
        }
    }
}

/// One provider's set as this replica knows it.
struct Entry {
    keys: Vec<Key>,
    /// When the keys were fetched (`None`: never).
    fetched_at: Option<Instant>,
    /// When a fetch was last tried, whatever came of it.
    tried_at: Option<Instant>,
}

/// The cache, keyed by the JWKS URL (a provider whose URL changes starts afresh).
pub struct JwksCache {
    entries: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Entry>>>>,
    /// The least time between two fetches of one set ([`MIN_REFRESH_INTERVAL`] unless
    /// configured).
    min_refresh_interval: Duration,
}

impl Default for JwksCache {
    fn default() -> JwksCache {
        JwksCache::new(MIN_REFRESH_INTERVAL)
    }
}

impl std::fmt::Debug for JwksCache {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("JwksCache").finish_non_exhaustive()
    }
}

impl JwksCache {
    pub fn new(min_refresh_interval: Duration) -> JwksCache {
        JwksCache {
            entries: Mutex::default(),
            min_refresh_interval,
        }
    }

    fn entry(&self, jwks_uri: &str) -> Arc<tokio::sync::Mutex<Entry>> {
        let mut entries = match self.entries.lock() {
            Ok(entries) => entries,
            Err(poisoned) => poisoned.into_inner(),
        };
        Arc::clone(entries.entry(jwks_uri.to_string()).or_insert_with(|| {
            Arc::new(tokio::sync::Mutex::new(Entry {
                keys: Vec::new(),
                fetched_at: None,
                tried_at: None,
            }))
        }))
    }

    /// The key that verifies a token signed with `algorithm` under `kid`.
    pub async fn key(
        &self,
        outbound: &Outbound,
        jwks_uri: &str,
        kid: Option<&str>,
        algorithm: Algorithm,
    ) -> Result<Key, KeyError> {
        let entry = self.entry(jwks_uri);
        // One fetch at a time per set: callers that wait find the fetched keys.
        let mut entry = entry.lock().await;
        let now = Instant::now();
        let fresh = entry
            .fetched_at
            .is_some_and(|at| now.duration_since(at) < MAX_AGE);
        if fresh {
            match pick(&entry.keys, kid, algorithm) {
                Err(KeyError::Unknown) => {}
                found => return found,
            }
        }
        let may_fetch = entry
            .tried_at
            .is_none_or(|at| now.duration_since(at) >= self.min_refresh_interval);
        if may_fetch {
            entry.tried_at = Some(now);
            match outbound.get_json(jwks_uri).await {
                Ok(set) => {
                    entry.keys = parse_set(&set);
                    entry.fetched_at = Some(Instant::now());
                }
                Err(error) => {
                    tracing::warn!(%jwks_uri, %error, "cannot fetch a federation provider's keys");
                    let usable = entry
                        .fetched_at
                        .is_some_and(|at| now.duration_since(at) < MAX_STALE);
                    if !usable {
                        return Err(KeyError::Unavailable(error));
                    }
                }
            }
        }
        let usable = entry
            .fetched_at
            .is_some_and(|at| now.duration_since(at) < MAX_STALE);
        if !usable {
            return Err(KeyError::Unknown);
        }
        pick(&entry.keys, kid, algorithm)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(keys: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
        serde_json::json!({ "keys": keys })
            .as_object()
            .cloned()
            .unwrap()
    }

    const X: &str = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
    const Y: &str = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";

    #[test]
    fn only_signature_keys_of_allowed_types_are_kept() {
        let keys = parse_set(&set(serde_json::json!([
            { "kty": "oct", "k": "c2VjcmV0", "kid": "hmac" },
            { "kty": "EC", "crv": "P-256", "x": X, "y": Y, "kid": "enc", "use": "enc" },
            { "kty": "EC", "crv": "P-384", "x": X, "y": Y, "kid": "p384" },
            { "kty": "RSA", "n": "AQAB", "e": "AQAB", "kid": "weak-rsa" },
            { "kty": "EC", "crv": "P-256", "x": X, "y": Y, "kid": "good" },
        ])));
        let kids: Vec<_> = keys.iter().map(|key| key.kid.clone().unwrap()).collect();
        assert_eq!(kids, ["good"]);
        assert_eq!(keys[0].algorithms, [Algorithm::Es256]);
    }

    #[test]
    fn a_named_key_of_another_type_is_not_used_for_the_token_algorithm() {
        let keys = parse_set(&set(serde_json::json!([
            { "kty": "EC", "crv": "P-256", "x": X, "y": Y, "kid": "ec" },
        ])));
        assert!(matches!(
            pick(&keys, Some("ec"), Algorithm::Rs256),
            Err(KeyError::WrongAlgorithm { .. })
        ));
        assert!(pick(&keys, Some("ec"), Algorithm::Es256).is_ok());
        assert!(matches!(
            pick(&keys, Some("other"), Algorithm::Es256),
            Err(KeyError::Unknown)
        ));
        // Without a kid, only an unambiguous key is used.
        assert!(pick(&keys, None, Algorithm::Es256).is_ok());
    }

    #[test]
    fn the_allow_list_has_no_none_and_no_hmac() {
        for name in [
            "none", "None", "HS256", "HS384", "HS512", "RS512", "ES384", "",
        ] {
            assert!(Algorithm::from_name(name).is_none(), "{name}");
        }
        for name in ["RS256", "PS256", "ES256", "EdDSA"] {
            assert_eq!(Algorithm::from_name(name).unwrap().name(), name);
        }
    }
}
