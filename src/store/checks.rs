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

use std::borrow::Cow;

use sha2::{Digest, Sha256};

use crate::api::actions::MAX_INPUT_SUMMARY_BYTES;

use super::audit::{self, Actor, NewEvent};
use super::deferred::Table;
use super::script::{Row, Script, Value, column};
use super::{Result, Tx, TxConnection};

/// The input of a check as it is stored and shown (decision, approval): the input itself when it
/// fits in [`MAX_INPUT_SUMMARY_BYTES`]; otherwise its beginning, marked as cut, with its whole
/// length and SHA-256, so a reader (the human approving) knows they see part of it. Checks built
/// by the gateway itself (an MCP tool call's whole arguments, an A2A message) are decided on
/// their whole input, which can be far longer.
pub fn recorded_summary(input: &str) -> Cow<'_, str> {
    if input.len() <= MAX_INPUT_SUMMARY_BYTES {
        return Cow::Borrowed(input);
    }
    let digest = hex::encode(Sha256::digest(input.as_bytes()));
    let marker = format!(" … [cut: {} bytes in all, sha256 {digest}]", input.len());
    let mut end = MAX_INPUT_SUMMARY_BYTES - marker.len();
    while !input.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}{marker}", &input[..end]))
}

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

/// The `checks` table, for rows held until commit ([`crate::store::Tx`]).
static CHECKS: Table = Table {
    name: "checks",
    columns: &[
        "id",
        "org_id",
        "agent_id",
        "session_id",
        "action_name",
        "input_summary",
        "effect",
        "allowed",
        "elevation_required",
        "reason",
        "rule",
        "confidence",
        "created_at",
        "approval_id",
    ],
};

/// Records the decision in `tx` and appends its `check.decided` audit event. The row is
/// inserted when `tx` commits ([`crate::store::Tx`]): nothing in a check's transaction reads it back.
pub async fn insert(tx: &mut Tx, check: &CheckRow<'_>, actor: &Actor) -> Result<()> {
    let text = |value: &str| Value::Text(value.to_string());
    tx.deferred().insert(
        &CHECKS,
        vec![
            text(check.id),
            text(check.org_id),
            text(check.agent_id),
            Value::OptionalText(check.session_id.map(str::to_string)),
            text(check.action_name),
            text(&recorded_summary(check.input_summary)),
            text(check.effect),
            Value::Boolean(check.allowed),
            Value::Boolean(check.elevation_required),
            text(check.reason),
            text(check.rule),
            Value::Real(check.confidence),
            Value::Integer(check.created_at),
            Value::OptionalText(check.approval_id.map(str::to_string)),
        ],
    );
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
    /// Why the presented agent token stopped working, if it did (`None` also when no token was
    /// presented).
    pub token_ended: Option<String>,
    /// A federation session's provider: its status and trust level (`None`: no provider asked
    /// for, or the provider is gone: the caller knows which it asked).
    pub provider: Option<(String, String)>,
    /// The ID token a federation session was opened with was revoked (or is gone).
    pub federation_token_revoked: bool,
}

/// The rows a check re-reads, named: the session, token and federation provider are optional.
#[derive(Debug, Clone, Copy)]
pub struct LiveKeys<'a> {
    pub org_id: &'a str,
    pub agent_id: &'a str,
    pub session_id: Option<&'a str>,
    pub token_id: Option<&'a str>,
    pub provider_id: Option<&'a str>,
    /// The ID token (issued by this gateway) a federation session was opened with.
    pub federation_token_id: Option<&'a str>,
}

