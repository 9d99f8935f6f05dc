//! Forwarding an allowed message to the target agent's own A2A endpoint (named on its card),
//! and reading the answer back: A2A v1.0 JSON-RPC first (`SendMessage`, `A2A-Version: 1.0`),
//! and when the endpoint does not know that method, the pre-v1.0 `message/send`; text and data
//! parts travel (file parts do not). The answer (a Task or a Message) becomes the task's
//! state, its artifacts and the agent's reply.
//!
//! Nothing of the caller's credentials travels: the endpoint gets the message, the task id and
//! who sent it (in the message's `metadata.agenttrust`). The exchange is bounded (no redirects,
//! a total timeout, an answer of at most 1 MiB, of which a task keeps at most what
//! `limits` allows); a failure fails the task, with the reason as the reply, and is logged.

use serde_json::{Value, json};

use crate::api::a2a::{RPC_METHOD_NOT_FOUND, agent_text_message};
use crate::api::status::TaskStatus;
use crate::store::{self, a2a::TaskRow};

use super::super::outbound::{Outbound, redact_query};
use super::limits;

/// The header naming the A2A protocol version of a request.
const VERSION_HEADER: &str = "a2a-version";

/// What the target's endpoint answered, as the task's next state.
#[derive(Debug)]
pub struct Relayed {
    pub status: TaskStatus,
    pub reply: Option<Value>,
    pub artifacts: Vec<Value>,
}

impl Relayed {
    fn failed(row: &TaskRow, why: &str) -> Relayed {
        Relayed {
            status: TaskStatus::Failed,
            reply: Some(agent_text_message(
                &format!("the agent's endpoint could not be reached: {why}"),
                &store::new_id(),
                &row.id,
            )),
            artifacts: Vec::new(),
        }
    }
}

/// The parts of `message` (as sent) in both spellings: A2A v1.0 (`{"text": …}`,
/// `{"data": …}`) and pre-v1.0 (`{"kind": "text", "text": …}`). A string, or an object without
/// parts, is one text part (`text`); parts of other kinds (files) are not forwarded.
fn parts(message: &Value, text: &str) -> (Vec<Value>, Vec<Value>) {
    let given = message.get("parts").and_then(Value::as_array);
    let mut v1 = Vec::new();
    let mut legacy = Vec::new();
    for part in given.into_iter().flatten() {
        if let Some(text) = part.get("text").and_then(Value::as_str) {
            v1.push(json!({"text": text}));
            legacy.push(json!({"kind": "text", "text": text}));
        } else if let Some(data) = part.get("data") {
            v1.push(json!({"data": data}));
            legacy.push(json!({"kind": "data", "data": data}));
        }
    }
    if v1.is_empty() {
        v1.push(json!({"text": text}));
        legacy.push(json!({"kind": "text", "text": text}));
    }
    (v1, legacy)
}

/// Sends the task's message (`message` as sent, `text` its text) to `endpoint` and reads the
/// answer.
pub async fn forward(
    outbound: &Outbound,
    endpoint: &str,
    row: &TaskRow,
    message: &Value,
    text: &str,
) -> Relayed {
    let (v1_parts, legacy_parts) = parts(message, text);
    let provenance = json!({"agenttrust": {
        "task_id": row.id,
        "source_agent_id": row.source_agent_id,
        "check_id": row.check_id,
    }});
    let v1 = json!({
        "jsonrpc": "2.0",
        "id": row.id,
        "method": "SendMessage",
        "params": {"message": {
            "messageId": store::new_id(),
            "role": "ROLE_USER",
            "parts": v1_parts,
            "metadata": provenance,
        }},
    });
    let answer = match exchange(outbound, endpoint, &v1, Some("1.0")).await {
        Ok(answer) if error_code(&answer) == Some(RPC_METHOD_NOT_FOUND) => {
            let legacy = json!({
                "jsonrpc": "2.0",
                "id": row.id,
                "method": "message/send",
                "params": {"message": {
                    "kind": "message",
                    "messageId": store::new_id(),
                    "role": "user",
                    "parts": legacy_parts,
                    "metadata": provenance,
                }},
            });
            exchange(outbound, endpoint, &legacy, None).await
        }
        other => other,
    };
    let answer = match answer {
        Ok(answer) => answer,
        Err(why) => {
            tracing::warn!(endpoint = %redact_query(endpoint), task = %row.id, why, "A2A forward failed");
            return Relayed::failed(row, &why);
        }
    };
    if let Some(error) = answer.get("error") {
        let message = error
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("no message");
        return Relayed::failed(row, &format!("it answered an error: {message}"));
    }
    match answer.get("result") {
        Some(result) => bounded(row, relay(row, result)),
        None => Relayed::failed(row, "its answer has neither result nor error"),
    }
}

