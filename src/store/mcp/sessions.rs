//! MCP sessions the gateway minted (`mcp_sessions`): looked up by the digest of the id the
//! client holds, bound to the org, server and agent that opened them, mapped to the upstream's
//! own session id. A session nobody used for the idle limit is gone: lookups ignore it, and
//! every opening sweeps such sessions away.

use crate::api::mcp::MASKED_SECRET;
use crate::api::time;

use super::super::audit::{Actor, NewEvent};
use super::super::{Result, Store, on_db, on_tx};

#[derive(Clone, sqlx::FromRow)]
pub struct SessionRow {
    pub digest: String,
    /// A public id for the audit log (the client's session id is a secret).
    pub id: String,
    pub org_id: String,
    pub server_id: String,
    pub agent_id: String,
    /// The upstream's session id, sealed as `upstream_sealed_with` says.
    pub upstream_session_id: String,
    pub upstream_sealed_with: String,
    pub protocol_version: Option<String>,
    pub created_at: i64,
    pub last_used_at: i64,
}

// By hand: neither the digest nor the upstream's session id belongs in a log.
impl std::fmt::Debug for SessionRow {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("SessionRow")
            .field("id", &self.id)
            .field("org_id", &self.org_id)
            .field("server_id", &self.server_id)
            .field("agent_id", &self.agent_id)
            .field("upstream_session_id", &MASKED_SECRET)
            .finish_non_exhaustive()
    }
}

const COLUMNS: &str = "digest, id, org_id, server_id, agent_id, upstream_session_id, \
                       upstream_sealed_with, protocol_version, created_at, last_used_at";

/// The most sessions evicted at once when an agent opens one past its cap.
const MAX_EVICTED: i64 = 1000;

/// Opens `session` and keeps at most `max_per_agent` sessions of its agent on its server (the
/// least recently used go); sweeps every session idle since before `idle_cutoff`. Returns the
/// evicted sessions (their upstream sessions are the caller's to end).
pub async fn open(
    store: &Store,
    session: &SessionRow,
    max_per_agent: i64,
    idle_cutoff: i64,
    actor: &Actor,
) -> Result<Vec<SessionRow>> {
    const SWEEP: &str = "DELETE FROM mcp_sessions WHERE last_used_at < $1";
    const INSERT: &str = "INSERT INTO mcp_sessions (digest, id, org_id, server_id, agent_id, \
                          upstream_session_id, upstream_sealed_with, protocol_version, \
                          created_at, last_used_at) \
                          VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
    const DELETE: &str = "DELETE FROM mcp_sessions WHERE digest = $1";
    let evicting = format!(
        "SELECT {COLUMNS} FROM mcp_sessions WHERE org_id = $1 AND server_id = $2 \
         AND agent_id = $3 ORDER BY last_used_at DESC, created_at DESC, id DESC \
         LIMIT $4 OFFSET $5"
    );
    let mut tx = store.begin().await?;
    let evicted = on_tx!(&mut tx, |conn| {
        sqlx::query(SWEEP)
            .bind(idle_cutoff)
            .execute(&mut *conn)
            .await?;
        sqlx::query(INSERT)
            .bind(&session.digest)
            .bind(&session.id)
            .bind(&session.org_id)
            .bind(&session.server_id)
            .bind(&session.agent_id)
            .bind(&session.upstream_session_id)
            .bind(&session.upstream_sealed_with)
            .bind(&session.protocol_version)
            .bind(session.created_at)
            .bind(session.last_used_at)
            .execute(&mut *conn)
            .await?;
        let evicted: Vec<SessionRow> = sqlx::query_as(&evicting)
            .bind(&session.org_id)
            .bind(&session.server_id)
            .bind(&session.agent_id)
            .bind(MAX_EVICTED)
            .bind(max_per_agent)
            .fetch_all(&mut *conn)
            .await?;
        for row in &evicted {
            sqlx::query(DELETE)
                .bind(&row.digest)
                .execute(&mut *conn)
                .await?;
        }
        evicted
    });
    tx.commit_audited(Some(NewEvent {
        org_id: &session.org_id,
        kind: "mcp.session.opened",
        actor,
        subject_type: "mcp_session",
        subject_id: &session.id,
        detail: serde_json::json!({
            "server_id": session.server_id,
            "agent_id": session.agent_id,
            "protocol_version": session.protocol_version,
            "evicted": evicted.iter().map(|row| row.id.as_str()).collect::<Vec<_>>(),
        }),
        created_at: session.created_at,
    }))
    .await?;
    Ok(evicted)
}

/// The live session `digest` of this org, server and agent; `None` for any other (unknown,
/// idle since before `idle_cutoff`, or opened by someone else: all the same to the caller).
pub async fn find(
    store: &Store,
    digest: &str,
    org_id: &str,
    server_id: &str,
    agent_id: &str,
    idle_cutoff: i64,
) -> Result<Option<SessionRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM mcp_sessions WHERE digest = $1 AND org_id = $2 \
         AND server_id = $3 AND agent_id = $4 AND last_used_at >= $5"
    );
    Ok(on_db!(store, |pool| sqlx::query_as::<_, SessionRow>(&sql)
        .bind(digest)
        .bind(org_id)
        .bind(server_id)
        .bind(agent_id)
        .bind(idle_cutoff)
        .fetch_optional(pool)
        .await?))
}

/// Marks the session used now, unless it was marked since `unless_since` (so a busy session
/// costs one write a minute, not one per request).
pub async fn touch(store: &Store, digest: &str, now: i64, unless_since: i64) -> Result<()> {
    const SQL: &str =
        "UPDATE mcp_sessions SET last_used_at = $2 WHERE digest = $1 AND last_used_at < $3";
    let mut tx = store.begin().await?;
    on_tx!(&mut tx, |conn| {
        sqlx::query(SQL)
            .bind(digest)
            .bind(now)
            .bind(unless_since)
            .execute(&mut *conn)
            .await?;
    });
    tx.commit().await
}

/// Ends the session `digest` of this org (`why`: `deleted` by its client, or `upstream_ended`
/// when the upstream no longer knew it); `false` when there was none.
pub async fn end(store: &Store, session: &SessionRow, why: &str, actor: &Actor) -> Result<bool> {
    const SQL: &str = "DELETE FROM mcp_sessions WHERE digest = $1 AND org_id = $2";
    let now = time::now();
    let mut tx = store.begin().await?;
    let deleted = on_tx!(&mut tx, |conn| {
        sqlx::query(SQL)
            .bind(&session.digest)
            .bind(&session.org_id)
            .execute(&mut *conn)
            .await?
            .rows_affected()
    });
    if deleted == 0 {
        return Ok(false);
    }
    tx.commit_audited(Some(NewEvent {
        org_id: &session.org_id,
        kind: "mcp.session.ended",
        actor,
        subject_type: "mcp_session",
        subject_id: &session.id,
        detail: serde_json::json!({
            "server_id": session.server_id,
            "agent_id": session.agent_id,
            "why": why,
        }),
        created_at: now,
    }))
    .await?;
    Ok(true)
}
