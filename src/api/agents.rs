//! Agents: `POST/GET /api/v1/agents`, `GET /api/v1/agents/{id}`, `POST /api/v1/agents/{id}/revoke`.

use serde::{Deserialize, Serialize};

use super::status::AgentStatus;
use super::{Extra, empty_as_none, null_as_empty};

/// The frameworks the SDKs name; anything else is rejected so typos surface at once.
pub const FRAMEWORKS: &[&str] = &[
    "openai",
    "anthropic",
    "langchain",
    "crewai",
    "autogen",
    "custom",
];

#[serde_with::apply(
    Option<String> => #[serde(default, deserialize_with = "empty_as_none", skip_serializing_if = "Option::is_none")],
)]
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CreateAgentRequest {
    pub name: String,
    pub framework: Option<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub capabilities: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Value>,
    /// Ignored beyond a consistency check: the org is the caller's.
    pub org_id: Option<String>,
    pub public_key: Option<String>,
}

/// An agent as the gateway returns it (bare object on create and get).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Agent {
    pub id: String,
    pub name: String,
    pub org_id: String,
    #[serde(default = "default_framework")]
    pub framework: String,
    /// `active` or `revoked` (hosted gateways may say `suspended`).
    #[serde(default)]
    pub status: AgentStatus,
    #[serde(default)]
    pub capabilities: Vec<String>,
    #[serde(default)]
    pub metadata: serde_json::Map<String, serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    #[serde(default)]
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoke_reason: Option<String>,
    /// Our extension: `standard`, `read_only` or `locked`, binding the agent in every session
    /// (absent from hosted gateways' answers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Our extension: the RFC 7638 thumbprint of `public_key` (what bound tokens name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_thumbprint: Option<String>,
    /// Our extension: until when the key replaced by the last rotation still works.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_key_valid_until: Option<String>,
    #[serde(flatten, default, skip_serializing_if = "Extra::is_empty")]
    pub extra: Extra,
}

/// `POST /api/v1/agents/{agent_id}/keys/rotate` (our extension): the new key, and how long the
/// key it replaces keeps working.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RotateAgentKeyRequest {
    pub public_key: String,
    /// Seconds the previous key stays valid (default [`DEFAULT_KEY_GRACE_SECONDS`]; 0: at once
    /// no more).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_seconds: Option<i64>,
}

/// How long a rotated-out key keeps working unless the caller says otherwise.
pub const DEFAULT_KEY_GRACE_SECONDS: i64 = 3600;
/// The longest grace period a rotation may give the previous key (7 days).
pub const MAX_KEY_GRACE_SECONDS: i64 = 7 * 24 * 3600;

/// `PUT /api/v1/agents/{agent_id}/mode` (our extension).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SetAgentModeRequest {
    pub mode: String,
}

fn default_framework() -> String {
    "custom".to_string()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentList {
    pub agents: Vec<Agent>,
    /// Present when more agents follow; pass it back as `cursor`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
    #[serde(flatten, default, skip_serializing_if = "Extra::is_empty")]
    pub extra: Extra,
}

/// The statuses an agent can have (`status` filter of the list).
pub const STATUSES: &[&str] = &["active", "suspended", "revoked"];

/// Query of `GET /api/v1/agents`: filters and a page (oldest first, by id).
#[serde_with::apply(
    Option<String> => #[serde(default, deserialize_with = "empty_as_none", skip_serializing_if = "Option::is_none")],
)]
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AgentQuery {
    /// Accepted for the SDKs, which may send it; must be the caller's org.
    pub org_id: Option<String>,
    /// Only agents with this status: `active`, `suspended` or `revoked`.
    pub status: Option<String>,
    /// Only agents whose name starts with this text.
    pub name_prefix: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

#[serde_with::apply(
    Option<String> => #[serde(default, deserialize_with = "empty_as_none", skip_serializing_if = "Option::is_none")],
)]
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RevokeAgentRequest {
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RevokeAgentResponse {
    pub success: bool,
    #[serde(default)]
    pub agent_id: String,
    /// How many live tokens of the agent stopped working with it.
    #[serde(default)]
    pub tokens_revoked: u64,
    #[serde(flatten, default, skip_serializing_if = "Extra::is_empty")]
    pub extra: Extra,
}
