//! The gateway's one signing-key service: ES256 (P-256) keys kept in the database, the newest
//! unretired one signing, every published one in the JWKS (`/.well-known/jwks.json`). Federation
//! ID tokens sign through it today; agent cards and audit checkpoints will too.
//!
//! - A key's id (`kid`) is the RFC 7638 thumbprint of its public JWK.
//! - The private half is a PKCS#8 document sealed with AES-256-GCM under the operator's
//!   key-encryption key ([`SigningSecret`]) when one is configured; without one (PostgreSQL with
//!   no `--signing-key-secret-file`) it is stored as is, and the gateway says so at start. It
//!   is never served.
//! - Rotation (`agenttrust server signing-key rotate`) adds a key and retires the old one,
//!   which stays published until every token it signed has expired.
//! - Each replica keeps the keys in memory and reads them again every [`RELOAD_AFTER`], so a
//!   rotation made elsewhere reaches it within that time; a token naming a key it has not seen
//!   makes it look at once (at most once a second).

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use ring::aead;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::api::time;
use crate::store::signing_keys::{self, NewSigningKey, SigningKeyRow};
use crate::store::{self, Store};

/// The algorithm the gateway signs with.
pub const ALGORITHM: &str = "ES256";
/// How long a replica trusts its copy of the key set.
pub const RELOAD_AFTER: Duration = Duration::from_secs(10);
/// The least time between two reads caused by an unknown `kid`.
const UNKNOWN_KID_RELOAD_INTERVAL: Duration = Duration::from_secs(1);
/// `sealed_with` of a private half stored as is.
const NOT_SEALED: &str = "none";
const SEALED_PREFIX: &str = "aes-256-gcm:";

#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error(
        "signing key {key_id} is sealed with the key-encryption key {sealed_with:?}, and {have}; \
         start the gateway with the --signing-key-secret-file it was created with"
    )]
    WrongSecret {
        key_id: String,
        sealed_with: String,
        have: String,
    },
    #[error("signing key {key_id} cannot be used: {reason}")]
    Unusable { key_id: String, reason: String },
    #[error("cannot make a signing key: {0}")]
    Generate(String),
    #[error("there is no signing key")]
    NoKey,
    #[error("cannot sign: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
}

/// The operator's key-encryption key: 32 bytes, kept outside the database.
#[derive(Clone)]
pub struct SigningSecret {
    key: [u8; 32],
}

impl std::fmt::Debug for SigningSecret {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "SigningSecret({})", self.fingerprint())
    }
}

