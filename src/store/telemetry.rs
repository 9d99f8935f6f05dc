//! Telemetry events: what happened after tool calls. Listed oldest first with a cursor (the last
//! event id of a page: ids are UUID v7, so they sort by time).

use crate::api::telemetry::TelemetryEvent;
use crate::api::time;

use super::audit::{self, Actor, NewEvent};
use super::{Result, Store, Tx, on_db, on_tx};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EventRow {
    pub id: String,
    pub org_id: String,
    pub agent_id: String,
    pub session_id: Option<String>,
    pub event_type: String,
    pub tool_name: Option<String>,
    pub duration_ms: Option<i64>,
    pub success: bool,
    pub error_type: Option<String>,
    /// The reporter's id of the event (unique per agent when given).
    pub client_event_id: Option<String>,
    pub occurred_at: i64,
    pub received_at: i64,
}

impl EventRow {
    pub fn into_api(self) -> TelemetryEvent {
        TelemetryEvent {
            id: self.id,
            agent_id: self.agent_id,
            session_id: self.session_id,
            event_type: self.event_type,
            tool_name: self.tool_name,
            duration_ms: self.duration_ms,
            success: self.success,
            error_type: self.error_type,
            event_id: self.client_event_id,
            timestamp: time::format(self.occurred_at),
            received_at: time::format(self.received_at),
            extra: Default::default(),
        }
    }
}

/// Stores a validated batch in one transaction: all of it or none, and returns how many events
/// were stored. An event whose `client_event_id` its agent already used is skipped (a retried
/// report) and not counted. Each stored event is also a `telemetry.reported` audit event, so it
/// reaches whatever follows the audit log (SIEM destinations, `audit tail`).
pub async fn insert_batch(store: &Store, events: &[EventRow], actor: &Actor) -> Result<u64> {
    let mut tx = store.begin().await?;
    let stored = insert_batch_in(&mut tx, events, actor).await?;
    tx.commit().await?;
    Ok(stored)
}

/// [`insert_batch`] inside `tx` (the gateway queues it on the group-commit writer).
pub async fn insert_batch_in(tx: &mut Tx, events: &[EventRow], actor: &Actor) -> Result<u64> {
    // One statement per chunk (12 parameters a row: far below either backend's limit). A
    // duplicate inside one report is skipped like a retried one.
    const CHUNK: usize = 256;
    let mut stored = 0;
    for chunk in events.chunks(CHUNK) {
        let sql = format!(
            "INSERT INTO telemetry_events (id, org_id, agent_id, session_id, event_type, \
             tool_name, duration_ms, success, error_type, client_event_id, occurred_at, \
             received_at) VALUES {} \
             ON CONFLICT (org_id, agent_id, client_event_id) DO NOTHING RETURNING id",
            super::values_placeholders(chunk.len(), 12)
        );
        let stored_ids = on_tx!(tx, |conn| {
            let mut query = sqlx::query(&sql);
            for event in chunk {
                query = query
                    .bind(&event.id)
                    .bind(&event.org_id)
                    .bind(&event.agent_id)
                    .bind(&event.session_id)
                    .bind(&event.event_type)
                    .bind(&event.tool_name)
                    .bind(event.duration_ms)
                    .bind(event.success)
                    .bind(&event.error_type)
                    .bind(&event.client_event_id)
                    .bind(event.occurred_at)
                    .bind(event.received_at);
            }
            let ids: Vec<String> = query
                .fetch_all(&mut *conn)
                .await?
                .iter()
                .map(|row| sqlx::Row::get::<String, _>(row, 0))
                .collect();
            ids
        });
        let stored_ids: std::collections::HashSet<String> = stored_ids.into_iter().collect();
        for event in chunk.iter().filter(|event| stored_ids.contains(&event.id)) {
            stored += 1;
            audit::append(
                tx,
                NewEvent {
                    org_id: &event.org_id,
                    kind: "telemetry.reported",
                    actor,
                    subject_type: "telemetry",
                    subject_id: &event.id,
                    detail: serde_json::json!({
                        "agent_id": event.agent_id,
                        "session_id": event.session_id,
                        "event_type": event.event_type,
                        "tool_name": event.tool_name,
                        "duration_ms": event.duration_ms,
                        "success": event.success,
                        "error_type": event.error_type,
                        "event_id": event.client_event_id,
                        "occurred_at": time::format(event.occurred_at),
                    }),
                    created_at: event.received_at,
                },
            )
            .await?;
        }
    }
    Ok(stored)
}

/// A page query.
pub struct EventFilter<'a> {
    pub org_id: &'a str,
    pub agent_id: Option<&'a str>,
    pub session_id: Option<&'a str>,
    /// Events strictly after this id.
    pub after_id: Option<&'a str>,
    pub limit: u32,
}

/// One page, oldest first; asks for one row more than the limit to know whether more follow.
pub async fn list(store: &Store, filter: EventFilter<'_>) -> Result<(Vec<EventRow>, bool)> {
    // `CAST($n AS TEXT)` tells PostgreSQL the parameter's type when it is NULL.
    const SQL: &str = "SELECT id, org_id, agent_id, session_id, event_type, tool_name, duration_ms, \
                       success, error_type, client_event_id, occurred_at, received_at \
                       FROM telemetry_events \
                       WHERE org_id = $1 \
                       AND (CAST($2 AS TEXT) IS NULL OR agent_id = $2) \
                       AND (CAST($3 AS TEXT) IS NULL OR session_id = $3) \
                       AND (CAST($4 AS TEXT) IS NULL OR id > $4) \
                       ORDER BY id LIMIT $5";
    let fetch = i64::from(filter.limit) + 1;
    let mut rows = on_db!(store, |pool| sqlx::query_as::<_, EventRow>(SQL)
        .bind(filter.org_id)
        .bind(filter.agent_id)
        .bind(filter.session_id)
        .bind(filter.after_id)
        .bind(fetch)
        .fetch_all(pool)
        .await?);
    let more = rows.len() as i64 > i64::from(filter.limit);
    rows.truncate(filter.limit as usize);
    Ok((rows, more))
}
