//! Human approvals (elevation): created pending by a check that needs one, decided once by an
//! admin, expiring without any sweeper (a pending approval past `expires_at` reads as
//! `expired`). An approved request grants the same check in the same session until
//! `grant_expires_at`.

use crate::api::status::ApprovalStatus;
use sha2::{Digest, Sha256};

use crate::api::time;

use super::audit::{self, Actor, NewEvent};
use super::{Result, Store, Tx, on_db, on_tx};

pub const STATUS_PENDING: &str = "pending";
pub const STATUS_APPROVED: &str = "approved";
pub const STATUS_DENIED: &str = "denied";
pub const STATUS_EXPIRED: &str = "expired";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ApprovalRow {
    pub id: String,
    pub org_id: String,
    pub session_id: String,
    pub agent_id: String,
    pub action_name: String,
    pub action_effect: String,
    pub input_summary: String,
    pub request_key: String,
    pub reason: String,
    pub status: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub decided_at: Option<i64>,
    pub decided_by: Option<String>,
    pub grant_expires_at: Option<i64>,
}

impl ApprovalRow {
    /// The status as of `now`: a pending approval past its expiry is `expired`.
    pub fn status_at(&self, now: i64) -> ApprovalStatus {
        if self.status == STATUS_PENDING && self.expires_at <= now {
            ApprovalStatus::Expired
        } else {
            ApprovalStatus::from(self.status.as_str())
        }
    }
}

const COLUMNS: &str = "id, org_id, session_id, agent_id, action_name, action_effect, input_summary, \
                       request_key, reason, status, created_at, expires_at, decided_at, decided_by, \
                       grant_expires_at";

/// What makes two checks "the same" for an approval: action, effect and input summary.
pub fn request_key(action_name: &str, effect: &str, input_summary: &str) -> String {
    let mut hasher = Sha256::new();
    for part in [action_name, effect, input_summary] {
        hasher.update(part.as_bytes());
        hasher.update([0xff]);
    }
    hex::encode(hasher.finalize())
}

pub async fn get(store: &Store, org_id: &str, id: &str) -> Result<Option<ApprovalRow>> {
    let sql = format!("SELECT {COLUMNS} FROM approvals WHERE org_id = $1 AND id = $2");
    Ok(on_db!(store, |pool| sqlx::query_as::<_, ApprovalRow>(&sql)
        .bind(org_id)
        .bind(id)
        .fetch_optional(pool)
        .await?))
}

/// The newest approval for this request in this session, whatever its state.
pub async fn latest_for_request(
    store: &Store,
    org_id: &str,
    session_id: &str,
    request_key: &str,
) -> Result<Option<ApprovalRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM approvals WHERE org_id = $1 AND session_id = $2 AND request_key = $3 \
         ORDER BY created_at DESC, id DESC LIMIT 1"
    );
    Ok(on_db!(store, |pool| sqlx::query_as::<_, ApprovalRow>(&sql)
        .bind(org_id)
        .bind(session_id)
        .bind(request_key)
        .fetch_optional(pool)
        .await?))
}

/// A filter for [`list`].
pub struct ApprovalFilter<'a> {
    pub org_id: &'a str,
    /// `pending`, `approved`, `denied` or `expired` (as of now).
    pub status: Option<&'a str>,
    pub agent_id: Option<&'a str>,
    pub session_id: Option<&'a str>,
    /// Approvals with an id before this one (the cursor: the list is newest first).
    pub before_id: Option<&'a str>,
    pub limit: u32,
}

