//! Federation (wire-api §3.12): the external OIDC issuers an org trusts
//! (`/api/v1/federation/providers`), verifying their ID tokens (`…/tokens/verify` and
//! `…/tokens/introspect`, one answer with both `active` and `valid`), opening a session from one
//! (`…/sessions/init`), and the gateway as an issuer of ID tokens for its own agents
//! (`…/tokens/issue`, `…/tokens/revoke`, `/.well-known/openid-configuration`,
//! `/.well-known/jwks.json`). Our extensions: `PATCH …/providers/{id}` and the links from an
//! external subject to an agent of the org (`…/providers/{id}/subjects`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{Extra, empty_as_none, null_as_empty};

/// The ID token lifetime when the caller names none.
pub const DEFAULT_ID_TOKEN_TTL_SECONDS: i64 = 300;
/// The claim naming the subject when a provider names no other.
pub const DEFAULT_SUBJECT_CLAIM: &str = "sub";

/// How far a provider is trusted: the most its sessions may do (ordered from least to most).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrustLevel {
    /// Reads only.
    Low,
    /// Up to mutating calls: never destructive or admin ones.
    #[default]
    Standard,
    /// Whatever the org's policy allows the agent.
    High,
}

impl TrustLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            TrustLevel::Low => "low",
            TrustLevel::Standard => "standard",
            TrustLevel::High => "high",
        }
    }
}

impl fmt::Display for TrustLevel {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl FromStr for TrustLevel {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "low" => Ok(TrustLevel::Low),
            "standard" => Ok(TrustLevel::Standard),
            "high" => Ok(TrustLevel::High),
            _ => Err(format!(
                "unknown trust level {text:?}: expected low, standard or high"
            )),
        }
    }
}

/// Whether a provider's tokens are accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderStatus {
    #[default]
    Active,
    Disabled,
}

impl ProviderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderStatus::Active => "active",
            ProviderStatus::Disabled => "disabled",
        }
    }
}

impl fmt::Display for ProviderStatus {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl FromStr for ProviderStatus {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "active" => Ok(ProviderStatus::Active),
            "disabled" => Ok(ProviderStatus::Disabled),
            _ => Err(format!(
                "unknown provider status {text:?}: expected active or disabled"
            )),
        }
    }
}

/// A trusted external OIDC issuer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Provider {
    pub id: String,
    #[serde(default)]
    pub org_id: String,
    pub issuer: String,
    #[serde(default)]
    pub name: String,
    /// The external issuer's key set.
    #[serde(default)]
    pub jwks_uri: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint: Option<String>,
    /// The `aud` its tokens must carry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// The claim that names the external subject (`sub` unless configured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_claim: Option<String>,
    #[serde(default)]
    pub trust_level: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub created_at: String,
    #[serde(default)]
    pub updated_at: String,
    #[serde(flatten, default, skip_serializing_if = "Extra::is_empty")]
    pub extra: Extra,
}

/// `POST /api/v1/federation/providers`. Without `jwks_uri` the issuer's discovery document is
/// fetched; with one, discovery is skipped (issuers that publish none).
#[serde_with::apply(
    Option<String> => #[serde(default, deserialize_with = "empty_as_none", skip_serializing_if = "Option::is_none")],
)]
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RegisterProviderRequest {
    pub issuer: String,
    #[serde(default)]
    pub name: String,
    pub trust_level: Option<String>,
    pub jwks_uri: Option<String>,
    pub audience: Option<String>,
    pub subject_claim: Option<String>,
    pub status: Option<String>,
}

/// `PATCH /api/v1/federation/providers/{id}`: what is given changes, the rest stays.
#[serde_with::apply(
    Option<String> => #[serde(default, deserialize_with = "empty_as_none", skip_serializing_if = "Option::is_none")],
)]
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UpdateProviderRequest {
    pub name: Option<String>,
    pub trust_level: Option<String>,
    pub status: Option<String>,
    pub audience: Option<String>,
    pub subject_claim: Option<String>,
    pub jwks_uri: Option<String>,
}

