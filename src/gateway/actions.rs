//! The action check (Guardian pre-flight). Loads what the decision needs, asks the pure
//! [`guardian::decide`], records the decision durably, then answers — a denial is a 200 with
//! `allowed: false`.

use std::time::Instant;

use axum::Json;
use axum::extract::State;

use crate::api::actions::{CheckDecision, CheckRequest, Effect, MAX_INPUT_SUMMARY_BYTES};
use crate::guardian::{self, AgentState, CheckInput, GUARD_TIER_FAST};
use crate::store;

use super::AppState;
use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::extract::JsonBody;
use super::validate;

pub async fn check(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(request): JsonBody<CheckRequest>,
) -> ApiResult<Json<CheckDecision>> {
    let started = Instant::now();
    let agent_id = caller.acting_agent(request.agent_id.as_deref())?;
    validate::identifier("agent_id", &agent_id)?;
    let action_name = request.resolved_action_name();
    validate::name("action_name", action_name)?;
    let input_summary = request.resolved_input_summary();
    if input_summary.len() > MAX_INPUT_SUMMARY_BYTES {
        return Err(ApiError::validation(format!(
            "action_input_summary is {} bytes; summaries are cut to 200 characters by clients \
             and may be at most {MAX_INPUT_SUMMARY_BYTES} bytes",
            input_summary.len()
        )));
    }
    let stated_effect = request
        .action_effect
        .as_deref()
        .map(str::parse::<Effect>)
        .transpose()
        .map_err(|error| ApiError::validation(format!("action_effect: {error}")))?;
    if let Some(session_id) = &request.session_id {
        validate::identifier("session_id", session_id)?;
    }

    let agent = store::agents::get(&state.store, &caller.org_id, &agent_id).await?;
    let agent_state = match &agent {
        None => AgentState::Unknown,
        Some(agent) if !agent.is_active() => AgentState::Revoked,
        Some(_) => AgentState::Active,
    };
    let session = match (&request.session_id, agent_state) {
        (Some(session_id), AgentState::Active) => {
            store::sessions::get(&state.store, &caller.org_id, session_id).await?
        }
        _ => None,
    };
    let session_of_other_agent = session
        .as_ref()
        .is_some_and(|session| session.agent_id != agent_id);

    let decision = guardian::decide(&CheckInput {
        agent: agent_state,
        action_name,
        input_summary,
        stated_effect,
        session_of_other_agent,
    });

    let check_id = store::new_id();
    store::checks::record(
        &state.store,
        store::checks::CheckRecord {
            id: &check_id,
            org_id: &caller.org_id,
            agent_id: &agent_id,
            session_id: request.session_id.as_deref(),
            action_name,
            input_summary,
            effect: decision.effect.as_str(),
            allowed: decision.allowed,
            elevation_required: decision.elevation_required,
            reason: &decision.reason,
            rule: &decision.rule,
            confidence: decision.confidence,
            count_in_session: agent_state == AgentState::Active && !session_of_other_agent,
        },
        &caller.actor(),
    )
    .await?;

    Ok(Json(CheckDecision {
        allowed: decision.allowed,
        check_id,
        confidence: decision.confidence,
        guard_tier: GUARD_TIER_FAST.to_string(),
        latency_ms: started.elapsed().as_millis() as i64,
        reason: decision.reason,
        elevation_required: decision.elevation_required,
        approval_id: None,
        effect: Some(decision.effect),
        rule: Some(decision.rule),
        agent_id: Some(agent_id.clone()),
        session_id: request.session_id.clone(),
        action_name: Some(action_name.to_string()),
        extra: Default::default(),
    }))
}
