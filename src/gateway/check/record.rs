//! Recording a decision: a [`RecordJob`] run by the group-commit writer
//! ([`crate::store::group_commit`]), in a transaction it may share with other checks (see
//! [`crate::store::checks`] for the locking). The answer is sent once that transaction has
//! committed. In order:
//! 1. re-read what can flip an allow — the agent's status and mode, the session's mode, the
//!    delegation chain, the presented token — and refuse if it changed;
//! 2. take one call from every `max_calls` budget of the delegation chain (exact across
//!    sessions and replicas);
//! 3. open the approval the decision asks for, unless the session or the agent already has as
//!    many pending as the policy allows (then the call is a counted denial);
//! 4. count the call in its session (with the session lockout) and a hard denial against the
//!    agent (with the agent-level lockout, audited when it locks);
//! 5. insert the decision and its audit event, and commit — before the answer is sent.

use crate::api::actions::Effect;
use crate::api::federation::{ProviderStatus, TrustLevel};
use crate::api::policies::SessionMode;
use crate::guardian::refusal::{self, DecidedWith, LiveFacts, Refusal};
use crate::guardian::{ApprovalAction, CompiledPolicy, Decision};
use std::sync::Arc;

use crate::store::group_commit::{BoxFuture, Job};
use crate::store::script::{Row, Script};
use crate::store::{
    self, Tx,
    agents::Lockout,
    approvals::NewApproval,
    audit::{Actor, NewEvent},
    checks::CheckRow,
    sessions::CallCount,
};

use super::super::AppState;
use super::super::auth::Caller;
use super::super::error::{ApiError, ApiResult};
use super::{CheckParams, Facts};

/// A recorded decision: the final decision and what the answer points at.
pub struct Recorded {
    pub decision: Decision,
    pub check_id: String,
    pub approval_id: Option<String>,
    /// This check's denial locked the agent (its cached row is stale once this commits).
    pub agent_locked: bool,
    /// The session's cached row may be stale once this commits: its mode was read changed, or
    /// this denial counted in it (and may have locked it).
    pub session_stale: bool,
}

/// Records `decision` through the group-commit writer (on the agent's lane) and returns what
/// was finally decided once it is durable.
pub async fn record(
    state: &AppState,
    caller: &Caller,
    params: &CheckParams,
    facts: Arc<Facts>,
    policy: Arc<CompiledPolicy>,
    decision: Decision,
) -> ApiResult<Recorded> {
    let job = RecordJob {
        org_id: caller.org_id.clone(),
        actor: caller.actor(),
        params: params.clone(),
        facts,
        policy,
        decision,
        check_id: store::new_id(),
    };
    state.writer.write(&params.agent_id, job).await
}

/// Everything one check's record needs, owned: the writer runs it after the request handed it
/// over, and may run it twice (see [`crate::store::group_commit`]).
pub struct RecordJob {
    org_id: String,
    actor: Actor,
    params: CheckParams,
    facts: Arc<Facts>,
    policy: Arc<CompiledPolicy>,
    /// The decision before the record step (each run starts from it).
    decision: Decision,
    check_id: String,
}

impl Job for RecordJob {
    type Output = Recorded;
    type Error = ApiError;

    fn run<'a>(&'a self, tx: &'a mut Tx) -> BoxFuture<'a, ApiResult<Recorded>> {
        Box::pin(self.write(tx))
    }

    /// The common check — no delegation budget to take, no approval to open, no denial to
    /// count — writes the same two statements whatever it reads (the live rows, then the
    /// session's call count), provided the re-check passes; [`Job::confirm`] re-checks.
    fn speculate(&self) -> Option<Script> {
        let (params, facts) = (&self.params, self.facts.as_ref());
        if facts.delegation().is_some()
            || matches!(self.decision.approval, ApprovalAction::Create)
            || self.decision.counts_as_denial
        {
            return None;
        }
        let mut script = Script::default();
        let (statement, values) = store::checks::live_rows_statement(self.live_keys(), facts.now());
        script.push(statement, values);
        if let Some(session_id) = self.counted_session() {
            script.push(
                store::sessions::COUNT_CALL,
                store::sessions::count_call_values(
                    &self.org_id,
                    session_id,
                    &params.agent_id,
                    self.call_count(&self.decision),
                    facts.now(),
                ),
            );
        }
        Some(script)
    }

