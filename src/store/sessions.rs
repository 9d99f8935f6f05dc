//! Sessions: one agent's run of tool calls, with exact counters. Checks create a session on
//! first sight of its id (guards invent their own ids) and bump its counters atomically.

use super::{Result, Store, Tx, on_db, on_tx};

/// The mode a session starts in.
pub const MODE_STANDARD: &str = "standard";
/// Source of sessions created implicitly by a check.
pub const SOURCE_SDK: &str = "sdk";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SessionRow {
    pub org_id: String,
    pub id: String,
    pub agent_id: String,
    pub source: String,
    pub server_id: Option<String>,
    pub mode: String,
    pub scope_ceiling: String,
    pub total_calls: i64,
    pub read_calls: i64,
    pub write_calls: i64,
    pub denied_calls: i64,
    pub created_at: i64,
    pub last_activity_at: i64,
}

const COLUMNS: &str = "org_id, id, agent_id, source, server_id, mode, scope_ceiling, total_calls, \
                       read_calls, write_calls, denied_calls, created_at, last_activity_at";

pub async fn get(store: &Store, org_id: &str, id: &str) -> Result<Option<SessionRow>> {
    let sql = format!("SELECT {COLUMNS} FROM sessions WHERE org_id = $1 AND id = $2");
    Ok(
        on_db!(store, pool => sqlx::query_as::<_, SessionRow>(&sql).bind(org_id).bind(id).fetch_optional(pool).await?),
    )
}

/// How one check moves a session's counters.
#[derive(Debug, Clone, Copy)]
pub struct CallCount {
    pub read: bool,
    pub denied: bool,
}

/// Counts one checked call in the session, creating the session (source `sdk`) when it is new.
/// The increments happen in SQL, so concurrent checks never lose a count.
pub async fn count_call(
    tx: &mut Tx,
    org_id: &str,
    session_id: &str,
    agent_id: &str,
    call: CallCount,
    now: i64,
) -> Result<()> {
    const SQL: &str = "INSERT INTO sessions (org_id, id, agent_id, source, mode, scope_ceiling, \
                       total_calls, read_calls, write_calls, denied_calls, created_at, last_activity_at) \
                       VALUES ($1, $2, $3, $4, $5, '[]', 1, $6, $7, $8, $9, $9) \
                       ON CONFLICT (org_id, id) DO UPDATE SET \
                       total_calls = sessions.total_calls + 1, \
                       read_calls = sessions.read_calls + excluded.read_calls, \
                       write_calls = sessions.write_calls + excluded.write_calls, \
                       denied_calls = sessions.denied_calls + excluded.denied_calls, \
                       last_activity_at = excluded.last_activity_at";
    let read_calls = i64::from(call.read);
    let write_calls = i64::from(!call.read);
    let denied_calls = i64::from(call.denied);
    on_tx!(tx, conn => { sqlx::query(SQL)
        .bind(org_id)
        .bind(session_id)
        .bind(agent_id)
        .bind(SOURCE_SDK)
        .bind(MODE_STANDARD)
        .bind(read_calls)
        .bind(write_calls)
        .bind(denied_calls)
        .bind(now)
        .execute(&mut *conn)
        .await?; });
    Ok(())
}
