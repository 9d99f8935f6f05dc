//! Delegations: create (after every attenuation rule of `guardian::delegation`), list, get,
//! revoke (with every descendant), and open a session from one. Creating and revoking need an
//! admin key; reading and opening a session any org key.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use crate::api::delegations::{
    CreateDelegationRequest, DEFAULT_TTL_SECONDS, Delegation, DelegationCreated, DelegationList,
    DelegationQuery, DelegationRevoked,
};
use crate::api::sessions::Session;
use crate::api::status::DelegationStatus;
use crate::api::telemetry::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
use crate::api::time;
use crate::guardian::delegation::{self, Delegator, Parent, Request};
use crate::store::{self, delegations::DelegationRow};

use super::AppState;
use super::agents::{DEFAULT_REVOKE_REASON, not_found as agent_not_found};
use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::extract::{JsonBody, PathId, QueryParams};
use super::sessions;
use super::validate;

/// The source of a session opened from a delegation (agent-to-agent).
pub const SESSION_SOURCE: &str = "a2a";

pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(request): JsonBody<CreateDelegationRequest>,
) -> ApiResult<(StatusCode, Json<DelegationCreated>)> {
    caller.require_admin()?;
    for (field, value) in [
        ("from_agent_id", &request.from_agent_id),
        ("to_agent_id", &request.to_agent_id),
    ] {
        if value.is_empty() {
            return Err(ApiError::validation(format!("{field} is required")));
        }
    }
    let scope = validate::scope_list("scope", &request.scope)?;
    let restrictions = request.restrictions.clone().unwrap_or_default();
    let from = store::agents::get(&state.store, &caller.org_id, &request.from_agent_id)
        .await?
        .ok_or_else(|| agent_not_found(&request.from_agent_id))?;
    let to = store::agents::get(&state.store, &caller.org_id, &request.to_agent_id)
        .await?
        .ok_or_else(|| agent_not_found(&request.to_agent_id))?;
    let parent = match &request.parent_delegation_id {
        None => None,
        Some(id) => Some(
            store::delegations::get(&state.store, &caller.org_id, id)
                .await?
                .ok_or_else(|| not_found(id))?,
        ),
    };
    let parent_scope = match &parent {
        Some(parent) => parent.scope()?,
        None => Vec::new(),
    };
    // Every agent on the parent's chain: each link's delegator, and the parent's delegate.
    let chain_agents = match &parent {
        None => Vec::new(),
        Some(parent) => {
            let mut agents: Vec<String> = store::delegations::with_ancestors(&state.store, parent)
                .await?
                .into_iter()
                .map(|link| link.from_agent_id)
                .collect();
            agents.push(parent.to_agent_id.clone());
            agents
        }
    };
    let now = time::now();
    let ttl_seconds = request.ttl_seconds.unwrap_or(DEFAULT_TTL_SECONDS);
    let max_ttl_seconds = state.settings.max_delegation_ttl_seconds;
    if ttl_seconds > max_ttl_seconds {
        return Err(ApiError::validation(format!(
            "ttl_seconds {ttl_seconds} is longer than this gateway allows for a delegation \
             ({max_ttl_seconds} s, server option --max-delegation-ttl)"
        )));
    }
    if ttl_seconds > 0 {
        validate::expiry("ttl_seconds", now, ttl_seconds)?;
    }
    let capabilities = from.capabilities()?;
    let policy = state
        .caches
        .policies
        .current(&state.store, &caller.org_id)
        .await?;
    let granted = delegation::attenuate(
        &Request {
            from_agent_id: &from.id,
            to_agent_id: &to.id,
            to_agent_active: to.is_active(),
            scope: &scope,
            ttl_seconds,
            restrictions: &restrictions,
        },
        &Delegator {
            agent_id: &from.id,
            active: from.is_active(),
            capabilities: &capabilities,
        },
        parent
            .as_ref()
            .map(|parent| Parent {
                id: &parent.id,
                active: parent.is_active_at(now),
                to_agent_id: &parent.to_agent_id,
                scope: &parent_scope,
                expires_at: parent.expires_at,
                depth: parent.depth,
                chain_agents: &chain_agents,
            })
            .as_ref(),
        policy.max_delegation_depth(),
        now,
    )
    .map_err(|violation| ApiError::validation(violation.to_string()))?;
    let id = store::new_id();
    let created = store::delegations::create(
        &state.store,
        store::delegations::NewDelegation {
            id: &id,
            org_id: &caller.org_id,
            from_agent_id: &from.id,
            to_agent_id: &to.id,
            parent: parent.as_ref(),
            scope: &scope,
            restrictions: &restrictions,
            depth: granted.depth,
            created_at: now,
            expires_at: granted.expires_at,
        },
        &caller.actor(),
    )
    .await?;
    let row = match created {
        store::delegations::Created::Stored(row) => *row,
        // Something on the chain was revoked between the checks above and the insert.
        store::delegations::Created::ChainEnded(why) => {
            return Err(ApiError::validation(format!("inactive parent: {why}")));
        }
    };
    Ok((
        StatusCode::CREATED,
        Json(DelegationCreated {
            delegation: row.into_api(now)?,
        }),
    ))
}

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(query): QueryParams<DelegationQuery>,
) -> ApiResult<Json<DelegationList>> {
    caller.require_key()?;
    let limit = validate::page_limit(query.limit, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)?;
    let now = time::now();
    let (rows, more) = store::delegations::list(
        &state.store,
        store::delegations::DelegationFilter {
            org_id: &caller.org_id,
            from_agent_id: query.from.as_deref(),
            to_agent_id: query.to.as_deref(),
            active: query.active,
            now,
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
    Ok(Json(DelegationList {
        delegations: rows
            .into_iter()
            .map(|row| row.into_api(now))
            .collect::<Result<_, _>>()?,
        next_cursor,
        extra: Default::default(),
    }))
}

/// The bare delegation (the Rust SDK does not unwrap).
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId,
) -> ApiResult<Json<Delegation>> {
    caller.require_key()?;
    let row = find(&state, &caller, &id).await?;
    Ok(Json(row.into_api(time::now())?))
}

pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId,
) -> ApiResult<Json<DelegationRevoked>> {
    caller.require_admin()?;
    let (_, descendants) = store::delegations::revoke(
        &state.store,
        &caller.org_id,
        &id,
        DEFAULT_REVOKE_REASON,
        &caller.actor(),
    )
    .await?
    .ok_or_else(|| not_found(&id))?;
    Ok(Json(DelegationRevoked {
        status: DelegationStatus::Revoked,
        id,
        descendants_revoked: descendants,
        extra: Default::default(),
    }))
}

/// `POST /api/v1/delegations/{id}/session`: a session of the delegate, bounded by the
/// delegation's scope and restrictions for as long as the delegation lives.
pub async fn session(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId,
) -> ApiResult<(StatusCode, Json<Session>)> {
    caller.require_key()?;
    let row = find(&state, &caller, &id).await?;
    let status = row.status_at(time::now());
    if status != DelegationStatus::Active {
        return Err(ApiError::conflict(format!(
            "delegation {id} is {status}; it cannot open sessions"
        )));
    }
    let scope = row.scope()?;
    let session = store::sessions::create(
        &state.store,
        store::sessions::NewSession {
            org_id: &caller.org_id,
            agent_id: &row.to_agent_id,
            source: SESSION_SOURCE,
            server_id: None,
            scope_ceiling: &scope,
            token_id: None,
            delegation_id: Some(&row.id),
            federation: None,
        },
        &caller.actor(),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(sessions::to_wire(&state, session).await?),
    ))
}

async fn find(state: &AppState, caller: &Caller, id: &str) -> ApiResult<DelegationRow> {
    store::delegations::get(&state.store, &caller.org_id, id)
        .await?
        .ok_or_else(|| not_found(id))
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("delegation {id} not found"))
}
