//! Sessions: one agent's run of tool calls, with exact counters and a mode. Checks create a
//! session on first sight of its id (guards invent their own ids) and bump its counters — and
//! lock it after too many denials — atomically in SQL, so concurrent checks never lose a count
//! or miss the lockout.

use crate::api::time;

use super::audit::{Actor, NewEvent};
use super::script::{Script, Value};
use super::{Result, Store, Tx, on_db, on_tx, to_json_text};

/// The mode a session starts in.
pub const MODE_STANDARD: &str = "standard";
/// Source of sessions created implicitly by a check.
pub const SOURCE_SDK: &str = "sdk";
pub const MODE_LOCKED: &str = "locked";

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
    pub denials_at_unlock: i64,
    pub token_id: Option<String>,
    pub delegation_id: Option<String>,
    pub provider_id: Option<String>,
    pub issuer: Option<String>,
    pub trust_level: Option<String>,
    pub expires_at: Option<i64>,
    pub federation_token_id: Option<String>,
}

impl SessionRow {
    /// The most this session may do: `None` when it has no ceiling. A session opened from a
    /// token (an agent token, or an ID token of this gateway's own) or a delegation is bounded
    /// by its scopes even when there are none; others have a ceiling only when one was set.
    pub fn scope_ceiling(&self) -> Result<Option<Vec<String>>> {
        let scopes = super::string_list(&self.scope_ceiling)?;
        let own_id_token =
            self.source == crate::api::sessions::SOURCE_FEDERATION && self.provider_id.is_none();
        let bounded = self.token_id.is_some() || self.delegation_id.is_some() || own_id_token;
        Ok((bounded || !scopes.is_empty()).then_some(scopes))
    }

    /// Denials since the last unlock: what the lockout threshold is compared with.
    /// Opened by the gateway (sessions init, an API-token or delegation session, `guard session
    /// start`), not created by a check on first sight of an id the caller picked.
    pub fn is_registered(&self) -> bool {
        self.source != SOURCE_SDK
    }

    pub fn denials_since_unlock(&self) -> i64 {
        self.denied_calls - self.denials_at_unlock
    }
}

const COLUMNS: &str = "org_id, id, agent_id, source, server_id, mode, scope_ceiling, total_calls, \
                       read_calls, write_calls, denied_calls, created_at, last_activity_at, \
                       denials_at_unlock, token_id, delegation_id, provider_id, issuer, \
                       trust_level, expires_at, federation_token_id";

pub async fn get(store: &Store, org_id: &str, id: &str) -> Result<Option<SessionRow>> {
    let sql = format!("SELECT {COLUMNS} FROM sessions WHERE org_id = $1 AND id = $2");
    Ok(on_db!(store, |pool| sqlx::query_as::<_, SessionRow>(&sql)
        .bind(org_id)
        .bind(id)
        .fetch_optional(pool)
        .await?))
}

/// How one check moves a session's counters.
#[derive(Debug, Clone, Copy)]
pub struct CallCount {
    pub read: bool,
    /// A hard denial (an elevation waiting for a human is not one).
    pub denied: bool,
    /// Lock the session when its denials since the last unlock reach this many.
    pub lockout_after_denials: i64,
}

/// Counts one checked call in the session, creating the session (source `sdk`) when it is new,
/// and locks it when this denial reaches the threshold.
pub async fn count_call(
    tx: &mut Tx,
    org_id: &str,
    session_id: &str,
    agent_id: &str,
    call: CallCount,
    now: i64,
) -> Result<()> {
    let mut script = Script::default();
    script.push(
        COUNT_CALL,
        count_call_values(org_id, session_id, agent_id, call, now),
    );
    script.execute(tx).await?;
    // Only a denial can change the mode (lock the session): then the mode this transaction
    // holds is no longer known ([`super::held`]).
    if call.denied {
        tx.held.forget_session(org_id, session_id);
    }
    Ok(())
}

