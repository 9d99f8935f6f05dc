//! The decision, step by step (each step names the rule that decided, in `Decision::rule`):
//!
//! 1. facts about identity: an unknown agent (`agent:unknown`), a revoked one (`agent:revoked`),
//!    or a session of another agent (`session:agent-mismatch`) may do nothing; nor may a call
//!    outside a registered session when the policy requires one (`session:unregistered`);
//! 2. a session made from a delegation that is revoked or expired (also through an ancestor)
//!    may do nothing either (`delegation:revoked`, `delegation:expired`); like identity, a fact
//!    that does not count as a denial; nor may a federation session whose provider was
//!    disabled or deleted, whose ID token (issued by this gateway) was revoked, or whose token
//!    has expired (`federation:provider`, `federation:revoked`, `federation:expired`);
//! 3. the effect: classified from the action name and input summary (or set for the tool by the
//!    org's policy, `tool_effects`), raised — never lowered — by the effect the caller states;
//!    then an agent token presented by the caller bounds the call by its scopes (`token:scope`),
//!    and a federation session's trust level bounds its effect (`federation:trust_level`: `low`
//!    reads only, `standard` up to mutating, `high` no bound of its own);
//! 4. in a delegation session, the call must be covered by the delegation's scope
//!    (`delegation:scope`) and obey every restriction of the chain
//!    (`delegation:restriction:tools|effects|max_calls|paths`); see [`super::scope`]. Passing
//!    them only lets the policy decide: a delegation never allows more than the policy does;
//! 5. a locked agent or session allows reads only (`agent:locked`, `session:locked`); the
//!    agent's mode (set by an admin, or by the agent-level lockout) binds every session of it;
//! 6. the org's rules in order, first match wins (`rule:<id>`), a missing required capability
//!    turning the match into a denial; else the default for the effect (`default:<effect>`);
//! 7. the session mode: read_only turns an allowed non-read call into a request for approval
//!    (`session:read_only`), elevated waives approvals (`session:elevated`);
//! 8. a required approval is resolved against the latest approval of this session for this
//!    action (`approval:<id>` when a human's answer decides);
//! 9. whether the call counts as a denial of the session, and whether it locks it.

use crate::api::actions::Effect;
use crate::api::delegations::Restrictions;
use crate::api::federation::TrustLevel;
use crate::api::policies::{SessionMode, Verdict};
use crate::api::time;

use super::classify::{Classification, EXPLICIT_CONFIDENCE, classify};
use super::policy::{CompiledPolicy, MatchFacts};
use super::scope::{check_restrictions, covering_entry};

/// The agent that asks, as the store knows it.
#[derive(Debug, Clone, Copy)]
pub struct AgentFacts<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub framework: &'a str,
    pub capabilities: &'a [String],
    /// False when the agent is revoked (or otherwise not active).
    pub active: bool,
    /// The agent's own mode, whatever session it acts in: `Standard`, `ReadOnly` or `Locked`
    /// (an admin's setting, or the agent-level lockout).
    pub mode: SessionMode,
}

/// The session named by the check, as stored.
#[derive(Debug, Clone, Copy)]
pub struct SessionFacts<'a> {
    pub agent_id: &'a str,
    pub mode: SessionMode,
    /// The most the session may do (an API session's token scopes); `None` means no ceiling,
    /// `Some(&[])` means nothing (a token without scopes).
    pub scope_ceiling: Option<&'a [String]>,
    /// Opened by the gateway (sessions init, API-token or delegation session, `guard session
    /// start`), not created by a check naming an id of the caller's choosing.
    pub registered: bool,
    /// The delegation the session was made from, if any.
    pub delegation: Option<DelegationFacts<'a>>,
    /// Set for a federation session.
    pub federation: Option<FederationFacts>,
}

/// What the gateway knows now of the issuer a federation session was opened on.
#[derive(Debug, Clone, Copy)]
pub struct FederationFacts {
    pub trust_level: TrustLevel,
    /// The provider still exists and is active (always, for this gateway's own tokens).
    pub provider_active: bool,
    /// When the external token expired, or will (Unix seconds).
    pub expires_at: i64,
    /// This gateway issued the token, and has revoked it since.
    pub token_revoked: bool,
}

/// The most a session vouched for at `level` may do.
pub fn trust_ceiling(level: TrustLevel) -> Effect {
    match level {
        TrustLevel::Low => Effect::Read,
        TrustLevel::Standard => Effect::Mutating,
        TrustLevel::High => Effect::Admin,
    }
}

