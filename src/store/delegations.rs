//! Delegations: stored with their chain (root-first ids) and a `path` of those ids, so that
//! revoking one revokes every descendant in one statement, and revoking an agent revokes every
//! delegation from or to it — with their descendants — in the agent's own transaction. Expiry
//! needs no sweeper: a delegation past `expires_at` simply stops counting (and never outlives
//! its parent).
//!
//! Races with revocation are closed in the transaction: a child is inserted only if its whole
//! ancestor chain and both agents are live as read there (on PostgreSQL under `FOR SHARE`, so a
//! concurrent revocation waits for the insert and then revokes the child with the rest, or the
//! insert waits for the revocation and refuses). A delegation's `calls_made` counts the calls
//! allowed under it and its descendants, taken with a conditional increment per budget.

use crate::api::delegations::{Delegation, Restrictions};
use crate::api::status::DelegationStatus;
use crate::api::time;

use super::audit::{Actor, NewEvent};
use super::{Error, Result, Store, Tx, TxConnection, on_db, on_tx, string_list, to_json_text};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DelegationRow {
    pub id: String,
    pub org_id: String,
    pub from_agent_id: String,
    pub to_agent_id: String,
    pub parent_delegation_id: Option<String>,
    pub scope: String,
    pub restrictions: String,
    pub chain: String,
    pub path: String,
    pub depth: i64,
    pub created_at: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
    pub revoke_reason: Option<String>,
    /// Calls allowed under this delegation and its descendants, for `max_calls`.
    pub calls_made: i64,
}

impl DelegationRow {
    pub fn scope(&self) -> Result<Vec<String>> {
        string_list(&self.scope)
    }

    pub fn chain(&self) -> Result<Vec<String>> {
        string_list(&self.chain)
    }

    pub fn restrictions(&self) -> Result<Restrictions> {
        serde_json::from_str(&self.restrictions)
            .map_err(|error| Error::Corrupt(format!("delegation restrictions: {error}")))
    }

    /// `active`, `revoked` or `expired` as of `now`.
    pub fn status_at(&self, now: i64) -> DelegationStatus {
        if self.revoked_at.is_some() {
            DelegationStatus::Revoked
        } else if self.expires_at <= now {
            DelegationStatus::Expired
        } else {
            DelegationStatus::Active
        }
    }

    pub fn is_active_at(&self, now: i64) -> bool {
        self.status_at(now) == DelegationStatus::Active
    }

    pub fn into_api(self, now: i64) -> Result<Delegation> {
        Ok(Delegation {
            status: self.status_at(now),
            scope: self.scope()?,
            restrictions: self.restrictions()?,
            delegation_chain: self.chain()?,
            id: self.id,
            from_agent_id: self.from_agent_id,
            to_agent_id: self.to_agent_id,
            org_id: self.org_id,
            parent_delegation_id: self.parent_delegation_id,
            expires_at: time::format(self.expires_at),
            revoked_at: self.revoked_at.map(time::format),
            revoke_reason: self.revoke_reason,
            created_at: time::format(self.created_at),
            extra: Default::default(),
        })
    }
}

const COLUMNS: &str = "id, org_id, from_agent_id, to_agent_id, parent_delegation_id, scope, \
                       restrictions, chain, path, depth, created_at, expires_at, revoked_at, \
                       revoke_reason, calls_made";

/// A delegation that passed the attenuation rules.
pub struct NewDelegation<'a> {
    pub id: &'a str,
    pub org_id: &'a str,
    pub from_agent_id: &'a str,
    pub to_agent_id: &'a str,
    pub parent: Option<&'a DelegationRow>,
    pub scope: &'a [String],
    pub restrictions: &'a Restrictions,
    pub depth: i64,
    pub created_at: i64,
    pub expires_at: i64,
}

/// What [`create`] did.
#[derive(Debug, Clone)]
pub enum Created {
    Stored(Box<DelegationRow>),
    /// An agent or a delegation of the chain stopped being live before the insert: nothing was
    /// stored; the text says which.
    ChainEnded(String),
}

