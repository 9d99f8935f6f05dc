//! MCP (wire-api §3.10): the registry of an org's MCP servers (`/mcp/servers`) and the proxy
//! that checks every tool call before forwarding it (`POST /mcp/{server_id}`, JSON-RPC 2.0).
//!
//! Our extension: a server may carry an upstream credential (`auth_token`, a bearer the gateway
//! adds when it forwards). It is write-only: every answer shows [`MASKED_SECRET`] in its place.

use serde::{Deserialize, Serialize};

use super::actions::Effect;
use super::{Extra, empty_as_none, null_as_empty};

/// What an answer shows in place of a stored upstream credential: never the credential, nor
/// its length.
pub const MASKED_SECRET: &str = "********";

/// The headers the SDKs send to the proxy: the acting agent and the session.
pub const AGENT_ID_HEADER: &str = "x-agent-id";
pub const SESSION_ID_HEADER: &str = "x-session-id";
/// MCP Streamable HTTP headers relayed both ways between the caller and the upstream.
pub const MCP_SESSION_ID_HEADER: &str = "mcp-session-id";
pub const MCP_PROTOCOL_VERSION_HEADER: &str = "mcp-protocol-version";

/// The codes a refused tool call carries (HTTP 403 body `code`).
pub const CODE_POLICY_DENIED: &str = "POLICY_DENIED";
pub const CODE_ELEVATION_REQUIRED: &str = "ELEVATION_REQUIRED";

/// A registered MCP server (bare on create and get).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct McpServer {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub url: String,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub capabilities: Vec<String>,
    #[serde(default)]
    pub org_id: String,
    #[serde(default)]
    pub created_at: String,
    /// [`MASKED_SECRET`] when the server has an upstream credential; absent otherwise.
    #[serde(
        default,
        deserialize_with = "empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub auth_token: Option<String>,
    #[serde(flatten, default, skip_serializing_if = "Extra::is_empty")]
    pub extra: Extra,
}

/// `POST /mcp/servers`.
#[serde_with::apply(
    Option<String> => #[serde(default, deserialize_with = "empty_as_none", skip_serializing_if = "Option::is_none")],
)]
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RegisterServerRequest {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Vec<String>>,
    /// A bearer the gateway sends to the upstream (never echoed, logged or audited).
    pub auth_token: Option<String>,
}

/// `GET /mcp/servers`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerList {
    #[serde(default, deserialize_with = "null_as_empty")]
    pub servers: Vec<McpServer>,
    #[serde(flatten, default, skip_serializing_if = "Extra::is_empty")]
    pub extra: Extra,
}

/// `DELETE /mcp/servers/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeletedServer {
    pub status: String,
    #[serde(default)]
    pub id: String,
    #[serde(flatten, default, skip_serializing_if = "Extra::is_empty")]
    pub extra: Extra,
}

/// A JSON-RPC 2.0 request or notification as the proxy receives it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RpcRequest {
    pub jsonrpc: String,
    /// Absent on a notification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<serde_json::Value>,
    pub method: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<serde_json::Value>,
}

/// The body of a refused tool call (HTTP 403): the gateway's error fields, the check that
/// decided, and the JSON-RPC error an MCP client would show.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RefusedCall {
    pub error: String,
    pub message: String,
    pub code: String,
    #[serde(default)]
    pub check_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub elevation_required: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect: Option<String>,
    /// `{"jsonrpc":"2.0","id":…,"error":{"code","message","data"}}`.
    #[serde(default)]
    pub jsonrpc_error: serde_json::Value,
    #[serde(flatten, default, skip_serializing_if = "Extra::is_empty")]
    pub extra: Extra,
}

/// The effect a tool's MCP annotations (`readOnlyHint`, `destructiveHint`, in a `tools/list`
/// entry) state, if they state one. Contradictory hints take the higher effect. The gateway
/// only ever states it to the check, which can raise a tool's classified effect, never lower it.
pub fn hinted_effect(tool: &serde_json::Value) -> Option<Effect> {
    let annotations = tool.get("annotations")?;
    let flag = |name: &str| annotations.get(name).and_then(serde_json::Value::as_bool);
    match (flag("readOnlyHint"), flag("destructiveHint")) {
        (_, Some(true)) => Some(Effect::Destructive),
        (Some(true), _) => Some(Effect::Read),
        // Explicitly not read-only and explicitly not destructive: it changes things.
        (Some(false), Some(false)) => Some(Effect::Mutating),
        _ => None,
    }
}
