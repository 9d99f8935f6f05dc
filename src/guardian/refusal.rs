//! Refusals decided while a check is recorded, after [`super::decide`]: the facts that can flip
//! an allow are read again inside the record transaction (an agent revoked or locked, a session
//! locked or made read-only, a delegation chain or the presented token ended, in the meantime),
//! a delegation's call budget is taken, and a new approval must fit the caps. The Guardian owns
//! the rule and the reason of each, as it does for every other decision.

use crate::api::actions::Effect;
use crate::api::federation::TrustLevel;
use crate::api::policies::SessionMode;

use super::decide::{ApprovalAction, Decision, trust_ceiling};
use super::scope::{MAX_CALLS_RULE, max_calls_reason};

/// The facts that can flip an allow, as read inside the record transaction.
#[derive(Debug, Clone, Default)]
pub struct LiveFacts {
    /// The agent is still active.
    pub agent_active: bool,
    pub agent_mode: Option<SessionMode>,
    /// The stored session's mode, when the session exists.
    pub session_mode: Option<SessionMode>,
    /// Why the session's delegation chain ended, if it did.
    pub chain_ended: Option<String>,
    /// Why the presented agent token stopped working, if it did.
    pub token_ended: Option<String>,
    /// Why a federation session's provider stopped vouching for it (disabled or deleted).
    pub provider_ended: Option<String>,
    /// A federation session's provider's trust level now.
    pub provider_trust: Option<TrustLevel>,
    /// The ID token a federation session was opened with was revoked.
    pub federation_token_revoked: bool,
}

/// Why a check is refused at record time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    AgentRevoked {
        agent_id: String,
    },
    ChainEnded(String),
    TokenEnded(String),
    /// A federation session's provider was disabled or deleted.
    ProviderEnded(String),
    /// The ID token a federation session was opened with was revoked.
    FederationTokenRevoked,
    /// A federation session's provider's trust was lowered below the call's effect.
    TrustLowered {
        level: TrustLevel,
    },
    AgentLocked {
        agent_id: String,
    },
    SessionLocked {
        session_id: String,
    },
    AgentReadOnly,
    SessionReadOnly,
    /// A delegation's `max_calls` was used up by concurrent checks.
    CallBudget {
        max_calls: i64,
        made: i64,
    },
    /// The session (or the agent) already has `cap` pending approvals.
    ApprovalCap {
        per_session: bool,
        cap: i64,
    },
}

impl Refusal {
    pub fn rule(&self) -> &'static str {
        match self {
            Refusal::AgentRevoked { .. } => "agent:revoked",
            Refusal::ChainEnded(_) => "delegation:revoked",
            Refusal::TokenEnded(_) => "token:revoked",
            Refusal::ProviderEnded(_) => "federation:provider",
            Refusal::FederationTokenRevoked => "federation:revoked",
            Refusal::TrustLowered { .. } => "federation:trust_level",
            Refusal::AgentLocked { .. } => "agent:locked",
            Refusal::SessionLocked { .. } => "session:locked",
            Refusal::AgentReadOnly => "agent:read_only",
            Refusal::SessionReadOnly => "session:read_only",
            Refusal::CallBudget { .. } => MAX_CALLS_RULE,
            Refusal::ApprovalCap { .. } => "approval:cap",
        }
    }

    pub fn reason(&self, action_name: &str, effect: Effect) -> String {
        let while_deciding = "while the call was being decided";
        match self {
            Refusal::AgentRevoked { agent_id } => {
                format!("agent {agent_id} was revoked {while_deciding}")
            }
            Refusal::ChainEnded(why) | Refusal::TokenEnded(why) | Refusal::ProviderEnded(why) => {
                format!("{why} {while_deciding}")
            }
            Refusal::FederationTokenRevoked => format!(
                "the ID token this federation session was opened with was revoked \
                 {while_deciding}"
            ),
            Refusal::TrustLowered { level } => format!(
                "the provider of this federation session was lowered to trust level {level} \
                 {while_deciding}, which allows {} calls at most: {action_name} is {effect}",
                trust_ceiling(*level)
            ),
            Refusal::AgentLocked { agent_id } => format!(
                "agent {agent_id} was locked {while_deciding}, and may only read: {action_name} \
                 is {effect}"
            ),
            Refusal::SessionLocked { session_id } => format!(
                "session {session_id} was locked {while_deciding}, and allows only reads: \
                 {action_name} is {effect}"
            ),
            Refusal::AgentReadOnly | Refusal::SessionReadOnly => {
                let holder = if *self == Refusal::AgentReadOnly {
                    "agent"
                } else {
                    "session"
                };
                format!(
                    "the {holder} became read-only {while_deciding}: {action_name} is {effect}; \
                     retry to ask for a human approval"
                )
            }
            Refusal::CallBudget { max_calls, made } => format!(
                "{} (used up by concurrent calls)",
                max_calls_reason(u64::try_from(*max_calls).unwrap_or(0), *made)
            ),
            Refusal::ApprovalCap { per_session, cap } => format!(
                "{action_name} needs a human approval, and {} already has {cap} pending \
                 (the org's max_pending_approvals_per_{}); decide or let them expire first",
                if *per_session {
                    "the session"
                } else {
                    "the agent"
                },
                if *per_session { "session" } else { "agent" },
            ),
        }
    }

    /// A refusal for the agent's own doing counts as a hard denial (session and agent
    /// lockout); one for a fact about identity, a delegation or a token does not.
    pub fn counts_as_denial(&self) -> bool {
        !matches!(
            self,
            Refusal::AgentRevoked { .. }
                | Refusal::ChainEnded(_)
                | Refusal::TokenEnded(_)
                | Refusal::ProviderEnded(_)
                | Refusal::FederationTokenRevoked
        )
    }
}