pub async fn create(store: &Store, new: NewDelegation<'_>, actor: &Actor) -> Result<Created> {
    const SQL: &str = "INSERT INTO delegations (id, org_id, from_agent_id, to_agent_id, \
                       parent_delegation_id, scope, restrictions, chain, path, depth, created_at, \
                       expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)";
    let mut chain = match new.parent {
        Some(parent) => parent.chain()?,
        None => Vec::new(),
    };
    chain.push(new.id.to_string());
    let row = DelegationRow {
        id: new.id.to_string(),
        org_id: new.org_id.to_string(),
        from_agent_id: new.from_agent_id.to_string(),
        to_agent_id: new.to_agent_id.to_string(),
        parent_delegation_id: new.parent.map(|parent| parent.id.clone()),
        scope: to_json_text(&new.scope),
        restrictions: to_json_text(new.restrictions),
        path: chain.join("/"),
        chain: to_json_text(&chain),
        depth: new.depth,
        created_at: new.created_at,
        expires_at: new.expires_at,
        revoked_at: None,
        revoke_reason: None,
        calls_made: 0,
    };
    let mut tx = store.begin().await?;
    let ancestors = &chain[..chain.len() - 1];
    if let Some(ended) = chain_ended(
        &mut tx,
        &row.org_id,
        &[new.from_agent_id, new.to_agent_id],
        ancestors,
        row.created_at,
        true,
    )
    .await?
    {
        return Ok(Created::ChainEnded(ended));
    }
    on_tx!(&mut tx, |conn| {
        sqlx::query(SQL)
            .bind(&row.id)
            .bind(&row.org_id)
            .bind(&row.from_agent_id)
            .bind(&row.to_agent_id)
            .bind(&row.parent_delegation_id)
            .bind(&row.scope)
            .bind(&row.restrictions)
            .bind(&row.chain)
            .bind(&row.path)
            .bind(row.depth)
            .bind(row.created_at)
            .bind(row.expires_at)
            .execute(&mut *conn)
            .await?;
    });
    tx.commit_audited(Some(NewEvent {
        org_id: &row.org_id,
        kind: "delegation.created",
        actor,
        subject_type: "delegation",
        subject_id: &row.id,
        detail: serde_json::json!({
            "from_agent_id": row.from_agent_id,
            "to_agent_id": row.to_agent_id,
            "scope": new.scope,
            "parent_delegation_id": row.parent_delegation_id,
            "expires_at": time::format(row.expires_at),
        }),
        created_at: row.created_at,
    }))
    .await?;
    Ok(Created::Stored(Box::new(row)))
}

/// Inside a transaction: the first of `agents` that is not active, or of `delegations` that is
/// revoked or expired at `now`, in words; `None` when all are live. With `lock`, PostgreSQL
/// reads the rows `FOR SHARE`, so a revocation in flight either commits first (and is seen
/// here) or waits for this transaction (and then sees what it wrote). A check reads without
/// locks: it holds its agent's row already, and its order against a revocation is set there.
pub async fn chain_ended(
    tx: &mut Tx,
    org_id: &str,
    agents: &[&str],
    delegations: &[String],
    now: i64,
    lock: bool,
) -> Result<Option<String>> {
    const AGENT_SQLITE: &str = "SELECT status FROM agents WHERE org_id = $1 AND id = $2";
    const AGENT_POSTGRES: &str =
        "SELECT status FROM agents WHERE org_id = $1 AND id = $2 FOR SHARE";
    const DELEGATION_SQLITE: &str =
        "SELECT revoked_at, expires_at FROM delegations WHERE org_id = $1 AND id = $2";
    const DELEGATION_POSTGRES: &str = "SELECT revoked_at, expires_at FROM delegations \
                                       WHERE org_id = $1 AND id = $2 FOR SHARE";
    for agent_id in agents {
        let status: Option<String> = match &mut tx.connection {
            TxConnection::Sqlite(conn) => {
                sqlx::query_scalar(AGENT_SQLITE)
                    .bind(org_id)
                    .bind(agent_id)
                    .fetch_optional(&mut **conn)
                    .await?
            }
            TxConnection::Postgres(conn) => {
                sqlx::query_scalar(if lock { AGENT_POSTGRES } else { AGENT_SQLITE })
                    .bind(org_id)
                    .bind(agent_id)
                    .fetch_optional(&mut **conn)
                    .await?
            }
            TxConnection::Detached => return Err(Error::Detached),
        };
        if status.as_deref() != Some(super::agents::STATUS_ACTIVE) {
            return Ok(Some(format!("agent {agent_id} is no longer active")));
        }
    }
    for id in delegations {
        let found: Option<(Option<i64>, i64)> = match &mut tx.connection {
            TxConnection::Sqlite(conn) => {
                sqlx::query_as(DELEGATION_SQLITE)
                    .bind(org_id)
                    .bind(id)
                    .fetch_optional(&mut **conn)
                    .await?
            }
            TxConnection::Postgres(conn) => {
                sqlx::query_as(if lock {
                    DELEGATION_POSTGRES
                } else {
                    DELEGATION_SQLITE
                })
                .bind(org_id)
                .bind(id)
                .fetch_optional(&mut **conn)
                .await?
            }
            TxConnection::Detached => return Err(Error::Detached),
        };
        match found {
            None => return Err(Error::Corrupt(format!("delegation {id} vanished"))),
            Some((Some(_), _)) => return Ok(Some(format!("delegation {id} is revoked"))),
            Some((None, expires_at)) if expires_at <= now => {
                return Ok(Some(format!("delegation {id} is expired")));
            }
            Some(_) => {}
        }
    }
    Ok(None)
}

