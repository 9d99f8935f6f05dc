//! Org API keys over HTTP (admin keys only): create (the secret is shown once), list, get,
//! revoke. A revoked key stops working on its next request: authentication reads the key every
//! time. The org's last active admin key cannot be revoked, and the caller's own key is marked
//! `current` so a client can warn before revoking it.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use crate::api::keys::{
    ApiKey, CreateKeyRequest, CreatedKey, KeyList, KeyQuery, RevokeKeyResponse,
};
use crate::api::telemetry::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
use crate::store;
use crate::store::changes::Change;

use super::AppState;
use super::auth::{Caller, Principal};
use super::bootstrap;
use super::error::{ApiError, ApiResult};
use super::extract::{JsonBody, PathId, QueryParams};
use super::validate;

pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(request): JsonBody<CreateKeyRequest>,
) -> ApiResult<(StatusCode, Json<CreatedKey>)> {
    caller.require_admin()?;
    let name = match &request.name {
        Some(name) => validate::name("name", name)?,
        None => String::new(),
    };
    let created = bootstrap::mint_key(
        &state.store,
        &caller.org_id,
        request.role,
        &name,
        &caller.actor(),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// `GET /api/v1/keys`: one page, with `next_cursor` when more follow.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(query): QueryParams<KeyQuery>,
) -> ApiResult<Json<KeyList>> {
    caller.require_admin()?;
    let limit = validate::page_limit(query.limit, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)?;
    let (rows, more) =
        store::keys::list(&state.store, &caller.org_id, query.cursor.as_deref(), limit).await?;
    let next_cursor = if more {
        rows.last().map(|row| row.id.clone())
    } else {
        None
    };
    let keys = rows
        .into_iter()
        .map(|row| to_wire(row, &caller))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(KeyList {
        keys,
        next_cursor,
        extra: Default::default(),
    }))
}

pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId,
) -> ApiResult<Json<ApiKey>> {
    caller.require_admin()?;
    let row = store::keys::get(&state.store, &caller.org_id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("API key {id} not found")))?;
    Ok(Json(to_wire(row, &caller)?))
}

/// A stored key as listed, marked `current` when it is the caller's own.
fn to_wire(row: store::keys::KeyRow, caller: &Caller) -> ApiResult<ApiKey> {
    let current = matches!(&caller.principal, Principal::Key { id, .. } if *id == row.id);
    let mut key = row.into_api()?;
    key.current = current;
    Ok(key)
}

/// Refuses to revoke the org's last active admin key (409 saying how to make another first).
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId,
) -> ApiResult<Json<RevokeKeyResponse>> {
    caller.require_admin()?;
    store::keys::revoke(&state.store, &caller.org_id, &id, &caller.actor())
        .await?
        .ok_or_else(|| ApiError::not_found(format!("API key {id} not found")))?;
    // Committed: from this answer on, this replica refuses the key (others on the notice).
    state.caches.forget(&Change::ApiKey { id: id.clone() });
    Ok(Json(RevokeKeyResponse {
        success: true,
        id,
        extra: Default::default(),
    }))
}
