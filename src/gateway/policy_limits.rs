//! Limits on the size of an org's policy, checked before it is compiled or stored: how many
//! rules, and how much memory its compiled matchers may take. One org's policy is compiled on
//! every replica and consulted on every check; without a bound a single upload could stall a
//! replica for seconds and take gigabytes.
//!
//! The compiled size is measured, not guessed from the text: every `input.regex` pattern is
//! compiled by the same engine the Guardian uses, with the remaining budget as its size limit,
//! so measuring costs no more than the budget allows and stops at the first pattern past it.
//! Strings matched literally (tool globs, agents, `input.contains`, capabilities) count with
//! their length.

use regex_automata::meta::Regex;

use crate::api::policies::PolicyDocument;

/// Most rules in one policy, unless configured otherwise.
pub const DEFAULT_MAX_POLICY_RULES: usize = 500;
/// Most memory one policy's compiled matchers may take, unless configured otherwise.
pub const DEFAULT_MAX_POLICY_COMPILED_BYTES: usize = 8 * 1024 * 1024;

/// The server's bounds on one org's policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyLimits {
    pub max_rules: usize,
    pub max_compiled_bytes: usize,
}

impl Default for PolicyLimits {
    fn default() -> PolicyLimits {
        PolicyLimits {
            max_rules: DEFAULT_MAX_POLICY_RULES,
            max_compiled_bytes: DEFAULT_MAX_POLICY_COMPILED_BYTES,
        }
    }
}

/// A policy past one of the limits; the text names the limit and the setting that raises it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error(
        "the policy has {rules} rules; this gateway accepts at most {max} \
         (server option --max-policy-rules)"
    )]
    TooManyRules { rules: usize, max: usize },
    #[error(
        "the policy's compiled matchers would take more than {max} bytes (this gateway's \
         limit, server option --max-policy-compiled-bytes); the budget ran out at \
         rules[{index}] (id {id:?}): use fewer or simpler patterns"
    )]
    TooLarge {
        max: usize,
        index: usize,
        id: String,
    },
}

/// Checks `document` against `limits`. CPU-bound (it compiles regexes): call it off the async
/// workers.
pub fn check(document: &PolicyDocument, limits: &PolicyLimits) -> Result<(), LimitError> {
    if document.rules.len() > limits.max_rules {
        return Err(LimitError::TooManyRules {
            rules: document.rules.len(),
            max: limits.max_rules,
        });
    }
    let mut remaining = limits.max_compiled_bytes;
    for (index, rule) in document.rules.iter().enumerate() {
        let too_large = || LimitError::TooLarge {
            max: limits.max_compiled_bytes,
            index,
            id: rule.id.clone(),
        };
        let literal_bytes: usize = [
            &rule.tools[..],
            &rule.agents[..],
            &rule.require_capabilities[..],
            rule.input
                .as_ref()
                .map_or(&[][..], |input| &input.contains[..]),
        ]
        .iter()
        .flat_map(|list| list.iter())
        .map(String::len)
        .sum::<usize>()
            + rule.id.len();
        remaining = remaining.checked_sub(literal_bytes).ok_or_else(too_large)?;
        let patterns = rule
            .input
            .as_ref()
            .map_or(&[][..], |input| &input.regex[..]);
        for pattern in patterns {
            remaining = remaining
                .checked_sub(compiled_size(pattern, remaining).ok_or_else(too_large)?)
                .ok_or_else(too_large)?;
        }
    }
    Ok(())
}

/// The heap size of `pattern` compiled, or `None` when it does not fit in `budget` bytes. A
/// pattern that does not compile for another reason counts as 0 here: the Guardian's own
/// validation, which runs next, names that error precisely.
fn compiled_size(pattern: &str, budget: usize) -> Option<usize> {
    match Regex::builder()
        .configure(Regex::config().nfa_size_limit(Some(budget)))
        .build(pattern)
    {
        Ok(regex) => Some(regex.memory_usage()),
        Err(error) if error.size_limit().is_some() => None,
        Err(_) => Some(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(rules: usize, pattern: &str) -> PolicyDocument {
        let rules: Vec<serde_json::Value> = (0..rules)
            .map(|index| {
                serde_json::json!({"id": format!("r{index}"), "input": {"regex": [pattern]},
                                   "decision": "deny"})
            })
            .collect();
        serde_json::from_value(serde_json::json!({ "rules": rules })).expect("document")
    }

    #[test]
    fn rule_count_is_capped() {
        let limits = PolicyLimits::default();
        assert_eq!(check(&policy(500, "secret"), &limits), Ok(()));
        assert_eq!(
            check(&policy(501, "secret"), &limits),
            Err(LimitError::TooManyRules {
                rules: 501,
                max: 500
            })
        );
    }

    #[test]
    fn compiled_size_is_measured_and_capped() {
        let limits = PolicyLimits {
            max_rules: 10_000,
            max_compiled_bytes: 1 << 20,
        };
        // A short pattern can compile huge: Unicode word characters, repeated.
        let error = check(&policy(1, r"\w{200}"), &limits).unwrap_err();
        assert!(
            matches!(error, LimitError::TooLarge { index: 0, .. }),
            "{error}"
        );
        assert!(error.to_string().contains("--max-policy-compiled-bytes"));
        // Many small ones add up, and the rule where the budget ran out is named.
        let error = check(&policy(2000, r"(password|secret)\w+\d{3}"), &limits).unwrap_err();
        match error {
            LimitError::TooLarge { index, .. } => assert!(index > 0 && index < 2000, "{index}"),
            other => panic!("{other}"),
        }
        assert_eq!(
            check(&policy(3, r"(password|secret)\w+\d{3}"), &limits),
            Ok(())
        );
        // An invalid pattern is left to the Guardian's validation, which names the error.
        assert_eq!(check(&policy(1, "(unclosed"), &limits), Ok(()));
    }
}
