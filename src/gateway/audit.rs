//! The audit log over HTTP (admin keys only): page through the org's hash-chained events with
//! filters, read one, follow the chain live (Server-Sent Events, resumable with
//! `Last-Event-ID`), verify the chain or a range of it, and the signed checkpoints of its head
//! (made periodically by [`sign_checkpoints`], or on demand before an export). Verification
//! walks the chain in bounded pages, so a long log costs time, never memory.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;

use crate::api::audit::{
    AuditCheckpoint, AuditCheckpointPage, AuditCheckpointQuery, AuditEvent, AuditEventPage,
    AuditEventQuery, AuditVerification, AuditVerifyQuery, CHECKPOINT_TYPE, CheckpointClaims,
    DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE,
};
use crate::api::time;
use crate::audit_proof;
use crate::store::audit::{
    CheckpointRow, EventFilter, EventRow, KindPattern, Position, VERIFY_PAGE_SIZE, VerifyRange,
};
use crate::store::{self, Db};

use super::AppState;
use super::auth::{Caller, Principal};
use super::error::{ApiError, ApiResult};
use super::extract::QueryParams;
use super::validate;

/// Most kinds one filter names.
const MAX_KINDS: usize = 32;
/// Events a stream reads per query.
const STREAM_PAGE: u32 = 200;
/// How long a stream with nothing to send waits before reading again when no local commit woke
/// it: on PostgreSQL other replicas append too, and their commits wake no one here.
const STREAM_RECHECK_POSTGRES: Duration = Duration::from_secs(1);
const STREAM_RECHECK_SQLITE: Duration = Duration::from_secs(10);
/// How often a stream checks that the key it was opened with is still valid, besides at once
/// when this replica revokes a key or hears that another did: the safety net for what no notice
/// covers (a key revoked with SQL by hand, or one whose notice was lost).
const STREAM_REAUTHORIZE: Duration = Duration::from_secs(15);

pub async fn events(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(query): QueryParams<AuditEventQuery>,
) -> ApiResult<Json<AuditEventPage>> {
    caller.require_admin()?;
    let limit = validate::page_limit(query.limit, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)?;
    let filter = filter(&query)?;
    // The cursor is the sequence number of the last event of the previous page.
    let cursor = match query.cursor.as_deref() {
        None => None,
        Some(cursor) => Some(
            cursor
                .parse::<i64>()
                .ok()
                .filter(|seq| *seq >= 0)
                .ok_or_else(|| {
                    ApiError::validation(format!(
                        "cursor {cursor:?} is not a cursor this listing returned"
                    ))
                })?,
        ),
    };
    let position = match query.order.as_deref() {
        None | Some("asc") => Position::After(cursor.or(query.after_seq).unwrap_or(0).max(0)),
        Some("desc") => Position::Before(cursor.unwrap_or(i64::MAX)),
        Some(other) => {
            return Err(ApiError::validation(format!(
                "order {other:?} must be asc or desc"
            )));
        }
    };
    // One row more than asked tells whether another page follows.
    let mut rows =
        store::audit::list_filtered(&state.store, &caller.org_id, position, &filter, limit + 1)
            .await?;
    let next_cursor = cut_page(&mut rows, limit).map(|row| row.seq.to_string());
    Ok(Json(AuditEventPage {
        events: rows.into_iter().map(to_wire).collect(),
        next_cursor,
        extra: Default::default(),
    }))
}