/// What the decision rested on that may have changed since: the modes it was decided with.
#[derive(Debug, Clone, Copy)]
pub struct DecidedWith {
    pub agent_mode: SessionMode,
    pub session_mode: SessionMode,
}

/// Whether an allowed decision still stands on the live facts; the refusal when it does not.
/// Denials never need it: a stale denial is safe.
pub fn recheck(
    decision: &Decision,
    agent_id: &str,
    session_id: Option<&str>,
    decided_with: DecidedWith,
    live: &LiveFacts,
) -> Option<Refusal> {
    if !decision.allowed {
        return None;
    }
    if !live.agent_active {
        return Some(Refusal::AgentRevoked {
            agent_id: agent_id.to_string(),
        });
    }
    if let Some(why) = &live.chain_ended {
        return Some(Refusal::ChainEnded(why.clone()));
    }
    if let Some(why) = &live.token_ended {
        return Some(Refusal::TokenEnded(why.clone()));
    }
    if let Some(why) = &live.provider_ended {
        return Some(Refusal::ProviderEnded(why.clone()));
    }
    if live.federation_token_revoked {
        return Some(Refusal::FederationTokenRevoked);
    }
    if let Some(level) = live.provider_trust
        && decision.effect > trust_ceiling(level)
    {
        return Some(Refusal::TrustLowered { level });
    }
    if decision.effect == Effect::Read {
        return None;
    }
    let agent_mode = live.agent_mode.unwrap_or(SessionMode::Standard);
    let session_mode = live.session_mode.unwrap_or(decided_with.session_mode);
    if agent_mode == SessionMode::Locked && decided_with.agent_mode != SessionMode::Locked {
        return Some(Refusal::AgentLocked {
            agent_id: agent_id.to_string(),
        });
    }
    if session_mode == SessionMode::Locked && decided_with.session_mode != SessionMode::Locked {
        return Some(Refusal::SessionLocked {
            session_id: session_id.unwrap_or("ID").to_string(),
        });
    }
    // A human's approval answers for the call whatever the mode.
    if decision.rule.starts_with("approval:") {
        return None;
    }
    if agent_mode == SessionMode::ReadOnly && decided_with.agent_mode != SessionMode::ReadOnly {
        return Some(Refusal::AgentReadOnly);
    }
    if session_mode == SessionMode::ReadOnly
        && !matches!(
            decided_with.session_mode,
            SessionMode::ReadOnly | SessionMode::Locked
        )
    {
        return Some(Refusal::SessionReadOnly);
    }
    None
}