/// Inside a check's transaction: takes one call from every budget of a delegation chain, each
/// `(delegation id, max_calls)`, with a conditional increment, so that concurrent checks (on
/// any replica) never allow more than `max_calls`. When one budget is used up nothing is taken
/// and that budget is returned with the calls it has made.
pub async fn take_call(
    tx: &mut Tx,
    org_id: &str,
    budgets: &[(&str, i64)],
) -> Result<Option<(i64, i64)>> {
    const TAKE: &str = "UPDATE delegations SET calls_made = calls_made + 1 \
                        WHERE org_id = $1 AND id = $2 AND calls_made < $3";
    const GIVE_BACK: &str =
        "UPDATE delegations SET calls_made = calls_made - 1 WHERE org_id = $1 AND id = $2";
    const MADE: &str = "SELECT calls_made FROM delegations WHERE org_id = $1 AND id = $2";
    for (index, (id, max_calls)) in budgets.iter().enumerate() {
        let taken = on_tx!(tx, |conn| sqlx::query(TAKE)
            .bind(org_id)
            .bind(id)
            .bind(max_calls)
            .execute(&mut *conn)
            .await?
            .rows_affected());
        if taken == 0 {
            for (taken_id, _) in &budgets[..index] {
                on_tx!(tx, |conn| {
                    sqlx::query(GIVE_BACK)
                        .bind(org_id)
                        .bind(taken_id)
                        .execute(&mut *conn)
                        .await?;
                });
            }
            let made: i64 = on_tx!(tx, |conn| sqlx::query_scalar(MADE)
                .bind(org_id)
                .bind(id)
                .fetch_one(&mut *conn)
                .await?);
            return Ok(Some((*max_calls, made)));
        }
    }
    Ok(None)
}

pub async fn get(store: &Store, org_id: &str, id: &str) -> Result<Option<DelegationRow>> {
    let sql = format!("SELECT {COLUMNS} FROM delegations WHERE org_id = $1 AND id = $2");
    Ok(on_db!(store, |pool| sqlx::query_as::<_, DelegationRow>(
        &sql
    )
    .bind(org_id)
    .bind(id)
    .fetch_optional(pool)
    .await?))
}

/// The delegation and those above it, root first (the chain's rows).
pub async fn with_ancestors(store: &Store, row: &DelegationRow) -> Result<Vec<DelegationRow>> {
    let mut rows = Vec::new();
    for id in row.chain()? {
        if id == row.id {
            rows.push(row.clone());
        } else if let Some(ancestor) = get(store, &row.org_id, &id).await? {
            rows.push(ancestor);
        } else {
            return Err(Error::Corrupt(format!(
                "delegation {} names a missing ancestor {id}",
                row.id
            )));
        }
    }
    Ok(rows)
}

/// A filter for [`list`].
pub struct DelegationFilter<'a> {
    pub org_id: &'a str,
    pub from_agent_id: Option<&'a str>,
    pub to_agent_id: Option<&'a str>,
    /// Only active (`Some(true)`) or only inactive (`Some(false)`) ones as of `now`.
    pub active: Option<bool>,
    pub now: i64,
    /// Delegations with an id after this one (the cursor).
    pub after_id: Option<&'a str>,
    pub limit: u32,
}