/// The delegation a session was made from, as the store knows it now.
#[derive(Debug, Clone, Copy)]
pub struct DelegationFacts<'a> {
    pub id: &'a str,
    /// Neither revoked nor expired, nor any ancestor (the store cascades revocation to
    /// descendants; expiry never exceeds the parent's).
    pub active: bool,
    /// Why not, when `!active`: `revoked` or `expired`.
    pub inactive_because: &'a str,
    /// The delegation's scope.
    pub scope: &'a [String],
    /// Its own restrictions and every ancestor's (root first): all apply.
    pub restrictions: &'a [Restrictions],
    /// The calls already allowed under each delegation of the chain (same order), for their
    /// `max_calls`.
    pub calls_made: &'a [i64],
}

/// The latest approval of this session for this action name. The caller maps a pending
/// approval whose TTL has run out to `Expired`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ApprovalState<'a> {
    #[default]
    None,
    Pending {
        id: &'a str,
    },
    Approved {
        id: &'a str,
        grant_expires_at: i64,
    },
    Denied {
        id: &'a str,
        decided_by: &'a str,
    },
    Expired {
        id: &'a str,
    },
}

/// Everything a decision depends on.
#[derive(Debug, Clone)]
pub struct CheckInput<'a> {
    /// `None`: no such agent in the caller's org.
    pub agent: Option<AgentFacts<'a>>,
    pub action_name: &'a str,
    pub input_summary: &'a str,
    /// The effect the caller stated, if any: it can only raise the classified one.
    pub stated_effect: Option<Effect>,
    /// The scopes of the agent token the caller presented (`Authorization: Bearer at_…`): a
    /// ceiling on the call. `None` when the caller used an API key.
    pub token_scopes: Option<&'a [String]>,
    /// The session id the caller gave, if any.
    pub session_id: Option<&'a str>,
    /// The stored session; `None` when no session id was given or the session is new.
    pub session: Option<SessionFacts<'a>>,
    pub approval: ApprovalState<'a>,
    pub policy: &'a CompiledPolicy,
    /// Unix seconds.
    pub now: i64,
}

/// What the gateway must do about approvals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApprovalAction {
    None,
    /// A pending approval for the same action in this session exists: answer with its id.
    Reuse(String),
    /// Create a pending approval (expiring after the policy's approval TTL), answer with its id.
    Create,
}

/// The answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub allowed: bool,
    pub effect: Effect,
    pub reason: String,
    pub confidence: f64,
    /// A human may approve the call; always paired with `allowed: false`.
    pub elevation_required: bool,
    /// What finally decided: `agent:unknown`, `agent:revoked`, `session:agent-mismatch`,
    /// `session:unregistered`, `delegation:revoked`, `delegation:expired`, `token:scope`,
    /// `delegation:scope`, `delegation:restriction:{tools,effects,max_calls,paths}`,
    /// `agent:locked`, `session:locked`, `rule:<id>`, `default:<effect>`, `agent:read_only`,
    /// `session:read_only`, `session:elevated`, `approval:<id>`, `approval:cap`.
    pub rule: String,
    /// The policy rule that matched, even when the session mode or an approval then changed
    /// the outcome.
    pub matched_rule: Option<String>,
    pub approval: ApprovalAction,
    /// Add one to the session's denial counter (never for identity failures: the call does not
    /// belong to the session, and must not count against another agent's session; nor for a
    /// revoked or expired delegation, which is a fact about the session, not the agent's doing). Whether
    /// that denial locks the session is decided where the counter is incremented (the store),
    /// so concurrent checks cannot miss the threshold.
    pub counts_as_denial: bool,
}

/// An outcome before approvals and counters.
struct Outcome {
    verdict: Verdict,
    rule: String,
    reason: String,
    confidence: f64,
    /// The policy rule that matched, if any.
    matched_rule: Option<String>,
}

