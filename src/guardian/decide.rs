//! The decision: agent state first (unknown or revoked agents may do nothing), then the effect
//! (given or classified), then the defaults per effect — read and mutating allowed, destructive
//! and admin denied. Every path names the rule that decided, so a later policy engine only adds
//! rules in front of the defaults.

use crate::api::actions::Effect;

use super::classify::{Classification, EXPLICIT_CONFIDENCE, classify};

/// What the store knows of the agent that asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentState {
    /// No such agent in the caller's org.
    Unknown,
    Revoked,
    Active,
}

/// Everything a decision depends on.
#[derive(Debug, Clone)]
pub struct CheckInput<'a> {
    pub agent: AgentState,
    pub action_name: &'a str,
    pub input_summary: &'a str,
    /// The effect the caller stated, if any.
    pub stated_effect: Option<Effect>,
    /// The session belongs to another agent of the org.
    pub session_of_other_agent: bool,
}

/// The answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub allowed: bool,
    pub effect: Effect,
    pub reason: String,
    pub confidence: f64,
    pub elevation_required: bool,
    /// `agent:unknown`, `agent:revoked`, `session:agent-mismatch`, `default:<effect>`.
    pub rule: String,
}

/// Decides one check.
pub fn decide(input: &CheckInput<'_>) -> Decision {
    let classification = match input.stated_effect {
        Some(effect) => Classification {
            effect,
            confidence: EXPLICIT_CONFIDENCE,
            evidence: "stated by the caller".to_string(),
        },
        None => classify(input.action_name, input.input_summary),
    };
    let effect = classification.effect;

    let deny = |rule: &str, reason: String| Decision {
        allowed: false,
        effect,
        reason,
        // The agent's state is a fact, not a guess.
        confidence: EXPLICIT_CONFIDENCE,
        elevation_required: false,
        rule: rule.to_string(),
    };
    match input.agent {
        AgentState::Unknown => {
            return deny(
                "agent:unknown",
                "unknown agent: no such agent is registered in this org".to_string(),
            );
        }
        AgentState::Revoked => {
            return deny(
                "agent:revoked",
                "agent is revoked and may not act".to_string(),
            );
        }
        AgentState::Active => {}
    }
    if input.session_of_other_agent {
        return deny(
            "session:agent-mismatch",
            "the session belongs to another agent".to_string(),
        );
    }

    let allowed = matches!(effect, Effect::Read | Effect::Mutating);
    let verdict = if allowed { "allowed" } else { "denied" };
    let how = if input.stated_effect.is_some() {
        format!("{} (stated)", effect)
    } else {
        format!("{} ({})", effect, classification.evidence)
    };
    Decision {
        allowed,
        effect,
        reason: format!(
            "{} actions are {verdict} by default: {} is {how}",
            effect, input.action_name
        ),
        confidence: classification.confidence,
        elevation_required: false,
        rule: format!("default:{effect}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(action_name: &'static str, input_summary: &'static str) -> CheckInput<'static> {
        CheckInput {
            agent: AgentState::Active,
            action_name,
            input_summary,
            stated_effect: None,
            session_of_other_agent: false,
        }
    }

    #[test]
    fn defaults_per_effect() {
        let cases = [
            ("web_search", "AI news", true, Effect::Read),
            ("send_email", "", true, Effect::Mutating),
            (
                "delete_all",
                "delete everything",
                false,
                Effect::Destructive,
            ),
            ("grant_role", "", false, Effect::Admin),
        ];
        for (name, summary, allowed, effect) in cases {
            let decision = decide(&input(name, summary));
            assert_eq!(decision.allowed, allowed, "{name}");
            assert_eq!(decision.effect, effect, "{name}");
            assert_eq!(decision.rule, format!("default:{effect}"));
            assert!(!decision.elevation_required);
            assert!(decision.reason.contains(name), "{}", decision.reason);
        }
    }

    #[test]
    fn a_stated_effect_wins_with_full_confidence() {
        let mut check = input("web_search", "");
        check.stated_effect = Some(Effect::Destructive);
        let decision = decide(&check);
        assert!(!decision.allowed);
        assert_eq!(decision.confidence, 1.0);
        assert_eq!(decision.effect, Effect::Destructive);
    }

    #[test]
    fn classified_effects_are_less_than_certain() {
        let decision = decide(&input("web_search", ""));
        assert!(decision.confidence < 1.0);
    }

    #[test]
    fn unknown_and_revoked_agents_may_do_nothing() {
        for (state, rule) in [
            (AgentState::Unknown, "agent:unknown"),
            (AgentState::Revoked, "agent:revoked"),
        ] {
            let mut check = input("web_search", "");
            check.agent = state;
            let decision = decide(&check);
            assert!(!decision.allowed);
            assert_eq!(decision.rule, rule);
        }
    }

    #[test]
    fn another_agents_session_is_refused() {
        let mut check = input("web_search", "");
        check.session_of_other_agent = true;
        assert_eq!(decide(&check).rule, "session:agent-mismatch");
    }
}
