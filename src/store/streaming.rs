//! SIEM streaming rows: the org's destinations (with each one's durable delivery cursor over the
//! audit log, its pending batch, its backoff and its lease) and the delivery records. Changes an
//! admin makes are audited in their transaction; the delivery engine's bookkeeping is not (an
//! audit event per delivery would itself have to be delivered, without end).
//!
//! The engine's writes are conditional: a lease is taken only when free or expired, and the
//! cursor moves only while the lease is held and only from the value the batch was planned on,
//! so two replicas never both acknowledge a batch.

use crate::api::streaming::{DeliveryRecord, Destination, MASKED_TOKEN};
use crate::api::time;

use super::audit::{Actor, EVENT_COLUMNS, EventRow, NewEvent};
use super::{Result, Store, on_db, on_tx};

/// A destination as stored. `auth_token` is the stored form (sealed unless `sealed_with` is
/// `none`); `Debug` never shows it.
#[derive(Clone, sqlx::FromRow)]
pub struct DestinationRow {
    pub org_id: String,
    pub id: String,
    pub name: String,
    pub destination_type: String,
    pub endpoint_url: String,
    pub auth_token: Option<String>,
    pub auth_token_sealed_with: String,
    pub is_active: bool,
    pub batch_size: i64,
    pub flush_interval_seconds: i64,
    pub filter_event_types: String,
    pub skip_rejected_batches: bool,
    pub created_at: i64,
    pub updated_at: i64,
    pub cursor_seq: i64,
    pub pending_first_seq: Option<i64>,
    pub pending_last_seq: Option<i64>,
    pub consecutive_failures: i64,
    pub next_attempt_at_ms: i64,
    pub lease_owner: Option<String>,
    pub lease_expires_at_ms: Option<i64>,
    pub last_delivered_at: Option<i64>,
    pub last_error: Option<String>,
}

impl std::fmt::Debug for DestinationRow {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("DestinationRow")
            .field("org_id", &self.org_id)
            .field("id", &self.id)
            .field("destination_type", &self.destination_type)
            .field("endpoint_url", &self.endpoint_url)
            .field(
                "auth_token",
                &self.auth_token.as_ref().map(|_| MASKED_TOKEN),
            )
            .field("cursor_seq", &self.cursor_seq)
            .field("pending_first_seq", &self.pending_first_seq)
            .field("pending_last_seq", &self.pending_last_seq)
            .field("lease_owner", &self.lease_owner)
            .finish_non_exhaustive()
    }
}

impl DestinationRow {
    /// The kinds and prefixes the destination receives (empty: all). A list that does not parse
    /// (a hand-edited row) means all: a filter is never a reason to lose events.
    pub fn filter(&self) -> Vec<String> {
        super::string_list(&self.filter_event_types).unwrap_or_default()
    }

    /// The wire form: the token masked, the delivery state shown.
    pub fn into_api(self) -> Destination {
        let retrying = self.consecutive_failures > 0;
        Destination {
            filter_event_types: self.filter(),
            id: self.id,
            org_id: self.org_id,
            name: self.name,
            destination_type: self.destination_type,
            endpoint_url: self.endpoint_url,
            auth_token: self.auth_token.map(|_| MASKED_TOKEN.to_string()),
            is_active: self.is_active,
            batch_size: self.batch_size,
            flush_interval_seconds: self.flush_interval_seconds,
            skip_rejected_batches: self.skip_rejected_batches,
            cursor_seq: self.cursor_seq,
            last_delivered_at: self.last_delivered_at.map(time::format),
            consecutive_failures: self.consecutive_failures,
            next_attempt_at: retrying.then(|| time::format(self.next_attempt_at_ms / 1000)),
            last_error: self.last_error,
            created_at: time::format(self.created_at),
            updated_at: time::format(self.updated_at),
            extra: Default::default(),
        }
    }
}