/// Decides one check.
pub fn decide(input: &CheckInput<'_>) -> Decision {
    let classification = effective_effect(input);
    let effect = classification.effect;

    // 1. Identity: facts, not guesses; they never count against a session.
    let identity_denial = |rule: &str, reason: String| Decision {
        allowed: false,
        effect,
        reason,
        confidence: EXPLICIT_CONFIDENCE,
        elevation_required: false,
        rule: rule.to_string(),
        matched_rule: None,
        approval: ApprovalAction::None,
        counts_as_denial: false,
    };
    let Some(agent) = &input.agent else {
        return identity_denial(
            "agent:unknown",
            "unknown agent: no such agent is registered in this org".to_string(),
        );
    };
    if !agent.active {
        return identity_denial(
            "agent:revoked",
            format!("agent {} is revoked and may not act", agent.id),
        );
    }
    if let Some(session) = &input.session
        && session.agent_id != agent.id
    {
        return identity_denial(
            "session:agent-mismatch",
            "the session belongs to another agent".to_string(),
        );
    }

    // 2. A delegation that ended ends every session made from it.
    if input.policy.require_registered_session()
        && !input.session.is_some_and(|session| session.registered)
    {
        return identity_denial(
            "session:unregistered",
            match input.session_id {
                None => "the org's policy requires a registered session, and the call names none; \
                         open one (`agenttrust guard session start`, sessions init, or a \
                         delegation session) and pass its id"
                    .to_string(),
                Some(id) => format!(
                    "the org's policy requires a registered session, and {id} was not opened by \
                     the gateway; open one (`agenttrust guard session start`, sessions init, or \
                     a delegation session) and pass its id"
                ),
            },
        );
    }

    let delegation = input.session.and_then(|session| session.delegation);
    if let Some(delegation) = &delegation
        && !delegation.active
    {
        let because = match delegation.inactive_because {
            "expired" => "expired",
            _ => "revoked",
        };
        return identity_denial(
            &format!("delegation:{because}"),
            format!(
                "delegation {} is {because}: the sessions made from it may do nothing",
                delegation.id
            ),
        );
    }

    let federation = input.session.and_then(|session| session.federation);
    if let Some(federation) = &federation {
        if !federation.provider_active {
            return identity_denial(
                "federation:provider",
                "the provider that vouched for this federation session is disabled or deleted: \
                 the session may do nothing"
                    .to_string(),
            );
        }
        if federation.token_revoked {
            return identity_denial(
                "federation:revoked",
                "the ID token this federation session was opened with was revoked: the session \
                 may do nothing"
                    .to_string(),
            );
        }
        if input.now >= federation.expires_at {
            return identity_denial(
                "federation:expired",
                format!(
                    "this federation session ended at {}, when the token it was opened with \
                     expired; open a new one with a fresh token",
                    time::format(federation.expires_at)
                ),
            );
        }
    }

    // 3. What the call does, in words: `delete_all is destructive ("delete" in the action name)`.
    let session_mode = input
        .session
        .map_or(SessionMode::Standard, |session| session.mode);
    let mode = binding_mode(agent.mode, session_mode);
    let what = format!(
        "{} is {} ({})",
        input.action_name, effect, classification.evidence
    );

    // 3. A presented agent token bounds the call by its scopes.
    if let Some(scopes) = input.token_scopes
        && covering_entry(scopes, input.action_name, effect).is_none()
    {
        return Decision {
            counts_as_denial: true,
            confidence: classification.confidence,
            ..identity_denial(
                "token:scope",
                if scopes.is_empty() {
                    format!(
                        "the agent token has no scopes, so it allows nothing: {what}; issue one \
                         with --scopes (a token carries only its agent's capabilities, set with \
                         `agenttrust agents create --capabilities`)"
                    )
                } else {
                    format!(
                        "outside the scopes of the agent token ({}): {what}",
                        scopes.join(", ")
                    )
                },
            )
        };
    }

    // 3. A federation session's provider is trusted so far.
    if let Some(federation) = &federation
        && effect > trust_ceiling(federation.trust_level)
    {
        return Decision {
            counts_as_denial: true,
            confidence: classification.confidence,
            ..identity_denial(
                "federation:trust_level",
                format!(
                    "the provider of this federation session is trusted at level {}, which \
                     allows {} calls at most: {what}",
                    federation.trust_level,
                    trust_ceiling(federation.trust_level)
                ),
            )
        };
    }

    // 4. The delegation's scope and restrictions.
    if let Some(delegation) = &delegation
        && let Some(denial) = delegation_denial(input, delegation, &classification, &what)
    {
        return denial;
    }

    let outcome = if mode == SessionMode::Locked && effect != Effect::Read {
        // 5. Locked: reads only.
        locked_outcome(input, agent, &classification, &what)
    } else {
        // 6. Rules, then defaults; 7. the agent's and the session's mode.
        let outcome = policy_outcome(input, agent, mode, &classification, &what);
        let agent_bound = agent.mode == SessionMode::ReadOnly;
        apply_session_mode(outcome, mode, effect, &what, agent_bound)
    };
    let matched_rule = outcome.matched_rule.clone();

    // 8. Approvals.
    let (allowed, elevation_required, approval, rule, reason, confidence) = match outcome.verdict {
        Verdict::Allow => (
            true,
            false,
            ApprovalAction::None,
            outcome.rule,
            outcome.reason,
            outcome.confidence,
        ),
        Verdict::Deny => (
            false,
            false,
            ApprovalAction::None,
            outcome.rule,
            outcome.reason,
            outcome.confidence,
        ),
        Verdict::RequireApproval => resolve_approval(input, outcome),
    };

    // 9. Counters.
    let counts_as_denial = !allowed && !elevation_required;

    Decision {
        allowed,
        effect,
        reason,
        confidence,
        elevation_required,
        rule,
        matched_rule,
        approval,
        counts_as_denial,
    }
}