    fn confirm<'a>(
        &'a self,
        tx: &'a mut Tx,
        rows: Vec<Vec<Row>>,
    ) -> BoxFuture<'a, Option<ApiResult<Recorded>>> {
        Box::pin(async move {
            let params = &self.params;
            let keys = self.live_keys();
            let live =
                store::checks::live_rows_of(rows.first().and_then(|rows| rows.first()), keys)
                    .map_err(ApiError::from)
                    .and_then(|rows| live_facts_of(rows, keys, None));
            let live = match live {
                Ok(live) => live,
                Err(error) => return Some(Err(error)),
            };
            if refusal::recheck(
                &self.decision,
                &params.agent_id,
                params.session_id.as_deref(),
                self.decided_with(),
                &live,
            )
            .is_some()
            {
                // Refused now: the call counted as allowed is undone and recorded the long way.
                return None;
            }
            let approval_id = match &self.decision.approval {
                ApprovalAction::Reuse(id) => Some(id.clone()),
                _ => None,
            };
            let session_stale = self.session_stale(&live, &self.decision);
            Some(
                self.finish(tx, self.decision.clone(), approval_id, false, session_stale)
                    .await,
            )
        })
    }
}

impl RecordJob {
    /// The session the call counts in: the one asked for, when the agent is known, active and
    /// owns it.
    fn counted_session(&self) -> Option<&str> {
        self.params
            .session_id
            .as_deref()
            .filter(|_| self.facts.counts_in_session(&self.params))
    }

    /// How `decision` counts in the session.
    fn call_count(&self, decision: &Decision) -> CallCount {
        CallCount {
            read: decision.effect == Effect::Read,
            denied: decision.counts_as_denial,
            lockout_after_denials: self.policy.lockout_after_denials(),
        }
    }

