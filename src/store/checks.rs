//! Guardian decisions, recorded: the statements the check service runs inside one
//! transaction per check — re-reading the facts that can flip an allow, then inserting the
//! decision with its audit event — so that the answer is sent only once the decision is
//! durable, and no "allowed" ever follows, in the audit order, the revocation or the lock it
//! should have seen.
//!
//! On PostgreSQL the re-read takes the agent's row (`FOR NO KEY UPDATE`) and the session's row
//! (`FOR UPDATE`) first: checks of one agent serialize across replicas, and a revocation or a
//! mode change, which updates the same row before appending its own audit event, either
//! commits first (and is seen) or waits for the check (and follows it in the audit log). Rows
//! are always taken before the org's audit-chain head, as every audited write does, so no two
//! transactions wait on each other in a cycle. SQLite's single writer (`BEGIN IMMEDIATE`)
//! serializes everything already.

use super::audit::{self, Actor, NewEvent};
use super::{Result, Tx, TxConnection, on_tx};

/// One decision to insert.
#[derive(Debug, Clone)]
pub struct CheckRow<'a> {
    pub id: &'a str,
    pub org_id: &'a str,
    pub agent_id: &'a str,
    pub session_id: Option<&'a str>,
    pub action_name: &'a str,
    pub input_summary: &'a str,
    pub effect: &'a str,
    pub allowed: bool,
    pub elevation_required: bool,
    pub reason: &'a str,
    pub rule: &'a str,
    pub confidence: f64,
    pub approval_id: Option<&'a str>,
    pub created_at: i64,
}

/// Inserts the decision and appends its `check.decided` audit event.
pub async fn insert(tx: &mut Tx, check: &CheckRow<'_>, actor: &Actor) -> Result<()> {
    const SQL: &str = "INSERT INTO checks (id, org_id, agent_id, session_id, action_name, \
                       input_summary, effect, allowed, elevation_required, reason, rule, confidence, \
                       created_at, approval_id) \
                       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)";
    on_tx!(tx, |conn| {
        sqlx::query(SQL)
            .bind(check.id)
            .bind(check.org_id)
            .bind(check.agent_id)
            .bind(check.session_id)
            .bind(check.action_name)
            .bind(check.input_summary)
            .bind(check.effect)
            .bind(check.allowed)
            .bind(check.elevation_required)
            .bind(check.reason)
            .bind(check.rule)
            .bind(check.confidence)
            .bind(check.created_at)
            .bind(check.approval_id)
            .execute(&mut *conn)
            .await?;
    });
    audit::append(
        tx,
        NewEvent {
            org_id: check.org_id,
            kind: "check.decided",
            actor,
            subject_type: "check",
            subject_id: check.id,
            detail: serde_json::json!({
                "agent_id": check.agent_id,
                "session_id": check.session_id,
                "action_name": check.action_name,
                "effect": check.effect,
                "allowed": check.allowed,
                "elevation_required": check.elevation_required,
                "approval_id": check.approval_id,
                "rule": check.rule,
            }),
            created_at: check.created_at,
        },
    )
    .await
}

/// The rows a check re-reads before it is recorded, as of now.
#[derive(Debug, Clone, Default)]
pub struct LiveRows {
    /// The agent's status and mode (`None`: no such agent).
    pub agent: Option<(String, String)>,
    /// The session's mode (`None`: no session asked for, or no such session yet).
    pub session_mode: Option<String>,
}

/// The agent's status and mode and, when `session_id` is given, the session's mode, as of now.
/// On PostgreSQL the agent's row and then the session's row are taken for the rest of the
/// transaction (two statements: a row lock cannot reach into a subquery). SQLite's single
/// writer needs no lock, and one statement reads both.
pub async fn live_rows(
    tx: &mut Tx,
    org_id: &str,
    agent_id: &str,
    session_id: Option<&str>,
) -> Result<LiveRows> {
    const SQLITE: &str = "SELECT a.status, a.mode, \
                          (SELECT s.mode FROM sessions s WHERE s.org_id = $1 AND s.id = $3) \
                          FROM agents a WHERE a.org_id = $1 AND a.id = $2";
    const AGENT_POSTGRES: &str =
        "SELECT status, mode FROM agents WHERE org_id = $1 AND id = $2 FOR NO KEY UPDATE";
    const SESSION_POSTGRES: &str =
        "SELECT mode FROM sessions WHERE org_id = $1 AND id = $2 FOR UPDATE";
    match &mut tx.connection {
        TxConnection::Sqlite(conn) => {
            let row: Option<(String, String, Option<String>)> = sqlx::query_as(SQLITE)
                .bind(org_id)
                .bind(agent_id)
                .bind(session_id)
                .fetch_optional(&mut **conn)
                .await?;
            Ok(match row {
                Some((status, mode, session_mode)) => LiveRows {
                    agent: Some((status, mode)),
                    session_mode: session_mode.filter(|_| session_id.is_some()),
                },
                None => LiveRows::default(),
            })
        }
        TxConnection::Postgres(conn) => {
            let agent = sqlx::query_as(AGENT_POSTGRES)
                .bind(org_id)
                .bind(agent_id)
                .fetch_optional(&mut **conn)
                .await?;
            let session_mode = match session_id {
                Some(session_id) => {
                    sqlx::query_scalar(SESSION_POSTGRES)
                        .bind(org_id)
                        .bind(session_id)
                        .fetch_optional(&mut **conn)
                        .await?
                }
                None => None,
            };
            Ok(LiveRows {
                agent,
                session_mode,
            })
        }
    }
}

/// Why the agent token stopped working as of `now`, if it did.
pub async fn token_ended(tx: &mut Tx, token_id: &str, now: i64) -> Result<Option<String>> {
    const SQL: &str = "SELECT revoked_at, expires_at FROM agent_tokens WHERE id = $1";
    let row: Option<(Option<i64>, i64)> = on_tx!(tx, |conn| sqlx::query_as(SQL)
        .bind(token_id)
        .fetch_optional(&mut *conn)
        .await?);
    Ok(match row {
        None | Some((Some(_), _)) => Some("the agent token was revoked".to_string()),
        Some((None, expires_at)) if expires_at <= now => {
            Some("the agent token expired".to_string())
        }
        Some(_) => None,
    })
}