/// Step 4: a denial when the call is outside the delegation's scope or breaks one of the
/// chain's restrictions. Such denials count against the session.
/// The effect the decision rests on: the classification (or the org's `tool_effects` setting
/// for the tool), raised by the caller's stated effect when that is higher. A caller cannot
/// lower an effect: `sudo_grant_admin` stated as `read` is still admin.
fn effective_effect(input: &CheckInput<'_>) -> Classification {
    let classified = match input.policy.tool_effect(input.action_name) {
        Some((effect, glob)) => Classification {
            effect,
            confidence: EXPLICIT_CONFIDENCE,
            evidence: format!("set for {glob:?} by the org's policy"),
        },
        None => classify(input.action_name, input.input_summary),
    };
    match input.stated_effect {
        // The caller commits to at least this effect; agreeing with the classification, or
        // above it, the effect is no longer a guess.
        Some(stated) if stated > classified.effect => Classification {
            effect: stated,
            confidence: EXPLICIT_CONFIDENCE,
            evidence: format!(
                "stated by the caller; classified as {}: {}",
                classified.effect, classified.evidence
            ),
        },
        Some(stated) if stated == classified.effect => Classification {
            confidence: EXPLICIT_CONFIDENCE,
            evidence: format!("stated by the caller, and {}", classified.evidence),
            ..classified
        },
        Some(stated) if stated < classified.effect => Classification {
            evidence: format!(
                "{}; the stated effect {stated} cannot lower it",
                classified.evidence
            ),
            ..classified
        },
        _ => classified,
    }
}

/// The mode that binds the call: the stricter of the agent's and the session's. An agent that
/// is locked or read-only stays so in every session, an elevated one included: the agent's
/// control binds the agent, not a label it picks.
fn binding_mode(agent: SessionMode, session: SessionMode) -> SessionMode {
    match (agent, session) {
        (SessionMode::Locked, _) | (_, SessionMode::Locked) => SessionMode::Locked,
        (SessionMode::ReadOnly, _) | (_, SessionMode::ReadOnly) => SessionMode::ReadOnly,
        (_, session) => session,
    }
}

/// A locked agent or session: anything but a read is refused.
fn locked_outcome(
    input: &CheckInput<'_>,
    agent: &AgentFacts<'_>,
    classification: &Classification,
    what: &str,
) -> Outcome {
    let (rule, reason) = if agent.mode == SessionMode::Locked {
        (
            "agent:locked",
            format!(
                "agent {} is locked (by an admin, or after too many denials) and may only read: \
                 {what}; an admin can unlock it with `agenttrust agents unlock {}`",
                agent.id, agent.id
            ),
        )
    } else {
        let session = input.session_id.unwrap_or("ID");
        (
            "session:locked",
            format!(
                "the session is locked after too many denials and allows only reads: {what}; \
                 an admin can unlock it with `agenttrust sessions unlock {session}`"
            ),
        )
    };
    Outcome {
        verdict: Verdict::Deny,
        rule: rule.to_string(),
        reason,
        confidence: classification.confidence,
        matched_rule: None,
    }
}