    /// The rows the record transaction reads again.
    fn live_keys(&self) -> store::checks::LiveKeys<'_> {
        store::checks::LiveKeys {
            org_id: &self.org_id,
            agent_id: &self.params.agent_id,
            session_id: self.counted_session(),
            token_id: self.facts.token().map(|token| token.id.as_str()),
            provider_id: self.facts.provider_id(),
            federation_token_id: self.facts.federation_token_id(),
        }
    }

    /// Whether the session's cached row is stale after this record: its mode was read other
    /// than the decision was made with, or `decision` counts as a denial in it.
    fn session_stale(&self, live: &LiveFacts, decision: &Decision) -> bool {
        let read_changed = live
            .session_mode
            .is_some_and(|mode| mode != self.facts.session_mode());
        read_changed || (decision.counts_as_denial && self.counted_session().is_some())
    }

    /// The modes the decision was made with.
    fn decided_with(&self) -> DecidedWith {
        DecidedWith {
            agent_mode: self.facts.agent_mode(),
            session_mode: self.facts.session_mode(),
        }
    }

    async fn write(&self, tx: &mut Tx) -> ApiResult<Recorded> {
        let (params, facts, policy) = (&self.params, self.facts.as_ref(), self.policy.as_ref());
        let mut decision = self.decision.clone();
        let now = facts.now();
        let actor = &self.actor;
        let org_id = self.org_id.as_str();
        let check_id = self.check_id.clone();
        let counted_session = self.counted_session();

        // 1. The facts that can flip an allow, as they are now (rows taken on PostgreSQL).
        let live = live_facts(tx, org_id, self.live_keys(), facts, now).await?;
        if let Some(refused) = refusal::recheck(
            &decision,
            &params.agent_id,
            params.session_id.as_deref(),
            self.decided_with(),
            &live,
        ) {
            refusal::refuse(&mut decision, &refused, &params.action_name);
        }

        // 2. Delegation budgets.
        if decision.allowed
            && let Some(chain) = facts.delegation()
            && let Some((max_calls, made)) =
                store::delegations::take_call(tx, org_id, &chain.budgets()).await?
        {
            refusal::refuse(
                &mut decision,
                &Refusal::CallBudget { max_calls, made },
                &params.action_name,
            );
        }

        // 3. Approvals.
        let approval_id = match (&decision.approval, counted_session) {
            (ApprovalAction::Reuse(id), _) => Some(id.clone()),
            (ApprovalAction::Create, Some(session_id)) => {
                open_approval(
                    tx,
                    org_id,
                    session_id,
                    params,
                    policy,
                    &check_id,
                    actor,
                    &mut decision,
                    now,
                )
                .await?
            }
            _ => None,
        };

        // 4. Counters and lockouts.
        if let Some(session_id) = counted_session {
            let call = self.call_count(&decision);
            store::sessions::count_call(tx, org_id, session_id, &params.agent_id, call, now)
                .await?;
        }
        let mut agent_locked = false;
        if decision.counts_as_denial && facts.agent_is_active() {
            let lockout = Lockout {
                after_denials: policy.agent_lockout_after_denials(),
                window_seconds: policy.agent_lockout_window_seconds(),
            };
            agent_locked =
                store::agents::count_denial(tx, org_id, &params.agent_id, lockout, now).await?;
            if agent_locked {
                store::audit::append(
                    tx,
                    NewEvent {
                        org_id,
                        kind: "agent.locked",
                        actor,
                        subject_type: "agent",
                        subject_id: &params.agent_id,
                        detail: serde_json::json!({
                            "reason": "lockout",
                            "denials": lockout.after_denials,
                            "window_seconds": lockout.window_seconds,
                            "check_id": check_id,
                        }),
                        created_at: now,
                    },
                )
                .await?;
            }
        }

        // 5. The decision itself.
        let session_stale = self.session_stale(&live, &decision);
        self.finish(tx, decision, approval_id, agent_locked, session_stale)
            .await
    }

    /// Step 5: records the final decision (inserted, with its audit event, when `tx` commits).
    async fn finish(
        &self,
        tx: &mut Tx,
        decision: Decision,
        approval_id: Option<String>,
        agent_locked: bool,
        session_stale: bool,
    ) -> ApiResult<Recorded> {
        let params = &self.params;
        let check_id = self.check_id.clone();
        store::checks::insert(
            tx,
            &CheckRow {
                id: &check_id,
                org_id: &self.org_id,
                agent_id: &params.agent_id,
                session_id: params.session_id.as_deref(),
                action_name: &params.action_name,
                input_summary: &params.input_summary,
                effect: decision.effect.as_str(),
                allowed: decision.allowed,
                elevation_required: decision.elevation_required,
                reason: &decision.reason,
                rule: &decision.rule,
                confidence: decision.confidence,
                approval_id: approval_id.as_deref(),
                created_at: self.facts.now(),
            },
            &self.actor,
        )
        .await?;
        Ok(Recorded {
            decision,
            check_id,
            approval_id,
            agent_locked,
            session_stale,
        })
    }
}

/// Step 1's reads. The agent's row is taken first on PostgreSQL, then the session's, so checks
/// of one agent serialize and a concurrent revocation or lock is ordered with this check.
async fn live_facts(
    tx: &mut Tx,
    org_id: &str,
    keys: store::checks::LiveKeys<'_>,
    facts: &Facts,
    now: i64,
) -> ApiResult<LiveFacts> {
    let rows = store::checks::live_rows(tx, keys, now).await?;
    let chain_ended = match facts.delegation() {
        Some(chain) => {
            store::delegations::chain_ended(tx, org_id, &[], &chain.link_ids, now, false).await?
        }
        None => None,
    };
    live_facts_of(rows, keys, chain_ended)
}

