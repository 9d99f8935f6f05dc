//! A2A task rows: messages the Guardian let one agent send another, with their state. A task's
//! state only moves forward: once completed, failed or cancelled it never changes again (the
//! update is conditional on that, in SQL, so two replicas cannot both end it).

use crate::api::status::TaskStatus;

use super::audit::{Actor, NewEvent};
use super::{Result, Store, on_db, on_tx};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TaskRow {
    pub org_id: String,
    pub id: String,
    pub context_id: String,
    pub source_agent_id: String,
    pub target_agent_id: String,
    /// `legacy` (`tasks/send`) or `v1` (`message/send`): which shape the sender reads.
    pub protocol: String,
    pub status: String,
    /// JSON: the message as sent.
    pub message: String,
    /// JSON: the target's answer (a v1.0 message), if any.
    pub reply: Option<String>,
    /// JSON array.
    pub artifacts: String,
    /// JSON object.
    pub metadata: String,
    pub check_id: String,
    pub forwarded_to: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl TaskRow {
    pub fn status(&self) -> TaskStatus {
        TaskStatus::from(self.status.as_str())
    }
}

const COLUMNS: &str = "org_id, id, context_id, source_agent_id, target_agent_id, protocol, \
                       status, message, reply, artifacts, metadata, check_id, forwarded_to, \
                       created_at, updated_at";

/// Stores a new task and audits it (the message itself stays out of the audit log: it is the
/// agents' data, not a security fact).
pub async fn create(store: &Store, row: &TaskRow, actor: &Actor) -> Result<()> {
    const SQL: &str = "INSERT INTO a2a_tasks (org_id, id, context_id, source_agent_id, \
                       target_agent_id, protocol, status, message, reply, artifacts, metadata, \
                       check_id, forwarded_to, created_at, updated_at) \
                       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)";
    let mut tx = store.begin().await?;
    on_tx!(&mut tx, |conn| {
        sqlx::query(SQL)
            .bind(&row.org_id)
            .bind(&row.id)
            .bind(&row.context_id)
            .bind(&row.source_agent_id)
            .bind(&row.target_agent_id)
            .bind(&row.protocol)
            .bind(&row.status)
            .bind(&row.message)
            .bind(&row.reply)
            .bind(&row.artifacts)
            .bind(&row.metadata)
            .bind(&row.check_id)
            .bind(&row.forwarded_to)
            .bind(row.created_at)
            .bind(row.updated_at)
            .execute(&mut *conn)
            .await?;
    });
    tx.commit_audited(Some(NewEvent {
        org_id: &row.org_id,
        kind: "a2a.task.created",
        actor,
        subject_type: "a2a_task",
        subject_id: &row.id,
        detail: serde_json::json!({
            "source_agent_id": row.source_agent_id,
            "target_agent_id": row.target_agent_id,
            "status": row.status,
            "check_id": row.check_id,
            "forwarded_to": row.forwarded_to,
        }),
        created_at: row.created_at,
    }))
    .await
}

/// The org's task `id`, when `party` (if given) is its source or its target; any other task is
/// `None`, as a missing one.
pub async fn get(
    store: &Store,
    org_id: &str,
    id: &str,
    party: Option<&str>,
) -> Result<Option<TaskRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM a2a_tasks WHERE org_id = $1 AND id = $2 \
         AND ($3 = '' OR source_agent_id = $3 OR target_agent_id = $3)"
    );
    Ok(on_db!(store, |pool| sqlx::query_as::<_, TaskRow>(&sql)
        .bind(org_id)
        .bind(id)
        .bind(party.unwrap_or(""))
        .fetch_optional(pool)
        .await?))
}

/// Which tasks to list.
#[derive(Debug, Clone, Copy, Default)]
pub struct TaskFilter<'a> {
    /// Tasks this agent sent or received.
    pub party: Option<&'a str>,
    pub status: Option<&'a str>,
    pub limit: u32,
}

/// The org's tasks, newest first.
pub async fn list(store: &Store, org_id: &str, filter: TaskFilter<'_>) -> Result<Vec<TaskRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM a2a_tasks WHERE org_id = $1 \
         AND ($2 = '' OR source_agent_id = $2 OR target_agent_id = $2) \
         AND ($3 = '' OR status = $3) \
         ORDER BY created_at DESC, id DESC LIMIT $4"
    );
    Ok(on_db!(store, |pool| sqlx::query_as::<_, TaskRow>(&sql)
        .bind(org_id)
        .bind(filter.party.unwrap_or(""))
        .bind(filter.status.unwrap_or(""))
        .bind(i64::from(filter.limit))
        .fetch_all(pool)
        .await?))
}

/// A task's next state.
#[derive(Debug, Clone)]
pub struct Advance<'a> {
    pub status: TaskStatus,
    /// JSON: the target's answer, if any (kept when `None`).
    pub reply: Option<&'a str>,
    /// JSON array: replaces the artifacts when given.
    pub artifacts: Option<&'a str>,
    pub now: i64,
}

/// Moves the org's task `id` to its next state unless it has ended already; the updated row,
/// or `None` when the task is missing or had ended (the caller reads it again to say which).
pub async fn advance(
    store: &Store,
    org_id: &str,
    id: &str,
    ending: Advance<'_>,
    actor: &Actor,
) -> Result<Option<TaskRow>> {
    const SQL: &str = "UPDATE a2a_tasks SET status = $3, reply = COALESCE($4, reply), \
                       artifacts = COALESCE($5, artifacts), updated_at = $6 \
                       WHERE org_id = $1 AND id = $2 \
                       AND status NOT IN ('completed', 'failed', 'cancelled')";
    let mut tx = store.begin().await?;
    let updated = on_tx!(&mut tx, |conn| {
        sqlx::query(SQL)
            .bind(org_id)
            .bind(id)
            .bind(ending.status.as_str())
            .bind(ending.reply)
            .bind(ending.artifacts)
            .bind(ending.now)
            .execute(&mut *conn)
            .await?
            .rows_affected()
    });
    if updated == 0 {
        return Ok(None);
    }
    let row = {
        let sql = format!("SELECT {COLUMNS} FROM a2a_tasks WHERE org_id = $1 AND id = $2");
        on_tx!(&mut tx, |conn| sqlx::query_as::<_, TaskRow>(&sql)
            .bind(org_id)
            .bind(id)
            .fetch_one(&mut *conn)
            .await?)
    };
    tx.commit_audited(Some(NewEvent {
        org_id,
        kind: "a2a.task.updated",
        actor,
        subject_type: "a2a_task",
        subject_id: id,
        detail: serde_json::json!({ "status": ending.status.as_str() }),
        created_at: ending.now,
    }))
    .await?;
    Ok(Some(row))
}
