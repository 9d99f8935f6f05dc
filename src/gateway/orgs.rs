//! The org's security settings: `GET|PUT /api/v1/orgs/security-settings` (admin keys only).
//! What they turn on is enforced where credentials are judged: `gateway::wimse` (proof of
//! possession at issuance) and `gateway::auth` (sender-constrained tokens).

use axum::Json;
use axum::extract::State;

use crate::api::orgs::{SecuritySettings, UpdateSecuritySettingsRequest};
use crate::store::security_settings::{SecuritySettingsChange, SecuritySettingsRow};
use crate::store::{self, changes::Change};

use super::AppState;
use super::auth::Caller;
use super::error::ApiResult;
use super::extract::JsonBody;

pub async fn get_security_settings(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<SecuritySettings>> {
    caller.require_admin()?;
    let row = store::security_settings::get(&state.store, &caller.org_id).await?;
    Ok(Json(to_api(row)))
}

/// `PUT`: a field left out keeps its value (read and written in one transaction, so a
/// concurrent `PUT` of the other field is not undone).
pub async fn set_security_settings(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(request): JsonBody<UpdateSecuritySettingsRequest>,
) -> ApiResult<Json<SecuritySettings>> {
    caller.require_admin()?;
    let change = SecuritySettingsChange {
        require_proof_of_possession: request.require_proof_of_possession,
        require_sender_constrained_tokens: request.require_sender_constrained_tokens,
    };
    let row =
        store::security_settings::update(&state.store, &caller.org_id, change, &caller.actor())
            .await?;
    state.caches.forget(&Change::SecuritySettings {
        org_id: caller.org_id.clone(),
    });
    Ok(Json(to_api(row)))
}

fn to_api(row: SecuritySettingsRow) -> SecuritySettings {
    SecuritySettings {
        require_proof_of_possession: row.require_proof_of_possession,
        require_sender_constrained_tokens: row.require_sender_constrained_tokens,
        extra: Default::default(),
    }
}
