//! `POST /api/v1/agenttrust/check` (and `/api/v1/actions/check`): the Guardian pre-flight
//! check. A thin door onto [`super::check`]: the acting agent comes from the credentials (an
//! agent token's or WIMSE token's own agent, or the body's with an org key — refused when the
//! org requires sender-constrained tokens), and a denial is a 200 with `allowed: false`.

use std::time::Instant;

use axum::Json;
use axum::extract::State;

use crate::api::actions::{CheckDecision, CheckRequest};

use super::AppState;
use super::auth::Caller;
use super::check::{self, params::RawCheck};
use super::error::ApiResult;
use super::extract::JsonBody;

pub async fn check(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(request): JsonBody<CheckRequest>,
) -> ApiResult<Json<CheckDecision>> {
    let started = Instant::now();
    let agent_id = caller.acting_agent(request.agent_id.as_deref())?;
    let decision = check::check(
        &state,
        &caller,
        RawCheck {
            agent_id: &agent_id,
            action_name: request.resolved_action_name(),
            input_summary: request.resolved_input_summary(),
            action_effect: request.action_effect.as_deref(),
            session_id: request.session_id.as_deref(),
        },
        started,
    )
    .await?;
    Ok(Json(decision))
}
