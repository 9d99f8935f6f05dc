//! Agent tokens: `POST /api/v1/agent-tokens/{issue,introspect,revoke}`. Tokens are opaque
//! (`at_` + random base62) and only the gateway can say whether one is active. Our extensions:
//! `GET /api/v1/agent-tokens` lists them (never a secret) and
//! `POST /api/v1/agent-tokens/{token_id}/revoke` revokes one by its id.

use serde::{Deserialize, Serialize};

use super::{Extra, empty_as_none, null_as_empty};

/// The token lifetime when the caller names none (every SDK's default).
pub const DEFAULT_TTL_SECONDS: i64 = 300;

#[serde_with::apply(
    Option<String> => #[serde(default, deserialize_with = "empty_as_none", skip_serializing_if = "Option::is_none")],
)]
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
    /// What the gateway changed in the request, in words (e.g. a `ttl` capped to the server's
    /// maximum): present only when something was.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    #[serde(flatten, default, skip_serializing_if = "Extra::is_empty")]
    pub extra: Extra,
}

#[serde_with::apply(
    Option<String> => #[serde(default, deserialize_with = "empty_as_none", skip_serializing_if = "Option::is_none")],
)]
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IntrospectRequest {
    pub token: String,
    /// Where the token is being presented (`mcp://filesystem`); recorded, not enforced.
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

#[serde_with::apply(
    Option<String> => #[serde(default, deserialize_with = "empty_as_none", skip_serializing_if = "Option::is_none")],
)]
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RevokeTokenRequest {
    pub token: String,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RevokeTokenResponse {
    pub success: bool,
    /// False when the token was already revoked (revoking twice changes nothing).
    #[serde(default)]
    pub revoked: bool,
    /// The token revoked, when it was named by its id (`POST /api/v1/agent-tokens/{id}/revoke`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub token_id: String,
    #[serde(flatten, default, skip_serializing_if = "Extra::is_empty")]
    pub extra: Extra,
}

/// Body of `POST /api/v1/agent-tokens/{token_id}/revoke` (our extension: revoke a token by its
/// id, for an operator who holds only the id; admin keys only).
#[serde_with::apply(
    Option<String> => #[serde(default, deserialize_with = "empty_as_none", skip_serializing_if = "Option::is_none")],
)]
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RevokeTokenByIdRequest {
    pub reason: Option<String>,
}

/// Page size of the token listing when the caller names none, and the most it may ask for.
pub const DEFAULT_PAGE_SIZE: u32 = 100;
pub const MAX_PAGE_SIZE: u32 = 1000;

/// Query of `GET /api/v1/agent-tokens` (our extension; admin keys only).
#[serde_with::apply(
    Option<String> => #[serde(default, deserialize_with = "empty_as_none", skip_serializing_if = "Option::is_none")],
)]
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TokenQuery {
    /// Only this agent's tokens.
    pub agent_id: Option<String>,
    /// Also revoked and expired tokens, and those of inactive agents (active ones only by
    /// default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_inactive: Option<bool>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// A token as listed: everything but the secret, which the gateway never kept.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenSummary {
    pub token_id: String,
    pub agent_id: String,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(default)]
    pub issued_at: String,
    #[serde(default)]
    pub expires_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoke_reason: Option<String>,
    /// `active`, `revoked`, `expired`, or `agent_<status>` when its agent is not active.
    #[serde(default)]
    pub status: String,
    #[serde(flatten, default, skip_serializing_if = "Extra::is_empty")]
    pub extra: Extra,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenPage {
    pub tokens: Vec<TokenSummary>,
    /// Present when more tokens follow; pass it back as `cursor`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
    #[serde(flatten, default, skip_serializing_if = "Extra::is_empty")]
    pub extra: Extra,
}
