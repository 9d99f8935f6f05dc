//! Agents: registration, listing, revocation (which takes every token of the agent with it), and
//! the agent's own mode: set by an admin, or locked by the agent-level lockout, which counts the
//! agent's hard denials in a fixed window atomically in SQL where the denial is recorded.

use crate::api::agents::Agent;
use crate::api::status::AgentStatus;
use crate::api::time;

use super::audit::{Actor, NewEvent};
use super::changes::{self, Change};
use super::{Error, Result, Store, Tx, json_object, on_db, on_tx, string_list, to_json_text};

/// `active`: may act; `revoked`: never again.
pub const STATUS_ACTIVE: &str = "active";
pub const STATUS_REVOKED: &str = "revoked";
pub const MODE_STANDARD: &str = "standard";
pub const MODE_LOCKED: &str = "locked";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AgentRow {
    pub id: String,
    pub org_id: String,
    pub name: String,
    pub framework: String,
    pub capabilities: String,
    pub metadata: String,
    pub public_key: Option<String>,
    pub status: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
    pub revoke_reason: Option<String>,
    /// `standard`, `read_only` or `locked`: binds the agent in every session.
    pub mode: String,
    /// The RFC 7638 thumbprint of `public_key` (`None` for rows registered before it was
    /// stored: [`AgentRow::current_thumbprint`] computes it then).
    pub public_key_thumbprint: Option<String>,
    /// The key replaced by the last rotation, valid until `previous_key_valid_until`.
    pub previous_public_key: Option<String>,
    pub previous_key_thumbprint: Option<String>,
    pub previous_key_valid_until: Option<i64>,
}

impl AgentRow {
    pub fn is_active(&self) -> bool {
        self.status == STATUS_ACTIVE
    }

    /// Whether `thumbprint` names one of the agent's keys at `now`: the current one, or the one
    /// a rotation replaced while its grace period lasts.
    pub fn holds_key(&self, thumbprint: &str, now: i64) -> bool {
        if self.current_thumbprint().as_deref() == Some(thumbprint) {
            return true;
        }
        self.previous_key_in_grace(now) && self.previous_thumbprint().as_deref() == Some(thumbprint)
    }

    /// The thumbprint of the key the last rotation replaced. Computed when not stored: a key
    /// registered before thumbprints were stored moves to `previous_*` without one.
    pub fn previous_thumbprint(&self) -> Option<String> {
        match &self.previous_key_thumbprint {
            Some(previous) => Some(previous.clone()),
            None => self.previous_public_key.as_deref().and_then(thumbprint_of),
        }
    }

    /// The thumbprint of the current key, if the agent has one.
    pub fn current_thumbprint(&self) -> Option<String> {
        match &self.public_key_thumbprint {
            Some(current) => Some(current.clone()),
            None => self.public_key.as_deref().and_then(thumbprint_of),
        }
    }

    /// Whether the key replaced by the last rotation still works at `now`.
    pub fn previous_key_in_grace(&self, now: i64) -> bool {
        self.previous_public_key.is_some()
            && self
                .previous_key_valid_until
                .is_some_and(|until| now < until)
    }

    pub fn capabilities(&self) -> Result<Vec<String>> {
        string_list(&self.capabilities)
    }

    pub fn into_api(self) -> Result<Agent> {
        let key_thumbprint = self.current_thumbprint();
        Ok(Agent {
            capabilities: string_list(&self.capabilities)?,
            metadata: json_object(&self.metadata)?,
            id: self.id,
            name: self.name,
            org_id: self.org_id,
            framework: self.framework,
            status: AgentStatus::from(self.status.as_str()),
            public_key: self.public_key,
            created_at: time::format(self.created_at),
            revoked_at: self.revoked_at.map(time::format),
            revoke_reason: self.revoke_reason,
            mode: Some(self.mode),
            key_thumbprint,
            previous_key_valid_until: self
                .previous_key_valid_until
                .filter(|_| self.previous_public_key.is_some())
                .map(time::format),
            extra: Default::default(),
        })
    }
}

const COLUMNS: &str = "id, org_id, name, framework, capabilities, metadata, public_key, status, \
                       created_at, revoked_at, revoke_reason, mode, public_key_thumbprint, \
                       previous_public_key, previous_key_thumbprint, previous_key_valid_until";

/// The RFC 7638 thumbprint of an SPKI PEM the gateway accepted (`None` if it does not parse).
pub fn thumbprint_of(pem: &str) -> Option<String> {
    crate::agent_key::AgentPublicKey::from_pem(pem)
        .ok()
        .map(|key| key.thumbprint())
}

/// A validated agent to register.
pub struct NewAgent<'a> {
    pub org_id: &'a str,
    pub name: &'a str,
    pub framework: &'a str,
    pub capabilities: &'a [String],
    pub metadata: &'a serde_json::Map<String, serde_json::Value>,
    pub public_key: Option<&'a str>,
}