impl SigningSecret {
    /// Reads a secret written by [`SigningSecret::generate_text`]: 32 bytes in base64 (or 64
    /// hex digits), surrounding whitespace ignored.
    pub fn parse(text: &str) -> Result<SigningSecret, String> {
        let text = text.trim();
        let bytes = if text.len() == 64 && text.bytes().all(|byte| byte.is_ascii_hexdigit()) {
            hex::decode(text).map_err(|error| error.to_string())?
        } else {
            STANDARD
                .decode(text)
                .map_err(|_| "expected 32 bytes in base64 or 64 hex digits".to_string())?
        };
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|bytes: Vec<u8>| format!("expected 32 bytes, found {}", bytes.len()))?;
        Ok(SigningSecret { key })
    }

    /// A new random secret, as the text a secret file holds.
    pub fn generate_text() -> Result<String, SigningError> {
        let mut key = [0_u8; 32];
        SystemRandom::new()
            .fill(&mut key)
            .map_err(|_| SigningError::Generate("no randomness".to_string()))?;
        Ok(format!("{}\n", STANDARD.encode(key)))
    }

    /// Names the secret without revealing it: the first 16 hex digits of its SHA-256.
    pub fn fingerprint(&self) -> String {
        hex::encode(Sha256::digest(self.key))[..16].to_string()
    }

    pub(crate) fn sealed_with(&self) -> String {
        format!("{SEALED_PREFIX}{}", self.fingerprint())
    }

    fn aead_key(&self) -> aead::LessSafeKey {
        // A 32-byte key always makes an AES-256 key.
        aead::LessSafeKey::new(
            aead::UnboundKey::new(&aead::AES_256_GCM, &self.key)
                .unwrap_or_else(|_| unreachable!("AES-256 takes 32 bytes")),
        )
    }

    /// `nonce || ciphertext || tag`, in base64; the key id is bound as associated data, so a
    /// sealed half cannot be moved to another row.
    pub(crate) fn seal(&self, key_id: &str, plain: &[u8]) -> Result<String, SigningError> {
        let mut nonce = [0_u8; aead::NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| SigningError::Generate("no randomness".to_string()))?;
        let mut sealed = plain.to_vec();
        self.aead_key()
            .seal_in_place_append_tag(
                aead::Nonce::assume_unique_for_key(nonce),
                aead::Aad::from(key_id.as_bytes()),
                &mut sealed,
            )
            .map_err(|_| SigningError::Generate("sealing failed".to_string()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(STANDARD.encode(out))
    }

    pub(crate) fn open(&self, key_id: &str, sealed: &str) -> Option<Vec<u8>> {
        let bytes = STANDARD.decode(sealed).ok()?;
        if bytes.len() < aead::NONCE_LEN {
            return None;
        }
        let (nonce, sealed) = bytes.split_at(aead::NONCE_LEN);
        let mut sealed = sealed.to_vec();
        let nonce = aead::Nonce::try_assume_unique_for_key(nonce).ok()?;
        let plain = self
            .aead_key()
            .open_in_place(nonce, aead::Aad::from(key_id.as_bytes()), &mut sealed)
            .ok()?;
        Some(plain.to_vec())
    }
}

/// A freshly made key, ready to store.
pub struct GeneratedKey {
    pub id: String,
    pub public_jwk: String,
    pub private_key: String,
    pub sealed_with: String,
}

impl GeneratedKey {
    pub fn as_new(&self) -> NewSigningKey<'_> {
        NewSigningKey {
            id: &self.id,
            algorithm: ALGORITHM,
            public_jwk: &self.public_jwk,
            private_key: &self.private_key,
            sealed_with: &self.sealed_with,
        }
    }
}

/// Makes a P-256 key; its private half sealed under `secret` when there is one.
pub fn generate(secret: Option<&SigningSecret>) -> Result<GeneratedKey, SigningError> {
    let random = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &random)
        .map_err(|_| SigningError::Generate("P-256 key generation failed".to_string()))?;
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &random)
        .map_err(|_| SigningError::Generate("the new key does not parse".to_string()))?;
    // An uncompressed SEC1 point: 0x04 || x || y.
    let point = pair.public_key().as_ref();
    if point.len() != 65 || point[0] != 4 {
        return Err(SigningError::Generate(
            "unexpected public key encoding".to_string(),
        ));
    }
    let x = URL_SAFE_NO_PAD.encode(&point[1..33]);
    let y = URL_SAFE_NO_PAD.encode(&point[33..65]);
    let id = thumbprint(&x, &y);
    let public_jwk = serde_json::json!({
        "kty": "EC",
        "crv": "P-256",
        "x": x,
        "y": y,
        "use": "sig",
        "alg": ALGORITHM,
        "kid": id,
    })
    .to_string();
    let (private_key, sealed_with) = match secret {
        Some(secret) => (secret.seal(&id, pkcs8.as_ref())?, secret.sealed_with()),
        None => (STANDARD.encode(pkcs8.as_ref()), NOT_SEALED.to_string()),
    };
    Ok(GeneratedKey {
        id,
        public_jwk,
        private_key,
        sealed_with,
    })
}

/// RFC 7638: SHA-256 over the required members in lexicographic order, base64url.
fn thumbprint(x: &str, y: &str) -> String {
    let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// A published key, ready to verify with.
struct PublishedKey {
    id: String,
    jwk: serde_json::Value,
    decoding: DecodingKey,
    published_until: Option<i64>,
    retired: bool,
}

/// The signing key.
struct ActiveKey {
    id: String,
    encoding: EncodingKey,
}

struct Loaded {
    at: Instant,
    active: Option<Arc<ActiveKey>>,
    published: Vec<Arc<PublishedKey>>,
}

/// The service: see the module docs.
pub struct SigningKeys {
    secret: Option<SigningSecret>,
    /// How long the copy in memory is used ([`RELOAD_AFTER`] unless configured).
    reload_after: Duration,
    loaded: RwLock<Arc<Loaded>>,
    /// One reload at a time; and when the last one caused by an unknown `kid` ran.
    reloading: tokio::sync::Mutex<Option<Instant>>,
}

impl std::fmt::Debug for SigningKeys {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("SigningKeys")
            .field("secret", &self.secret)
            .finish_non_exhaustive()
    }
}