fn delegation_denial(
    input: &CheckInput<'_>,
    delegation: &DelegationFacts<'_>,
    classification: &Classification,
    what: &str,
) -> Option<Decision> {
    let effect = classification.effect;
    let denial = |rule: String, reason: String, confidence: f64| Decision {
        allowed: false,
        effect,
        reason,
        confidence,
        elevation_required: false,
        rule,
        matched_rule: None,
        approval: ApprovalAction::None,
        counts_as_denial: true,
    };
    if covering_entry(delegation.scope, input.action_name, effect).is_none() {
        return Some(denial(
            "delegation:scope".to_string(),
            format!(
                "outside the scope of delegation {} ({}): {what}",
                delegation.id,
                if delegation.scope.is_empty() {
                    "nothing".to_string()
                } else {
                    delegation.scope.join(", ")
                }
            ),
            classification.confidence,
        ));
    }
    let refused = check_restrictions(
        delegation.restrictions,
        delegation.calls_made,
        input.action_name,
        effect,
        input.input_summary,
    )
    .err()?;
    // Only the effect restriction rests on the classification; the others are facts.
    let confidence = if refused.rule == "delegation:restriction:effects" {
        classification.confidence
    } else {
        EXPLICIT_CONFIDENCE
    };
    Some(denial(
        refused.rule.to_string(),
        format!("delegation {}: {}", delegation.id, refused.reason),
        confidence,
    ))
}

fn match_facts<'a>(
    input: &CheckInput<'a>,
    agent: &AgentFacts<'a>,
    mode: SessionMode,
    effect: Effect,
) -> MatchFacts<'a> {
    MatchFacts {
        action_name: input.action_name,
        effect,
        agent_id: agent.id,
        agent_name: agent.name,
        agent_framework: agent.framework,
        session_mode: mode,
        input_summary: input.input_summary,
    }
}

/// Step 4: the first matching rule (with its capability requirements), else the default.
fn policy_outcome(
    input: &CheckInput<'_>,
    agent: &AgentFacts<'_>,
    mode: SessionMode,
    classification: &Classification,
    what: &str,
) -> Outcome {
    let effect = classification.effect;
    let Some(rule) = input
        .policy
        .first_match(&match_facts(input, agent, mode, effect))
    else {
        let verdict = input.policy.defaults().for_effect(effect);
        let how = match verdict {
            Verdict::Allow => "are allowed",
            Verdict::Deny => "are denied",
            Verdict::RequireApproval => "need approval",
        };
        return Outcome {
            verdict,
            rule: format!("default:{effect}"),
            reason: format!("{effect} actions {how} by default: {what}"),
            confidence: classification.confidence,
            matched_rule: None,
        };
    };

    // A rule that matched on the effect is only as sure as the classification.
    let confidence = if rule.effects.is_empty() {
        EXPLICIT_CONFIDENCE
    } else {
        classification.confidence
    };
    let rule_name = format!("rule:{}", rule.id);
    if let Some(missing) = missing_capabilities(input, agent, &rule.require_capabilities) {
        return Outcome {
            verdict: Verdict::Deny,
            rule: rule_name,
            reason: format!("rule {:?} requires {missing}", rule.id),
            confidence,
            matched_rule: Some(rule.id.clone()),
        };
    }
    let reason = match &rule.reason {
        Some(reason) if !reason.trim().is_empty() => reason.clone(),
        _ => {
            let how = match rule.decision {
                Verdict::Allow => "allows",
                Verdict::Deny => "denies",
                Verdict::RequireApproval => "requires a human approval for",
            };
            format!("rule {:?} {how} {what}", rule.id)
        }
    };
    Outcome {
        verdict: rule.decision,
        rule: rule_name,
        reason,
        confidence,
        matched_rule: Some(rule.id.clone()),
    }
}