const COLUMNS: &str = "org_id, id, name, destination_type, endpoint_url, auth_token, \
                       auth_token_sealed_with, is_active, batch_size, flush_interval_seconds, \
                       filter_event_types, skip_rejected_batches, created_at, updated_at, \
                       cursor_seq, pending_first_seq, pending_last_seq, consecutive_failures, \
                       next_attempt_at_ms, lease_owner, lease_expires_at_ms, last_delivered_at, \
                       last_error";

/// What an admin sets on a destination (the token already in its stored form).
#[derive(Clone)]
pub struct DestinationFields {
    pub name: String,
    pub destination_type: String,
    pub endpoint_url: String,
    pub auth_token: Option<String>,
    pub auth_token_sealed_with: String,
    pub is_active: bool,
    pub batch_size: i64,
    pub flush_interval_seconds: i64,
    pub filter_event_types: Vec<String>,
    pub skip_rejected_batches: bool,
}

/// The audit detail of a destination: its settings, never its token (only whether one is set),
/// and its URL without the query string (where some products accept a key).
fn detail(fields: &DestinationFields) -> serde_json::Value {
    let endpoint = fields
        .endpoint_url
        .split(['?', '#'])
        .next()
        .unwrap_or_default();
    serde_json::json!({
        "name": fields.name,
        "destination_type": fields.destination_type,
        "endpoint_url": endpoint,
        "auth_token_set": fields.auth_token.is_some(),
        "is_active": fields.is_active,
        "batch_size": fields.batch_size,
        "flush_interval_seconds": fields.flush_interval_seconds,
        "filter_event_types": fields.filter_event_types,
        "skip_rejected_batches": fields.skip_rejected_batches,
    })
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Creates a destination whose cursor is the org's chain head when the transaction reads it:
/// it receives what happens from now on, starting with its own creation event.
pub async fn create(
    store: &Store,
    org_id: &str,
    id: &str,
    fields: DestinationFields,
    actor: &Actor,
) -> Result<DestinationRow> {
    const HEAD: &str = "SELECT last_seq FROM audit_heads WHERE org_id = $1";
    let sql = format!(
        "INSERT INTO siem_destinations ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, \
         $10, $11, $12, $13, $13, $14, NULL, NULL, 0, $15, NULL, NULL, NULL, NULL)"
    );
    let now = time::now();
    let mut tx = store.begin().await?;
    on_tx!(&mut tx, |conn| {
        let head: Option<i64> = sqlx::query_scalar(HEAD)
            .bind(org_id)
            .fetch_optional(&mut *conn)
            .await?;
        let cursor = head.unwrap_or(0);
        sqlx::query(&sql)
            .bind(org_id)
            .bind(id)
            .bind(&fields.name)
            .bind(&fields.destination_type)
            .bind(&fields.endpoint_url)
            .bind(&fields.auth_token)
            .bind(&fields.auth_token_sealed_with)
            .bind(fields.is_active)
            .bind(fields.batch_size)
            .bind(fields.flush_interval_seconds)
            .bind(super::to_json_text(&fields.filter_event_types))
            .bind(fields.skip_rejected_batches)
            .bind(now)
            .bind(cursor)
            .bind(now_ms())
            .execute(&mut *conn)
            .await?;
    });
    tx.commit_audited(Some(NewEvent {
        org_id,
        kind: "siem.destination.created",
        actor,
        subject_type: "siem_destination",
        subject_id: id,
        detail: detail(&fields),
        created_at: now,
    }))
    .await?;
    get(store, org_id, id).await?.ok_or_else(|| {
        super::Error::Corrupt(format!("destination {id} vanished after its creation"))
    })
}

pub async fn list(store: &Store, org_id: &str) -> Result<Vec<DestinationRow>> {
    let sql = format!("SELECT {COLUMNS} FROM siem_destinations WHERE org_id = $1 ORDER BY id");
    Ok(on_db!(store, |pool| sqlx::query_as::<_, DestinationRow>(
        &sql
    )
    .bind(org_id)
    .fetch_all(pool)
    .await?))
}

pub async fn get(store: &Store, org_id: &str, id: &str) -> Result<Option<DestinationRow>> {
    let sql = format!("SELECT {COLUMNS} FROM siem_destinations WHERE org_id = $1 AND id = $2");
    Ok(on_db!(store, |pool| sqlx::query_as::<_, DestinationRow>(
        &sql
    )
    .bind(org_id)
    .bind(id)
    .fetch_optional(pool)
    .await?))
}

/// Replaces the destination's settings with `fields`. A change ends any backoff (the next
/// attempt is due now: the change may be the fix); a new filter also drops the pending batch's
/// boundaries, whose content it would change. `None` when the org has no such destination.
pub async fn update(
    store: &Store,
    org_id: &str,
    id: &str,
    fields: DestinationFields,
    filter_changed: bool,
    token_changed: bool,
    actor: &Actor,
) -> Result<Option<DestinationRow>> {
    const SQL: &str = "UPDATE siem_destinations SET name = $3, endpoint_url = $4, \
                       auth_token = $5, auth_token_sealed_with = $6, is_active = $7, \
                       batch_size = $8, flush_interval_seconds = $9, filter_event_types = $10, \
                       skip_rejected_batches = $11, updated_at = $12, consecutive_failures = 0, \
                       next_attempt_at_ms = $13, \
                       pending_first_seq = CASE WHEN $14 THEN NULL ELSE pending_first_seq END, \
                       pending_last_seq = CASE WHEN $14 THEN NULL ELSE pending_last_seq END \
                       WHERE org_id = $1 AND id = $2";
    let now = time::now();
    let mut tx = store.begin().await?;
    let changed = on_tx!(&mut tx, |conn| sqlx::query(SQL)
        .bind(org_id)
        .bind(id)
        .bind(&fields.name)
        .bind(&fields.endpoint_url)
        .bind(&fields.auth_token)
        .bind(&fields.auth_token_sealed_with)
        .bind(fields.is_active)
        .bind(fields.batch_size)
        .bind(fields.flush_interval_seconds)
        .bind(super::to_json_text(&fields.filter_event_types))
        .bind(fields.skip_rejected_batches)
        .bind(now)
        .bind(now_ms())
        .bind(filter_changed)
        .execute(&mut *conn)
        .await?
        .rows_affected());
    if changed == 0 {
        return Ok(None);
    }
    let mut event_detail = detail(&fields);
    event_detail["auth_token_changed"] = serde_json::Value::Bool(token_changed);
    tx.commit_audited(Some(NewEvent {
        org_id,
        kind: "siem.destination.updated",
        actor,
        subject_type: "siem_destination",
        subject_id: id,
        detail: event_detail,
        created_at: now,
    }))
    .await?;
    get(store, org_id, id).await
}

/// Deletes the destination and its delivery records. `false` when the org has no such
/// destination.
pub async fn delete(store: &Store, org_id: &str, id: &str, actor: &Actor) -> Result<bool> {
    const RECORDS: &str = "DELETE FROM siem_deliveries WHERE org_id = $1 AND destination_id = $2";
    const SQL: &str = "DELETE FROM siem_destinations WHERE org_id = $1 AND id = $2";
    let now = time::now();
    let mut tx = store.begin().await?;
    let deleted = on_tx!(&mut tx, |conn| {
        sqlx::query(RECORDS)
            .bind(org_id)
            .bind(id)
            .execute(&mut *conn)
            .await?;
        sqlx::query(SQL)
            .bind(org_id)
            .bind(id)
            .execute(&mut *conn)
            .await?
            .rows_affected()
    });
    if deleted == 0 {
        return Ok(false);
    }
    tx.commit_audited(Some(NewEvent {
        org_id,
        kind: "siem.destination.deleted",
        actor,
        subject_type: "siem_destination",
        subject_id: id,
        detail: serde_json::json!({}),
        created_at: now,
    }))
    .await?;
    Ok(true)
}

// ---- delivery records ------------------------------------------------------------------------

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeliveryRow {
    pub id: String,
    pub org_id: String,
    pub destination_id: String,
    pub purpose: String,
    pub batch_size: i64,
    pub first_seq: Option<i64>,
    pub last_seq: Option<i64>,
    pub idempotency_key: String,
    pub status: String,
    pub status_code: Option<i64>,
    pub error_message: Option<String>,
    pub delivered_at: i64,
}

impl DeliveryRow {
    pub fn into_api(self) -> DeliveryRecord {
        DeliveryRecord {
            id: self.id,
            destination_id: self.destination_id,
            batch_size: self.batch_size,
            status: self.status,
            status_code: self.status_code.and_then(|code| u16::try_from(code).ok()),
            error_message: self.error_message,
            delivered_at: time::format(self.delivered_at),
            purpose: self.purpose,
            first_seq: self.first_seq,
            last_seq: self.last_seq,
            idempotency_key: self.idempotency_key,
            extra: Default::default(),
        }
    }
}

const DELIVERY_COLUMNS: &str = "id, org_id, destination_id, purpose, batch_size, first_seq, \
                                last_seq, idempotency_key, status, status_code, error_message, \
                                delivered_at";

async fn insert_delivery(tx: &mut super::Tx, row: &DeliveryRow) -> Result<()> {
    let sql = format!(
        "INSERT INTO siem_deliveries ({DELIVERY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, \
         $8, $9, $10, $11, $12)"
    );
    on_tx!(tx, |conn| {
        sqlx::query(&sql)
            .bind(&row.id)
            .bind(&row.org_id)
            .bind(&row.destination_id)
            .bind(&row.purpose)
            .bind(row.batch_size)
            .bind(row.first_seq)
            .bind(row.last_seq)
            .bind(&row.idempotency_key)
            .bind(&row.status)
            .bind(row.status_code)
            .bind(&row.error_message)
            .bind(row.delivered_at)
            .execute(&mut *conn)
            .await?;
    });
    Ok(())
}

/// The destination's newest `limit` records, newest first, and how many it has in all.
pub async fn deliveries(
    store: &Store,
    org_id: &str,
    destination_id: &str,
    limit: u32,
) -> Result<(Vec<DeliveryRow>, u64)> {
    let sql = format!(
        "SELECT {DELIVERY_COLUMNS} FROM siem_deliveries WHERE destination_id = $1 AND org_id = $2 \
         ORDER BY id DESC LIMIT $3"
    );
    const COUNT: &str =
        "SELECT COUNT(*) FROM siem_deliveries WHERE destination_id = $1 AND org_id = $2";
    let (rows, total): (Vec<DeliveryRow>, i64) = on_db!(store, |pool| {
        let rows = sqlx::query_as::<_, DeliveryRow>(&sql)
            .bind(destination_id)
            .bind(org_id)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?;
        let total: i64 = sqlx::query_scalar(COUNT)
            .bind(destination_id)
            .bind(org_id)
            .fetch_one(pool)
            .await?;
        (rows, total)
    });
    Ok((rows, u64::try_from(total).unwrap_or(0)))
}

/// Deletes the delivery records older than `before` (unix seconds); how many went.
pub async fn prune_deliveries(store: &Store, before: i64) -> Result<u64> {
    const SQL: &str = "DELETE FROM siem_deliveries WHERE delivered_at < $1";
    let mut tx = store.begin().await?;
    let deleted = on_tx!(&mut tx, |conn| sqlx::query(SQL)
        .bind(before)
        .execute(&mut *conn)
        .await?
        .rows_affected());
    tx.commit().await?;
    Ok(deleted)
}

/// Records a test delivery (it moves no cursor).
pub async fn record_test(store: &Store, row: &DeliveryRow) -> Result<()> {
    let mut tx = store.begin().await?;
    insert_delivery(&mut tx, row).await?;
    tx.commit().await
}

// ---- the delivery engine's reads and conditional writes -------------------------------------

/// Active destinations due for an attempt (backoff over) whose org's chain has grown past their
/// cursor and that no live lease holds: one indexed read per poll, whatever the number of
/// destinations waiting for nothing.
pub async fn due(store: &Store, now_ms: i64, limit: u32) -> Result<Vec<DestinationRow>> {
    let columns = COLUMNS
        .split(", ")
        .map(|column| format!("d.{}", column.trim()))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "SELECT {columns} FROM siem_destinations d JOIN audit_heads h ON h.org_id = d.org_id \
         WHERE d.is_active AND d.next_attempt_at_ms <= $1 AND h.last_seq > d.cursor_seq \
         AND (d.lease_owner IS NULL OR d.lease_expires_at_ms <= $1) \
         ORDER BY d.next_attempt_at_ms LIMIT $2"
    );
    Ok(on_db!(store, |pool| sqlx::query_as::<_, DestinationRow>(
        &sql
    )
    .bind(now_ms)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?))
}