impl SigningKeys {
    /// Makes the first key when the database has none, then loads the keys; fails when the
    /// signing key cannot be opened with `secret` (wrong or missing key-encryption key).
    pub async fn start(
        store: &Store,
        secret: Option<SigningSecret>,
    ) -> Result<SigningKeys, SigningError> {
        SigningKeys::start_with(store, secret, RELOAD_AFTER).await
    }

    /// [`SigningKeys::start`], reading the keys again every `reload_after`.
    pub async fn start_with(
        store: &Store,
        secret: Option<SigningSecret>,
        reload_after: Duration,
    ) -> Result<SigningKeys, SigningError> {
        let rows = signing_keys::list(store).await?;
        if !rows.iter().any(|row| row.retired_at.is_none()) {
            let key = generate(secret.as_ref())?;
            if signing_keys::create_first(store, key.as_new(), time::now()).await? {
                tracing::info!(key_id = %key.id, "created the gateway's first signing key");
            }
        }
        let loaded = load(store, secret.as_ref()).await?;
        if loaded.active.is_none() {
            return Err(SigningError::NoKey);
        }
        Ok(SigningKeys {
            secret,
            reload_after,
            loaded: RwLock::new(Arc::new(loaded)),
            reloading: tokio::sync::Mutex::new(None),
        })
    }

    /// Whether private halves made here are sealed.
    pub fn seals(&self) -> bool {
        self.secret.is_some()
    }

    /// The operator's key-encryption key, which also seals other secrets the gateway must send
    /// on (a SIEM destination's token); `None` when the operator configured none.
    pub(crate) fn secret(&self) -> Option<&SigningSecret> {
        self.secret.as_ref()
    }

