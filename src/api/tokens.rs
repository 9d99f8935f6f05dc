//! Agent tokens: `POST /api/v1/agent-tokens/{issue,introspect,revoke}`. Tokens are opaque
//! (`at_` + random base62) and only the gateway can say whether one is active.

use serde::{Deserialize, Serialize};

use super::{Extra, empty_as_none, null_as_empty};

/// The token lifetime when the caller names none (every SDK's default).
pub const DEFAULT_TTL_SECONDS: i64 = 300;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IssueTokenRequest {
    pub agent_id: String,
    /// Every SDK sends `scopes`; `scope` is accepted too.
    #[serde(default, alias = "scope", deserialize_with = "null_as_empty")]
    pub scopes: Vec<String>,
    /// Seconds; `ttl_seconds` is accepted too.
    #[serde(
        default,
        alias = "ttl_seconds",
        skip_serializing_if = "Option::is_none"
    )]
    pub ttl: Option<i64>,
    #[serde(
        default,
        deserialize_with = "empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub session_id: Option<String>,
}

/// The answer to an issue: the only time the token string is ever shown.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IssuedToken {
    pub token: String,
    #[serde(default)]
    pub token_id: String,
    pub agent_id: String,
    #[serde(default)]
    pub scopes: Vec<String>,
    /// The same list as `scopes`: the TypeScript SDK reads `scope` first.
    #[serde(default)]
    pub scope: Vec<String>,
    #[serde(default)]
    pub audience: Vec<String>,
    #[serde(default)]
    pub issued_at: String,
    #[serde(default)]
    pub expires_at: String,
    #[serde(default)]
    pub ttl_seconds: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(flatten, default, skip_serializing_if = "Extra::is_empty")]
    pub extra: Extra,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IntrospectRequest {
    pub token: String,
    /// Where the token is being presented (`mcp://filesystem`); recorded, not enforced.
    #[serde(
        default,
        deserialize_with = "empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub target: Option<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub required_scopes: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Introspection {
    pub active: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_id: Option<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// Why the token is (in)active, in words.
    #[serde(default)]
    pub reasoning: String,
    #[serde(default)]
    pub guard_tier: String,
    #[serde(default)]
    pub confidence: f64,
    #[serde(default)]
    pub latency_ms: i64,
    #[serde(flatten, default, skip_serializing_if = "Extra::is_empty")]
    pub extra: Extra,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RevokeTokenRequest {
    pub token: String,
    #[serde(
        default,
        deserialize_with = "empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RevokeTokenResponse {
    pub success: bool,
    /// False when the token was already revoked (revoking twice changes nothing).
    #[serde(default)]
    pub revoked: bool,
    #[serde(flatten, default, skip_serializing_if = "Extra::is_empty")]
    pub extra: Extra,
}
