//! Approvals (elevation): read by any org key, decided once by an admin key — an agent's own
//! runtime key must never approve its own request.

use axum::Json;
use axum::extract::State;

use crate::api::approvals::{Approval, ApprovalList, ApprovalQuery, DecideRequest, DecideResponse};
use crate::api::status::ApprovalStatus;
use crate::api::time;
use crate::store::{
    self,
    approvals::{ApprovalFilter, ApprovalRow, Decided},
};

use super::AppState;
use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::extract::{JsonBody, PathId, QueryParams};
use super::validate;

const STATUSES: &[&str] = &["pending", "approved", "denied", "expired"];
const DEFAULT_LIST_LIMIT: u32 = 100;
const MAX_LIST_LIMIT: u32 = 1000;

pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId,
) -> ApiResult<Json<Approval>> {
    caller.require_key()?;
    let row = store::approvals::get(&state.store, &caller.org_id, &id)
        .await?
        .ok_or_else(|| not_found(&id))?;
    Ok(Json(to_wire(row)))
}

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(query): QueryParams<ApprovalQuery>,
) -> ApiResult<Json<ApprovalList>> {
    caller.require_admin()?;
    if let Some(status) = &query.status
        && !STATUSES.contains(&status.as_str())
    {
        return Err(ApiError::validation(format!(
            "status {status:?} is not one of {}",
            STATUSES.join(", ")
        )));
    }
    let limit = validate::page_limit(query.limit, DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT)?;
    let (rows, more) = store::approvals::list(
        &state.store,
        ApprovalFilter {
            org_id: &caller.org_id,
            status: query.status.as_deref(),
            agent_id: query.agent_id.as_deref(),
            session_id: query.session_id.as_deref(),
            before_id: query.cursor.as_deref(),
            limit,
        },
    )
    .await?;
    let next_cursor = if more {
        rows.last().map(|row| row.id.clone())
    } else {
        None
    };
    Ok(Json(ApprovalList {
        approvals: rows.into_iter().map(to_wire).collect(),
        next_cursor,
        extra: Default::default(),
    }))
}

pub async fn approve(
    state: State<AppState>,
    caller: Caller,
    id: PathId,
    body: JsonBody<DecideRequest>,
) -> ApiResult<Json<DecideResponse>> {
    decide(state, caller, id, body, true).await
}

pub async fn deny(
    state: State<AppState>,
    caller: Caller,
    id: PathId,
    body: JsonBody<DecideRequest>,
) -> ApiResult<Json<DecideResponse>> {
    decide(state, caller, id, body, false).await
}

async fn decide(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId,
    JsonBody(request): JsonBody<DecideRequest>,
    approve: bool,
) -> ApiResult<Json<DecideResponse>> {
    caller.require_admin()?;
    let actor = caller.actor();
    let decided_by = match &request.decided_by {
        Some(name) => validate::name("decided_by", name)?,
        None => actor.0.clone(),
    };
    let policy = state
        .caches
        .policies
        .current(&state.store, &caller.org_id)
        .await?;
    let outcome = store::approvals::decide(
        &state.store,
        &caller.org_id,
        &id,
        approve,
        &decided_by,
        policy.approval_ttl_seconds(),
        &actor,
    )
    .await?;
    match outcome {
        Decided::NotFound => Err(not_found(&id)),
        Decided::NotPending(row) => {
            let status = row.status_at(time::now()).to_string();
            Err(ApiError::conflict(match row.decided_by {
                Some(by) => format!("approval {id} was already {status} by {by}"),
                None => format!("approval {id} is {status} and can no longer be decided"),
            }))
        }
        Decided::Decided(row) => Ok(Json(DecideResponse {
            status: ApprovalStatus::from(row.status.as_str()),
            approval: Some(to_wire(row)),
            extra: Default::default(),
        })),
    }
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("approval {id} not found"))
}

fn to_wire(row: ApprovalRow) -> Approval {
    Approval {
        status: row.status_at(time::now()),
        id: row.id,
        session_id: row.session_id,
        agent_id: row.agent_id,
        org_id: row.org_id,
        action_name: row.action_name,
        action_effect: row.action_effect,
        input_summary: row.input_summary,
        reason: row.reason,
        created_at: time::format(row.created_at),
        expires_at: time::format(row.expires_at),
        decided_by: row.decided_by,
        decided_at: row.decided_at.map(time::format),
        grant_expires_at: row.grant_expires_at.map(time::format),
        extra: Default::default(),
    }
}
