//! Tasks (MCP 2025-11-25) bound to the agent they were created for. Every agent reaches an
//! upstream with the server's one credential, and without a gateway session nothing else tells
//! them apart: a task id is all another agent would need to read a task's result or cancel it.
//! So when a `tools/call` answer creates a task (`result.task.taskId`), the gateway remembers
//! the task's agent ([`crate::store::mcp::tasks`], shared by every replica); a `tasks/get`,
//! `tasks/result` or `tasks/cancel` naming a task this agent did not create is answered by the
//! gateway as an unknown task and never forwarded, and a `tasks/list` answer keeps only the
//! caller's tasks. A task is remembered for its `ttl`, at most [`MAX_TASK_SECONDS`].

use std::collections::HashSet;

use serde_json::Value;

use crate::api::time;
use crate::store;

use super::super::AppState;
use super::super::error::ApiResult;

/// How long a task is remembered at most (a task with no `ttl`, or a longer one, is no longer
/// reachable through the gateway after this).
pub const MAX_TASK_SECONDS: i64 = 7 * 24 * 60 * 60;
/// The most tasks one agent keeps on one server (the oldest are forgotten first).
pub const MAX_TASKS_PER_AGENT: i64 = 1000;
/// The longest task id remembered; a longer one is not a task the gateway can bind.
const MAX_TASK_ID_BYTES: usize = 256;

/// The task a `tools/call` answer created, with its `ttl` in milliseconds, if any.
pub fn created(answer: &Value) -> Option<(&str, Option<u64>)> {
    let task = answer.get("result")?.get("task")?;
    let task_id = task.get("taskId")?.as_str()?;
    Some((task_id, task.get("ttl").and_then(Value::as_u64)))
}

/// The task a `tasks/get`, `tasks/result` or `tasks/cancel` names.
pub fn named(params: Option<&Value>) -> Option<&str> {
    params?.get("taskId")?.as_str()
}

/// Remembers the task `answer` (a `tools/call` answer) created for `agent_id`, if it created one.
/// A task id too long to keep is logged and left unbound (so nobody can follow it up).
pub async fn remember(
    state: &AppState,
    org_id: &str,
    server_id: &str,
    agent_id: &str,
    answer: &Value,
) -> ApiResult<()> {
    let Some((task_id, ttl)) = created(answer) else {
        return Ok(());
    };
    if task_id.is_empty() || task_id.len() > MAX_TASK_ID_BYTES {
        tracing::warn!(
            server = %server_id,
            "an MCP upstream created a task whose id is empty or too long to keep"
        );
        return Ok(());
    }
    let now = time::now();
    let ttl_seconds = ttl.map_or(MAX_TASK_SECONDS, |ttl| {
        i64::try_from(ttl.div_ceil(1000)).unwrap_or(MAX_TASK_SECONDS)
    });
    store::mcp::tasks::remember(
        &state.store,
        &store::mcp::tasks::NewTask {
            org_id,
            server_id,
            task_id,
            agent_id,
            created_at: now,
            expires_at: now.saturating_add(ttl_seconds.min(MAX_TASK_SECONDS)),
        },
        MAX_TASKS_PER_AGENT,
    )
    .await?;
    Ok(())
}

/// Whether `task_id` is a live task of `agent_id` on the org's server.
pub async fn is_agents(
    state: &AppState,
    org_id: &str,
    server_id: &str,
    agent_id: &str,
    task_id: &str,
) -> ApiResult<bool> {
    let owner =
        store::mcp::tasks::owner(&state.store, org_id, server_id, task_id, time::now()).await?;
    Ok(owner.as_deref() == Some(agent_id))
}

/// Keeps, of a `tasks/list` answer, the tasks of `agent_id`.
pub async fn keep_agents(
    state: &AppState,
    org_id: &str,
    server_id: &str,
    agent_id: &str,
    answer: &mut Value,
) -> ApiResult<()> {
    let Some(tasks) = answer
        .get_mut("result")
        .and_then(|result| result.get_mut("tasks"))
        .and_then(Value::as_array_mut)
    else {
        return Ok(());
    };
    let owned =
        store::mcp::tasks::of_agent(&state.store, org_id, server_id, agent_id, time::now()).await?;
    keep_owned(tasks, &owned);
    Ok(())
}

fn keep_owned(tasks: &mut Vec<Value>, owned: &HashSet<String>) {
    tasks.retain(|task| {
        task.get("taskId")
            .and_then(Value::as_str)
            .is_some_and(|task_id| owned.contains(task_id))
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_created_task_is_found_and_lists_keep_only_owned_tasks() {
        let answer = json!({"result": {"task": {"taskId": "t-1", "status": "working",
                                                "ttl": 60000}}});
        assert_eq!(created(&answer), Some(("t-1", Some(60000))));
        assert_eq!(created(&json!({"result": {"content": []}})), None);
        assert_eq!(named(Some(&json!({"taskId": "t-1"}))), Some("t-1"));
        assert_eq!(named(Some(&json!({"taskId": 7}))), None);
        let mut tasks = vec![
            json!({"taskId": "mine"}),
            json!({"taskId": "theirs"}),
            json!({"status": "working"}),
        ];
        keep_owned(&mut tasks, &HashSet::from(["mine".to_string()]));
        assert_eq!(tasks, vec![json!({"taskId": "mine"})]);
    }
}