/// The live facts from the re-read rows and, for a delegated session, why its chain ended.
fn live_facts_of(
    rows: store::checks::LiveRows,
    keys: store::checks::LiveKeys<'_>,
    chain_ended: Option<String>,
) -> ApiResult<LiveFacts> {
    let store::checks::LiveRows {
        agent,
        session_mode,
        token_ended,
        provider,
        federation_token_revoked,
    } = rows;
    let (provider_ended, provider_trust) = match (keys.provider_id, provider) {
        (None, _) => (None, None),
        (Some(_), None) => (
            Some("the federation session's provider was deleted".to_string()),
            None,
        ),
        (Some(_), Some((status, trust_level))) => {
            let trust_level = trust_level.parse::<TrustLevel>().map_err(|error| {
                tracing::error!(%error, "a provider's stored trust level is unknown");
                ApiError::internal()
            })?;
            let ended = (status != ProviderStatus::Active.as_str())
                .then(|| "the federation session's provider was disabled".to_string());
            (ended, Some(trust_level))
        }
    };
    let parse = |text: &str| {
        text.parse::<SessionMode>().map_err(|error| {
            tracing::error!(%error, "stored mode is unknown");
            ApiError::internal()
        })
    };
    Ok(LiveFacts {
        agent_active: agent
            .as_ref()
            .is_some_and(|(status, _)| status == store::agents::STATUS_ACTIVE),
        agent_mode: agent.as_ref().map(|(_, mode)| parse(mode)).transpose()?,
        session_mode: session_mode.as_deref().map(parse).transpose()?,
        chain_ended,
        token_ended,
        provider_ended,
        provider_trust,
        federation_token_revoked,
    })
}

/// Step 3: opens (or finds) the approval the decision asks for, within the policy's caps; past
/// a cap the decision becomes a counted denial and no approval is opened.
#[allow(clippy::too_many_arguments)]
async fn open_approval(
    tx: &mut Tx,
    org_id: &str,
    session_id: &str,
    params: &CheckParams,
    policy: &CompiledPolicy,
    check_id: &str,
    actor: &Actor,
    decision: &mut Decision,
    now: i64,
) -> ApiResult<Option<String>> {
    let (per_session, per_agent) = policy.max_pending_approvals();
    let (session_pending, agent_pending) =
        store::approvals::pending_counts(tx, org_id, session_id, &params.agent_id, now).await?;
    let over_cap = if session_pending >= per_session {
        Some(Refusal::ApprovalCap {
            per_session: true,
            cap: per_session,
        })
    } else if agent_pending >= per_agent {
        Some(Refusal::ApprovalCap {
            per_session: false,
            cap: per_agent,
        })
    } else {
        None
    };
    if let Some(refused) = over_cap {
        refusal::refuse(decision, &refused, &params.action_name);
        return Ok(None);
    }
    let (id, created) = store::approvals::open(
        tx,
        NewApproval {
            org_id,
            session_id,
            agent_id: &params.agent_id,
            action_name: &params.action_name,
            action_effect: decision.effect.as_str(),
            input_summary: &params.input_summary,
            reason: &decision.reason,
            ttl_seconds: policy.approval_ttl_seconds(),
        },
        now,
    )
    .await?;
    if created {
        store::approvals::audit_requested(
            tx,
            org_id,
            &id,
            serde_json::json!({
                "agent_id": params.agent_id,
                "session_id": session_id,
                "action_name": params.action_name,
                "effect": decision.effect.as_str(),
                "check_id": check_id,
            }),
            actor,
            now,
        )
        .await?;
    }
    Ok(Some(id))
}
