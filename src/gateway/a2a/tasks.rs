//! The tasks waiting in the gateway: `tasks/get`, `tasks/list`, `tasks/cancel` (the source or
//! the target gives up on it) and our `tasks/complete` (the target answers it: completed or
//! failed, with a text reply and artifacts). A task id is `task_id` (Python SDK) or `id` (the
//! others). With an agent token only the task's own agents see it; another task is "not found".

use serde_json::Value;

use crate::api::a2a::{
    DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT, RPC_TASK_NOT_CANCELABLE, RPC_TASK_NOT_FOUND, TaskList,
    agent_text_message,
};
use crate::api::status::TaskStatus;
use crate::api::time;
use crate::store::{self, a2a::TaskRow};

use super::super::AppState;
use super::super::auth::{Caller, Principal};
use super::super::validate;
use super::{Failure, Outcome, limits, wire};

/// The agent a token (agent or workload) acts as: it sees only its own tasks. `None` for an
/// org key.
fn party(caller: &Caller) -> Option<&str> {
    match &caller.principal {
        Principal::Agent { agent_id, .. } | Principal::Workload { agent_id, .. } => Some(agent_id),
        Principal::Key { .. } => None,
    }
}

fn task_id(params: &Value) -> Result<&str, Failure> {
    let id = ["task_id", "id"]
        .iter()
        .find_map(|name| params.get(*name).and_then(Value::as_str))
        .filter(|id| !id.is_empty())
        .ok_or_else(|| Failure::invalid_params("the task id is required (task_id or id)"))?;
    validate::identifier("task_id", id)?;
    Ok(id)
}

/// The task the caller may see, or "not found".
async fn visible(state: &AppState, caller: &Caller, id: &str) -> Result<TaskRow, Failure> {
    store::a2a::get(&state.store, &caller.org_id, id, party(caller))
        .await?
        .ok_or_else(|| Failure::rpc(RPC_TASK_NOT_FOUND, format!("task {id} not found")))
}

pub async fn get(state: &AppState, caller: &Caller, params: &Value) -> Outcome {
    let row = visible(state, caller, task_id(params)?).await?;
    wire::to_value(&wire::legacy(&row)?)
}

pub async fn list(state: &AppState, caller: &Caller, params: &Value) -> Outcome {
    let limit = match params.get("limit") {
        None | Some(Value::Null) => DEFAULT_LIST_LIMIT,
        Some(limit) => limit
            .as_u64()
            .and_then(|limit| u32::try_from(limit).ok())
            .filter(|limit| (1..=MAX_LIST_LIMIT).contains(limit))
            .ok_or_else(|| {
                Failure::invalid_params(format!("limit must be between 1 and {MAX_LIST_LIMIT}"))
            })?,
    };
    let named = params
        .get("agent_id")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty());
    let agent = match (party(caller), named) {
        (Some(own), Some(named)) if own != named => {
            return Err(Failure::from(super::super::error::ApiError::forbidden(
                format!(
                    "the agent token belongs to agent {own}; it cannot list agent {named}'s tasks"
                ),
            )));
        }
        (Some(own), _) => Some(own),
        (None, named) => named,
    };
    if let Some(agent) = agent {
        validate::identifier("agent_id", agent)?;
    }
    let status = params
        .get("status")
        .and_then(Value::as_str)
        .filter(|status| !status.is_empty());
    if let Some(status) = status
        && matches!(TaskStatus::from(status), TaskStatus::Other(_))
    {
        return Err(Failure::invalid_params(format!(
            "status {status:?} is not one of pending, running, completed, failed, cancelled"
        )));
    }
    let rows = store::a2a::list(
        &state.store,
        &caller.org_id,
        store::a2a::TaskFilter {
            party: agent,
            status,
            limit,
        },
    )
    .await?;
    let tasks = rows
        .iter()
        .map(wire::legacy)
        .collect::<Result<Vec<_>, _>>()?;
    wire::to_value(&TaskList {
        tasks,
        extra: Default::default(),
    })
}

pub async fn cancel(state: &AppState, caller: &Caller, params: &Value) -> Outcome {
    let row = visible(state, caller, task_id(params)?).await?;
    let row = advance(state, caller, row, TaskStatus::Cancelled, None, None).await?;
    wire::to_value(&wire::legacy(&row)?)
}

/// `tasks/complete`: `{id|task_id, status?: completed|failed, text?, artifacts?}` — the target's
/// answer to a task that waited in the gateway.
pub async fn complete(state: &AppState, caller: &Caller, params: &Value) -> Outcome {
    // The answer is the target agent's: an org key gives it as that agent, so only where it may
    // act as one.
    caller.require_may_act_as_agent()?;
    let row = visible(state, caller, task_id(params)?).await?;
    if let Some(own) = party(caller)
        && own != row.target_agent_id
    {
        return Err(Failure::from(super::super::error::ApiError::forbidden(
            format!(
                "only the task's target, agent {}, completes it",
                row.target_agent_id
            ),
        )));
    }
    let status = match params.get("status").and_then(Value::as_str) {
        None | Some("") | Some("completed") => TaskStatus::Completed,
        Some("failed") => TaskStatus::Failed,
        Some(other) => {
            return Err(Failure::invalid_params(format!(
                "status {other:?}: a task is completed or failed"
            )));
        }
    };
    let text = params
        .get("text")
        .and_then(Value::as_str)
        .filter(|text| !text.is_empty());
    let mut artifacts = match params.get("artifacts") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(artifacts)) if artifacts.iter().all(Value::is_object) => {
            artifacts.clone()
        }
        Some(_) => {
            return Err(Failure::invalid_params(
                "artifacts must be an array of objects",
            ));
        }
    };
    if let Some(text) = text
        && artifacts.is_empty()
    {
        artifacts.push(serde_json::json!({
            "artifactId": store::new_id(),
            "name": "reply",
            "parts": [{"kind": "text", "text": text}],
        }));
    }
    if !limits::answer_fits(&artifacts, text.map_or(0, str::len)) {
        return Err(Failure::invalid_params(limits::answer_too_large()));
    }
    let artifacts_text = Value::Array(artifacts).to_string();
    let reply = text.map(|text| agent_text_message(text, &store::new_id(), &row.id).to_string());
    let row = advance(
        state,
        caller,
        row,
        status,
        reply.as_deref(),
        Some(&artifacts_text),
    )
    .await?;
    wire::to_value(&wire::legacy(&row)?)
}

async fn advance(
    state: &AppState,
    caller: &Caller,
    row: TaskRow,
    status: TaskStatus,
    reply: Option<&str>,
    artifacts: Option<&str>,
) -> Result<TaskRow, Failure> {
    let not_cancelable = |row: &TaskRow| {
        Failure::rpc(
            RPC_TASK_NOT_CANCELABLE,
            format!(
                "task {} is already {}; it cannot change",
                row.id, row.status
            ),
        )
    };
    if row.status().is_final() {
        return Err(not_cancelable(&row));
    }
    let advanced = store::a2a::advance(
        &state.store,
        &caller.org_id,
        &row.id,
        store::a2a::Advance {
            status,
            reply,
            artifacts,
            now: time::now(),
        },
        &caller.actor(),
    )
    .await?;
    match advanced {
        Some(row) => Ok(row),
        // Another request ended it meanwhile: say how it ended.
        None => {
            let current = visible(state, caller, &row.id).await?;
            Err(not_cancelable(&current))
        }
    }
}