/// Up to `limit` of the org's events with `after_seq < seq <= until_seq`, in chain order (a
/// range scan of the primary key).
pub async fn events_after(
    store: &Store,
    org_id: &str,
    after_seq: i64,
    until_seq: i64,
    limit: u32,
) -> Result<Vec<EventRow>> {
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM audit_events WHERE org_id = $1 AND seq > $2 AND seq <= $3 \
         ORDER BY seq LIMIT $4"
    );
    Ok(on_db!(store, |pool| sqlx::query_as::<_, EventRow>(&sql)
        .bind(org_id)
        .bind(after_seq)
        .bind(until_seq)
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?))
}

/// Takes the lease of destination `id` for `owner` until `lease_until_ms`, if it is free,
/// expired or already `owner`'s, and the cursor is still `expected_cursor`; records the batch
/// `first_seq..=last_seq` as pending unless a pending batch is already recorded (which then
/// stays: a resend keeps its boundaries). Returns the row as it stands after the claim.
pub async fn claim(
    store: &Store,
    id: &str,
    owner: &str,
    now_ms: i64,
    lease_until_ms: i64,
    expected_cursor: i64,
    batch: (i64, i64),
) -> Result<Option<DestinationRow>> {
    let sql = format!(
        "UPDATE siem_destinations SET lease_owner = $2, lease_expires_at_ms = $4, \
         pending_first_seq = COALESCE(pending_first_seq, $6), \
         pending_last_seq = COALESCE(pending_last_seq, $7) \
         WHERE id = $1 AND is_active AND cursor_seq = $5 \
         AND (lease_owner IS NULL OR lease_expires_at_ms <= $3 OR lease_owner = $2) \
         RETURNING {COLUMNS}"
    );
    let mut tx = store.begin().await?;
    let row = on_tx!(&mut tx, |conn| sqlx::query_as::<_, DestinationRow>(&sql)
        .bind(id)
        .bind(owner)
        .bind(now_ms)
        .bind(lease_until_ms)
        .bind(expected_cursor)
        .bind(batch.0)
        .bind(batch.1)
        .fetch_optional(&mut *conn)
        .await?);
    tx.commit().await?;
    Ok(row)
}