/// One page, newest first; asks one row more to know whether more follow.
pub async fn list(store: &Store, filter: ApprovalFilter<'_>) -> Result<(Vec<ApprovalRow>, bool)> {
    // Pending-vs-expired is decided by the clock, so the status filter is a time comparison.
    let sql = format!(
        "SELECT {COLUMNS} FROM approvals WHERE org_id = $1 \
         AND (CAST($2 AS TEXT) IS NULL OR agent_id = $2) \
         AND (CAST($3 AS TEXT) IS NULL OR session_id = $3) \
         AND (CAST($4 AS TEXT) IS NULL \
              OR ($4 = 'pending' AND status = 'pending' AND expires_at > $5) \
              OR ($4 = 'expired' AND (status = 'expired' \
                                      OR (status = 'pending' AND expires_at <= $5))) \
              OR ($4 IN ('approved', 'denied') AND status = $4)) \
         AND (CAST($6 AS TEXT) IS NULL OR id < $6) \
         ORDER BY id DESC LIMIT $7"
    );
    let mut rows = on_db!(store, |pool| sqlx::query_as::<_, ApprovalRow>(&sql)
        .bind(filter.org_id)
        .bind(filter.agent_id)
        .bind(filter.session_id)
        .bind(filter.status)
        .bind(time::now())
        .bind(filter.before_id)
        .bind(i64::from(filter.limit) + 1)
        .fetch_all(pool)
        .await?);
    let more = rows.len() > filter.limit as usize;
    rows.truncate(filter.limit as usize);
    Ok((rows, more))
}

/// A pending approval to open.
pub struct NewApproval<'a> {
    pub org_id: &'a str,
    pub session_id: &'a str,
    pub agent_id: &'a str,
    pub action_name: &'a str,
    pub action_effect: &'a str,
    /// The whole input decided on: the request key is its digest; the row keeps
    /// [`super::checks::recorded_summary`] of it.
    pub input_summary: &'a str,
    pub reason: &'a str,
    pub ttl_seconds: i64,
}

/// Opens a pending approval inside `tx`, or finds the one already pending for the same request
/// (a concurrent identical check got there first). Returns its id and whether it is new.
pub async fn open(tx: &mut Tx, approval: NewApproval<'_>, now: i64) -> Result<(String, bool)> {
    // A pending row past its expiry is settled as expired first, so the one-pending index
    // admits the new one.
    const EXPIRE: &str = "UPDATE approvals SET status = 'expired' WHERE org_id = $1 \
                          AND session_id = $2 AND request_key = $3 AND status = 'pending' \
                          AND expires_at <= $4";
    const INSERT: &str = "INSERT INTO approvals (id, org_id, session_id, agent_id, action_name, \
                          action_effect, input_summary, request_key, reason, status, created_at, \
                          expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending', $10, $11) \
                          ON CONFLICT (org_id, session_id, request_key) WHERE status = 'pending' \
                          DO NOTHING";
    const PENDING: &str = "SELECT id FROM approvals WHERE org_id = $1 AND session_id = $2 \
                           AND request_key = $3 AND status = 'pending'";
    let key = request_key(
        approval.action_name,
        approval.action_effect,
        approval.input_summary,
    );
    let id = super::new_id();
    let pending: String = on_tx!(tx, |conn| {
        sqlx::query(EXPIRE)
            .bind(approval.org_id)
            .bind(approval.session_id)
            .bind(&key)
            .bind(now)
            .execute(&mut *conn)
            .await?;
        sqlx::query(INSERT)
            .bind(&id)
            .bind(approval.org_id)
            .bind(approval.session_id)
            .bind(approval.agent_id)
            .bind(approval.action_name)
            .bind(approval.action_effect)
            .bind(super::checks::recorded_summary(approval.input_summary).as_ref())
            .bind(&key)
            .bind(approval.reason)
            .bind(now)
            .bind(now + approval.ttl_seconds)
            .execute(&mut *conn)
            .await?;
        let pending: String = sqlx::query_scalar(PENDING)
            .bind(approval.org_id)
            .bind(approval.session_id)
            .bind(&key)
            .fetch_one(&mut *conn)
            .await?;
        pending
    });
    let created = pending == id;
    Ok((pending, created))
}

/// The outcome of a decision.
#[derive(Debug, Clone)]
pub enum Decided {
    NotFound,
    /// Already decided or expired: the row as it is.
    NotPending(ApprovalRow),
    Decided(ApprovalRow),
}

