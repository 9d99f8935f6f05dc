//! Org API keys over HTTP (admin keys only): create (the secret is shown once), list, revoke.
//! A revoked key stops working on its next request: authentication reads the key every time.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use crate::api::keys::{CreateKeyRequest, CreatedKey, KeyList, RevokeKeyResponse};
use crate::store;

use super::AppState;
use super::auth::Caller;
use super::bootstrap;
use super::error::{ApiError, ApiResult};
use super::extract::{JsonBody, PathId};
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

pub async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<KeyList>> {
    caller.require_admin()?;
    let keys = store::keys::list(&state.store, &caller.org_id)
        .await?
        .into_iter()
        .map(store::keys::KeyRow::into_api)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(KeyList {
        keys,
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
