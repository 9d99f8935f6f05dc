//! Telemetry: agents report what happened after their tool calls; admins list the events.

use axum::Json;
use axum::extract::State;

use crate::api::telemetry::{
    DEFAULT_PAGE_SIZE, EventPage, EventQuery, MAX_EVENTS_PER_REPORT, MAX_PAGE_SIZE, ReportRequest,
    ReportResponse,
};
use crate::api::time;
use crate::guardian::canonical;
use crate::store;
use crate::store::telemetry::{EventFilter, EventRow, ReportJob};

use super::AppState;
use super::agents::not_found as agent_not_found;
use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::extract::{JsonBody, QueryParams};
use super::rate_limit::{AgentRateLimit, Refusal};
use super::validate;

const MAX_EVENT_TYPE_CHARACTERS: usize = 64;

pub async fn report(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(request): JsonBody<ReportRequest>,
) -> ApiResult<Json<ReportResponse>> {
    let agent_id = caller.reporting_agent(request.agent_id.as_deref())?;
    if let Some(session_id) = &request.session_id {
        validate::identifier("session_id", session_id)?;
    }
    if request.events.len() > MAX_EVENTS_PER_REPORT {
        return Err(ApiError::validation(format!(
            "{} events in one report; at most {MAX_EVENTS_PER_REPORT} are allowed",
            request.events.len()
        )));
    }
    state
        .caches
        .agent(&state.store, &caller.org_id, &agent_id)
        .await?
        .ok_or_else(|| agent_not_found(&agent_id))?;

    let received_at = time::now();
    let mut rows = Vec::with_capacity(request.events.len());
    for (index, event) in request.events.into_iter().enumerate() {
        let field = |name: &str| format!("events[{index}].{name}");
        let event_type = event.event_type.trim();
        if event_type.is_empty() || event_type.chars().count() > MAX_EVENT_TYPE_CHARACTERS {
            return Err(ApiError::validation(format!(
                "{} must be 1 to {MAX_EVENT_TYPE_CHARACTERS} characters",
                field("event_type")
            )));
        }
        // The canonical action name, as the check recorded it, so telemetry and decisions join.
        let tool_name = event
            .tool_name
            .as_deref()
            .map(|tool_name| {
                let canonical = canonical::action_name(tool_name).map_err(|problem| {
                    ApiError::validation(format!("{} {problem}", field("tool_name")))
                })?;
                validate::name(&field("tool_name"), &canonical)
            })
            .transpose()?;
        if let Some(error_type) = &event.error_type {
            validate::name(&field("error_type"), error_type)?;
        }
        if let Some(event_id) = &event.event_id {
            validate::identifier(&field("event_id"), event_id)?;
        }
        if event.duration_ms.is_some_and(|duration| duration < 0) {
            return Err(ApiError::validation(format!(
                "{} must not be negative",
                field("duration_ms")
            )));
        }
        let occurred_at = match &event.timestamp {
            None => received_at,
            Some(text) => validate::timestamp(&field("timestamp"), text)?,
        };
        // Go omits `success: false`, and `*_start` events carry none: infer from the type.
        let success = event
            .success
            .unwrap_or_else(|| !event_type.ends_with("_error"));
        rows.push(EventRow {
            id: store::new_id(),
            org_id: caller.org_id.clone(),
            agent_id: agent_id.clone(),
            session_id: request.session_id.clone(),
            event_type: event_type.to_string(),
            tool_name,
            duration_ms: event.duration_ms,
            success,
            error_type: event.error_type,
            client_event_id: event.event_id,
            occurred_at,
            received_at,
        });
    }
    if let Some(limit) = &state.settings.telemetry_limit {
        take_from_limit(limit, &caller.org_id, &agent_id, rows.len())?;
    }
    // Only what was stored counts: an event its agent already reported (a retry) is not.
    let lane = rows
        .first()
        .map(|row| row.agent_id.clone())
        .unwrap_or_default();
    let stored = state
        .writer
        .write(
            &lane,
            ReportJob {
                events: rows,
                actor: caller.actor(),
            },
        )
        .await?;
    Ok(Json(ReportResponse {
        accepted: true,
        events_processed: stored,
        extra: Default::default(),
    }))
}

/// Charges a valid report to its agent's telemetry limit: over it, nothing is stored and the
/// caller hears when to retry.
fn take_from_limit(
    limit: &AgentRateLimit,
    org_id: &str,
    agent_id: &str,
    events: usize,
) -> ApiResult<()> {
    match limit.take(org_id, agent_id, events) {
        Ok(()) => Ok(()),
        Err(Refusal::Wait(wait)) => Err(ApiError::rate_limited(
            format!(
                "agent {agent_id} is reporting more than {} telemetry events a second; retry \
                 later",
                limit.per_second()
            ),
            // Whole seconds, rounded up: a client that waits as told is not refused again.
            wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
        )),
        Err(Refusal::TooLarge { burst }) => Err(ApiError::validation(format!(
            "{events} events in one report; this gateway accepts at most {burst} at once from \
             one agent"
        ))),
    }
}

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(query): QueryParams<EventQuery>,
) -> ApiResult<Json<EventPage>> {
    caller.require_admin()?;
    let limit = validate::page_limit(query.limit, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)?;
    let (rows, more) = store::telemetry::list(
        &state.store,
        EventFilter {
            org_id: &caller.org_id,
            agent_id: query.agent_id.as_deref(),
            session_id: query.session_id.as_deref(),
            after_id: query.cursor.as_deref(),
            limit,
        },
    )
    .await?;
    let next_cursor = if more {
        rows.last().map(|row| row.id.clone())
    } else {
        None
    };
    Ok(Json(EventPage {
        events: rows.into_iter().map(EventRow::into_api).collect(),
        next_cursor,
        extra: Default::default(),
    }))
}
