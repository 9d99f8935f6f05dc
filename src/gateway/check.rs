//! The one check service: every door that asks the Guardian — `POST /check` (both paths),
//! `POST /policies/test`, the MCP proxy's `tools/call` and A2A messages (`tasks/send`,
//! `message/send`) — goes through it, so a decision never depends on which door was used.
//!
//! It owns, in order:
//! 1. [`params`]: the canonical action name and the validated request;
//! 2. [`facts`]: the facts a decision rests on, loaded from the store (agent, its mode and
//!    capabilities, session, delegation chain with its budgets, the presented token), never
//!    taken from what the caller claims;
//! 3. the decision itself, [`crate::guardian::decide`] (pure);
//! 4. [`record`]: for a real check, one transaction that re-reads what can flip an allow,
//!    takes delegation budgets, opens the approval within its caps, counts the session and the
//!    agent, and appends the audit event — before the answer is sent.

mod facts;
pub mod params;
mod record;

use std::sync::Arc;
use std::time::Instant;

use crate::api::actions::CheckDecision;
use crate::guardian::{ApprovalAction, ApprovalState, CompiledPolicy, Decision, GUARD_TIER_FAST};
use crate::store;

pub use facts::Facts;
pub use params::CheckParams;

use super::AppState;
use super::auth::Caller;
use super::error::ApiResult;

/// Validates a check as a door received it, then decides and records it: what every door that
/// records a check calls (`POST /check`, the MCP proxy's `tools/call`), so none of them can skip
/// a step or do one differently.
pub async fn check(
    state: &AppState,
    caller: &Caller,
    raw: params::RawCheck<'_>,
    started: Instant,
) -> ApiResult<CheckDecision> {
    let params = CheckParams::validate(Some(caller), raw)?;
    decide_and_record(state, caller, &params, started).await
}

/// Decides a check for `caller` under `policy` as [`decide_and_record`] would (the presented
/// token's scopes bind), and records nothing: what the MCP proxy asks of each tool it lists.
pub async fn decide_for(
    state: &AppState,
    caller: &Caller,
    params: &CheckParams,
    policy: &CompiledPolicy,
) -> ApiResult<Decision> {
    let facts = Facts::load(state, &caller.org_id, params, caller.presented_token()).await?;
    decide(state, &caller.org_id, params, &facts, policy).await
}

/// The org's policy as checks see it (through the replica's cache).
pub async fn current_policy(state: &AppState, org_id: &str) -> ApiResult<Arc<CompiledPolicy>> {
    state.caches.policies.current(&state.store, org_id).await
}

/// Decides a check and records it; the answer to send.
pub async fn decide_and_record(
    state: &AppState,
    caller: &Caller,
    params: &CheckParams,
    started: Instant,
) -> ApiResult<CheckDecision> {
    let policy = state
        .caches
        .policies
        .current(&state.store, &caller.org_id)
        .await?;
    let facts = Facts::load(state, &caller.org_id, params, caller.presented_token()).await?;
    let decision = decide(state, &caller.org_id, params, &facts, &policy).await?;
    let recorded = record::record(state, caller, params, Arc::new(facts), policy, decision).await?;
    if recorded.agent_locked {
        // The record transaction locked the agent (and told the other replicas); it has
        // committed, so this replica forgets the agent's row and its next check sees the lock.
        // Only then: a denial that locks nothing changes no cached row, and forgetting on every
        // denial would let an agent flood denials into cache scans.
        state.caches.forget(&store::changes::Change::Agent {
            id: params.agent_id.clone(),
        });
    }
    if recorded.session_stale
        && let Some(session_id) = &params.session_id
    {
        // Committed too: the next check here reads the session's mode from the database (a
        // session is cached only in `standard` mode, so a locked one stays uncached).
        state.caches.forget(&store::changes::Change::Session {
            org_id: caller.org_id.clone(),
            id: session_id.clone(),
        });
    }
    Ok(to_wire(
        recorded.decision,
        recorded.check_id,
        recorded.approval_id,
        params,
        started,
    ))
}

/// Decides a hypothetical check under `policy` (the stored one or a draft) and records nothing:
/// the answer and the policy rule that matched.
pub async fn decide_only(
    state: &AppState,
    org_id: &str,
    params: &CheckParams,
    policy: &CompiledPolicy,
    started: Instant,
) -> ApiResult<(CheckDecision, Option<String>)> {
    let facts = Facts::load(state, org_id, params, None).await?;
    let decision = decide(state, org_id, params, &facts, policy).await?;
    let matched_rule = decision.matched_rule.clone();
    // Nothing was recorded: there is no check and no approval to point at.
    Ok((
        to_wire(decision, String::new(), None, params, started),
        matched_rule,
    ))
}

/// The decision on these facts. Most checks never need a human: decide first, and read the
/// approvals of this request only when the decision asks for one (then decide again knowing
/// them).
async fn decide(
    state: &AppState,
    org_id: &str,
    params: &CheckParams,
    facts: &Facts,
    policy: &CompiledPolicy,
) -> ApiResult<Decision> {
    let decision = facts.decide(params, policy, ApprovalState::None);
    let (ApprovalAction::Create, Some(session_id)) = (&decision.approval, &params.session_id)
    else {
        return Ok(decision);
    };
    let key = store::approvals::request_key(
        &params.action_name,
        decision.effect.as_str(),
        &params.input_summary,
    );
    let latest =
        store::approvals::latest_for_request(&state.store, org_id, session_id, &key).await?;
    Ok(match &latest {
        Some(row) => facts.decide(params, policy, facts::approval_state(row, facts.now())),
        None => decision,
    })
}

/// The wire answer of a decision.
pub fn to_wire(
    decision: Decision,
    check_id: String,
    approval_id: Option<String>,
    params: &CheckParams,
    started: Instant,
) -> CheckDecision {
    CheckDecision {
        allowed: decision.allowed,
        check_id,
        confidence: decision.confidence,
        guard_tier: GUARD_TIER_FAST.to_string(),
        latency_ms: i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX),
        reason: decision.reason,
        elevation_required: decision.elevation_required,
        approval_id,
        effect: Some(decision.effect),
        rule: Some(decision.rule),
        agent_id: Some(params.agent_id.clone()),
        session_id: params.session_id.clone(),
        action_name: Some(params.action_name.clone()),
        extra: Default::default(),
    }
}