/// The statement of [`count_call`].
pub const COUNT_CALL: &str = "INSERT INTO sessions (org_id, id, agent_id, source, mode, \
    scope_ceiling, total_calls, read_calls, write_calls, denied_calls, created_at, \
    last_activity_at) \
    VALUES ($1, $2, $3, $4, $5, '[]', 1, $6, $7, $8, $9, $9) \
    ON CONFLICT (org_id, id) DO UPDATE SET \
    total_calls = sessions.total_calls + 1, \
    read_calls = sessions.read_calls + excluded.read_calls, \
    write_calls = sessions.write_calls + excluded.write_calls, \
    denied_calls = sessions.denied_calls + excluded.denied_calls, \
    last_activity_at = excluded.last_activity_at, \
    mode = CASE WHEN excluded.denied_calls > 0 \
    AND sessions.denied_calls + 1 - sessions.denials_at_unlock >= $10 \
    THEN 'locked' ELSE sessions.mode END";

/// The values of [`COUNT_CALL`].
pub fn count_call_values(
    org_id: &str,
    session_id: &str,
    agent_id: &str,
    call: CallCount,
    now: i64,
) -> Vec<Value> {
    let mode = if call.denied && call.lockout_after_denials <= 1 {
        MODE_LOCKED
    } else {
        MODE_STANDARD
    };
    vec![
        Value::Text(org_id.to_string()),
        Value::Text(session_id.to_string()),
        Value::Text(agent_id.to_string()),
        Value::Text(SOURCE_SDK.to_string()),
        Value::Text(mode.to_string()),
        Value::Integer(i64::from(call.read)),
        Value::Integer(i64::from(!call.read)),
        Value::Integer(i64::from(call.denied)),
        Value::Integer(now),
        Value::Integer(call.lockout_after_denials),
    ]
}

/// A session opened explicitly (MCP, API token, delegation, federation).
pub struct NewSession<'a> {
    pub org_id: &'a str,
    pub agent_id: &'a str,
    pub source: &'a str,
    pub server_id: Option<&'a str>,
    pub scope_ceiling: &'a [String],
    pub token_id: Option<&'a str>,
    pub delegation_id: Option<&'a str>,
    /// Set for a federation session: who vouched for it and until when.
    pub federation: Option<FederationOrigin<'a>>,
}

/// The external issuer a federation session was opened on.
#[derive(Debug, Clone, Copy)]
pub struct FederationOrigin<'a> {
    /// `None` for a token of this gateway's own.
    pub provider_id: Option<&'a str>,
    pub issuer: &'a str,
    pub trust_level: &'a str,
    /// The external token's expiry (Unix seconds): the session ends with it.
    pub expires_at: i64,
    /// The token's id when this gateway issued it: its revocation ends the session.
    pub token_id: Option<&'a str>,
}

pub async fn create(store: &Store, session: NewSession<'_>, actor: &Actor) -> Result<SessionRow> {
    const SQL: &str = "INSERT INTO sessions (org_id, id, agent_id, source, server_id, mode, \
                       scope_ceiling, created_at, last_activity_at, token_id, delegation_id, \
                       provider_id, issuer, trust_level, expires_at, federation_token_id) \
                       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9, $10, $11, $12, $13, $14, \
                       $15)";
    let id = super::new_id();
    let now = time::now();
    let mut tx = store.begin().await?;
    on_tx!(&mut tx, |conn| {
        sqlx::query(SQL)
            .bind(session.org_id)
            .bind(&id)
            .bind(session.agent_id)
            .bind(session.source)
            .bind(session.server_id)
            .bind(MODE_STANDARD)
            .bind(to_json_text(&session.scope_ceiling))
            .bind(now)
            .bind(session.token_id)
            .bind(session.delegation_id)
            .bind(session.federation.and_then(|origin| origin.provider_id))
            .bind(session.federation.map(|origin| origin.issuer))
            .bind(session.federation.map(|origin| origin.trust_level))
            .bind(session.federation.map(|origin| origin.expires_at))
            .bind(session.federation.and_then(|origin| origin.token_id))
            .execute(&mut *conn)
            .await?;
    });
    tx.commit_audited(Some(NewEvent {
        org_id: session.org_id,
        kind: "session.created",
        actor,
        subject_type: "session",
        subject_id: &id,
        detail: serde_json::json!({
            "agent_id": session.agent_id,
            "source": session.source,
            "server_id": session.server_id,
            "scope_ceiling": session.scope_ceiling,
            "delegation_id": session.delegation_id,
            "provider_id": session.federation.and_then(|origin| origin.provider_id),
            "issuer": session.federation.map(|origin| origin.issuer),
            "trust_level": session.federation.map(|origin| origin.trust_level),
        }),
        created_at: now,
    }))
    .await?;
    get(store, session.org_id, &id)
        .await?
        .ok_or_else(|| super::Error::Corrupt(format!("session {id} vanished after insert")))
}