/// `relayed`, unless its reply and artifacts are more than a task keeps
/// ([`limits::answer_fits`]): then the task fails, and none of it is stored.
fn bounded(row: &TaskRow, relayed: Relayed) -> Relayed {
    let reply_bytes = relayed
        .reply
        .as_ref()
        .map_or(0, |reply| reply.to_string().len());
    if limits::answer_fits(&relayed.artifacts, reply_bytes) {
        relayed
    } else {
        Relayed::failed(row, &limits::answer_too_large())
    }
}

/// POSTs one JSON-RPC request; the JSON answer, or why there is none.
async fn exchange(
    outbound: &Outbound,
    endpoint: &str,
    request: &Value,
    version: Option<&str>,
) -> Result<Value, String> {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::CONTENT_TYPE,
        reqwest::header::HeaderValue::from_static("application/json"),
    );
    headers.insert(
        reqwest::header::ACCEPT,
        reqwest::header::HeaderValue::from_static("application/json"),
    );
    if let Some(version) = version
        && let Ok(value) = reqwest::header::HeaderValue::from_str(version)
    {
        headers.insert(VERSION_HEADER, value);
    }
    let posted = outbound
        .post(endpoint, headers, request.to_string().into_bytes())
        .await
        .map_err(|error| error.to_string())?;
    if posted.truncated {
        return Err("its answer is too large".to_string());
    }
    let answer: Value = serde_json::from_slice(&posted.body).map_err(|_| {
        format!(
            "it answered HTTP {} without a JSON-RPC answer",
            posted.status
        )
    })?;
    if !answer.is_object() {
        return Err("its answer is not a JSON-RPC answer".to_string());
    }
    Ok(answer)
}

fn error_code(answer: &Value) -> Option<i64> {
    answer.get("error")?.get("code")?.as_i64()
}

/// The task's next state from a JSON-RPC `result`: a Task (v1.0 `{"task": …}`, or a bare task
/// with a `status`) or a Message (v1.0 `{"message": …}`, or a bare one with `parts`).
fn relay(row: &TaskRow, result: &Value) -> Relayed {
    let task = result
        .get("task")
        .or_else(|| result.get("status").map(|_| result));
    if let Some(task) = task {
        let status = task.get("status");
        let state = status
            .and_then(|status| status.get("state"))
            .and_then(Value::as_str)
            .unwrap_or("");
        let reply = status
            .and_then(|status| status.get("message"))
            .filter(|message| message.is_object())
            .cloned();
        let artifacts = task
            .get("artifacts")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        return Relayed {
            status: status_of(state),
            reply,
            artifacts,
        };
    }
    let message = result
        .get("message")
        .or_else(|| result.get("parts").map(|_| result));
    match message {
        Some(message) => Relayed {
            status: TaskStatus::Completed,
            reply: Some(message.clone()),
            artifacts: Vec::new(),
        },
        None => Relayed::failed(row, "its result is neither a task nor a message"),
    }
}

/// Our status of an A2A task state, in either spelling (`TASK_STATE_COMPLETED`, `completed`).
fn status_of(state: &str) -> TaskStatus {
    let state = state
        .strip_prefix("TASK_STATE_")
        .unwrap_or(state)
        .to_ascii_lowercase()
        .replace('_', "-");
    match state.as_str() {
        "submitted" => TaskStatus::Pending,
        "completed" => TaskStatus::Completed,
        "failed" | "rejected" => TaskStatus::Failed,
        "canceled" | "cancelled" => TaskStatus::Cancelled,
        // Working, waiting for input or for authorization: the task goes on at the target.
        _ => TaskStatus::Running,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_data_parts_travel_in_both_spellings() {
        let message = json!({"parts": [
            {"kind": "text", "text": "a"}, {"kind": "data", "data": {"n": 1}},
            {"kind": "file", "file": {"uri": "https://x"}},
        ]});
        let (v1, legacy) = parts(&message, "a");
        assert_eq!(v1, vec![json!({"text": "a"}), json!({"data": {"n": 1}})]);
        assert_eq!(legacy[1], json!({"kind": "data", "data": {"n": 1}}));
        let (v1, _) = parts(&json!("plain"), "plain");
        assert_eq!(v1, vec![json!({"text": "plain"})]);
    }

    #[test]
    fn states_of_either_protocol_version_map_to_a_status() {
        assert_eq!(status_of("TASK_STATE_COMPLETED"), TaskStatus::Completed);
        assert_eq!(status_of("completed"), TaskStatus::Completed);
        assert_eq!(status_of("TASK_STATE_REJECTED"), TaskStatus::Failed);
        assert_eq!(status_of("canceled"), TaskStatus::Cancelled);
        assert_eq!(status_of("TASK_STATE_INPUT_REQUIRED"), TaskStatus::Running);
        assert_eq!(status_of("submitted"), TaskStatus::Pending);
    }
}
