//! A real external OIDC issuer for the federation tests: an HTTP server on `127.0.0.1:0`
//! serving a discovery document and a JWKS (counting how often the JWKS is fetched), with
//! signing keys of every allowed algorithm, able to sign any header and claims an attacker
//! would try. It also serves the hostile documents: a JWKS behind a redirect to another host,
//! and one larger than the gateway reads.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
use serde_json::{Value, json};
use tokio::runtime::Runtime;

/// A fixed 2048-bit RSA key (PKCS#1 DER; made once with openssl) and its modulus.
const RSA_PRIVATE_DER: &[u8] = include_bytes!("fixtures/federation-rsa.der");
const RSA_MODULUS: &str = include_str!("fixtures/federation-rsa.n");

/// A key the issuer signs with, and its public JWK.
#[derive(Clone)]
pub struct TestKey {
    pub kid: String,
    pub algorithm: Algorithm,
    encoding: EncodingKey,
    pub public_jwk: Value,
}

impl TestKey {
    pub fn es256(kid: &str) -> TestKey {
        let random = SystemRandom::new();
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &random).unwrap();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &random)
                .unwrap();
        let point = pair.public_key().as_ref();
        TestKey {
            kid: kid.to_string(),
            algorithm: Algorithm::ES256,
            encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
            public_jwk: json!({
                "kty": "EC", "crv": "P-256", "kid": kid, "use": "sig",
                "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
                "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
            }),
        }
    }

    pub fn eddsa(kid: &str) -> TestKey {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        TestKey {
            kid: kid.to_string(),
            algorithm: Algorithm::EdDSA,
            encoding: EncodingKey::from_ed_der(pkcs8.as_ref()),
            public_jwk: json!({
                "kty": "OKP", "crv": "Ed25519", "kid": kid,
                "x": URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()),
            }),
        }
    }

    /// The fixed 2048-bit RSA key, for RS256 or PS256.
    pub fn rsa(kid: &str, algorithm: Algorithm) -> TestKey {
        TestKey {
            kid: kid.to_string(),
            algorithm,
            encoding: EncodingKey::from_rsa_der(RSA_PRIVATE_DER),
            public_jwk: json!({
                "kty": "RSA", "kid": kid, "n": RSA_MODULUS.trim(), "e": "AQAB",
            }),
        }
    }

    /// Signs `claims` with this key under its own `kid` and algorithm.
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.algorithm);
        header.kid = Some(self.kid.clone());
        self.sign_with(header, claims)
    }

    /// Signs with any header (another `kid`, none, a header naming another algorithm…).
    pub fn sign_with(&self, header: Header, claims: &Value) -> String {
        let mut header = header;
        header.alg = self.algorithm;
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }
}

/// A compact JWS with the header, claims and signature given as they are: `alg: none`, an
/// HMAC, anything the signing library would refuse to make.
pub fn forge(header: &Value, claims: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

/// An HS256 token whose secret is `secret` (the public key confusion attack uses the JWK).
pub fn hs256(kid: &str, claims: &Value, secret: &[u8]) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(kid.to_string());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(secret).unwrap()).unwrap()
}

struct IdpState {
    issuer: String,
    /// What the discovery document says the issuer is (to test a mismatch).
    claimed_issuer: Mutex<Option<String>>,
    keys: Mutex<Vec<Value>>,
    jwks_fetches: AtomicUsize,
}

/// The issuer; dropped with its runtime.
pub struct Idp {
    pub issuer: String,
    state: Arc<IdpState>,
    _runtime: Runtime,
}

impl Idp {
    pub fn start() -> Idp {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(IdpState {
            issuer: issuer.clone(),
            claimed_issuer: Mutex::new(None),
            keys: Mutex::new(Vec::new()),
            jwks_fetches: AtomicUsize::new(0),
        });
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .route("/redirected-jwks", get(redirected_jwks))
            .route("/huge-jwks", get(huge_jwks))
            .route("/slow-jwks", get(slow_jwks))
            .with_state(Arc::clone(&state));
        runtime.spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Idp {
            issuer,
            state,
            _runtime: runtime,
        }
    }

    /// Publishes `key` in the JWKS.
    pub fn publish(&self, key: &TestKey) {
        self.state.keys.lock().unwrap().push(key.public_jwk.clone());
    }

    /// Publishes a raw JWK (an `oct` secret, a key meant for encryption…).
    pub fn publish_raw(&self, jwk: Value) {
        self.state.keys.lock().unwrap().push(jwk);
    }

    /// Removes every published key.
    pub fn unpublish_all(&self) {
        self.state.keys.lock().unwrap().clear();
    }

    pub fn jwks_fetches(&self) -> usize {
        self.state.jwks_fetches.load(Ordering::SeqCst)
    }

    /// Makes the discovery document name another issuer.
    pub fn claim_issuer(&self, issuer: &str) {
        *self.state.claimed_issuer.lock().unwrap() = Some(issuer.to_string());
    }

    /// A JWKS URL that redirects to the same server under another host name.
    pub fn redirected_jwks_uri(&self) -> String {
        format!("{}/redirected-jwks", self.issuer)
    }

    pub fn huge_jwks_uri(&self) -> String {
        format!("{}/huge-jwks", self.issuer)
    }

    /// A JWKS that answers after longer than the gateway waits.
    pub fn slow_jwks_uri(&self) -> String {
        format!("{}/slow-jwks", self.issuer)
    }

    /// Claims from this issuer for `subject`, valid now for five minutes.
    pub fn claims(&self, subject: &str, audience: &str) -> Value {
        let now = agenttrust::api::time::now();
        json!({
            "iss": self.issuer,
            "sub": subject,
            "aud": audience,
            "iat": now,
            "nbf": now,
            "exp": now + 300,
        })
    }
}

async fn discovery(State(state): State<Arc<IdpState>>) -> Json<Value> {
    let claimed = state.claimed_issuer.lock().unwrap().clone();
    Json(json!({
        "issuer": claimed.unwrap_or_else(|| state.issuer.clone()),
        "jwks_uri": format!("{}/jwks", state.issuer),
        "authorization_endpoint": format!("{}/authorize", state.issuer),
        "token_endpoint": format!("{}/token", state.issuer),
        "id_token_signing_alg_values_supported": ["RS256", "PS256", "ES256", "EdDSA"],
    }))
}

async fn jwks(State(state): State<Arc<IdpState>>) -> Json<Value> {
    state.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    Json(json!({ "keys": state.keys.lock().unwrap().clone() }))
}

async fn redirected_jwks(State(state): State<Arc<IdpState>>) -> impl IntoResponse {
    // Same server, another host name: a redirect the gateway must not follow.
    let port = state
        .issuer
        .rsplit(':')
        .next()
        .unwrap_or_default()
        .to_string();
    Redirect::temporary(&format!("http://localhost:{port}/jwks"))
}

async fn huge_jwks() -> impl IntoResponse {
    let padding = "x".repeat(2 * 1024 * 1024);
    Json(json!({ "keys": [], "padding": padding }))
}

async fn slow_jwks() -> impl IntoResponse {
    tokio::time::sleep(std::time::Duration::from_secs(30)).await;
    Json(json!({ "keys": [] }))
}