pub async fn event(
    State(state): State<AppState>,
    caller: Caller,
    Path(event_id): Path<String>,
) -> ApiResult<Json<AuditEvent>> {
    caller.require_admin()?;
    let row = store::audit::find(&state.store, &caller.org_id, &event_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no audit event {event_id}")))?;
    Ok(Json(to_wire(row)))
}

/// `GET /api/v1/audit/stream`: every event appended from now on (or after the `Last-Event-ID`
/// the client saw last, or `after_seq`) that the filters keep, as Server-Sent Events named
/// `audit` whose `id` is the event's sequence number, so a client that reconnects with
/// `Last-Event-ID` misses nothing and sees nothing twice.
pub async fn stream(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    QueryParams(query): QueryParams<AuditEventQuery>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    caller.require_admin()?;
    let filter = filter(&query)?;
    let last_event_id = match headers.get("last-event-id") {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|text| text.trim().parse::<i64>().ok())
                .filter(|seq| *seq >= 0)
                .ok_or_else(|| {
                    ApiError::validation(
                        "Last-Event-ID must be the id (a sequence number) of an event this \
                         stream sent",
                    )
                })?,
        ),
    };
    let start = match last_event_id.or(query.after_seq) {
        Some(seq) => seq.max(0),
        None => {
            store::audit::head(&state.store, &caller.org_id)
                .await?
                .unwrap_or_default()
                .0
        }
    };
    // `require_admin` let only an API key through.
    let Principal::Key { id: key_id, .. } = caller.principal.clone() else {
        return Err(ApiError::internal());
    };
    let recheck = match state.store.db() {
        Db::Sqlite(_) => STREAM_RECHECK_SQLITE,
        Db::Postgres(_) => STREAM_RECHECK_POSTGRES,
    };
    // The key is checked once more when the stream starts: a revocation between the extractor's
    // check and this subscription would otherwise wait for the periodic re-check.
    let key_revocations = state.caches.key_revocations();
    let revocations_checked = key_revocations.borrow().wrapping_sub(1);
    let follower = Follower {
        appended: state.store.audit_appended(),
        revocations_checked,
        key_revocations,
        store: state.store,
        org_id: caller.org_id,
        key_id,
        filter,
        position: start,
        pending: std::collections::VecDeque::new(),
        recheck,
        authorized_at: tokio::time::Instant::now(),
    };
    let events = futures_util::stream::unfold(follower, |mut follower| async move {
        let row = follower.next().await?;
        let id = row.seq.to_string();
        let data = serde_json::to_string(&to_wire(row)).unwrap_or_default();
        let event = Event::default().event("audit").id(id).data(data);
        Some((Ok(event), follower))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

/// The state of one stream: where it is in the chain and what it read ahead.
struct Follower {
    store: store::Store,
    appended: tokio::sync::watch::Receiver<u64>,
    /// Wakes the stream to re-check its key when a key may have been revoked.
    key_revocations: tokio::sync::watch::Receiver<u64>,
    /// The count of possible revocations when the key was last checked.
    revocations_checked: u64,
    org_id: String,
    key_id: String,
    filter: EventFilter,
    /// Every event up to here was sent or skipped by the filter.
    position: i64,
    pending: std::collections::VecDeque<EventRow>,
    recheck: Duration,
    authorized_at: tokio::time::Instant,
}

impl Follower {
    /// The next event to send; `None` ends the stream (the key was revoked, or the database
    /// failed: the client reconnects with `Last-Event-ID`).
    async fn next(&mut self) -> Option<EventRow> {
        loop {
            if let Some(row) = self.pending.pop_front() {
                return Some(row);
            }
            // Read with `borrow`, not `has_changed`: the wait below marks the value seen when
            // it wakes on it.
            let revocations = *self.key_revocations.borrow();
            if revocations != self.revocations_checked
                || self.authorized_at.elapsed() >= STREAM_REAUTHORIZE
            {
                self.revocations_checked = revocations;
                let key = store::keys::get(&self.store, &self.org_id, &self.key_id)
                    .await
                    .ok()?;
                if key.is_none_or(|key| key.revoked_at.is_some()) {
                    return None;
                }
                self.authorized_at = tokio::time::Instant::now();
            }
            // Mark the local commits seen before reading, so one that lands during the read
            // wakes the wait below at once.
            self.appended.borrow_and_update();
            // Every event up to the head read first is visible to the read that follows (the
            // head moves in the transaction that inserts them).
            let head = store::audit::head(&self.store, &self.org_id).await.ok()??.0;
            let rows = store::audit::list_filtered(
                &self.store,
                &self.org_id,
                Position::After(self.position),
                &self.filter,
                STREAM_PAGE,
            )
            .await
            .map_err(|error| tracing::warn!(%error, "an audit stream cannot read the log"))
            .ok()?;
            let full = rows.len() == STREAM_PAGE as usize;
            let last = rows.last().map(|row| row.seq);
            self.pending.extend(rows);
            self.position = match (full, last) {
                (true, Some(last)) => last,
                (_, last) => last.unwrap_or(head).max(head),
            };
            if self.pending.is_empty() {
                let wait = self.recheck.min(STREAM_REAUTHORIZE);
                let _ = tokio::time::timeout(wait, async {
                    tokio::select! {
                        _ = self.appended.changed() => {}
                        _ = self.key_revocations.changed() => {}
                    }
                })
                .await;
            }
        }
    }
}

pub async fn verify(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(query): QueryParams<AuditVerifyQuery>,
) -> ApiResult<Json<AuditVerification>> {
    caller.require_admin()?;
    let from_seq = query.from_seq.unwrap_or(1);
    if from_seq < 1 {
        return Err(ApiError::validation("from_seq must be at least 1"));
    }
    if let Some(to_seq) = query.to_seq
        && to_seq < from_seq
    {
        return Err(ApiError::validation(format!(
            "to_seq ({to_seq}) must not be less than from_seq ({from_seq})"
        )));
    }
    let keys = crate::gateway::signing::key_history(&state.store)
        .await
        .map_err(|error| {
            tracing::error!(%error, "cannot read the signing keys");
            ApiError::internal()
        })?;
    let keys: jsonwebtoken::jwk::JwkSet =
        serde_json::from_value(keys).map_err(|_| ApiError::internal())?;
    let judge = |checkpoint: &CheckpointRow| {
        audit_proof::verify_checkpoint(&checkpoint_to_wire(checkpoint.clone()), &keys)
    };
    let range = VerifyRange {
        from_seq,
        to_seq: query.to_seq,
    };
    let verification = store::audit::verify_range(
        &state.store,
        &caller.org_id,
        range,
        VERIFY_PAGE_SIZE,
        &judge,
    )
    .await?;
    if let Some(broken) = &verification.broken {
        tracing::warn!(
            org_id = %caller.org_id,
            seq = broken.seq,
            reason = %broken.reason,
            "the audit chain is broken"
        );
    }
    let to_seq = match query.to_seq {
        Some(to_seq) => Some(to_seq),
        None => store::audit::head(&state.store, &caller.org_id)
            .await?
            .map(|(seq, _)| seq),
    };
    let broken = verification.broken;
    Ok(Json(AuditVerification {
        valid: broken.is_none(),
        events_checked: verification.events_checked,
        checkpoints_checked: verification.checkpoints_checked,
        from_seq: Some(from_seq),
        to_seq,
        first_broken_event: broken.as_ref().and_then(|broken| broken.event_id.clone()),
        first_broken_seq: broken.as_ref().map(|broken| broken.seq),
        reason: broken.map(|broken| broken.reason),
        extra: Default::default(),
    }))
}

pub async fn checkpoints(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(query): QueryParams<AuditCheckpointQuery>,
) -> ApiResult<Json<AuditCheckpointPage>> {
    caller.require_admin()?;
    let limit = validate::page_limit(query.limit, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)?;
    let after_seq = query.after_seq.unwrap_or(0).max(0);
    let mut rows =
        store::audit::checkpoints(&state.store, &caller.org_id, after_seq, i64::MAX, limit + 1)
            .await?;
    let next_after_seq = cut_page(&mut rows, limit).map(|row| row.seq);
    Ok(Json(AuditCheckpointPage {
        checkpoints: rows.into_iter().map(checkpoint_to_wire).collect(),
        next_after_seq,
        extra: Default::default(),
    }))
}

/// `POST /api/v1/audit/checkpoints`: signs the chain's head now (an export ends at it, so all
/// of it can be verified offline). The head already signed answers its checkpoint.
pub async fn create_checkpoint(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<(StatusCode, Json<AuditCheckpoint>)> {
    caller.require_admin()?;
    let (seq, hash) = store::audit::head(&state.store, &caller.org_id)
        .await?
        .ok_or_else(ApiError::internal)?;
    let checkpoint = sign_head(&state, &caller.org_id, seq, &hash).await?;
    Ok((StatusCode::CREATED, Json(checkpoint_to_wire(checkpoint))))
}

/// `GET /api/v1/audit/keys`: every public key the gateway ever signed with (a JWK Set), which
/// `agenttrust audit verify --offline` checks checkpoints against.
pub async fn keys(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<serde_json::Value>> {
    caller.require_admin()?;
    let keys = crate::gateway::signing::key_history(&state.store)
        .await
        .map_err(|error| {
            tracing::error!(%error, "cannot read the signing keys");
            ApiError::internal()
        })?;
    Ok(Json(keys))
}

/// Signs the org's head `(seq, hash)` and stores the checkpoint; when this head is already
/// signed (by another replica, or a moment ago), answers that checkpoint.
async fn sign_head(
    state: &AppState,
    org_id: &str,
    seq: i64,
    hash: &str,
) -> Result<CheckpointRow, ApiError> {
    if let Some(existing) = store::audit::checkpoints_between(&state.store, org_id, seq - 1, seq)
        .await?
        .pop()
    {
        return Ok(existing);
    }
    let now = time::now();
    let claims = CheckpointClaims {
        iss: state.federation.issuer.clone(),
        org_id: org_id.to_string(),
        seq,
        hash: hash.to_string(),
        iat: now,
    };
    let (signature, key_id) = state
        .federation
        .signing
        .sign_typed(&state.store, CHECKPOINT_TYPE, &claims)
        .await
        .map_err(|error| {
            tracing::error!(%error, "cannot sign an audit checkpoint");
            ApiError::internal()
        })?;
    let checkpoint = CheckpointRow {
        org_id: org_id.to_string(),
        seq,
        hash: hash.to_string(),
        created_at: now,
        key_id,
        signature,
    };
    if store::audit::insert_checkpoint(&state.store, &checkpoint).await? {
        return Ok(checkpoint);
    }
    // Another replica signed this head first: its checkpoint is the one stored.
    store::audit::checkpoints_between(&state.store, org_id, seq - 1, seq)
        .await?
        .pop()
        .ok_or_else(ApiError::internal)
}

/// Signs, every `interval`, the head of every org whose chain grew since its last checkpoint;
/// runs for as long as the gateway serves. Several replicas may sign the same head: the first
/// checkpoint stored is kept.
pub async fn sign_checkpoints(state: AppState, interval: Duration) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is at once: let the gateway start first.
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let heads = match store::audit::unsigned_heads(&state.store).await {
            Ok(heads) => heads,
            Err(error) => {
                tracing::warn!(%error, "cannot read the audit chains' heads to sign them");
                continue;
            }
        };
        for (org_id, seq, hash) in heads {
            if let Err(error) = sign_head(&state, &org_id, seq, &hash).await {
                tracing::warn!(org_id = %org_id, seq, message = %error.message, "cannot sign an audit checkpoint");
            }
        }
    }
}

/// Cuts a page fetched with one row more than `limit` back to `limit`, and answers its last row
/// when another page follows (what the next page's cursor names).
fn cut_page<T>(rows: &mut Vec<T>, limit: u32) -> Option<&T> {
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    rows.last().filter(|_| more)
}

/// The filters of a listing or a stream, validated.
fn filter(query: &AuditEventQuery) -> Result<EventFilter, ApiError> {
    let mut kinds = Vec::new();
    if let Some(list) = &query.kind {
        for kind in list
            .split(',')
            .map(str::trim)
            .filter(|kind| !kind.is_empty())
        {
            validate::identifier("kind", kind)?;
            kinds.push(match kind.strip_suffix('*') {
                Some(prefix) if !prefix.is_empty() && !prefix.contains('*') => {
                    KindPattern::Prefix(prefix.to_string())
                }
                Some(_) => {
                    return Err(ApiError::validation(format!(
                        "kind {kind:?}: a kind is exact (check.decided) or a prefix ending in \
                         * (federation.*)"
                    )));
                }
                None if kind.contains('*') => {
                    return Err(ApiError::validation(format!(
                        "kind {kind:?}: * may only end a kind prefix (federation.*)"
                    )));
                }
                None => KindPattern::Exact(kind.to_string()),
            });
        }
        if kinds.len() > MAX_KINDS {
            return Err(ApiError::validation(format!(
                "kind names {} kinds; at most {MAX_KINDS} are allowed",
                kinds.len()
            )));
        }
    }
    if let Some(agent_id) = &query.agent_id {
        validate::identifier("agent_id", agent_id)?;
    }
    let (subject_type, subject_id) = match &query.subject {
        None => (None, None),
        Some(subject) => {
            validate::identifier("subject", subject)?;
            match subject.split_once(':') {
                Some((kind, id)) if !kind.is_empty() && !id.is_empty() => {
                    (Some(kind.to_string()), Some(id.to_string()))
                }
                Some(_) => {
                    return Err(ApiError::validation(format!(
                        "subject {subject:?} must be TYPE or TYPE:ID (agent:agt_…)"
                    )));
                }
                None => (Some(subject.clone()), None),
            }
        }
    };
    let since = query
        .since
        .as_deref()
        .map(|text| validate::timestamp("since", text))
        .transpose()?;
    let until = query
        .until
        .as_deref()
        .map(|text| validate::timestamp("until", text))
        .transpose()?;
    if let (Some(since), Some(until)) = (since, until)
        && until < since
    {
        return Err(ApiError::validation("until must not be earlier than since"));
    }
    if query.after_seq.is_some_and(|seq| seq < 0) {
        return Err(ApiError::validation("after_seq must not be negative"));
    }
    Ok(EventFilter {
        kinds,
        agent_id: query.agent_id.clone(),
        subject_type,
        subject_id,
        since,
        until,
    })
}

pub(crate) fn to_wire(row: EventRow) -> AuditEvent {
    // The stored detail is the JSON text that was hashed; shown as the value it encodes, which
    // writes back to that text (`api::audit::detail_text`), so an export can be verified. A
    // detail that does not parse is shown as its text, so a tampered row can still be read.
    let detail = match serde_json::from_str(&row.detail) {
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

fn checkpoint_to_wire(row: CheckpointRow) -> AuditCheckpoint {
    AuditCheckpoint {
        org_id: row.org_id,
        seq: row.seq,
        hash: row.hash,
        created_at: time::format(row.created_at),
        key_id: row.key_id,
        signature: row.signature,
    }
}