pub async fn create(store: &Store, agent: NewAgent<'_>, actor: &Actor) -> Result<AgentRow> {
    const SQL: &str = "INSERT INTO agents (id, org_id, name, framework, capabilities, metadata, \
                       public_key, status, created_at, public_key_thumbprint) \
                       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
    let row = AgentRow {
        id: super::new_id(),
        org_id: agent.org_id.to_string(),
        name: agent.name.to_string(),
        framework: agent.framework.to_string(),
        capabilities: to_json_text(&agent.capabilities),
        metadata: to_json_text(agent.metadata),
        public_key: agent.public_key.map(str::to_string),
        status: STATUS_ACTIVE.to_string(),
        created_at: time::now(),
        revoked_at: None,
        revoke_reason: None,
        mode: MODE_STANDARD.to_string(),
        public_key_thumbprint: agent.public_key.and_then(thumbprint_of),
        previous_public_key: None,
        previous_key_thumbprint: None,
        previous_key_valid_until: None,
    };
    let mut tx = store.begin().await?;
    on_tx!(&mut tx, |conn| {
        sqlx::query(SQL)
            .bind(&row.id)
            .bind(&row.org_id)
            .bind(&row.name)
            .bind(&row.framework)
            .bind(&row.capabilities)
            .bind(&row.metadata)
            .bind(&row.public_key)
            .bind(&row.status)
            .bind(row.created_at)
            .bind(&row.public_key_thumbprint)
            .execute(&mut *conn)
            .await
            .map_err(|error| {
                Error::conflict_on_unique(error, || {
                    format!("an agent named {:?} already exists in this org", agent.name)
                })
            })?;
    });
    tx.commit_audited(Some(NewEvent {
        org_id: &row.org_id,
        kind: "agent.created",
        actor,
        subject_type: "agent",
        subject_id: &row.id,
        detail: serde_json::json!({
            "name": row.name,
            "framework": row.framework,
            "capabilities": agent.capabilities,
        }),
        created_at: row.created_at,
    }))
    .await?;
    Ok(row)
}

pub async fn get(store: &Store, org_id: &str, id: &str) -> Result<Option<AgentRow>> {
    let sql = format!("SELECT {COLUMNS} FROM agents WHERE org_id = $1 AND id = $2");
    Ok(on_db!(store, |pool| sqlx::query_as::<_, AgentRow>(&sql)
        .bind(org_id)
        .bind(id)
        .fetch_optional(pool)
        .await?))
}

/// A filter for [`list`].
pub struct AgentFilter<'a> {
    pub org_id: &'a str,
    pub status: Option<&'a str>,
    /// Names starting with this text (compared as is: no wildcards).
    pub name_prefix: Option<&'a str>,
    /// Agents with an id after this one (the cursor).
    pub after_id: Option<&'a str>,
    pub limit: u32,
}

/// One page ordered by id (creation order: ids are UUIDv7); asks one row more to know whether
/// more follow.
pub async fn list(store: &Store, filter: AgentFilter<'_>) -> Result<(Vec<AgentRow>, bool)> {
    // `substr` rather than LIKE: a prefix with `%` or `_` in it means those characters.
    let sql = format!(
        "SELECT {COLUMNS} FROM agents WHERE org_id = $1 \
         AND (CAST($2 AS TEXT) IS NULL OR status = $2) \
         AND (CAST($3 AS TEXT) IS NULL OR substr(name, 1, length($3)) = $3) \
         AND (CAST($4 AS TEXT) IS NULL OR id > $4) \
         ORDER BY id LIMIT $5"
    );
    let mut rows = on_db!(store, |pool| sqlx::query_as::<_, AgentRow>(&sql)
        .bind(filter.org_id)
        .bind(filter.status)
        .bind(filter.name_prefix)
        .bind(filter.after_id)
        .bind(i64::from(filter.limit) + 1)
        .fetch_all(pool)
        .await?);
    let more = rows.len() > filter.limit as usize;
    rows.truncate(filter.limit as usize);
    Ok((rows, more))
}

/// Sets an agent's mode (`standard`, `read_only`, `locked`); leaving `locked` also forgets the
/// denials counted towards the lockout. `None` when the org has no such agent.
pub async fn set_mode(
    store: &Store,
    org_id: &str,
    id: &str,
    mode: &str,
    actor: &Actor,
) -> Result<Option<AgentRow>> {
    const SQL: &str = "UPDATE agents SET mode = $3, \
                       denials_in_window = CASE WHEN $3 = 'locked' THEN denials_in_window ELSE 0 END \
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
        changes::announce(&mut tx, &Change::Agent { id: id.to_string() }).await?;
    }
    let event = (changed == 1).then(|| NewEvent {
        org_id,
        kind: "agent.mode_changed",
        actor,
        subject_type: "agent",
        subject_id: id,
        detail: serde_json::json!({ "mode": mode }),
        created_at: now,
    });
    tx.commit_audited(event).await?;
    get(store, org_id, id).await
}

