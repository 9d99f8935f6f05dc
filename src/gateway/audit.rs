//! The audit log over HTTP (admin keys only): page through the org's hash-chained events, and
//! verify the chain. Verification walks the chain in bounded pages, so a long log costs time,
//! never memory.

use axum::Json;
use axum::extract::State;

use crate::api::audit::{
    AuditEvent, AuditEventPage, AuditEventQuery, AuditVerification, DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
};
use crate::api::time;
use crate::store;
use crate::store::audit::{EventRow, VERIFY_PAGE_SIZE};

use super::AppState;
use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::extract::QueryParams;
use super::validate;

pub async fn events(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(query): QueryParams<AuditEventQuery>,
) -> ApiResult<Json<AuditEventPage>> {
    caller.require_admin()?;
    let limit = validate::page_limit(query.limit, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)?;
    // The cursor is the sequence number of the last event of the previous page.
    let after_seq = match query.cursor.as_deref() {
        None => 0,
        Some(cursor) => cursor
            .parse::<i64>()
            .ok()
            .filter(|seq| *seq >= 0)
            .ok_or_else(|| {
                ApiError::validation(format!(
                    "cursor {cursor:?} is not a cursor this listing returned"
                ))
            })?,
    };
    // One row more than asked tells whether another page follows.
    let mut rows =
        store::audit::page(&state.store, &caller.org_id, after_seq, i64::MAX, limit + 1).await?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next_cursor = if more {
        rows.last().map(|row| row.seq.to_string())
    } else {
        None
    };
    Ok(Json(AuditEventPage {
        events: rows.into_iter().map(to_wire).collect(),
        next_cursor,
        extra: Default::default(),
    }))
}

pub async fn verify(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<AuditVerification>> {
    caller.require_admin()?;
    let verification =
        store::audit::verify_chain(&state.store, &caller.org_id, VERIFY_PAGE_SIZE).await?;
    if let Some(broken) = &verification.broken {
        tracing::warn!(
            org_id = %caller.org_id,
            seq = broken.seq,
            reason = %broken.reason,
            "the audit chain is broken"
        );
    }
    let broken = verification.broken;
    Ok(Json(AuditVerification {
        valid: broken.is_none(),
        events_checked: verification.events_checked,
        first_broken_event: broken.as_ref().and_then(|broken| broken.event_id.clone()),
        first_broken_seq: broken.as_ref().map(|broken| broken.seq),
        reason: broken.map(|broken| broken.reason),
        extra: Default::default(),
    }))
}

pub(crate) fn to_wire(row: EventRow) -> AuditEvent {
    // The stored detail is the JSON text that was hashed; shown as the object it encodes. A
    // detail that does not parse is shown as its text, so a tampered row can still be read.
    let detail = match serde_json::from_str(&row.detail) {
        Ok(serde_json::Value::Null) => serde_json::Value::Object(Default::default()),
        Ok(value) => value,
        Err(_) => serde_json::Value::String(row.detail.clone()),
    };
    AuditEvent {
        id: row.id,
        org_id: row.org_id,
        seq: row.seq,
        kind: row.kind,
        actor: row.actor,
        subject_type: row.subject_type,
        subject_id: row.subject_id,
        detail,
        created_at: time::format(row.created_at),
        prev_hash: row.prev_hash,
        hash: row.hash,
        extra: Default::default(),
    }
}