/// Approves or denies a pending approval, once.
pub async fn decide(
    store: &Store,
    org_id: &str,
    id: &str,
    approve: bool,
    decided_by: &str,
    grant_ttl_seconds: i64,
    actor: &Actor,
) -> Result<Decided> {
    const SQL: &str = "UPDATE approvals SET status = $3, decided_at = $4, decided_by = $5, \
                       grant_expires_at = $6 WHERE org_id = $1 AND id = $2 \
                       AND status = 'pending' AND expires_at > $4";
    let now = time::now();
    let status = if approve {
        STATUS_APPROVED
    } else {
        STATUS_DENIED
    };
    let grant_expires_at = approve.then_some(now + grant_ttl_seconds);
    let mut tx = store.begin().await?;
    let changed = on_tx!(&mut tx, |conn| sqlx::query(SQL)
        .bind(org_id)
        .bind(id)
        .bind(status)
        .bind(now)
        .bind(decided_by)
        .bind(grant_expires_at)
        .execute(&mut *conn)
        .await?
        .rows_affected());
    let event = (changed == 1).then(|| NewEvent {
        org_id,
        kind: if approve {
            "approval.approved"
        } else {
            "approval.denied"
        },
        actor,
        subject_type: "approval",
        subject_id: id,
        detail: serde_json::json!({ "decided_by": decided_by }),
        created_at: now,
    });
    tx.commit_audited(event).await?;
    Ok(match get(store, org_id, id).await? {
        None => Decided::NotFound,
        Some(row) if changed == 1 => Decided::Decided(row),
        Some(row) => Decided::NotPending(row),
    })
}

/// Inside a check's transaction: the approvals still pending (not past their expiry) of the
/// session and of the agent, for their caps.
pub async fn pending_counts(
    tx: &mut Tx,
    org_id: &str,
    session_id: &str,
    agent_id: &str,
    now: i64,
) -> Result<(i64, i64)> {
    const SESSION: &str = "SELECT COUNT(*) FROM approvals WHERE org_id = $1 AND session_id = $2 \
                           AND status = 'pending' AND expires_at > $3";
    const AGENT: &str = "SELECT COUNT(*) FROM approvals WHERE org_id = $1 AND agent_id = $2 \
                         AND status = 'pending' AND expires_at > $3";
    Ok(on_tx!(tx, |conn| {
        let session: i64 = sqlx::query_scalar(SESSION)
            .bind(org_id)
            .bind(session_id)
            .bind(now)
            .fetch_one(&mut *conn)
            .await?;
        let agent: i64 = sqlx::query_scalar(AGENT)
            .bind(org_id)
            .bind(agent_id)
            .bind(now)
            .fetch_one(&mut *conn)
            .await?;
        (session, agent)
    }))
}

/// Whether the session holds an unexpired grant (its mode then reads `elevated`).
pub async fn session_has_active_grant(
    store: &Store,
    org_id: &str,
    session_id: &str,
) -> Result<bool> {
    const SQL: &str = "SELECT COUNT(*) FROM approvals WHERE org_id = $1 AND session_id = $2 \
                       AND status = 'approved' AND grant_expires_at > $3";
    let count: i64 = on_db!(store, |pool| sqlx::query_scalar(SQL)
        .bind(org_id)
        .bind(session_id)
        .bind(time::now())
        .fetch_one(pool)
        .await?);
    Ok(count > 0)
}

/// Audits the opening of an approval (kept apart so the check path decides when).
pub async fn audit_requested(
    tx: &mut Tx,
    org_id: &str,
    approval_id: &str,
    detail: serde_json::Value,
    actor: &Actor,
    now: i64,
) -> Result<()> {
    audit::append(
        tx,
        NewEvent {
            org_id,
            kind: "approval.requested",
            actor,
            subject_type: "approval",
            subject_id: approval_id,
            detail,
            created_at: now,
        },
    )
    .await
}