/// The agent-level lockout setting of the org's policy.
#[derive(Debug, Clone, Copy)]
pub struct Lockout {
    pub after_denials: i64,
    pub window_seconds: i64,
}

/// Inside a check's transaction: counts one hard denial of the agent in its current window (a
/// window older than `window_seconds` starts afresh) and locks the agent when the count reaches
/// the threshold. Returns whether this denial locked it.
pub async fn count_denial(
    tx: &mut Tx,
    org_id: &str,
    id: &str,
    lockout: Lockout,
    now: i64,
) -> Result<bool> {
    // Every right-hand side reads the row as it was, in both dialects.
    const SQL: &str = "UPDATE agents SET \
        denials_in_window = CASE WHEN denial_window_start <= $3 - $5 THEN 1 \
            ELSE denials_in_window + 1 END, \
        denial_window_start = CASE WHEN denial_window_start <= $3 - $5 THEN $3 \
            ELSE denial_window_start END, \
        mode = CASE WHEN (CASE WHEN denial_window_start <= $3 - $5 THEN 1 \
            ELSE denials_in_window + 1 END) >= $4 THEN 'locked' ELSE mode END \
        WHERE org_id = $1 AND id = $2 AND status = 'active' \
        RETURNING mode, denials_in_window";
    let row: Option<(String, i64)> = on_tx!(tx, |conn| sqlx::query_as(SQL)
        .bind(org_id)
        .bind(id)
        .bind(now)
        .bind(lockout.after_denials)
        .bind(lockout.window_seconds)
        .fetch_optional(&mut *conn)
        .await?);
    // The row is this transaction's now, as the statement left it.
    match &row {
        Some((mode, _)) => {
            tx.held
                .hold_agent(org_id, id, (STATUS_ACTIVE.to_string(), mode.clone()))
        }
        None => tx.held.forget_agent(org_id, id),
    }
    // The threshold is crossed exactly once per window: by the denial whose count equals it.
    let locked =
        row.is_some_and(|(mode, count)| mode == MODE_LOCKED && count == lockout.after_denials);
    if locked {
        changes::announce(tx, &Change::Agent { id: id.to_string() }).await?;
    }
    Ok(locked)
}

/// What a revocation did.
pub struct Revoked {
    pub agent: AgentRow,
    /// Live tokens that stopped working with the agent.
    pub tokens_revoked: u64,
}

/// Revokes an agent, every live token of it and every delegation from or to it (with what was
/// built on them), in one transaction. `None` when the org has no
/// such agent; revoking a revoked agent changes nothing.
pub async fn revoke(
    store: &Store,
    org_id: &str,
    id: &str,
    reason: &str,
    actor: &Actor,
) -> Result<Option<Revoked>> {
    const AGENT: &str = "UPDATE agents SET status = $3, revoked_at = $4, revoke_reason = $5 \
                         WHERE org_id = $1 AND id = $2 AND status <> $3";
    const TOKENS: &str = "UPDATE agent_tokens SET revoked_at = $3, revoke_reason = $4 \
                          WHERE org_id = $1 AND agent_id = $2 AND revoked_at IS NULL AND expires_at > $3";
    let now = time::now();
    let mut tx = store.begin().await?;
    let (agents_changed, tokens_revoked) = on_tx!(&mut tx, |conn| {
        let agents_changed = sqlx::query(AGENT)
            .bind(org_id)
            .bind(id)
            .bind(STATUS_REVOKED)
            .bind(now)
            .bind(reason)
            .execute(&mut *conn)
            .await?
            .rows_affected();
        let tokens_revoked = if agents_changed == 1 {
            sqlx::query(TOKENS)
                .bind(org_id)
                .bind(id)
                .bind(now)
                .bind("agent revoked")
                .execute(&mut *conn)
                .await?
                .rows_affected()
        } else {
            0
        };
        (agents_changed, tokens_revoked)
    });
    let delegations_revoked = if agents_changed == 1 {
        changes::announce(&mut tx, &Change::Agent { id: id.to_string() }).await?;
        super::delegations::revoke_for_agent(&mut tx, org_id, id, now).await?
    } else {
        0
    };
    let event = (agents_changed == 1).then(|| NewEvent {
        org_id,
        kind: "agent.revoked",
        actor,
        subject_type: "agent",
        subject_id: id,
        detail: serde_json::json!({
            "reason": reason,
            "tokens_revoked": tokens_revoked,
            "delegations_revoked": delegations_revoked,
        }),
        created_at: now,
    });
    tx.commit_audited(event).await?;
    Ok(get(store, org_id, id).await?.map(|agent| Revoked {
        agent,
        tokens_revoked,
    }))
}
