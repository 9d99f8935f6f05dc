//! The tasks upstreams created for the agents' tool calls (`mcp_tasks`, MCP 2025-11-25): which
//! agent each task id belongs to, shared by every replica. The first agent a task id is seen
//! for keeps it; a row lives until its expiry, and an agent keeps at most so many per server
//! (the oldest go), so a flood of task-creating calls grows nothing without bound.

use std::collections::HashSet;

use super::super::{Result, Store, on_db, on_tx};

/// A task to remember: the org's server, the task id the upstream gave, the agent it was for.
#[derive(Debug)]
pub struct NewTask<'a> {
    pub org_id: &'a str,
    pub server_id: &'a str,
    pub task_id: &'a str,
    pub agent_id: &'a str,
    pub created_at: i64,
    pub expires_at: i64,
}

/// Remembers `task` (a task id already known keeps its agent), keeps at most `max_per_agent`
/// tasks of its agent on its server, and sweeps expired rows.
pub async fn remember(store: &Store, task: &NewTask<'_>, max_per_agent: i64) -> Result<()> {
    const SWEEP: &str = "DELETE FROM mcp_tasks WHERE expires_at < $1";
    const INSERT: &str = "INSERT INTO mcp_tasks (org_id, server_id, task_id, agent_id, \
                          created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6) \
                          ON CONFLICT (org_id, server_id, task_id) DO NOTHING";
    // The agent's tasks past the newest `max_per_agent`.
    const TRIM: &str = "DELETE FROM mcp_tasks WHERE org_id = $1 AND server_id = $2 \
                        AND agent_id = $3 AND task_id IN (SELECT task_id FROM mcp_tasks \
                        WHERE org_id = $1 AND server_id = $2 AND agent_id = $3 \
                        ORDER BY created_at DESC, task_id DESC LIMIT 1000 OFFSET $4)";
    let mut tx = store.begin().await?;
    on_tx!(&mut tx, |conn| {
        sqlx::query(SWEEP)
            .bind(task.created_at)
            .execute(&mut *conn)
            .await?;
        sqlx::query(INSERT)
            .bind(task.org_id)
            .bind(task.server_id)
            .bind(task.task_id)
            .bind(task.agent_id)
            .bind(task.created_at)
            .bind(task.expires_at)
            .execute(&mut *conn)
            .await?;
        sqlx::query(TRIM)
            .bind(task.org_id)
            .bind(task.server_id)
            .bind(task.agent_id)
            .bind(max_per_agent)
            .execute(&mut *conn)
            .await?;
    });
    tx.commit().await
}

/// The agent the org's server `server_id` created task `task_id` for, unless it expired
/// before `now`.
pub async fn owner(
    store: &Store,
    org_id: &str,
    server_id: &str,
    task_id: &str,
    now: i64,
) -> Result<Option<String>> {
    const SQL: &str = "SELECT agent_id FROM mcp_tasks WHERE org_id = $1 AND server_id = $2 \
                       AND task_id = $3 AND expires_at >= $4";
    Ok(on_db!(store, |pool| sqlx::query_scalar(SQL)
        .bind(org_id)
        .bind(server_id)
        .bind(task_id)
        .bind(now)
        .fetch_optional(pool)
        .await?))
}

/// Every live task the org's server created for `agent_id` (at most the per-agent cap).
pub async fn of_agent(
    store: &Store,
    org_id: &str,
    server_id: &str,
    agent_id: &str,
    now: i64,
) -> Result<HashSet<String>> {
    const SQL: &str = "SELECT task_id FROM mcp_tasks WHERE org_id = $1 AND server_id = $2 \
                       AND agent_id = $3 AND expires_at >= $4";
    let rows: Vec<String> = on_db!(store, |pool| sqlx::query_scalar(SQL)
        .bind(org_id)
        .bind(server_id)
        .bind(agent_id)
        .bind(now)
        .fetch_all(pool)
        .await?);
    Ok(rows.into_iter().collect())
}