/// The required capabilities the agent cannot use here, in words; `None` when it holds them all.
/// Effective capabilities: its own, plus — only in a session made from a delegation, whose
/// chain's restrictions have then been checked — the delegation's scope; within the session's
/// scope ceiling and the presented token's scopes when there are.
fn missing_capabilities(
    input: &CheckInput<'_>,
    agent: &AgentFacts<'_>,
    required: &[String],
) -> Option<String> {
    let ceiling = input.session.and_then(|session| session.scope_ceiling);
    let delegated: &[String] = input
        .session
        .and_then(|session| session.delegation)
        .map_or(&[], |delegation| delegation.scope);
    let held = |capability: &String| {
        agent.capabilities.contains(capability) || delegated.contains(capability)
    };
    let above = |capability: &String| {
        ceiling.is_some_and(|ceiling| !ceiling.contains(capability))
            || input
                .token_scopes
                .is_some_and(|scopes| !scopes.contains(capability))
    };
    let mut not_held = Vec::new();
    let mut above_ceiling = Vec::new();
    for capability in required {
        if !held(capability) {
            not_held.push(format!("{capability:?}"));
        } else if above(capability) {
            above_ceiling.push(format!("{capability:?}"));
        }
    }
    let mut parts = Vec::new();
    if !not_held.is_empty() {
        parts.push(format!(
            "capability {}, which agent {} does not hold (directly or by delegation)",
            not_held.join(", "),
            agent.id
        ));
    }
    if !above_ceiling.is_empty() {
        parts.push(format!(
            "capability {}, which is outside the session's scope ceiling or the token's scopes",
            above_ceiling.join(", ")
        ));
    }
    (!parts.is_empty()).then(|| parts.join("; and "))
}

/// Step 5: read_only agents and sessions need approval for anything but reads; elevated
/// sessions need none.
fn apply_session_mode(
    outcome: Outcome,
    mode: SessionMode,
    effect: Effect,
    what: &str,
    agent_bound: bool,
) -> Outcome {
    let (rule, holder) = if agent_bound {
        ("agent:read_only", "agent")
    } else {
        ("session:read_only", "session")
    };
    match (mode, outcome.verdict) {
        (SessionMode::ReadOnly, Verdict::Allow) if effect != Effect::Read => Outcome {
            verdict: Verdict::RequireApproval,
            rule: rule.to_string(),
            reason: format!(
                "the {holder} is read-only, so anything but a read needs a human approval: {what}"
            ),
            confidence: outcome.confidence,
            matched_rule: outcome.matched_rule,
        },
        (SessionMode::Elevated, Verdict::RequireApproval) => Outcome {
            verdict: Verdict::Allow,
            rule: "session:elevated".to_string(),
            reason: format!(
                "the session is elevated, so no approval is needed; without it: {}",
                outcome.reason
            ),
            confidence: outcome.confidence,
            matched_rule: outcome.matched_rule,
        },
        _ => outcome,
    }
}

/// Step 6: (allowed, elevation_required, approval, rule, reason, confidence) of a call that
/// needs a human approval.
fn resolve_approval(
    input: &CheckInput<'_>,
    outcome: Outcome,
) -> (bool, bool, ApprovalAction, String, String, f64) {
    let Outcome {
        rule,
        reason,
        confidence,
        ..
    } = outcome;
    if input.session_id.is_none() {
        return (
            false,
            false,
            ApprovalAction::None,
            rule,
            format!(
                "{reason}; it needs a human approval, which is granted per session; \
                 retry with a session id"
            ),
            confidence,
        );
    }
    let request = |why: String| {
        (
            false,
            true,
            ApprovalAction::Create,
            rule.clone(),
            why,
            confidence,
        )
    };
    match input.approval {
        ApprovalState::Approved {
            id,
            grant_expires_at,
        } if grant_expires_at > input.now => (
            true,
            false,
            ApprovalAction::None,
            format!("approval:{id}"),
            format!(
                "approved by a human (approval {id}, valid until {}); without it: {reason}",
                time::format(grant_expires_at)
            ),
            EXPLICIT_CONFIDENCE,
        ),
        ApprovalState::Denied { id, decided_by } => (
            false,
            false,
            ApprovalAction::None,
            format!("approval:{id}"),
            format!("denied by {decided_by} (approval {id}); {reason}"),
            EXPLICIT_CONFIDENCE,
        ),
        ApprovalState::Pending { id } => (
            false,
            true,
            ApprovalAction::Reuse(id.to_string()),
            rule.clone(),
            format!("waiting for a human to decide approval {id}: {reason}"),
            confidence,
        ),
        ApprovalState::Approved {
            id,
            grant_expires_at,
        } => request(format!(
            "{reason}; the grant of approval {id} expired at {}, a new approval is requested",
            time::format(grant_expires_at)
        )),
        ApprovalState::Expired { id } => request(format!(
            "{reason}; approval {id} expired undecided, a new approval is requested"
        )),
        ApprovalState::None => request(format!("{reason}; a human approval is requested")),
    }
}