/// The Go SDK requires the wrapper; the others accept it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProviderEnvelope {
    pub provider: Provider,
    #[serde(flatten, default, skip_serializing_if = "Extra::is_empty")]
    pub extra: Extra,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProviderList {
    pub providers: Vec<Provider>,
    #[serde(flatten, default, skip_serializing_if = "Extra::is_empty")]
    pub extra: Extra,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeletedProvider {
    pub status: String,
    #[serde(default)]
    pub id: String,
    #[serde(flatten, default, skip_serializing_if = "Extra::is_empty")]
    pub extra: Extra,
}

/// `POST …/tokens/verify`, `…/tokens/introspect`, `…/sessions/init`.
#[serde_with::apply(
    Option<String> => #[serde(default, deserialize_with = "empty_as_none", skip_serializing_if = "Option::is_none")],
)]
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct VerifyTokenRequest {
    #[serde(default)]
    pub token: String,
    /// The issuer the caller expects; a token from another issuer is invalid.
    pub issuer_hint: Option<String>,
}

/// Why a token is not valid, as the answer names it.
pub mod invalid {
    pub const MALFORMED: &str = "malformed token";
    pub const EXPIRED: &str = "expired";
    pub const NOT_YET_VALID: &str = "not yet valid";
    pub const ISSUED_IN_FUTURE: &str = "issued in the future";
    pub const WRONG_AUDIENCE: &str = "wrong audience";
    pub const UNKNOWN_ISSUER: &str = "unknown issuer";
    pub const PROVIDER_DISABLED: &str = "provider disabled";
    pub const UNKNOWN_KEY: &str = "unknown key";
    pub const BAD_SIGNATURE: &str = "bad signature";
    pub const ALGORITHM_NOT_ALLOWED: &str = "algorithm not allowed";
    pub const REVOKED: &str = "revoked";
    pub const NO_SUBJECT: &str = "no subject";
    pub const KEYS_UNAVAILABLE: &str = "issuer keys unavailable";
}

/// The answer to a verification: HTTP 200 whether valid or not. `active` and `valid` are the
/// same fact (the Python SDK reads `active`, the others `valid`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Verification {
    #[serde(default)]
    pub active: bool,
    #[serde(default)]
    pub valid: bool,
    /// The agent of the org the token's subject acts as, when one is linked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_level: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// Why not valid (see [`invalid`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(flatten, default, skip_serializing_if = "Extra::is_empty")]
    pub extra: Extra,
}

/// `POST …/tokens/issue`: an ID token for an agent of the caller's org.
#[serde_with::apply(
    Option<String> => #[serde(default, deserialize_with = "empty_as_none", skip_serializing_if = "Option::is_none")],
)]
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IssueIdTokenRequest {
    #[serde(default)]
    pub agent_id: String,
    /// Who the token is for (the relying party's expected `aud`).
    pub audience: Option<String>,
    #[serde(default, alias = "scope", deserialize_with = "null_as_empty")]
    pub scopes: Vec<String>,
    /// Seconds; `ttl_seconds` is accepted too.
    #[serde(
        default,
        alias = "ttl_seconds",
        skip_serializing_if = "Option::is_none"
    )]
    pub ttl: Option<i64>,
    /// Accepted and ignored: no SDK sends it.
    pub nonce: Option<String>,
}

/// The answer to an issue: exactly one of `token`/`id_token` (the Rust SDK treats them as
/// aliases and refuses both), shown once.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IssuedIdToken {
    #[serde(alias = "id_token")]
    pub token: String,
    #[serde(default)]
    pub token_id: String,
    #[serde(default)]
    pub agent_id: String,
    #[serde(default)]
    pub issuer: String,
    #[serde(default)]
    pub audience: String,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub expires_in: i64,
    #[serde(default)]
    pub expires_at: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    #[serde(flatten, default, skip_serializing_if = "Extra::is_empty")]
    pub extra: Extra,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RevokeIdTokenRequest {
    #[serde(default)]
    pub token: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RevokedIdToken {
    pub revoked: bool,
    #[serde(default)]
    pub token_id: String,
    #[serde(flatten, default, skip_serializing_if = "Extra::is_empty")]
    pub extra: Extra,
}

/// An external subject acting as an agent of the org.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubjectLink {
    pub provider_id: String,
    pub subject: String,
    pub agent_id: String,
    #[serde(default)]
    pub created_at: String,
    #[serde(flatten, default, skip_serializing_if = "Extra::is_empty")]
    pub extra: Extra,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LinkSubjectRequest {
    #[serde(default)]
    pub subject: String,
    #[serde(default)]
    pub agent_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubjectList {
    pub subjects: Vec<SubjectLink>,
    #[serde(flatten, default, skip_serializing_if = "Extra::is_empty")]
    pub extra: Extra,
}