/// Turns the decision into the refusal: not allowed, no approval, the refusal's rule and reason.
pub fn refuse(decision: &mut Decision, refusal: &Refusal, action_name: &str) {
    decision.allowed = false;
    decision.elevation_required = false;
    decision.approval = ApprovalAction::None;
    decision.rule = refusal.rule().to_string();
    decision.reason = refusal.reason(action_name, decision.effect);
    decision.confidence = super::classify::EXPLICIT_CONFIDENCE;
    decision.counts_as_denial = refusal.counts_as_denial();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(effect: Effect, rule: &str) -> Decision {
        Decision {
            allowed: true,
            effect,
            reason: String::new(),
            confidence: 1.0,
            elevation_required: false,
            rule: rule.to_string(),
            matched_rule: None,
            approval: ApprovalAction::None,
            counts_as_denial: false,
        }
    }

    const STANDARD: DecidedWith = DecidedWith {
        agent_mode: SessionMode::Standard,
        session_mode: SessionMode::Standard,
    };

    fn live() -> LiveFacts {
        LiveFacts {
            agent_active: true,
            ..LiveFacts::default()
        }
    }

    #[test]
    fn an_allow_on_facts_that_changed_is_refused() {
        let write = allowed(Effect::Mutating, "default:mutating");
        let read = allowed(Effect::Read, "default:read");
        let check = |decision: &Decision, live: LiveFacts| {
            recheck(decision, "a1", Some("s1"), STANDARD, &live).map(|r| r.rule())
        };
        assert_eq!(check(&write, live()), None);
        let revoked = LiveFacts {
            agent_active: false,
            ..live()
        };
        assert_eq!(check(&read, revoked), Some("agent:revoked"));
        let chain = LiveFacts {
            chain_ended: Some("delegation d1 is revoked".to_string()),
            ..live()
        };
        assert_eq!(check(&read, chain), Some("delegation:revoked"));
        let locked = LiveFacts {
            session_mode: Some(SessionMode::Locked),
            ..live()
        };
        assert_eq!(check(&write, locked.clone()), Some("session:locked"));
        assert_eq!(check(&read, locked), None, "a locked session still reads");
        let agent_locked = LiveFacts {
            agent_mode: Some(SessionMode::Locked),
            ..live()
        };
        assert_eq!(check(&write, agent_locked), Some("agent:locked"));
        let read_only = LiveFacts {
            session_mode: Some(SessionMode::ReadOnly),
            ..live()
        };
        assert_eq!(check(&write, read_only.clone()), Some("session:read_only"));
        let approved = allowed(Effect::Mutating, "approval:ap-1");
        assert_eq!(check(&approved, read_only), None);
        let disabled = LiveFacts {
            provider_ended: Some("the federation session's provider was disabled".to_string()),
            ..live()
        };
        assert_eq!(check(&read, disabled), Some("federation:provider"));
        let lowered = LiveFacts {
            provider_trust: Some(TrustLevel::Low),
            ..live()
        };
        assert_eq!(
            check(&write, lowered.clone()),
            Some("federation:trust_level")
        );
        assert_eq!(check(&read, lowered), None, "low trust still reads");
        // Even a human's approval does not lift a provider's trust ceiling.
        let high_risk = allowed(Effect::Destructive, "approval:ap-2");
        let standard = LiveFacts {
            provider_trust: Some(TrustLevel::Standard),
            ..live()
        };
        assert_eq!(check(&high_risk, standard), Some("federation:trust_level"));
    }

    #[test]
    fn refusals_for_facts_do_not_count_against_the_agent() {
        assert!(!Refusal::ChainEnded(String::new()).counts_as_denial());
        assert!(!Refusal::ProviderEnded(String::new()).counts_as_denial());
        assert!(!Refusal::FederationTokenRevoked.counts_as_denial());
        assert!(
            Refusal::TrustLowered {
                level: TrustLevel::Low
            }
            .counts_as_denial()
        );
        assert!(
            Refusal::CallBudget {
                max_calls: 3,
                made: 3
            }
            .counts_as_denial()
        );
    }
}
