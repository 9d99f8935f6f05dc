//! WIMSE workload tokens and proof of possession (reference §3.14):
//! `POST /api/v1/agents/{agent_id}/challenge`, `POST /api/v1/wimse/token`,
//! `POST /api/v1/wimse/verify`, and the claims of the tokens the gateway signs.

use serde::{Deserialize, Serialize};

use super::{Extra, empty_as_none, null_as_empty};

/// The version tag that starts every signed proof-of-possession message.
pub const PROOF_VERSION: &str = "pop-v1";
/// The `typ` header of a WIMSE workload token, so no other JWT the gateway signs passes for one.
pub const TOKEN_TYPE: &str = "wit+jwt";
/// The trust domain of the workload ids the gateway issues.
pub const TRUST_DOMAIN: &str = "agenttrust.id";

/// The message an agent signs to prove it holds its key:
/// `pop-v1:<nonce>:<agent_id>:<audience joined by ",">:<ts>`.
pub fn proof_message(nonce: &str, agent_id: &str, audience: &[String], ts: i64) -> String {
    format!(
        "{PROOF_VERSION}:{nonce}:{agent_id}:{}:{ts}",
        audience.join(",")
    )
}

/// The SPIFFE-style id of an agent's workload.
pub fn workload_id(agent_id: &str) -> String {
    format!("spiffe://{TRUST_DOMAIN}/agent/{agent_id}")
}

/// The answer to a challenge: a single-use nonce.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Challenge {
    pub nonce: String,
    pub expires_at: String,
    #[serde(flatten, default, skip_serializing_if = "Extra::is_empty")]
    pub extra: Extra,
}

/// `{nonce, ts, signature}`: the agent's Ed25519 signature (base64url, no padding) over
/// [`proof_message`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PossessionProof {
    pub nonce: String,
    pub ts: i64,
    pub signature: String,
}

#[serde_with::apply(
    Option<String> => #[serde(default, deserialize_with = "empty_as_none", skip_serializing_if = "Option::is_none")],
)]
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IssueWimseTokenRequest {
    pub agent_id: String,
    pub service_name: Option<String>,
    pub environment: Option<String>,
    /// Seconds; `ttl` is accepted too.
    #[serde(default, alias = "ttl", skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<i64>,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub audience: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof: Option<PossessionProof>,
}

/// An issued WIMSE token: the only time the token is shown.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WimseToken {
    pub token: String,
    #[serde(default)]
    pub workload_id: String,
    #[serde(default)]
    pub trust_domain: String,
    #[serde(default)]
    pub expires_at: String,
    /// Our extension: the thumbprint of the key the token is bound to (`cnf.jkt`), when it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_thumbprint: Option<String>,
    #[serde(flatten, default, skip_serializing_if = "Extra::is_empty")]
    pub extra: Extra,
}

#[serde_with::apply(
    Option<String> => #[serde(default, deserialize_with = "empty_as_none", skip_serializing_if = "Option::is_none")],
)]
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct VerifyWimseTokenRequest {
    #[serde(default)]
    pub token: String,
    pub trust_domain_filter: Option<String>,
}

/// What the gateway says of a WIMSE token (HTTP 200 whether valid or not).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WimseVerification {
    pub valid: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_domain: Option<String>,
    #[serde(default)]
    pub capabilities: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// Our extension: the bound key's thumbprint (`cnf.jkt`), when the token is bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_thumbprint: Option<String>,
    /// Why not, when not valid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(flatten, default, skip_serializing_if = "Extra::is_empty")]
    pub extra: Extra,
}

/// RFC 7800 confirmation: the thumbprint of the key the token is bound to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation {
    pub jkt: String,
}

/// The claims of a WIMSE token the gateway signs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WimseClaims {
    pub iss: String,
    /// The workload id ([`workload_id`]).
    pub sub: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aud: Vec<String>,
    pub exp: i64,
    pub iat: i64,
    pub nbf: i64,
    pub jti: String,
    pub org_id: String,
    pub agent_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
}