/// Moves the cursor of a destination over events none of which its filter selects, when the
/// cursor is still `expected_cursor`, the pending batch is still `expected_pending` (its last
/// seq; `None`: none), and no other replica holds the lease. Clears the pending batch.
pub async fn pass_over(
    store: &Store,
    id: &str,
    owner: &str,
    now_ms: i64,
    expected_cursor: i64,
    expected_pending: Option<i64>,
    new_cursor: i64,
) -> Result<bool> {
    const SQL: &str = "UPDATE siem_destinations SET cursor_seq = $5, pending_first_seq = NULL, \
                       pending_last_seq = NULL \
                       WHERE id = $1 AND cursor_seq = $4 \
                       AND COALESCE(pending_last_seq, -1) = $6 \
                       AND (lease_owner IS NULL OR lease_expires_at_ms <= $3 OR lease_owner = $2)";
    let mut tx = store.begin().await?;
    let changed = on_tx!(&mut tx, |conn| sqlx::query(SQL)
        .bind(id)
        .bind(owner)
        .bind(now_ms)
        .bind(expected_cursor)
        .bind(new_cursor)
        .bind(expected_pending.unwrap_or(-1))
        .execute(&mut *conn)
        .await?
        .rows_affected());
    tx.commit().await?;
    Ok(changed == 1)
}