/// The agent's status and mode, the session's mode when `session_id` is given, the state of
/// the presented token when `token_id` is given, and the federation provider's status and trust
/// level when `provider_id` is given, as of `now`, in one statement on SQLite (its single writer
/// needs no lock). On PostgreSQL the agent's row, the provider's and the token's (shared) and
/// the session's are taken in that order for the rest of the transaction, one statement each,
/// as a row lock cannot reach into a subquery: a revocation (or a provider disabled or its trust
/// lowered) is ordered with the check.
pub async fn live_rows(tx: &mut Tx, keys: LiveKeys<'_>, now: i64) -> Result<LiveRows> {
    let LiveKeys {
        org_id,
        agent_id,
        session_id,
        token_id,
        provider_id,
        federation_token_id,
    } = keys;
    const AGENT_POSTGRES: &str =
        "SELECT status, mode FROM agents WHERE org_id = $1 AND id = $2 FOR NO KEY UPDATE";
    // Shared: a revocation of the token (an update of its row) waits for this check's commit,
    // or this read waits for the revocation's and sees it.
    const TOKEN_POSTGRES: &str = "SELECT CASE WHEN revoked_at IS NOT NULL THEN 'revoked' \
                                  WHEN expires_at <= $2 THEN 'expired' ELSE 'live' END \
                                  FROM agent_tokens WHERE id = $1 FOR SHARE";
    const SESSION_POSTGRES: &str =
        "SELECT mode FROM sessions WHERE org_id = $1 AND id = $2 FOR UPDATE";
    // Shared, like the token's: disabling the provider or lowering its trust waits for this
    // check's commit, or this read waits for that change and sees it.
    const PROVIDER_POSTGRES: &str = "SELECT status, trust_level FROM federation_providers \
                                     WHERE org_id = $1 AND id = $2 FOR SHARE";
    const FEDERATION_TOKEN_POSTGRES: &str =
        "SELECT revoked_at IS NOT NULL FROM federation_tokens WHERE id = $1 FOR SHARE";
    match &mut tx.connection {
        TxConnection::Sqlite(conn) => {
            let mut script = Script::default();
            let (statement, values) = live_rows_statement(keys, now);
            script.push(statement, values);
            let rows = script.fetch(conn).await?;
            live_rows_of(rows.first().and_then(|rows| rows.first()), keys)
        }
        TxConnection::Postgres(conn) => {
            // A row this transaction already locked (an earlier check of its batch) cannot
            // have changed but by this transaction, which keeps `held` up to date.
            let agent = match tx.held.agent(org_id, agent_id) {
                Some(row) => Some(row.clone()),
                None => {
                    let agent: Option<(String, String)> = sqlx::query_as(AGENT_POSTGRES)
                        .bind(org_id)
                        .bind(agent_id)
                        .fetch_optional(&mut **conn)
                        .await?;
                    if let Some(row) = &agent {
                        tx.held.hold_agent(org_id, agent_id, row.clone());
                    }
                    agent
                }
            };
            let provider: Option<(String, String)> = match provider_id {
                Some(provider_id) => {
                    sqlx::query_as(PROVIDER_POSTGRES)
                        .bind(org_id)
                        .bind(provider_id)
                        .fetch_optional(&mut **conn)
                        .await?
                }
                None => None,
            };
            let federation_token_revoked = match federation_token_id {
                Some(id) => sqlx::query_scalar::<_, bool>(FEDERATION_TOKEN_POSTGRES)
                    .bind(id)
                    .fetch_optional(&mut **conn)
                    .await?
                    .unwrap_or(true),
                None => false,
            };
            let token_state: Option<String> = match token_id {
                Some(token_id) => {
                    sqlx::query_scalar(TOKEN_POSTGRES)
                        .bind(token_id)
                        .bind(now)
                        .fetch_optional(&mut **conn)
                        .await?
                }
                None => None,
            };
            let session_mode = match session_id {
                Some(session_id) => match tx.held.session(org_id, session_id) {
                    Some(mode) => Some(mode.clone()),
                    None => {
                        let mode: Option<String> = sqlx::query_scalar(SESSION_POSTGRES)
                            .bind(org_id)
                            .bind(session_id)
                            .fetch_optional(&mut **conn)
                            .await?;
                        if let Some(mode) = &mode {
                            tx.held.hold_session(org_id, session_id, mode.clone());
                        }
                        mode
                    }
                },
                None => None,
            };
            Ok(LiveRows {
                agent,
                session_mode,
                token_ended: token_id.and_then(|_| token_ended(token_state.as_deref())),
                provider,
                federation_token_revoked,
            })
        }
        TxConnection::Detached => Err(super::Error::Detached),
    }
}

/// SQLite's one statement of [`live_rows`] (the token's state as one value: NULL when no token
/// was asked for or it does not exist). It returns no row when the agent does not exist.
pub const LIVE_ROWS_SQLITE: &str = "SELECT a.status, a.mode, \
     (SELECT s.mode FROM sessions s WHERE s.org_id = $1 AND s.id = $3), \
     (SELECT CASE WHEN t.revoked_at IS NOT NULL THEN 'revoked' \
      WHEN t.expires_at <= $5 THEN 'expired' ELSE 'live' END \
      FROM agent_tokens t WHERE t.id = $4) \
     FROM agents a WHERE a.org_id = $1 AND a.id = $2";

