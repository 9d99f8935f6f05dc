//! Sending a message: `tasks/send` (legacy) and `message/send` (v1.0). Who sends is settled
//! from the credentials, the target must be an active agent of the caller's org, the Guardian
//! decides (and the check service records) `a2a:send:<target>`, and only then is the task
//! stored — and forwarded when the target's card names its own endpoint.

use std::time::Instant;

use serde_json::{Value, json};

use crate::api::Extra;
use crate::api::a2a::{CODE_POLICY_DENIED, RPC_METHOD_NOT_FOUND, message_text};
use crate::api::status::TaskStatus;
use crate::api::time;
use crate::store::{self, a2a::TaskRow};

use super::super::AppState;
use super::super::auth::Caller;
use super::super::cards;
use super::super::check::{self, CheckParams, params::RawCheck};
use super::super::error::ApiError;
use super::super::outbound::redact_query;
use super::super::rate_limit::{AgentRateLimit, Refusal};
use super::super::validate;
use super::{Failure, Outcome, forward, limits, wire};

/// The largest message accepted, as JSON (the body limit bounds the request as a whole).
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;
/// The effect of sending a message: the target acts on it.
const SEND_EFFECT: &str = "mutating";

/// Which shape the sender reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Legacy,
    V1,
}

impl Protocol {
    fn as_str(self) -> &'static str {
        match self {
            Protocol::Legacy => "legacy",
            Protocol::V1 => "v1",
        }
    }
}

/// A message to send, as the door received it.
struct Outgoing<'a> {
    /// The sending agent as named by the request (checked against the credentials).
    source: Option<&'a str>,
    target: &'a str,
    message: Value,
    metadata: Extra,
    context_id: Option<String>,
    protocol: Protocol,
}

/// `tasks/send`: `{source_agent_id, target_agent_id, message, metadata?}`.
pub async fn tasks_send(state: &AppState, caller: &Caller, params: &Value) -> Outcome {
    let text = |name: &str| {
        params
            .get(name)
            .and_then(Value::as_str)
            .filter(|text| !text.is_empty())
    };
    let Some(target) = text("target_agent_id") else {
        return Err(Failure::invalid_params("target_agent_id is required"));
    };
    let metadata = match params.get("metadata") {
        None | Some(Value::Null) => Extra::new(),
        Some(Value::Object(metadata)) => metadata.clone(),
        Some(_) => return Err(Failure::invalid_params("metadata must be an object")),
    };
    let metadata_bytes = serde_json::to_string(&metadata).map_or(usize::MAX, |text| text.len());
    if metadata_bytes > limits::MAX_METADATA_BYTES {
        return Err(Failure::invalid_params(format!(
            "metadata is {metadata_bytes} bytes; at most {} are accepted",
            limits::MAX_METADATA_BYTES
        )));
    }
    let row = send(
        state,
        caller,
        Outgoing {
            source: text("source_agent_id"),
            target,
            message: params.get("message").cloned().unwrap_or(Value::Null),
            metadata,
            context_id: None,
            protocol: Protocol::Legacy,
        },
    )
    .await?;
    wire::to_value(&wire::legacy(&row)?)
}

/// `message/send` to `target`: `{message: {role, parts[], messageId, taskId?, contextId?}}`.
pub async fn message_send(
    state: &AppState,
    caller: &Caller,
    target: &str,
    source: Option<&str>,
    params: &Value,
) -> Outcome {
    let Some(message) = params.get("message").filter(|message| message.is_object()) else {
        return Err(Failure::invalid_params(
            "message/send needs params.message, an object with role and parts",
        ));
    };
    if !message.get("parts").is_some_and(Value::is_array) {
        return Err(Failure::invalid_params(
            "params.message.parts must be an array",
        ));
    }
    if message
        .get("taskId")
        .and_then(Value::as_str)
        .is_some_and(|id| !id.is_empty())
    {
        // Continuing a task would need the target's side of it; every message is a new task.
        return Err(Failure::invalid_params(
            "params.message.taskId: continuing a task is not supported; send without taskId",
        ));
    }
    let context_id = message
        .get("contextId")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
        .map(str::to_string);
    if let Some(context_id) = &context_id {
        validate::identifier("params.message.contextId", context_id)?;
    }
    let row = send(
        state,
        caller,
        Outgoing {
            source,
            target,
            message: message.clone(),
            metadata: Extra::new(),
            context_id,
            protocol: Protocol::V1,
        },
    )
    .await?;
    wire::to_value(&wire::v1(&row)?)
}

