//! The action check (Guardian pre-flight). Loads what the decision needs, asks the pure
//! [`guardian::decide`], records the decision durably (with the approval it opens), then
//! answers — a denial is a 200 with `allowed: false`.

use std::time::Instant;

use axum::Json;
use axum::extract::State;

use crate::api::actions::{CheckDecision, CheckRequest, Effect, MAX_INPUT_SUMMARY_BYTES};
use crate::api::delegations::Restrictions;
use crate::api::policies::SessionMode;
use crate::api::time;
use crate::guardian::{
    self, AgentFacts, ApprovalAction, ApprovalState, CheckInput, CompiledPolicy, Decision,
    DelegationFacts, GUARD_TIER_FAST, SessionFacts,
};
use crate::store::{self, approvals::ApprovalRow, checks::ApprovalRequest};

use super::AppState;
use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::extract::JsonBody;
use super::validate;

/// A validated check, whatever endpoint it came through.
pub struct CheckParams<'a> {
    pub agent_id: &'a str,
    pub action_name: &'a str,
    pub input_summary: &'a str,
    pub stated_effect: Option<Effect>,
    pub session_id: Option<&'a str>,
}

impl<'a> CheckParams<'a> {
    pub fn validate(
        agent_id: &'a str,
        action_name: &'a str,
        input_summary: &'a str,
        action_effect: Option<&str>,
        session_id: Option<&'a str>,
    ) -> ApiResult<CheckParams<'a>> {
        validate::identifier("agent_id", agent_id)?;
        validate::name("action_name", action_name)?;
        if input_summary.len() > MAX_INPUT_SUMMARY_BYTES {
            return Err(ApiError::validation(format!(
                "action_input_summary is {} bytes; summaries are cut to 200 characters by \
                 clients and may be at most {MAX_INPUT_SUMMARY_BYTES} bytes",
                input_summary.len()
            )));
        }
        let stated_effect = action_effect
            .map(str::parse::<Effect>)
            .transpose()
            .map_err(|error| ApiError::validation(format!("action_effect: {error}")))?;
        if let Some(session_id) = session_id {
            validate::identifier("session_id", session_id)?;
        }
        Ok(CheckParams {
            agent_id,
            action_name,
            input_summary,
            stated_effect,
            session_id,
        })
    }
}

/// What a decision was made from, kept for recording it.
pub struct Evaluation {
    pub decision: Decision,
    /// The agent is known and active and owns the session: its session is counted.
    pub count_in_session: bool,
    /// The session's call budget: the smallest `max_calls` of its delegation chain.
    pub call_budget: Option<i64>,
}

/// Loads the facts of a check and decides it under `policy`. Reads only.
pub async fn evaluate(
    state: &AppState,
    org_id: &str,
    params: &CheckParams<'_>,
    policy: &CompiledPolicy,
) -> ApiResult<Evaluation> {
    let agent = store::agents::get(&state.store, org_id, params.agent_id).await?;
    let capabilities = match &agent {
        Some(agent) => agent.capabilities()?,
        None => Vec::new(),
    };
    let session = match (params.session_id, &agent) {
        (Some(session_id), Some(_)) => {
            store::sessions::get(&state.store, org_id, session_id).await?
        }
        _ => None,
    };
    let scope_ceiling = match &session {
        Some(session) => session.scope_ceiling()?,
        None => None,
    };
    let now = time::now();
    // What the agent holds by delegation matters only to rules that require capabilities.
    let delegated_capabilities = match &agent {
        Some(agent) if policy.requires_capabilities() => {
            store::delegations::active_scopes_to(&state.store, org_id, &agent.id, now).await?
        }
        _ => Vec::new(),
    };
    let delegation = match session
        .as_ref()
        .and_then(|session| session.delegation_id.as_ref())
    {
        Some(id) => Some(SessionDelegation::load(&state.store, org_id, id, now).await?),
        None => None,
    };
    let mode = match &session {
        Some(session) => session.mode.parse::<SessionMode>().map_err(|error| {
            tracing::error!(%error, session = %session.id, "stored session mode is unknown");
            ApiError::internal()
        })?,
        None => SessionMode::Standard,
    };
    let decide = |approval: ApprovalState<'_>| {
        guardian::decide(&CheckInput {
            agent: agent.as_ref().map(|agent| AgentFacts {
                id: &agent.id,
                name: &agent.name,
                framework: &agent.framework,
                capabilities: &capabilities,
                delegated_capabilities: &delegated_capabilities,
                active: agent.is_active(),
            }),
            action_name: params.action_name,
            input_summary: params.input_summary,
            stated_effect: params.stated_effect,
            session_id: params.session_id,
            session: session.as_ref().map(|session| SessionFacts {
                agent_id: &session.agent_id,
                mode,
                scope_ceiling: scope_ceiling.as_deref(),
                total_calls: session.total_calls,
                delegation: delegation.as_ref().map(SessionDelegation::facts),
            }),
            approval,
            policy,
            now,
        })
    };
    // Most checks never need a human: decide first, and read the approvals of this request
    // only when the decision asks for one (then decide again knowing them).
    let mut decision = decide(ApprovalState::None);
    if let (ApprovalAction::Create, Some(session_id)) = (&decision.approval, params.session_id) {
        let key = store::approvals::request_key(
            params.action_name,
            decision.effect.as_str(),
            params.input_summary,
        );
        let latest =
            store::approvals::latest_for_request(&state.store, org_id, session_id, &key).await?;
        if let Some(row) = &latest {
            decision = decide(approval_state(row, now));
        }
    }
    let owns_session = session
        .as_ref()
        .is_none_or(|session| session.agent_id == params.agent_id);
    let call_budget = delegation.as_ref().and_then(SessionDelegation::call_budget);
    Ok(Evaluation {
        call_budget,
        decision,
        count_in_session: agent.as_ref().is_some_and(|agent| agent.is_active()) && owns_session,
    })
}

