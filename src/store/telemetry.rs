//! Telemetry events: what happened after tool calls. Listed oldest first with a cursor (the last
//! event id of a page: ids are UUID v7, so they sort by time).

use crate::api::telemetry::TelemetryEvent;
use crate::api::time;

use std::collections::HashSet;

use super::audit::{self, Actor, NewEvent};
use super::group_commit::{BoxFuture, Job};
use super::script::{Row, Script, Value, bind_values, column};
use super::{Error, Result, Store, Tx, on_db, on_tx};

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

/// [`insert_batch`] inside `tx`.
pub async fn insert_batch_in(tx: &mut Tx, events: &[EventRow], actor: &Actor) -> Result<u64> {
    let mut stored = 0;
    for chunk in events.chunks(CHUNK) {
        let (sql, values) = insert_statement(chunk);
        let stored_ids: Vec<String> = on_tx!(tx, |conn| {
            let query = bind_values!(sqlx::query_scalar::<_, String>(&sql), &values);
            query.fetch_all(&mut *conn).await?
        });
        stored += audit_stored(tx, chunk, &stored_ids.into_iter().collect(), actor).await?;
    }
    Ok(stored)
}

/// One statement per chunk (12 parameters a row: far below either backend's limit).
const CHUNK: usize = 256;

/// The INSERT of a chunk of events, returning the ids of those stored. A duplicate inside one
/// report is skipped like a retried one.
fn insert_statement(chunk: &[EventRow]) -> (String, Vec<Value>) {
    let sql = format!(
        "INSERT INTO telemetry_events (id, org_id, agent_id, session_id, event_type, \
         tool_name, duration_ms, success, error_type, client_event_id, occurred_at, \
         received_at) VALUES {} \
         ON CONFLICT (org_id, agent_id, client_event_id) DO NOTHING RETURNING id",
        super::values_placeholders(chunk.len(), 12)
    );
    let text = |value: &str| Value::Text(value.to_string());
    let optional = |value: &Option<String>| Value::OptionalText(value.clone());
    let values = chunk
        .iter()
        .flat_map(|event| {
            [
                text(&event.id),
                text(&event.org_id),
                text(&event.agent_id),
                optional(&event.session_id),
                text(&event.event_type),
                optional(&event.tool_name),
                Value::OptionalInteger(event.duration_ms),
                Value::Boolean(event.success),
                optional(&event.error_type),
                optional(&event.client_event_id),
                Value::Integer(event.occurred_at),
                Value::Integer(event.received_at),
            ]
        })
        .collect();
    (sql, values)
}

/// Appends a `telemetry.reported` audit event for each event of `chunk` among `stored_ids`, in
/// the report's order; how many there were.
async fn audit_stored(
    tx: &mut Tx,
    chunk: &[EventRow],
    stored_ids: &HashSet<String>,
    actor: &Actor,
) -> Result<u64> {
    let mut stored = 0;
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
    Ok(stored)
}

/// A report's events, stored through the group-commit writer ([`insert_batch_in`]); answers
/// how many were stored. Its statements do not depend on anything read, so it always
/// speculates: its INSERTs run with its batch-mates' and the stored ids they return are
/// audited.
pub struct ReportJob {
    pub events: Vec<EventRow>,
    pub actor: Actor,
}

impl Job for ReportJob {
    type Output = u64;
    type Error = Error;

    fn run<'a>(&'a self, tx: &'a mut Tx) -> BoxFuture<'a, Result<u64>> {
        Box::pin(insert_batch_in(tx, &self.events, &self.actor))
    }

    fn speculate(&self) -> Option<Script> {
        let mut script = Script::default();
        for chunk in self.events.chunks(CHUNK) {
            let (sql, values) = insert_statement(chunk);
            script.push(sql, values);
        }
        Some(script)
    }

    fn confirm<'a>(
        &'a self,
        tx: &'a mut Tx,
        rows: Vec<Vec<Row>>,
    ) -> BoxFuture<'a, Option<Result<u64>>> {
        Box::pin(async move {
            let mut stored = 0;
            for (chunk, rows) in self.events.chunks(CHUNK).zip(rows) {
                let ids = rows
                    .iter()
                    .map(|row| column::<String>(row, 0))
                    .collect::<Result<HashSet<String>>>();
                let counted = match ids {
                    Ok(ids) => audit_stored(tx, chunk, &ids, &self.actor).await,
                    Err(error) => Err(error),
                };
                match counted {
                    Ok(count) => stored += count,
                    Err(error) => return Some(Err(error)),
                }
            }
            Some(Ok(stored))
        })
    }
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