/// How an attempt at a pending batch ended, for [`finish`].
#[derive(Debug, Clone)]
pub enum Settlement {
    /// Delivered (or rejected and skipped): the cursor moves to `cursor`, the backoff ends.
    Advance { cursor: i64, delivered: bool },
    /// Not delivered: the batch stays pending, the next attempt is due at `next_attempt_at_ms`.
    Retry { next_attempt_at_ms: i64 },
}

/// Records the attempt `record` and settles the batch, in one transaction, while `owner` holds
/// the lease and the cursor is still `expected_cursor`; releases the lease. `false` (and
/// nothing written) when the lease was lost: another replica owns the batch now.
pub async fn finish(
    store: &Store,
    id: &str,
    owner: &str,
    expected_cursor: i64,
    settlement: Settlement,
    record: &DeliveryRow,
) -> Result<bool> {
    const ADVANCE: &str = "UPDATE siem_destinations SET cursor_seq = $4, \
                           pending_first_seq = NULL, pending_last_seq = NULL, \
                           consecutive_failures = 0, next_attempt_at_ms = $5, \
                           last_delivered_at = CASE WHEN $6 THEN $7 ELSE last_delivered_at END, \
                           last_error = $8, lease_owner = NULL, lease_expires_at_ms = NULL \
                           WHERE id = $1 AND lease_owner = $2 AND cursor_seq = $3";
    const RETRY: &str = "UPDATE siem_destinations SET \
                         consecutive_failures = consecutive_failures + 1, \
                         next_attempt_at_ms = $4, last_error = $5, lease_owner = NULL, \
                         lease_expires_at_ms = NULL \
                         WHERE id = $1 AND lease_owner = $2 AND cursor_seq = $3";
    let mut tx = store.begin().await?;
    let changed = match settlement {
        Settlement::Advance { cursor, delivered } => {
            on_tx!(&mut tx, |conn| sqlx::query(ADVANCE)
                .bind(id)
                .bind(owner)
                .bind(expected_cursor)
                .bind(cursor)
                .bind(now_ms())
                .bind(delivered)
                .bind(record.delivered_at)
                .bind(if delivered {
                    None
                } else {
                    record.error_message.clone()
                })
                .execute(&mut *conn)
                .await?
                .rows_affected())
        }
        Settlement::Retry { next_attempt_at_ms } => {
            on_tx!(&mut tx, |conn| sqlx::query(RETRY)
                .bind(id)
                .bind(owner)
                .bind(expected_cursor)
                .bind(next_attempt_at_ms)
                .bind(&record.error_message)
                .execute(&mut *conn)
                .await?
                .rows_affected())
        }
    };
    if changed != 1 {
        // Dropped without commit: rolled back.
        return Ok(false);
    }
    insert_delivery(&mut tx, record).await?;
    tx.commit().await?;
    Ok(true)
}

/// Gives the lease back without settling anything (the batch planned was not the one pending).
pub async fn release(store: &Store, id: &str, owner: &str) -> Result<()> {
    const SQL: &str = "UPDATE siem_destinations SET lease_owner = NULL, lease_expires_at_ms = NULL \
                       WHERE id = $1 AND lease_owner = $2";
    let mut tx = store.begin().await?;
    on_tx!(&mut tx, |conn| {
        sqlx::query(SQL)
            .bind(id)
            .bind(owner)
            .execute(&mut *conn)
            .await?;
    });
    tx.commit().await
}

/// Gives back every lease `owner` holds (a replica shutting down), so another replica, or the
/// next start, carries on at once rather than when the leases expire.
pub async fn release_all(store: &Store, owner: &str) -> Result<()> {
    const SQL: &str = "UPDATE siem_destinations SET lease_owner = NULL, lease_expires_at_ms = NULL \
                       WHERE lease_owner = $1";
    let mut tx = store.begin().await?;
    on_tx!(&mut tx, |conn| {
        sqlx::query(SQL).bind(owner).execute(&mut *conn).await?;
    });
    tx.commit().await
}
