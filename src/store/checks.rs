//! Guardian decisions: every check is recorded — with its session counters, the approval it
//! opened and its audit event, in one transaction — before the answer is sent.

use crate::api::time;

use super::approvals::{self, NewApproval};
use super::audit::{self, Actor, NewEvent};
use super::sessions::{self, CallCount};
use super::{Result, Store, on_tx};

/// What a check does about approvals.
#[derive(Debug, Clone)]
pub enum ApprovalRequest<'a> {
    None,
    /// Point at the approval already pending for this request.
    Reuse(&'a str),
    /// Open a pending approval that expires after `ttl_seconds`.
    Open {
        ttl_seconds: i64,
    },
}

/// One decision to record.
#[derive(Debug, Clone)]
pub struct CheckRecord<'a> {
    pub id: &'a str,
    pub org_id: &'a str,
    pub agent_id: &'a str,
    pub session_id: Option<&'a str>,
    pub action_name: &'a str,
    pub input_summary: &'a str,
    pub effect: &'a str,
    pub allowed: bool,
    pub elevation_required: bool,
    /// A hard denial: counted in the session and towards its lockout.
    pub counts_as_denial: bool,
    pub lockout_after_denials: i64,
    pub reason: &'a str,
    pub rule: &'a str,
    pub confidence: f64,
    /// Whether the session (when one is named) is counted: only for known, active agents,
    /// since a session belongs to an agent.
    pub count_in_session: bool,
    pub approval: ApprovalRequest<'a>,
    /// The session's call budget (a delegation's `max_calls`), enforced here as well as in the
    /// decision so that concurrent checks cannot both take the last call.
    pub call_budget: Option<i64>,
}

/// The rule of a call refused because its session's call budget is used up.
pub const BUDGET_RULE: &str = "delegation:restriction:max_calls";

/// What was recorded.
#[derive(Debug, Clone, Default)]
pub struct Recorded {
    /// The approval the answer must point at, if any.
    pub approval_id: Option<String>,
    /// An allowed call found the session's budget used up by a concurrent check: it was
    /// recorded as denied (rule [`BUDGET_RULE`]) with this reason, and the answer must say so.
    pub budget_exhausted: Option<String>,
}

/// Records the check.
pub async fn record(store: &Store, check: CheckRecord<'_>, actor: &Actor) -> Result<Recorded> {
    const SQL: &str = "INSERT INTO checks (id, org_id, agent_id, session_id, action_name, \
                       input_summary, effect, allowed, elevation_required, reason, rule, confidence, \
                       created_at, approval_id) \
                       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)";
    let now = time::now();
    let mut tx = store.begin().await?;
    let counted_session = check.session_id.filter(|_| check.count_in_session);
    let mut budget_exhausted = None;
    if let Some(session_id) = counted_session {
        let read = check.effect == "read";
        let mut denied = check.counts_as_denial;
        let mut counted = false;
        if let (Some(budget), true) = (check.call_budget, check.allowed) {
            if sessions::take_budgeted_call(&mut tx, check.org_id, session_id, read, budget, now)
                .await?
            {
                counted = true;
            } else {
                budget_exhausted = Some(format!(
                    "the session's call budget ({budget} calls, the delegation's max_calls) is \
                     used up"
                ));
                denied = true;
            }
        }
        if !counted {
            let call = CallCount {
                read,
                denied,
                lockout_after_denials: check.lockout_after_denials,
            };
            sessions::count_call(&mut tx, check.org_id, session_id, check.agent_id, call, now)
                .await?;
        }
    }
    let (allowed, reason, rule) = match &budget_exhausted {
        Some(reason) => (false, reason.as_str(), BUDGET_RULE),
        None => (check.allowed, check.reason, check.rule),
    };
    let approval_id = match (&check.approval, counted_session) {
        (ApprovalRequest::Reuse(id), _) => Some((*id).to_string()),
        (ApprovalRequest::Open { ttl_seconds }, Some(session_id)) => {
            let (id, created) = approvals::open(
                &mut tx,
                NewApproval {
                    org_id: check.org_id,
                    session_id,
                    agent_id: check.agent_id,
                    action_name: check.action_name,
                    action_effect: check.effect,
                    input_summary: check.input_summary,
                    reason: check.reason,
                    ttl_seconds: *ttl_seconds,
                },
                now,
            )
            .await?;
            if created {
                approvals::audit_requested(
                    &mut tx,
                    check.org_id,
                    &id,
                    serde_json::json!({
                        "agent_id": check.agent_id,
                        "session_id": session_id,
                        "action_name": check.action_name,
                        "effect": check.effect,
                        "check_id": check.id,
                    }),
                    actor,
                    now,
                )
                .await?;
            }
            Some(id)
        }
        _ => None,
    };
    on_tx!(&mut tx, conn => { sqlx::query(SQL)
        .bind(check.id)
        .bind(check.org_id)
        .bind(check.agent_id)
        .bind(check.session_id)
        .bind(check.action_name)
        .bind(check.input_summary)
        .bind(check.effect)
        .bind(allowed)
        .bind(check.elevation_required)
        .bind(reason)
        .bind(rule)
        .bind(check.confidence)
        .bind(now)
        .bind(&approval_id)
        .execute(&mut *conn)
        .await?; });
    audit::append(
        &mut tx,
        NewEvent {
            org_id: check.org_id,
            kind: "check.decided",
            actor,
            subject_type: "check",
            subject_id: check.id,
            detail: serde_json::json!({
                "agent_id": check.agent_id,
                "session_id": check.session_id,
                "action_name": check.action_name,
                "effect": check.effect,
                "allowed": allowed,
                "elevation_required": check.elevation_required,
                "approval_id": approval_id,
                "rule": rule,
            }),
            created_at: now,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Recorded {
        approval_id,
        budget_exhausted,
    })
}
