//! MCP server rows: what an org registered for its agents to reach through the proxy. The
//! upstream credential arrives here already sealed (the gateway holds the key-encryption key);
//! it never enters the audit log, whose events name only whether a credential is set.
//! What the proxy keeps of each server lives beside it: [`tools`] (the hints its `tools/list`
//! stated, and the arguments it mirrors in headers), [`sessions`] (the MCP sessions the
//! gateway minted for its clients) and [`tasks`] (the agent each upstream task was created for).

pub mod sessions;
pub mod tasks;
pub mod tools;

use crate::api::mcp::{MASKED_SECRET, McpServer};
use crate::api::time;

use super::audit::{Actor, NewEvent};
use super::{Result, Store, on_db, on_tx, string_list, to_json_text};

#[derive(Clone, sqlx::FromRow)]
pub struct ServerRow {
    pub org_id: String,
    pub id: String,
    pub name: String,
    pub url: String,
    pub capabilities: String,
    /// The upstream credential, sealed as `auth_token_sealed_with` says.
    pub auth_token: Option<String>,
    pub auth_token_sealed_with: Option<String>,
    pub created_at: i64,
}

// By hand: the credential (even sealed) stays out of logs.
impl std::fmt::Debug for ServerRow {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ServerRow")
            .field("org_id", &self.org_id)
            .field("id", &self.id)
            .field("name", &self.name)
            .field("url", &self.url)
            .field(
                "auth_token",
                &self.auth_token.as_ref().map(|_| MASKED_SECRET),
            )
            .finish_non_exhaustive()
    }
}

impl ServerRow {
    pub fn into_api(self) -> Result<McpServer> {
        Ok(McpServer {
            capabilities: string_list(&self.capabilities)?,
            auth_token: self.auth_token.as_ref().map(|_| MASKED_SECRET.to_string()),
            id: self.id,
            name: self.name,
            url: self.url,
            org_id: self.org_id,
            created_at: time::format(self.created_at),
            extra: Default::default(),
        })
    }
}

const COLUMNS: &str =
    "org_id, id, name, url, capabilities, auth_token, auth_token_sealed_with, created_at";

/// A server to register: its id is chosen by the caller (the gateway binds the sealed
/// credential to it).
pub struct NewServer<'a> {
    pub org_id: &'a str,
    pub id: &'a str,
    pub name: &'a str,
    pub url: &'a str,
    pub capabilities: &'a [String],
    /// `(sealed credential, how it is sealed)`.
    pub auth_token: Option<(String, String)>,
}

pub async fn create_server(
    store: &Store,
    server: NewServer<'_>,
    actor: &Actor,
) -> Result<ServerRow> {
    const SQL: &str = "INSERT INTO mcp_servers (org_id, id, name, url, capabilities, auth_token, \
                       auth_token_sealed_with, created_at) \
                       VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
    let now = time::now();
    let (auth_token, sealed_with) = match server.auth_token {
        Some((sealed, with)) => (Some(sealed), Some(with)),
        None => (None, None),
    };
    let row = ServerRow {
        org_id: server.org_id.to_string(),
        id: server.id.to_string(),
        name: server.name.to_string(),
        url: server.url.to_string(),
        capabilities: to_json_text(&server.capabilities),
        auth_token,
        auth_token_sealed_with: sealed_with,
        created_at: now,
    };
    let mut tx = store.begin().await?;
    on_tx!(&mut tx, |conn| {
        sqlx::query(SQL)
            .bind(&row.org_id)
            .bind(&row.id)
            .bind(&row.name)
            .bind(&row.url)
            .bind(&row.capabilities)
            .bind(&row.auth_token)
            .bind(&row.auth_token_sealed_with)
            .bind(row.created_at)
            .execute(&mut *conn)
            .await?;
    });
    tx.commit_audited(Some(NewEvent {
        org_id: server.org_id,
        kind: "mcp.server.registered",
        actor,
        subject_type: "mcp_server",
        subject_id: server.id,
        // Whether a credential is set, never the credential.
        detail: serde_json::json!({
            "name": server.name,
            "url": server.url,
            "capabilities": server.capabilities,
            "auth_token_set": row.auth_token.is_some(),
        }),
        created_at: now,
    }))
    .await?;
    Ok(row)
}

pub async fn list_servers(store: &Store, org_id: &str) -> Result<Vec<ServerRow>> {
    let sql = format!("SELECT {COLUMNS} FROM mcp_servers WHERE org_id = $1 ORDER BY id");
    Ok(on_db!(store, |pool| sqlx::query_as::<_, ServerRow>(&sql)
        .bind(org_id)
        .fetch_all(pool)
        .await?))
}

/// The org's server `id`; another org's is `None`, as a missing one.
pub async fn get_server(store: &Store, org_id: &str, id: &str) -> Result<Option<ServerRow>> {
    let sql = format!("SELECT {COLUMNS} FROM mcp_servers WHERE org_id = $1 AND id = $2");
    Ok(on_db!(store, |pool| sqlx::query_as::<_, ServerRow>(&sql)
        .bind(org_id)
        .bind(id)
        .fetch_optional(pool)
        .await?))
}

/// Deletes the org's server `id`, with its tool hints and its sessions; `false` when there is
/// none.
pub async fn delete_server(store: &Store, org_id: &str, id: &str, actor: &Actor) -> Result<bool> {
    const SQL: &str = "DELETE FROM mcp_servers WHERE org_id = $1 AND id = $2";
    const TOOLS: &str = "DELETE FROM mcp_tools WHERE org_id = $1 AND server_id = $2";
    const SESSIONS: &str = "DELETE FROM mcp_sessions WHERE org_id = $1 AND server_id = $2";
    const TASKS: &str = "DELETE FROM mcp_tasks WHERE org_id = $1 AND server_id = $2";
    const PARAMS: &str = "DELETE FROM mcp_tool_params WHERE org_id = $1 AND server_id = $2";
    let now = time::now();
    let mut tx = store.begin().await?;
    let deleted = on_tx!(&mut tx, |conn| {
        let deleted = sqlx::query(SQL)
            .bind(org_id)
            .bind(id)
            .execute(&mut *conn)
            .await?
            .rows_affected();
        if deleted > 0 {
            for sql in [TOOLS, SESSIONS, TASKS, PARAMS] {
                sqlx::query(sql)
                    .bind(org_id)
                    .bind(id)
                    .execute(&mut *conn)
                    .await?;
            }
        }
        deleted
    });
    if deleted == 0 {
        return Ok(false);
    }
    tx.commit_audited(Some(NewEvent {
        org_id,
        kind: "mcp.server.deleted",
        actor,
        subject_type: "mcp_server",
        subject_id: id,
        detail: serde_json::json!({}),
        created_at: now,
    }))
    .await?;
    Ok(true)
}