/// A filter for [`list`].
pub struct SessionFilter<'a> {
    pub org_id: &'a str,
    pub agent_id: Option<&'a str>,
    pub mode: Option<&'a str>,
    pub source: Option<&'a str>,
    /// Sessions with an id after this one.
    pub after_id: Option<&'a str>,
    pub limit: u32,
}

/// One page ordered by id; asks one row more to know whether more follow.
pub async fn list(store: &Store, filter: SessionFilter<'_>) -> Result<(Vec<SessionRow>, bool)> {
    let sql = format!(
        "SELECT {COLUMNS} FROM sessions WHERE org_id = $1 \
         AND (CAST($2 AS TEXT) IS NULL OR agent_id = $2) \
         AND (CAST($3 AS TEXT) IS NULL OR mode = $3) \
         AND (CAST($4 AS TEXT) IS NULL OR source = $4) \
         AND (CAST($5 AS TEXT) IS NULL OR id > $5) \
         ORDER BY id LIMIT $6"
    );
    let mut rows = on_db!(store, |pool| sqlx::query_as::<_, SessionRow>(&sql)
        .bind(filter.org_id)
        .bind(filter.agent_id)
        .bind(filter.mode)
        .bind(filter.source)
        .bind(filter.after_id)
        .bind(i64::from(filter.limit) + 1)
        .fetch_all(pool)
        .await?);
    let more = rows.len() as i64 > i64::from(filter.limit);
    rows.truncate(filter.limit as usize);
    Ok((rows, more))
}

/// Sets a session's mode; unlocking (any mode out of `locked`) forgives the denials so far.
/// `None` when the org has no such session.
pub async fn set_mode(
    store: &Store,
    org_id: &str,
    id: &str,
    mode: &str,
    actor: &Actor,
) -> Result<Option<SessionRow>> {
    const SQL: &str = "UPDATE sessions SET mode = $3, \
                       denials_at_unlock = CASE WHEN mode = 'locked' AND $3 <> 'locked' \
                       THEN denied_calls ELSE denials_at_unlock END \
                       WHERE org_id = $1 AND id = $2";
    let now = time::now();
    let mut tx = store.begin().await?;
    let changed = on_tx!(&mut tx, |conn| sqlx::query(SQL)
        .bind(org_id)
        .bind(id)
        .bind(mode)
        .execute(&mut *conn)
        .await?
        .rows_affected());
    if changed == 1 {
        super::changes::announce(
            &mut tx,
            &super::changes::Change::Session {
                org_id: org_id.to_string(),
                id: id.to_string(),
            },
        )
        .await?;
    }
    let event = (changed == 1).then(|| NewEvent {
        org_id,
        kind: "session.mode_changed",
        actor,
        subject_type: "session",
        subject_id: id,
        detail: serde_json::json!({ "mode": mode }),
        created_at: now,
    });
    tx.commit_audited(event).await?;
    get(store, org_id, id).await
}