/// Checks, stores and (when the target has an endpoint) forwards a message; the task as it
/// stands once the answer is in.
async fn send(
    state: &AppState,
    caller: &Caller,
    outgoing: Outgoing<'_>,
) -> Result<TaskRow, Failure> {
    let started = Instant::now();
    // An org key acts as an agent here as on every check door: refused alike (401) when the
    // org requires sender-constrained tokens. Only a missing sender is the params' fault.
    let source = caller.acting_agent(outgoing.source).map_err(|error| {
        if error.status != axum::http::StatusCode::BAD_REQUEST {
            error.into()
        } else if outgoing.source.is_none() && outgoing.protocol == Protocol::V1 {
            Failure::invalid_params(
                "the sending agent is unknown: present its agent token (Authorization: Bearer) \
                 or name it in the X-Agent-ID header",
            )
        } else if outgoing.source.is_none() {
            Failure::invalid_params("source_agent_id is required")
        } else {
            error.into()
        }
    })?;
    validate::identifier("source_agent_id", &source)?;
    validate::identifier("target_agent_id", outgoing.target)?;
    // Charged before the check: a flood of denied messages costs recorded checks too.
    if let Some(limit) = &state.settings.a2a_limit {
        take_from_limit(limit, &caller.org_id, &source)?;
    }
    let message_bytes = match &outgoing.message {
        Value::String(text) if text.is_empty() => {
            return Err(Failure::invalid_params("message must not be empty"));
        }
        Value::String(_) | Value::Object(_) => outgoing.message.to_string().len(),
        _ => {
            return Err(Failure::invalid_params(
                "message is required: a string or an object",
            ));
        }
    };
    if message_bytes > MAX_MESSAGE_BYTES {
        return Err(Failure::invalid_params(format!(
            "message is {message_bytes} bytes; at most {MAX_MESSAGE_BYTES} are accepted"
        )));
    }
    let target = store::agents::get(&state.store, &caller.org_id, outgoing.target)
        .await?
        .ok_or_else(|| {
            Failure::rpc(
                RPC_METHOD_NOT_FOUND,
                format!("agent {} not found", outgoing.target),
            )
        })?;
    if !target.is_active() {
        return Err(Failure::invalid_params(format!(
            "agent {} is {}; it cannot receive messages",
            target.id, target.status
        )));
    }
    let input = message_input(&outgoing.message);
    let action = format!("a2a:send:{}", target.id);
    let params = CheckParams::validate_whole_input(
        Some(caller),
        RawCheck {
            agent_id: &source,
            action_name: &action,
            input_summary: &input,
            action_effect: Some(SEND_EFFECT),
            session_id: None,
        },
    )?;
    let decision = check::decide_and_record(state, caller, &params, started).await?;
    if !decision.allowed {
        let rule = decision
            .rule
            .as_deref()
            .map(|rule| format!(" (rule {rule})"))
            .unwrap_or_default();
        return Err(Failure::Refused {
            status: axum::http::StatusCode::FORBIDDEN,
            code: CODE_POLICY_DENIED,
            message: format!(
                "agent {source} may not message agent {}: {}{rule}",
                target.id, decision.reason
            ),
            data: Some(json!({
                "check_id": decision.check_id,
                "rule": decision.rule,
                "reason": decision.reason,
                "elevation_required": decision.elevation_required,
                "approval_id": decision.approval_id,
            })),
        });
    }
    let endpoint = cards::settings_of(state, &caller.org_id, &target.id)
        .await?
        .and_then(|settings| settings.endpoint().map(str::to_string));
    let now = time::now();
    let id = store::new_id();
    let mut row = TaskRow {
        org_id: caller.org_id.clone(),
        context_id: outgoing.context_id.unwrap_or_else(store::new_id),
        id,
        source_agent_id: source.clone(),
        target_agent_id: target.id.clone(),
        protocol: outgoing.protocol.as_str().to_string(),
        status: if endpoint.is_some() {
            TaskStatus::Running
        } else {
            TaskStatus::Pending
        }
        .as_str()
        .to_string(),
        message: outgoing.message.to_string(),
        reply: None,
        artifacts: "[]".to_string(),
        metadata: Value::Object(outgoing.metadata).to_string(),
        check_id: decision.check_id.clone(),
        // Senders read the task: the endpoint's query (where a key may sit) stays the gateway's.
        forwarded_to: endpoint.as_deref().map(redact_query),
        created_at: now,
        updated_at: now,
    };
    store::a2a::create(&state.store, &row, &caller.actor()).await?;
    let Some(endpoint) = endpoint else {
        return Ok(row);
    };
    let relayed = forward::forward(
        &state.a2a.outbound,
        &endpoint,
        &row,
        &outgoing.message,
        &message_text(&outgoing.message),
    )
    .await;
    let reply = relayed.reply.as_ref().map(Value::to_string);
    let artifacts = Value::Array(relayed.artifacts).to_string();
    let advanced = store::a2a::advance(
        &state.store,
        &caller.org_id,
        &row.id,
        store::a2a::Advance {
            status: relayed.status,
            reply: reply.as_deref(),
            artifacts: Some(&artifacts),
            now: time::now(),
        },
        &caller.actor(),
    )
    .await?;
    if let Some(advanced) = advanced {
        row = advanced;
    }
    Ok(row)
}

/// The input a message is decided on: all that the target will receive. A plain string is
/// itself; a structured message is its whole JSON, not only its text parts and never a cut of
/// them: the sender chooses the message, and anything left out of the check (a data part, a
/// second text field, a tail past a cut) would reach the target unchecked.
fn message_input(message: &Value) -> String {
    match message {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// Charges one message to the sending agent's A2A limit: over it, nothing is checked or stored
/// and the caller hears when to retry.
fn take_from_limit(limit: &AgentRateLimit, org_id: &str, source: &str) -> Result<(), Failure> {
    match limit.take(org_id, source, 1) {
        Ok(()) => Ok(()),
        // One message never outgrows a burst (at least one): waiting is the only refusal.
        Err(Refusal::Wait(wait)) => Err(ApiError::rate_limited(
            format!(
                "agent {source} is sending more than {} A2A messages a second; retry later",
                limit.per_second()
            ),
            // Whole seconds, rounded up: a client that waits as told is not refused again.
            wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
        )
        .into()),
        Err(Refusal::TooLarge { burst }) => Err(ApiError::rate_limited(
            format!("agent {source} may send at most {burst} A2A messages at once"),
            1,
        )
        .into()),
    }
}