    fn current(&self) -> Arc<Loaded> {
        match self.loaded.read() {
            Ok(loaded) => Arc::clone(&loaded),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// The key set, read again when it is older than [`RELOAD_AFTER`] (or `force`d).
    async fn fresh(&self, store: &Store, force: bool) -> Result<Arc<Loaded>, SigningError> {
        let current = self.current();
        if !force && current.at.elapsed() < self.reload_after {
            return Ok(current);
        }
        let mut last_forced = self.reloading.lock().await;
        let current = self.current();
        // Another caller reloaded while this one waited.
        if current.at.elapsed() < self.reload_after
            && (!force || last_forced.is_some_and(|at| at.elapsed() < UNKNOWN_KID_RELOAD_INTERVAL))
        {
            return Ok(current);
        }
        if force {
            *last_forced = Some(Instant::now());
        }
        let loaded = Arc::new(load(store, self.secret.as_ref()).await?);
        match self.loaded.write() {
            Ok(mut slot) => *slot = Arc::clone(&loaded),
            Err(poisoned) => *poisoned.into_inner() = Arc::clone(&loaded),
        }
        Ok(loaded)
    }

    /// Signs `claims` with the signing key; answers the compact JWS and the key's id.
    pub async fn sign<T: Serialize>(
        &self,
        store: &Store,
        claims: &T,
    ) -> Result<(String, String), SigningError> {
        self.sign_typed(store, "JWT", claims).await
    }

    /// [`SigningKeys::sign`] with the `typ` header `typ`, which tells what the signed document
    /// is, so that one kind cannot be passed off as another.
    pub async fn sign_typed<T: Serialize>(
        &self,
        store: &Store,
        typ: &str,
        claims: &T,
    ) -> Result<(String, String), SigningError> {
        let loaded = self.fresh(store, false).await?;
        let active = loaded.active.clone().ok_or(SigningError::NoKey)?;
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(active.id.clone());
        header.typ = Some(typ.to_string());
        let token = jsonwebtoken::encode(&header, claims, &active.encoding)?;
        Ok((token, active.id.clone()))
    }

    /// Signs as a detached JWS (RFC 7515 appendix F) with the signing key: the protected
    /// header is `alg`, `kid`, `typ` and `jku` (where the key set is published); `signing_input`
    /// makes the bytes signed from the encoded header (the payload is the caller's and is not
    /// carried). Answers the encoded protected header and the encoded signature.
    pub async fn sign_detached(
        &self,
        store: &Store,
        typ: &str,
        jku: &str,
        signing_input: impl FnOnce(&str) -> Vec<u8>,
    ) -> Result<(String, String), SigningError> {
        let loaded = self.fresh(store, false).await?;
        let active = loaded.active.clone().ok_or(SigningError::NoKey)?;
        let header = serde_json::json!({
            "alg": ALGORITHM,
            "kid": active.id,
            "typ": typ,
            "jku": jku,
        });
        let protected = URL_SAFE_NO_PAD.encode(header.to_string());
        let signature = jsonwebtoken::crypto::sign(
            &signing_input(&protected),
            &active.encoding,
            Algorithm::ES256,
        )?;
        Ok((protected, signature))
    }

    /// The published keys as a JWK Set.
    pub async fn jwks(&self, store: &Store) -> Result<serde_json::Value, SigningError> {
        let loaded = self.fresh(store, false).await?;
        let now = time::now();
        let keys: Vec<&serde_json::Value> = loaded
            .published
            .iter()
            .filter(|key| is_published(key, now))
            .map(|key| &key.jwk)
            .collect();
        Ok(serde_json::json!({ "keys": keys }))
    }

    /// The published key `kid`, to verify a token this gateway signed; `None` when it is not
    /// (or no longer) published.
    pub async fn verifying_key(
        &self,
        store: &Store,
        kid: &str,
    ) -> Result<Option<DecodingKey>, SigningError> {
        let now = time::now();
        let find = |loaded: &Loaded| {
            loaded
                .published
                .iter()
                .find(|key| key.id == kid && is_published(key, now))
                .map(|key| key.decoding.clone())
        };
        let loaded = self.fresh(store, false).await?;
        if let Some(key) = find(&loaded) {
            return Ok(Some(key));
        }
        let loaded = self.fresh(store, true).await?;
        Ok(find(&loaded))
    }
}

/// Every public key the gateway ever signed with, retired ones included, as a JWK Set. A signed
/// audit checkpoint is verified with it however old it is; the OIDC JWKS drops a key once the
/// tokens it signed have expired.
pub async fn key_history(store: &Store) -> Result<serde_json::Value, SigningError> {
    let mut keys = Vec::new();
    for row in signing_keys::list(store).await? {
        keys.push(published_key(&row)?.jwk);
    }
    Ok(serde_json::json!({ "keys": keys }))
}

/// Fails unless `secret` opens the current signing key (what a replica started with it could
/// sign with): checked before a rotation, so a key is never sealed under a secret the gateway
/// does not hold.
pub async fn check_secret(
    store: &Store,
    secret: Option<&SigningSecret>,
) -> Result<(), SigningError> {
    load(store, secret).await.map(|_| ())
}

fn is_published(key: &PublishedKey, now: i64) -> bool {
    !key.retired || key.published_until.is_some_and(|until| now < until)
}

/// Reads every key; opens the signing key's private half.
async fn load(store: &Store, secret: Option<&SigningSecret>) -> Result<Loaded, SigningError> {
    let rows = signing_keys::list(store).await?;
    let now = time::now();
    let mut published = Vec::new();
    for row in rows.iter().filter(|row| row.is_published(now)) {
        published.push(Arc::new(published_key(row)?));
    }
    let active = match rows.iter().find(|row| row.retired_at.is_none()) {
        Some(row) => Some(Arc::new(ActiveKey {
            id: row.id.clone(),
            encoding: EncodingKey::from_ec_der(&private_half(row, secret)?),
        })),
        None => None,
    };
    Ok(Loaded {
        at: Instant::now(),
        active,
        published,
    })
}

fn published_key(row: &SigningKeyRow) -> Result<PublishedKey, SigningError> {
    let unusable = |reason: &str| SigningError::Unusable {
        key_id: row.id.clone(),
        reason: reason.to_string(),
    };
    let jwk: serde_json::Value =
        serde_json::from_str(&row.public_jwk).map_err(|_| unusable("its public JWK is corrupt"))?;
    let coordinate = |name: &str| {
        jwk.get(name)
            .and_then(serde_json::Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| unusable("its public JWK has no P-256 point"))
    };
    let decoding = DecodingKey::from_ec_components(&coordinate("x")?, &coordinate("y")?)
        .map_err(|_| unusable("its public JWK has no P-256 point"))?;
    Ok(PublishedKey {
        id: row.id.clone(),
        jwk,
        decoding,
        published_until: row.published_until,
        retired: row.retired_at.is_some(),
    })
}

fn private_half(
    row: &SigningKeyRow,
    secret: Option<&SigningSecret>,
) -> Result<Vec<u8>, SigningError> {
    if row.sealed_with == NOT_SEALED {
        return STANDARD
            .decode(&row.private_key)
            .map_err(|_| SigningError::Unusable {
                key_id: row.id.clone(),
                reason: "its private half is corrupt".to_string(),
            });
    }
    let wrong_secret = |have: String| SigningError::WrongSecret {
        key_id: row.id.clone(),
        sealed_with: row.sealed_with.clone(),
        have,
    };
    let Some(secret) = secret else {
        return Err(wrong_secret("none is configured".to_string()));
    };
    if row.sealed_with != secret.sealed_with() {
        return Err(wrong_secret(format!(
            "the configured one is {:?}",
            secret.sealed_with()
        )));
    }
    secret
        .open(&row.id, &row.private_key)
        .ok_or_else(|| SigningError::Unusable {
            key_id: row.id.clone(),
            reason: "its sealed private half does not open (tampered or corrupt)".to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_half_opens_only_with_its_secret_and_its_key_id() {
        let secret = SigningSecret::parse(&SigningSecret::generate_text().unwrap()).unwrap();
        let other = SigningSecret::parse(&SigningSecret::generate_text().unwrap()).unwrap();
        let sealed = secret.seal("kid-1", b"private").unwrap();
        assert_eq!(secret.open("kid-1", &sealed).unwrap(), b"private");
        assert!(
            secret.open("kid-2", &sealed).is_none(),
            "bound to its key id"
        );
        assert!(
            other.open("kid-1", &sealed).is_none(),
            "bound to its secret"
        );
        assert_ne!(secret.fingerprint(), other.fingerprint());
    }

    #[test]
    fn secrets_parse_from_base64_or_hex_and_nothing_else() {
        let hex_text = "00".repeat(32);
        assert!(SigningSecret::parse(&hex_text).is_ok());
        assert!(SigningSecret::parse(&STANDARD.encode([7_u8; 32])).is_ok());
        assert!(SigningSecret::parse(&STANDARD.encode([7_u8; 16])).is_err());
        assert!(SigningSecret::parse("not a secret").is_err());
    }

    #[test]
    fn a_generated_key_signs_tokens_its_public_jwk_verifies() {
        let key = generate(None).unwrap();
        let row = SigningKeyRow {
            id: key.id.clone(),
            algorithm: ALGORITHM.to_string(),
            public_jwk: key.public_jwk.clone(),
            private_key: key.private_key.clone(),
            sealed_with: key.sealed_with.clone(),
            created_at: 0,
            retired_at: None,
            published_until: None,
        };
        let encoding = EncodingKey::from_ec_der(&private_half(&row, None).unwrap());
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(key.id.clone());
        let claims = serde_json::json!({ "sub": "a", "exp": time::now() + 60 });
        let token = jsonwebtoken::encode(&header, &claims, &encoding).unwrap();
        let published = published_key(&row).unwrap();
        let mut validation = jsonwebtoken::Validation::new(Algorithm::ES256);
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        let decoded =
            jsonwebtoken::decode::<serde_json::Value>(&token, &published.decoding, &validation)
                .unwrap();
        assert_eq!(decoded.claims["sub"], "a");
        // The kid is the RFC 7638 thumbprint of the public key.
        let jwk: serde_json::Value = serde_json::from_str(&key.public_jwk).unwrap();
        assert_eq!(
            key.id,
            thumbprint(jwk["x"].as_str().unwrap(), jwk["y"].as_str().unwrap())
        );
        assert!(
            jwk.get("d").is_none(),
            "the private half is never in the JWK"
        );
    }
}