/// One page ordered by id; asks one row more to know whether more follow. Active means what
/// [`DelegationRow::is_active_at`] means: not revoked and not expired at `now`.
pub async fn list(
    store: &Store,
    filter: DelegationFilter<'_>,
) -> Result<(Vec<DelegationRow>, bool)> {
    let sql = format!(
        "SELECT {COLUMNS} FROM delegations WHERE org_id = $1 \
         AND (CAST($2 AS TEXT) IS NULL OR from_agent_id = $2) \
         AND (CAST($3 AS TEXT) IS NULL OR to_agent_id = $3) \
         AND (CAST($4 AS TEXT) IS NULL \
              OR ($4 = 'active' AND revoked_at IS NULL AND expires_at > $5) \
              OR ($4 = 'inactive' AND (revoked_at IS NOT NULL OR expires_at <= $5))) \
         AND (CAST($6 AS TEXT) IS NULL OR id > $6) \
         ORDER BY id LIMIT $7"
    );
    let activity = filter
        .active
        .map(|active| if active { "active" } else { "inactive" });
    let mut rows = on_db!(store, |pool| sqlx::query_as::<_, DelegationRow>(&sql)
        .bind(filter.org_id)
        .bind(filter.from_agent_id)
        .bind(filter.to_agent_id)
        .bind(activity)
        .bind(filter.now)
        .bind(filter.after_id)
        .bind(i64::from(filter.limit) + 1)
        .fetch_all(pool)
        .await?);
    let more = rows.len() > filter.limit as usize;
    rows.truncate(filter.limit as usize);
    Ok((rows, more))
}

/// Revokes a delegation and every live descendant, in one transaction. `None` when the org
/// has no such delegation; else the row afterwards and how many descendants went with it.
pub async fn revoke(
    store: &Store,
    org_id: &str,
    id: &str,
    reason: &str,
    actor: &Actor,
) -> Result<Option<(DelegationRow, u64)>> {
    const SELF: &str = "UPDATE delegations SET revoked_at = $3, revoke_reason = $4 \
                        WHERE org_id = $1 AND id = $2 AND revoked_at IS NULL";
    const DESCENDANTS: &str = "UPDATE delegations SET revoked_at = $3, revoke_reason = $4 \
                               WHERE org_id = $1 AND revoked_at IS NULL AND path LIKE $2";
    let Some(row) = get(store, org_id, id).await? else {
        return Ok(None);
    };
    let now = time::now();
    let cascade_reason = format!("parent delegation {id} revoked");
    let mut tx = store.begin().await?;
    let (changed, descendants) = on_tx!(&mut tx, |conn| {
        let changed = sqlx::query(SELF)
            .bind(org_id)
            .bind(id)
            .bind(now)
            .bind(reason)
            .execute(&mut *conn)
            .await?
            .rows_affected();
        let descendants = sqlx::query(DESCENDANTS)
            .bind(org_id)
            .bind(format!("{}/%", row.path))
            .bind(now)
            .bind(&cascade_reason)
            .execute(&mut *conn)
            .await?
            .rows_affected();
        (changed, descendants)
    });
    let event = (changed + descendants > 0).then(|| NewEvent {
        org_id,
        kind: "delegation.revoked",
        actor,
        subject_type: "delegation",
        subject_id: id,
        detail: serde_json::json!({ "reason": reason, "descendants_revoked": descendants }),
        created_at: now,
    });
    tx.commit_audited(event).await?;
    Ok(get(store, org_id, id).await?.map(|row| (row, descendants)))
}

/// Inside an agent's revocation: revokes every live delegation from or to the agent, and
/// everything built on them. Returns how many rows it revoked.
pub async fn revoke_for_agent(tx: &mut Tx, org_id: &str, agent_id: &str, now: i64) -> Result<u64> {
    const SQL: &str = "UPDATE delegations SET revoked_at = $3, revoke_reason = $4 \
                       WHERE org_id = $1 AND revoked_at IS NULL AND EXISTS ( \
                       SELECT 1 FROM delegations AS touched WHERE touched.org_id = $1 \
                       AND (touched.from_agent_id = $2 OR touched.to_agent_id = $2) \
                       AND (delegations.path = touched.path \
                            OR delegations.path LIKE touched.path || '/%'))";
    let reason = format!("agent {agent_id} revoked");
    Ok(on_tx!(tx, |conn| sqlx::query(SQL)
        .bind(org_id)
        .bind(agent_id)
        .bind(now)
        .bind(&reason)
        .execute(&mut *conn)
        .await?
        .rows_affected()))
}
