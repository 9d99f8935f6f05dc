//! The tool hints of each MCP server (`mcp_tools`): the effect its `tools/list` stated for a
//! tool, by the tool's name key (canonical, lower case), shared by every replica and kept
//! across restarts. The gateway decides what changes; this module writes the changes and their
//! audit event in one transaction.

use std::collections::BTreeMap;

use crate::api::time;

use super::super::audit::{Actor, NewEvent};
use super::super::{Result, Store, on_db, on_tx};

/// Every hint known of the org's server `server_id`: name key → effect.
pub async fn hints(
    store: &Store,
    org_id: &str,
    server_id: &str,
) -> Result<BTreeMap<String, String>> {
    const SQL: &str = "SELECT name_key, effect FROM mcp_tools WHERE org_id = $1 AND server_id = $2";
    let rows: Vec<(String, String)> = on_db!(store, |pool| sqlx::query_as(SQL)
        .bind(org_id)
        .bind(server_id)
        .fetch_all(pool)
        .await?);
    Ok(rows.into_iter().collect())
}

/// The effect stated for the tool `name_key` on the org's server `server_id`, if any.
pub async fn hint(
    store: &Store,
    org_id: &str,
    server_id: &str,
    name_key: &str,
) -> Result<Option<String>> {
    const SQL: &str = "SELECT effect FROM mcp_tools WHERE org_id = $1 AND server_id = $2 \
                       AND name_key = $3";
    Ok(on_db!(store, |pool| sqlx::query_scalar(SQL)
        .bind(org_id)
        .bind(server_id)
        .bind(name_key)
        .fetch_optional(pool)
        .await?))
}

/// What a `tools/list` answer changed: hints to set or raise (name key → effect). Hints are
/// never lowered or removed (`gateway::mcp::tools::changes`).
#[derive(Debug, Default)]
pub struct Learned {
    pub set: BTreeMap<String, String>,
}

impl Learned {
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }
}

/// Writes `learned` for the org's server `server_id`, audited as `mcp.tools.learned` (the
/// hints are the upstream's statements, not secrets: the event names them, so a decision's
/// effect can be traced to the answer that set it).
pub async fn learn(
    store: &Store,
    org_id: &str,
    server_id: &str,
    learned: &Learned,
    actor: &Actor,
) -> Result<()> {
    // `excluded` names the row that was refused, in SQLite and PostgreSQL alike.
    const UPSERT: &str = "INSERT INTO mcp_tools (org_id, server_id, name_key, effect, learned_at) \
                          VALUES ($1, $2, $3, $4, $5) \
                          ON CONFLICT (org_id, server_id, name_key) \
                          DO UPDATE SET effect = excluded.effect, learned_at = excluded.learned_at";
    if learned.is_empty() {
        return Ok(());
    }
    let now = time::now();
    let mut tx = store.begin().await?;
    on_tx!(&mut tx, |conn| {
        for (name_key, effect) in &learned.set {
            sqlx::query(UPSERT)
                .bind(org_id)
                .bind(server_id)
                .bind(name_key)
                .bind(effect)
                .bind(now)
                .execute(&mut *conn)
                .await?;
        }
    });
    tx.commit_audited(Some(NewEvent {
        org_id,
        kind: "mcp.tools.learned",
        actor,
        subject_type: "mcp_server",
        subject_id: server_id,
        detail: serde_json::json!({"set": learned.set}),
        created_at: now,
    }))
    .await
}
