//! The tool hints of each MCP server (`mcp_tools`): the effect its `tools/list` stated for a
//! tool, by the tool's name key (canonical, lower case), shared by every replica and kept
//! across restarts; and beside them the arguments each tool mirrors in `Mcp-Param-*` headers
//! (`mcp_tool_params`). The gateway decides what changes; this module writes the changes and their
//! audit event in one transaction.

use std::collections::BTreeMap;

use crate::api::actions::Effect;
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
    per_tool(store, SQL, org_id, server_id).await
}

/// What `sql` (`SELECT name_key, value …` with `$1` the org and `$2` the server) selects: name
/// key → value.
async fn per_tool(
    store: &Store,
    sql: &'static str,
    org_id: &str,
    server_id: &str,
) -> Result<BTreeMap<String, String>> {
    let rows: Vec<(String, String)> = on_db!(store, |pool| sqlx::query_as(sql)
        .bind(org_id)
        .bind(server_id)
        .fetch_all(pool)
        .await?);
    Ok(rows.into_iter().collect())
}

/// The one value `sql` (`$1` the org, `$2` the server, `$3` the name key) selects, if any.
async fn of_tool(
    store: &Store,
    sql: &'static str,
    org_id: &str,
    server_id: &str,
    name_key: &str,
) -> Result<Option<String>> {
    Ok(on_db!(store, |pool| sqlx::query_scalar(sql)
        .bind(org_id)
        .bind(server_id)
        .bind(name_key)
        .fetch_optional(pool)
        .await?))
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
    of_tool(store, SQL, org_id, server_id, name_key).await
}

/// What a `tools/list` answer changed: hints to set or raise (name key → effect). Hints are
/// never lowered or removed (`gateway::mcp::tools::changes` decides, and [`learn`] writes a
/// hint only where it raises the stored one).
#[derive(Debug, Default)]
pub struct Learned {
    pub set: BTreeMap<String, String>,
}

impl Learned {
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }
}

/// The SQL ranking an effect column: the order of [`Effect`], 0 for a value this gateway did
/// not write.
fn effect_rank(column: &str) -> String {
    let cases: String = Effect::ALL
        .iter()
        .enumerate()
        .map(|(rank, effect)| format!(" WHEN '{}' THEN {}", effect.as_str(), rank + 1))
        .collect();
    format!("(CASE {column}{cases} ELSE 0 END)")
}

/// Writes `learned` for the org's server `server_id`, audited as `mcp.tools.learned` (the
/// hints are the upstream's statements, not secrets: the event names them, so a decision's
/// effect can be traced to the answer that set it). Each hint is raised in one statement that
/// keeps the higher of the stored and the new effect, so two lists learned at once (on one
/// replica or two) cannot lower a hint between a read and a write; the event names only the
/// hints this write changed.
pub async fn learn(
    store: &Store,
    org_id: &str,
    server_id: &str,
    learned: &Learned,
    actor: &Actor,
) -> Result<()> {
    if learned.is_empty() {
        return Ok(());
    }
    // `excluded` names the row that was refused, in SQLite and PostgreSQL alike; the WHERE
    // leaves a stored hint that is as high or higher as it is.
    let upsert = format!(
        "INSERT INTO mcp_tools (org_id, server_id, name_key, effect, learned_at) \
         VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (org_id, server_id, name_key) \
         DO UPDATE SET effect = excluded.effect, learned_at = excluded.learned_at \
         WHERE {} > {}",
        effect_rank("excluded.effect"),
        effect_rank("mcp_tools.effect")
    );
    let now = time::now();
    let mut tx = store.begin().await?;
    let changed = on_tx!(&mut tx, |conn| {
        let mut changed = BTreeMap::new();
        for (name_key, effect) in &learned.set {
            let written = sqlx::query(&upsert)
                .bind(org_id)
                .bind(server_id)
                .bind(name_key)
                .bind(effect)
                .bind(now)
                .execute(&mut *conn)
                .await?
                .rows_affected();
            if written > 0 {
                changed.insert(name_key.clone(), effect.clone());
            }
        }
        changed
    });
    if changed.is_empty() {
        return tx.commit().await;
    }
    tx.commit_audited(Some(NewEvent {
        org_id,
        kind: "mcp.tools.learned",
        actor,
        subject_type: "mcp_server",
        subject_id: server_id,
        detail: serde_json::json!({"set": changed}),
        created_at: now,
    }))
    .await
}

/// Every tool's mirrored arguments (`mcp_tool_params`) on the org's server `server_id`: name
/// key → the declarations as JSON text.
pub async fn params_of_server(
    store: &Store,
    org_id: &str,
    server_id: &str,
) -> Result<BTreeMap<String, String>> {
    const SQL: &str =
        "SELECT name_key, params FROM mcp_tool_params WHERE org_id = $1 AND server_id = $2";
    per_tool(store, SQL, org_id, server_id).await
}

/// The mirrored arguments of the tool `name_key` on the org's server, as JSON text, if any.
pub async fn params(
    store: &Store,
    org_id: &str,
    server_id: &str,
    name_key: &str,
) -> Result<Option<String>> {
    const SQL: &str = "SELECT params FROM mcp_tool_params WHERE org_id = $1 AND server_id = $2 \
                       AND name_key = $3";
    of_tool(store, SQL, org_id, server_id, name_key).await
}

/// What a `tools/list` answer changed of the mirrored arguments: tools whose declarations to
/// set (name key → JSON text), tools that no longer declare any.
#[derive(Debug, Default)]
pub struct LearnedParams {
    pub set: BTreeMap<String, String>,
    pub cleared: Vec<String>,
}

/// Writes `learned` for the org's server `server_id`. Not audited: declarations decide no
/// check, only which headers the gateway makes from the arguments it checked.
pub async fn learn_params(
    store: &Store,
    org_id: &str,
    server_id: &str,
    learned: &LearnedParams,
) -> Result<()> {
    const UPSERT: &str = "INSERT INTO mcp_tool_params (org_id, server_id, name_key, params, \
                          learned_at) VALUES ($1, $2, $3, $4, $5) \
                          ON CONFLICT (org_id, server_id, name_key) \
                          DO UPDATE SET params = excluded.params, learned_at = excluded.learned_at";
    const DELETE: &str = "DELETE FROM mcp_tool_params WHERE org_id = $1 AND server_id = $2 \
                          AND name_key = $3";
    if learned.set.is_empty() && learned.cleared.is_empty() {
        return Ok(());
    }
    let now = time::now();
    let mut tx = store.begin().await?;
    on_tx!(&mut tx, |conn| {
        for (name_key, params) in &learned.set {
            sqlx::query(UPSERT)
                .bind(org_id)
                .bind(server_id)
                .bind(name_key)
                .bind(params)
                .bind(now)
                .execute(&mut *conn)
                .await?;
        }
        for name_key in &learned.cleared {
            sqlx::query(DELETE)
                .bind(org_id)
                .bind(server_id)
                .bind(name_key)
                .execute(&mut *conn)
                .await?;
        }
    });
    tx.commit().await
}

#[cfg(test)]
mod tests {
    use super::effect_rank;

    #[test]
    fn effects_rank_in_their_order() {
        assert_eq!(
            effect_rank("e"),
            "(CASE e WHEN 'read' THEN 1 WHEN 'mutating' THEN 2 WHEN 'destructive' THEN 3 \
             WHEN 'admin' THEN 4 ELSE 0 END)"
        );
    }
}
