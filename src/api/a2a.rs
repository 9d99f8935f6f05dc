//! A2A (wire-api §3.9): JSON-RPC 2.0 at `POST /a2a` (`tasks/send`, `tasks/get`,
//! `tasks/cancel`, `tasks/list`, and our `tasks/complete`) and `POST /a2a/agents/{id}`
//! (`message/send`, answered with an A2A v1.0 Task).
//!
//! The legacy Task is snake_case with a flat `status` string and echoes `message` as it was
//! sent (a string from the Python SDK, an object from the others); the v1.0 Task is camelCase
//! with `status: {state, timestamp, message?}`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Extra;
use super::status::TaskStatus;

/// JSON-RPC error codes the gateway answers with. The A2A codes (-32001, -32002) are the
/// protocol's; -32010 is ours (server-defined range): the Guardian refused the message.
pub const RPC_INVALID_REQUEST: i64 = -32600;
pub const RPC_METHOD_NOT_FOUND: i64 = -32601;
pub const RPC_INVALID_PARAMS: i64 = -32602;
pub const RPC_TASK_NOT_FOUND: i64 = -32001;
pub const RPC_TASK_NOT_CANCELABLE: i64 = -32002;
pub const RPC_REFUSED_BY_POLICY: i64 = -32010;
/// The target's own endpoint failed or answered something that is not an A2A answer.
pub const RPC_UPSTREAM_FAILED: i64 = -32006;

/// The code (HTTP 403 body `code`) of a message the Guardian refused.
pub const CODE_POLICY_DENIED: &str = "POLICY_DENIED";

/// The most tasks `tasks/list` answers.
pub const MAX_LIST_LIMIT: u32 = 200;
pub const DEFAULT_LIST_LIMIT: u32 = 50;

/// A JSON-RPC request: the envelope every A2A call arrives in.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RpcRequest {
    #[serde(default)]
    pub jsonrpc: String,
    /// Echoed unchanged (the Python SDK sends an integer, the others strings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Value>,
    #[serde(default)]
    pub method: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Value>,
}

/// A JSON-RPC error object.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

/// A task in the legacy shape (`tasks/*`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Task {
    pub id: String,
    #[serde(default, alias = "sourceAgentId")]
    pub source_agent_id: String,
    #[serde(default, alias = "targetAgentId")]
    pub target_agent_id: String,
    #[serde(default)]
    pub status: TaskStatus,
    /// As sent: a string or an object.
    #[serde(default)]
    pub message: Value,
    #[serde(default)]
    pub artifacts: Vec<Value>,
    #[serde(default)]
    pub metadata: Extra,
    #[serde(default, alias = "createdAt")]
    pub created_at: String,
    #[serde(default, alias = "updatedAt")]
    pub updated_at: String,
    #[serde(flatten, default, skip_serializing_if = "Extra::is_empty")]
    pub extra: Extra,
}

/// `tasks/list`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TaskList {
    #[serde(default)]
    pub tasks: Vec<Task>,
    #[serde(flatten, default, skip_serializing_if = "Extra::is_empty")]
    pub extra: Extra,
}

/// An A2A v1.0 Task (`message/send`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct V1Task {
    pub id: String,
    #[serde(default)]
    pub context_id: String,
    #[serde(default)]
    pub status: V1TaskStatus,
    #[serde(default)]
    pub history: Vec<Value>,
    #[serde(default)]
    pub artifacts: Vec<Value>,
    /// Always `task`.
    #[serde(default)]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Extra::is_empty")]
    pub metadata: Extra,
    #[serde(flatten, default, skip_serializing_if = "Extra::is_empty")]
    pub extra: Extra,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct V1TaskStatus {
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub timestamp: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<Value>,
}

/// The text of a message as the SDKs send it: a string itself, an object's `content`/`text`,
/// or the text parts of a v1.0 message joined by newlines. Empty when it has none.
pub fn message_text(message: &Value) -> String {
    match message {
        Value::String(text) => text.clone(),
        Value::Object(members) => {
            for key in ["content", "text"] {
                if let Some(Value::String(text)) = members.get(key) {
                    return text.clone();
                }
            }
            members
                .get("parts")
                .and_then(Value::as_array)
                .map(|parts| {
                    parts
                        .iter()
                        .filter_map(|part| part.get("text").and_then(Value::as_str))
                        .collect::<Vec<_>>()
                        .join("\n")
                })
                .unwrap_or_default()
        }
        _ => String::new(),
    }
}

/// A v1.0 agent message carrying `text` (what `a2a tasks complete --text` answers with).
pub fn agent_text_message(text: &str, message_id: &str, task_id: &str) -> Value {
    serde_json::json!({
        "kind": "message",
        "role": "agent",
        "messageId": message_id,
        "taskId": task_id,
        "parts": [{"kind": "text", "text": text}],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_give_their_text_whatever_their_shape() {
        assert_eq!(message_text(&Value::from("hi")), "hi");
        assert_eq!(
            message_text(&serde_json::json!({"role": "user", "content": "do it"})),
            "do it"
        );
        assert_eq!(
            message_text(&serde_json::json!({"parts": [
                {"kind": "text", "text": "a"}, {"kind": "data", "data": {}}, {"kind": "text", "text": "b"}
            ]})),
            "a\nb"
        );
        assert_eq!(message_text(&Value::Null), "");
    }
}
