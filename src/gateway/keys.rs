//! Org API keys over HTTP (admin keys only): create (the secret is shown once), list, revoke.
//! A revoked key stops working on its next request: authentication reads the key every time.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use crate::api::keys::{CreateKeyRequest, CreatedKey, KeyList, KeyQuery, RevokeKeyResponse};
use crate::api::telemetry::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
use crate::store;

use super::AppState;
use super::auth::Caller;
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
        .map(store::keys::KeyRow::into_api)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(KeyList {
        keys,
        next_cursor,
        extra: Default::default(),
    }))
}

pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId,
) -> ApiResult<Json<RevokeKeyResponse>> {
    caller.require_admin()?;
    store::keys::revoke(&state.store, &caller.org_id, &id, &caller.actor())
        .await?
        .ok_or_else(|| ApiError::not_found(format!("API key {id} not found")))?;
    Ok(Json(RevokeKeyResponse {
        success: true,
        id,
        extra: Default::default(),
    }))
}