/// [`LIVE_ROWS_SQLITE`] for a check in a federation session: also its provider's status and
/// trust level, and whether the ID token it was opened with is revoked. A statement of its own,
/// so the common check reads no more than it did before federation.
pub const LIVE_ROWS_FEDERATION_SQLITE: &str = "SELECT a.status, a.mode, \
     (SELECT s.mode FROM sessions s WHERE s.org_id = $1 AND s.id = $3), \
     (SELECT CASE WHEN t.revoked_at IS NOT NULL THEN 'revoked' \
      WHEN t.expires_at <= $5 THEN 'expired' ELSE 'live' END \
      FROM agent_tokens t WHERE t.id = $4), \
     (SELECT p.status FROM federation_providers p WHERE p.org_id = $1 AND p.id = $6), \
     (SELECT p.trust_level FROM federation_providers p WHERE p.org_id = $1 AND p.id = $6), \
     (SELECT CASE WHEN f.revoked_at IS NULL THEN 'live' ELSE 'revoked' END \
      FROM federation_tokens f WHERE f.id = $7) \
     FROM agents a WHERE a.org_id = $1 AND a.id = $2";

/// The statement that reads `keys` on SQLite, and its values.
pub fn live_rows_statement(keys: LiveKeys<'_>, now: i64) -> (&'static str, Vec<Value>) {
    let mut values = vec![
        Value::Text(keys.org_id.to_string()),
        Value::Text(keys.agent_id.to_string()),
        Value::OptionalText(keys.session_id.map(str::to_string)),
        Value::OptionalText(keys.token_id.map(str::to_string)),
        Value::Integer(now),
    ];
    if keys.provider_id.is_none() && keys.federation_token_id.is_none() {
        return (LIVE_ROWS_SQLITE, values);
    }
    values.push(Value::OptionalText(keys.provider_id.map(str::to_string)));
    values.push(Value::OptionalText(
        keys.federation_token_id.map(str::to_string),
    ));
    (LIVE_ROWS_FEDERATION_SQLITE, values)
}

/// [`LiveRows`] from the row [`live_rows_statement`]'s statement returned (`None`: no such
/// agent).
pub fn live_rows_of(row: Option<&Row>, keys: LiveKeys<'_>) -> Result<LiveRows> {
    let Some(row) = row else {
        return Ok(LiveRows::default());
    };
    let session_mode: Option<String> = column(row, 2)?;
    let token_state: Option<String> = column(row, 3)?;
    let federation = keys.provider_id.is_some() || keys.federation_token_id.is_some();
    let (provider_status, provider_trust, federation_token): (
        Option<String>,
        Option<String>,
        Option<String>,
    ) = if federation {
        (column(row, 4)?, column(row, 5)?, column(row, 6)?)
    } else {
        (None, None, None)
    };
    Ok(LiveRows {
        agent: Some((column(row, 0)?, column(row, 1)?)),
        session_mode: session_mode.filter(|_| keys.session_id.is_some()),
        token_ended: keys
            .token_id
            .and_then(|_| token_ended(token_state.as_deref())),
        provider: provider_status.zip(provider_trust),
        federation_token_revoked: keys.federation_token_id.is_some()
            && federation_token.as_deref() != Some("live"),
    })
}

/// Why a presented token stopped working, from its state in [`live_rows`] (`None`: it is
/// live). A token that is gone counts as revoked.
fn token_ended(state: Option<&str>) -> Option<String> {
    match state {
        Some("live") => None,
        Some("expired") => Some("the agent token expired".to_string()),
        _ => Some("the agent token was revoked".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recorded_summary_is_the_input_when_it_fits_and_a_marked_cut_otherwise() {
        assert_eq!(recorded_summary("rm -rf /tmp/x"), "rm -rf /tmp/x");
        let fits = "é".repeat(MAX_INPUT_SUMMARY_BYTES / 2);
        assert_eq!(recorded_summary(&fits), fits.as_str());
        let long = format!("{}/etc/shadow", "é".repeat(3000));
        let recorded = recorded_summary(&long);
        assert!(
            recorded.len() <= MAX_INPUT_SUMMARY_BYTES,
            "{}",
            recorded.len()
        );
        assert!(recorded.starts_with("éé"));
        assert!(recorded.ends_with(&format!(
            " … [cut: {} bytes in all, sha256 {}]",
            long.len(),
            hex::encode(Sha256::digest(long.as_bytes()))
        )));
    }
}