/// The delegation a session was made from, with the restrictions of its whole chain.
struct SessionDelegation {
    id: String,
    /// `active`, `revoked` or `expired`.
    status: &'static str,
    scope: Vec<String>,
    restrictions: Vec<Restrictions>,
}

impl SessionDelegation {
    async fn load(store: &store::Store, org_id: &str, id: &str, now: i64) -> ApiResult<Self> {
        let row = store::delegations::get(store, org_id, id)
            .await?
            .ok_or_else(|| {
                tracing::error!(delegation = %id, "a session names a missing delegation");
                ApiError::internal()
            })?;
        let chain = store::delegations::with_ancestors(store, &row).await?;
        // Revocation cascades down and expiry never outlives the parent, so the delegation's
        // own status is the chain's; the chain's restrictions all apply.
        let restrictions = chain
            .iter()
            .map(store::delegations::DelegationRow::restrictions)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(SessionDelegation {
            status: row.status_at(now),
            scope: row.scope()?,
            id: row.id,
            restrictions,
        })
    }

    /// The smallest `max_calls` of the chain, if any restricts the calls.
    fn call_budget(&self) -> Option<i64> {
        self.restrictions
            .iter()
            .filter_map(|restrictions| restrictions.max_calls)
            .min()
            .map(|calls| i64::try_from(calls).unwrap_or(i64::MAX))
    }

    fn facts(&self) -> DelegationFacts<'_> {
        DelegationFacts {
            id: &self.id,
            active: self.status == "active",
            inactive_because: self.status,
            scope: &self.scope,
            restrictions: &self.restrictions,
        }
    }
}

fn approval_state(row: &ApprovalRow, now: i64) -> ApprovalState<'_> {
    match row.status_at(now) {
        store::approvals::STATUS_PENDING => ApprovalState::Pending { id: &row.id },
        store::approvals::STATUS_APPROVED => ApprovalState::Approved {
            id: &row.id,
            grant_expires_at: row.grant_expires_at.unwrap_or(0),
        },
        store::approvals::STATUS_DENIED => ApprovalState::Denied {
            id: &row.id,
            decided_by: row.decided_by.as_deref().unwrap_or("an operator"),
        },
        _ => ApprovalState::Expired { id: &row.id },
    }
}

/// The wire answer of a decision.
pub fn to_wire(
    decision: Decision,
    check_id: String,
    approval_id: Option<String>,
    params: &CheckParams<'_>,
    started: Instant,
) -> CheckDecision {
    CheckDecision {
        allowed: decision.allowed,
        check_id,
        confidence: decision.confidence,
        guard_tier: GUARD_TIER_FAST.to_string(),
        latency_ms: started.elapsed().as_millis() as i64,
        reason: decision.reason,
        elevation_required: decision.elevation_required,
        approval_id,
        effect: Some(decision.effect),
        rule: Some(decision.rule),
        agent_id: Some(params.agent_id.to_string()),
        session_id: params.session_id.map(str::to_string),
        action_name: Some(params.action_name.to_string()),
        extra: Default::default(),
    }
}

pub async fn check(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(request): JsonBody<CheckRequest>,
) -> ApiResult<Json<CheckDecision>> {
    let started = Instant::now();
    let agent_id = caller.acting_agent(request.agent_id.as_deref())?;
    let params = CheckParams::validate(
        &agent_id,
        request.resolved_action_name(),
        request.resolved_input_summary(),
        request.action_effect.as_deref(),
        request.session_id.as_deref(),
    )?;
    let policy = state.policies.current(&state.store, &caller.org_id).await?;
    let Evaluation {
        mut decision,
        count_in_session,
        call_budget,
    } = evaluate(&state, &caller.org_id, &params, &policy).await?;

    let check_id = store::new_id();
    let approval = match &decision.approval {
        ApprovalAction::None => ApprovalRequest::None,
        ApprovalAction::Reuse(id) => ApprovalRequest::Reuse(id),
        ApprovalAction::Create => ApprovalRequest::Open {
            ttl_seconds: policy.approval_ttl_seconds(),
        },
    };
    let recorded = store::checks::record(
        &state.store,
        store::checks::CheckRecord {
            id: &check_id,
            org_id: &caller.org_id,
            agent_id: &agent_id,
            session_id: params.session_id,
            action_name: params.action_name,
            input_summary: params.input_summary,
            effect: decision.effect.as_str(),
            allowed: decision.allowed,
            elevation_required: decision.elevation_required,
            counts_as_denial: decision.counts_as_denial,
            lockout_after_denials: policy.lockout_after_denials(),
            reason: &decision.reason,
            rule: &decision.rule,
            confidence: decision.confidence,
            count_in_session,
            approval,
            call_budget,
        },
        &caller.actor(),
    )
    .await?;
    if let Some(reason) = recorded.budget_exhausted {
        // A concurrent check took the session's last call between our decision and our write.
        decision.allowed = false;
        decision.counts_as_denial = true;
        decision.rule = store::checks::BUDGET_RULE.to_string();
        decision.reason = reason;
    }
    Ok(Json(to_wire(
        decision,
        check_id,
        recorded.approval_id,
        &params,
        started,
    )))
}
