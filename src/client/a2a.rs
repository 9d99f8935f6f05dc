//! A2A (`POST /a2a`, `POST /a2a/agents/{id}`, wire-api §3.9): JSON-RPC calls as an agent (its
//! token as `Authorization: Bearer` when there is one) or with the org key. A JSON-RPC error
//! becomes a gateway error whose status says what kind it is (a task or agent not found: 404,
//! a task that has ended: 409, bad params: 400), so exit codes follow the usual rules; a
//! message the policy refused is told apart, as the check's denial it is.

use serde_json::{Value, json};

use super::{Client, Error, Response, Service};
use crate::api::a2a::{
    CODE_POLICY_DENIED, RPC_METHOD_NOT_FOUND, RPC_TASK_NOT_CANCELABLE, RPC_TASK_NOT_FOUND,
};
use crate::api::mcp::AGENT_ID_HEADER;

/// What the gateway answered a call.
#[derive(Debug)]
pub enum Called {
    /// The JSON-RPC `result` (`raw` is the whole answer).
    Answered(Response<Value>),
    /// The Guardian refused the message (HTTP 403, `POLICY_DENIED`): the reason, and the
    /// whole answer.
    Denied { message: String, raw: Value },
}

/// Calls `method` at `/a2a` (`target` `None`) or at agent `target`'s endpoint, as `agent` (the
/// `X-Agent-ID` header) when given.
pub async fn call(
    client: &Client,
    target: Option<&str>,
    agent: Option<&str>,
    method: &str,
    params: Value,
) -> Result<Called, Error> {
    let url = match target {
        Some(target) => client.url(Service::Base, &["a2a", "agents", target])?,
        None => client.url(Service::Base, &["a2a"])?,
    };
    let shown_url = url.to_string();
    let request = json!({"jsonrpc": "2.0", "id": "1", "method": method, "params": params});
    let mut headers = Vec::new();
    if let Some(agent) = agent {
        headers.push((AGENT_ID_HEADER, agent));
    }
    let (status, body) = client.post_as_agent_with(url, &request, &headers).await?;
    let raw: Option<Value> = serde_json::from_slice(&body).ok();
    if status == 403
        && let Some(raw) = &raw
        && raw.get("code").and_then(Value::as_str) == Some(CODE_POLICY_DENIED)
    {
        let message = raw
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("denied by policy")
            .to_string();
        return Ok(Called::Denied {
            message,
            raw: raw.clone(),
        });
    }
    if !(200..300).contains(&status) {
        return Err(super::gateway_error(status, &body));
    }
    let raw = raw.ok_or_else(|| Error::Decode {
        url: shown_url.clone(),
        detail: "the answer is not JSON".to_string(),
    })?;
    if let Some(error) = raw.get("error") {
        let code = error.get("code").and_then(Value::as_i64).unwrap_or(0);
        let message = error
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("A2A error")
            .to_string();
        let status = match code {
            RPC_TASK_NOT_FOUND | RPC_METHOD_NOT_FOUND => 404,
            RPC_TASK_NOT_CANCELABLE => 409,
            _ => 400,
        };
        return Err(Error::Gateway {
            status,
            code: format!("A2A_ERROR_{code}"),
            message,
        });
    }
    let result = raw.get("result").cloned().ok_or_else(|| Error::Decode {
        url: shown_url,
        detail: "the JSON-RPC answer has no result".to_string(),
    })?;
    Ok(Called::Answered(Response { value: result, raw }))
}
