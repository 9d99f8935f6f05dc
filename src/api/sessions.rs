//! Sessions: `POST /mcp/sessions/init`, `GET /mcp/sessions/{id}`,
//! `POST /api/v1/agenttrust/api-sessions/init`, and our `POST /api/v1/sessions` (a registered
//! session of a shell agent), `GET /api/v1/sessions`, `PUT /api/v1/sessions/{id}/mode`,
//! `POST /api/v1/sessions/{id}/unlock`.

use serde::{Deserialize, Serialize};

use super::{Extra, empty_as_none};

/// Where a session came from.
pub const SOURCE_MCP: &str = "mcp";
pub const SOURCE_API: &str = "api";
/// Opened by a shell agent (`agenttrust guard session start`).
pub const SOURCE_SHELL: &str = "shell";
/// Opened from an external issuer's ID token (`POST /api/v1/federation/sessions/init`).
pub const SOURCE_FEDERATION: &str = "federation";

/// The Session object; `session_id`, `agent_id` and `org_id` are always present (the Rust SDK
/// requires them).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    pub session_id: String,
    pub agent_id: String,
    pub org_id: String,
    /// `sdk` (created by a check), `mcp`, `api`, `a2a`, `federation`.
    #[serde(default)]
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegation_id: Option<String>,
    /// A federation session's provider, issuer and trust level (the most it may do), and when
    /// it ends (the external token's expiry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_level: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// `standard`, `read_only`, `elevated` (an admin's choice, or an approval's grant is live),
    /// `locked`.
    #[serde(default)]
    pub mode: String,
    #[serde(default)]
    pub allowed_actions: Vec<String>,
    /// The most this session may do; empty = the agent's own capabilities.
    #[serde(default)]
    pub scope_ceiling: Vec<String>,
    #[serde(default)]
    pub total_calls: u64,
    #[serde(default)]
    pub read_calls: u64,
    #[serde(default)]
    pub write_calls: u64,
    #[serde(default)]
    pub denied_calls: u64,
    #[serde(default)]
    pub created_at: String,
    #[serde(default)]
    pub last_activity_at: String,
    #[serde(flatten, default, skip_serializing_if = "Extra::is_empty")]
    pub extra: Extra,
}

#[serde_with::apply(
    Option<String> => #[serde(default, deserialize_with = "empty_as_none", skip_serializing_if = "Option::is_none")],
)]
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct InitSessionRequest {
    pub agent_id: String,
    pub server_id: Option<String>,
}

/// `POST /api/v1/sessions`: a registered session of an agent; with an agent token the agent is
/// the token's and `agent_id` may be omitted.
#[serde_with::apply(
    Option<String> => #[serde(default, deserialize_with = "empty_as_none", skip_serializing_if = "Option::is_none")],
)]
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct OpenSessionRequest {
    pub agent_id: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct InitApiSessionRequest {
    /// An agent token (`at_…`): the session's agent and scope ceiling come from it.
    pub token: String,
}

#[serde_with::apply(
    Option<String> => #[serde(default, deserialize_with = "empty_as_none", skip_serializing_if = "Option::is_none")],
)]
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SessionQuery {
    pub agent_id: Option<String>,
    pub mode: Option<String>,
    pub source: Option<String>,
    pub cursor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionList {
    pub sessions: Vec<Session>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
    #[serde(flatten, default, skip_serializing_if = "Extra::is_empty")]
    pub extra: Extra,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SetModeRequest {
    /// `standard`, `read_only`, `elevated` or `locked`.
    pub mode: String,
}
