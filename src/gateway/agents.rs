//! Agents: register, list, get, revoke, and set the agent's own mode — `read_only` or `locked`
//! in every session of it — or unlock it (admin keys only).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use crate::agent_key::AgentPublicKey;
use crate::api::agents::{
    Agent, AgentList, AgentQuery, CreateAgentRequest, DEFAULT_KEY_GRACE_SECONDS, FRAMEWORKS,
    MAX_KEY_GRACE_SECONDS, RevokeAgentRequest, RevokeAgentResponse, RotateAgentKeyRequest,
    STATUSES, SetAgentModeRequest,
};
use crate::api::policies::SessionMode;
use crate::api::telemetry::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
use crate::store;
use crate::store::changes::Change;

use super::AppState;
use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::extract::{JsonBody, PathId, QueryParams};
use super::validate;

/// The revoke reason when the caller gives none (the SDKs' default).
pub const DEFAULT_REVOKE_REASON: &str = "manual_revocation";

pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(request): JsonBody<CreateAgentRequest>,
) -> ApiResult<(StatusCode, Json<Agent>)> {
    caller.require_admin()?;
    caller.check_org(request.org_id.as_deref())?;
    let name = validate::name("name", &request.name)?;
    let framework = request.framework.as_deref().unwrap_or("custom");
    if !FRAMEWORKS.contains(&framework) {
        return Err(ApiError::validation(format!(
            "framework {framework:?} is not one of {}",
            FRAMEWORKS.join(", ")
        )));
    }
    let capabilities = validate::scope_list("capabilities", &request.capabilities)?;
    let metadata = match request.metadata {
        None | Some(serde_json::Value::Null) => serde_json::Map::new(),
        Some(serde_json::Value::Object(map)) => map,
        Some(_) => return Err(ApiError::validation("metadata must be a JSON object")),
    };
    if let Some(public_key) = &request.public_key {
        AgentPublicKey::from_pem(public_key)
            .map_err(|error| ApiError::validation(error.to_string()))?;
    }
    let row = store::agents::create(
        &state.store,
        store::agents::NewAgent {
            org_id: &caller.org_id,
            name: &name,
            framework,
            capabilities: &capabilities,
            metadata: &metadata,
            public_key: request.public_key.as_deref(),
        },
        &caller.actor(),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(row.into_api()?)))
}

/// `GET /api/v1/agents`: one page (the default size when the SDKs send no `limit`), with
/// `next_cursor` when more follow; the `{"agents": […]}` wrapper the SDKs require.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(query): QueryParams<AgentQuery>,
) -> ApiResult<Json<AgentList>> {
    caller.require_admin()?;
    caller.check_org(query.org_id.as_deref())?;
    let limit = validate::page_limit(query.limit, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)?;
    if let Some(status) = &query.status
        && !STATUSES.contains(&status.as_str())
    {
        return Err(ApiError::validation(format!(
            "unknown status {status:?}: expected one of {}",
            STATUSES.join(", ")
        )));
    }
    let (rows, more) = store::agents::list(
        &state.store,
        store::agents::AgentFilter {
            org_id: &caller.org_id,
            status: query.status.as_deref(),
            name_prefix: query.name_prefix.as_deref(),
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
    let agents = rows
        .into_iter()
        .map(store::agents::AgentRow::into_api)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(AgentList {
        agents,
        next_cursor,
        extra: Default::default(),
    }))
}

pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId,
) -> ApiResult<Json<Agent>> {
    caller.require_admin()?;
    let row = store::agents::get(&state.store, &caller.org_id, &id)
        .await?
        .ok_or_else(|| not_found(&id))?;
    Ok(Json(row.into_api()?))
}

pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId,
    JsonBody(request): JsonBody<RevokeAgentRequest>,
) -> ApiResult<Json<RevokeAgentResponse>> {
    caller.require_admin()?;
    let reason = request.reason.as_deref().unwrap_or(DEFAULT_REVOKE_REASON);
    validate::name("reason", reason)?;
    let revoked = store::agents::revoke(&state.store, &caller.org_id, &id, reason, &caller.actor())
        .await?
        .ok_or_else(|| not_found(&id))?;
    // Committed: this replica's next check and token use see the revocation.
    state.caches.forget(&Change::Agent { id: id.clone() });
    Ok(Json(RevokeAgentResponse {
        success: true,
        agent_id: revoked.agent.id,
        tokens_revoked: revoked.tokens_revoked,
        extra: Default::default(),
    }))
}

/// `PUT /api/v1/agents/{agent_id}/mode`: `standard`, `read_only` or `locked`, binding the agent
/// in every session, new ones too (our extension).
pub async fn set_mode(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId,
    JsonBody(request): JsonBody<SetAgentModeRequest>,
) -> ApiResult<Json<Agent>> {
    caller.require_admin()?;
    let mode: SessionMode = request.mode.parse().map_err(ApiError::validation)?;
    if mode == SessionMode::Elevated {
        return Err(ApiError::validation(
            "an agent's mode is standard, read_only or locked; elevation is granted per session \
             by approvals",
        ));
    }
    change_mode(&state, &caller, &id, mode).await
}

/// `POST /api/v1/agents/{agent_id}/unlock`: back to `standard`, denials so far forgiven.
pub async fn unlock(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId,
) -> ApiResult<Json<Agent>> {
    caller.require_admin()?;
    change_mode(&state, &caller, &id, SessionMode::Standard).await
}

async fn change_mode(
    state: &AppState,
    caller: &Caller,
    id: &str,
    mode: SessionMode,
) -> ApiResult<Json<Agent>> {
    let row = store::agents::set_mode(
        &state.store,
        &caller.org_id,
        id,
        mode.as_str(),
        &caller.actor(),
    )
    .await?
    .ok_or_else(|| not_found(id))?;
    state.caches.forget(&Change::Agent { id: id.to_string() });
    Ok(Json(row.into_api()?))
}

/// `POST /api/v1/agents/{agent_id}/keys/rotate` (our extension): makes `public_key` the
/// agent's key; the key it replaces keeps working for `grace_seconds` (tokens bound to it, DPoP
/// proofs and proofs of possession signed by it), then no more.
pub async fn rotate_key(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId,
    JsonBody(request): JsonBody<RotateAgentKeyRequest>,
) -> ApiResult<Json<Agent>> {
    caller.require_admin()?;
    let key = AgentPublicKey::from_pem(&request.public_key)
        .map_err(|error| ApiError::validation(error.to_string()))?;
    let grace = request.grace_seconds.unwrap_or(DEFAULT_KEY_GRACE_SECONDS);
    if !(0..=MAX_KEY_GRACE_SECONDS).contains(&grace) {
        return Err(ApiError::validation(format!(
            "grace_seconds must be between 0 and {MAX_KEY_GRACE_SECONDS}"
        )));
    }
    let agent = store::agents::get(&state.store, &caller.org_id, &id)
        .await?
        .ok_or_else(|| not_found(&id))?;
    if !agent.is_active() {
        return Err(ApiError::conflict(format!(
            "agent {id} is {}; its key cannot change",
            agent.status
        )));
    }
    if agent.current_thumbprint().as_deref() == Some(key.thumbprint().as_str()) {
        return Err(ApiError::conflict(format!(
            "this key is already agent {id}'s current key"
        )));
    }
    let row = store::agent_keys::rotate_key(
        &state.store,
        &caller.org_id,
        &id,
        store::agent_keys::NewAgentKey {
            public_key: request.public_key.trim(),
            thumbprint: &key.thumbprint(),
            previous_valid_until: crate::api::time::now() + grace,
        },
        &caller.actor(),
    )
    .await?
    .ok_or_else(|| ApiError::conflict(format!("agent {id} was revoked meanwhile")))?;
    state.caches.forget(&Change::Agent { id: id.clone() });
    Ok(Json(row.into_api()?))
}

pub fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("agent {id} not found"))
}
