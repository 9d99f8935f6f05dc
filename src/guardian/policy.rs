//! Org policies, compiled: the document an operator writes (`api::policies::PolicyDocument`) is
//! validated once — the first invalid rule is named with its index, its id and why — and turned
//! into matchers (tool-name globs, input patterns) that [`super::decide`] evaluates per check
//! without allocating or parsing anything.
//!
//! Matching, rule by rule (every matcher that is given must match; a rule without matchers
//! matches every call):
//! - `tools`: globs over the action name, case-insensitive; `*` matches any characters (also `/`
//!   and `.`), `?` one character, `[a-z]` a class, `{a,b}` alternatives, `\` escapes;
//! - `effects`: the effect of the call (stated or classified);
//! - `agents`: the agent's id, name or framework, exactly;
//! - `session_modes`: the stored mode of the session (a new session, or none, is `standard`);
//! - `input`: the input summary contains one of `contains` (case-insensitive) or matches one of
//!   `regex` (any pattern suffices).

use std::collections::HashMap;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use regex::{RegexSet, RegexSetBuilder};

use crate::api::Extra;
use crate::api::actions::Effect;
use crate::api::policies::{EffectDefaults, PolicyDocument, PolicyRule, SessionMode};

/// The longest approval TTL a policy may set: 7 days.
pub const MAX_APPROVAL_TTL_SECONDS: i64 = 7 * 24 * 60 * 60;
/// The highest lockout threshold a policy may set.
pub const MAX_LOCKOUT_AFTER_DENIALS: i64 = 10_000;
/// The longest delegation chain a policy may allow.
pub const MAX_DELEGATION_DEPTH: i64 = 20;
/// The most pending approvals a policy may allow per session or per agent.
pub const MAX_PENDING_APPROVALS: i64 = 10_000;
/// Compiled size limit of the regexes of one rule: patterns are written by admins, but a huge
/// automaton would still slow every check down.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Why a policy document is refused. Rules are validated in order; the first problem wins.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// A rule is invalid; `index` counts from 0, as in `rules[index]`.
    #[error("rules[{index}] (id {id:?}): {problem}")]
    InvalidRule {
        index: usize,
        id: String,
        problem: RuleProblem,
    },
    #[error(
        "approval_ttl_seconds is {0}: it must be between 1 and {MAX_APPROVAL_TTL_SECONDS} (7 days)"
    )]
    ApprovalTtl(i64),
    #[error("lockout_after_denials is {0}: it must be between 1 and {MAX_LOCKOUT_AFTER_DENIALS}")]
    LockoutAfterDenials(i64),
    #[error("max_delegation_depth is {0}: it must be between 1 and {MAX_DELEGATION_DEPTH}")]
    MaxDelegationDepth(i64),
    /// A numeric setting outside its range.
    #[error("{field} is {value}: it must be between {min} and {max}")]
    OutOfRange {
        field: &'static str,
        value: i64,
        min: i64,
        max: i64,
    },
    /// An entry of `tool_effects` is invalid; `index` counts from 0.
    #[error("tool_effects[{index}]: {problem}")]
    InvalidToolEffect { index: usize, problem: String },
    /// A key of the document that no version of the policy format knows (a typo).
    #[error(
        "unknown field {0:?} in the policy document (expected rules, defaults, approval_ttl_seconds, lockout_after_denials, max_delegation_depth, agent_lockout_after_denials, agent_lockout_window_seconds, require_registered_session, max_pending_approvals_per_session, max_pending_approvals_per_agent, tool_effects, version)"
    )]
    UnknownField(String),
}

impl PolicyError {
    /// The index of the invalid rule, when a rule is the problem.
    pub fn rule_index(&self) -> Option<usize> {
        match self {
            PolicyError::InvalidRule { index, .. } => Some(*index),
            _ => None,
        }
    }

    /// The id of the invalid rule (possibly empty), when a rule is the problem.
    pub fn rule_id(&self) -> Option<&str> {
        match self {
            PolicyError::InvalidRule { id, .. } => Some(id),
            _ => None,
        }
    }
}

/// What is wrong with one rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleProblem {
    #[error("the rule id is empty: every rule needs a unique id")]
    EmptyId,
    #[error("the id is already used by rules[{first_index}]: rule ids must be unique")]
    DuplicateId { first_index: usize },
    /// `field` names the entry, e.g. `tools[2]` or `input.contains[0]`.
    #[error("{field} is empty: remove it, or write what it should match")]
    EmptyEntry { field: String },
    #[error("tools[{position}] {pattern:?} is not a valid glob: {message}")]
    BadGlob {
        position: usize,
        pattern: String,
        message: String,
    },
    #[error("input.regex[{position}] {pattern:?} is not a valid regular expression: {message}")]
    BadRegex {
        position: usize,
        pattern: String,
        message: String,
    },
    /// `field` is e.g. `tool` (for `tools`) or `input.regexp`.
    #[error(
        "unknown field {field:?} (a rule knows id, description, tools, effects, agents, session_modes, input.contains, input.regex, require_capabilities, decision, reason)"
    )]
    UnknownField { field: String },
}

/// A validated policy, ready for [`super::decide`]. Cheap to share (`Arc`) between checks.
#[derive(Debug, Clone)]
pub struct CompiledPolicy {
    document: PolicyDocument,
    rules: Vec<CompiledRule>,
    /// `document.tool_effects`, each entry's globs compiled (same order).
    tool_effects: Vec<GlobSet>,
}

/// The matchers of one rule; `None` or empty means "not given" (matches anything).
#[derive(Debug, Clone)]
struct CompiledRule {
    tools: Option<GlobSet>,
    /// Lowercased `input.contains` patterns.
    contains: Vec<String>,
    regexes: Option<RegexSet>,
}

/// The facts a rule matches on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MatchFacts<'a> {
    pub action_name: &'a str,
    pub effect: Effect,
    pub agent_id: &'a str,
    pub agent_name: &'a str,
    pub agent_framework: &'a str,
    pub session_mode: SessionMode,
    pub input_summary: &'a str,
}

/// Validates and compiles a policy document.
pub fn compile(document: &PolicyDocument) -> Result<CompiledPolicy, PolicyError> {
    if let Some(field) = document.extra.keys().next() {
        return Err(PolicyError::UnknownField(field.clone()));
    }
    let mut first_index_of: HashMap<&str, usize> = HashMap::with_capacity(document.rules.len());
    let mut rules = Vec::with_capacity(document.rules.len());
    for (index, rule) in document.rules.iter().enumerate() {
        let invalid = |problem| PolicyError::InvalidRule {
            index,
            id: rule.id.clone(),
            problem,
        };
        if rule.id.trim().is_empty() {
            return Err(invalid(RuleProblem::EmptyId));
        }
        if let Some(&first_index) = first_index_of.get(rule.id.as_str()) {
            return Err(invalid(RuleProblem::DuplicateId { first_index }));
        }
        first_index_of.insert(&rule.id, index);
        rules.push(compile_rule(rule).map_err(invalid)?);
    }
    if !(1..=MAX_APPROVAL_TTL_SECONDS).contains(&document.approval_ttl_seconds) {
        return Err(PolicyError::ApprovalTtl(document.approval_ttl_seconds));
    }
    if !(1..=MAX_LOCKOUT_AFTER_DENIALS).contains(&document.lockout_after_denials) {
        return Err(PolicyError::LockoutAfterDenials(
            document.lockout_after_denials,
        ));
    }
    if !(1..=MAX_DELEGATION_DEPTH).contains(&document.max_delegation_depth) {
        return Err(PolicyError::MaxDelegationDepth(
            document.max_delegation_depth,
        ));
    }
    for (field, value, min, max) in [
        (
            "agent_lockout_after_denials",
            document.agent_lockout_after_denials,
            1,
            MAX_LOCKOUT_AFTER_DENIALS,
        ),
        (
            "agent_lockout_window_seconds",
            document.agent_lockout_window_seconds,
            1,
            MAX_APPROVAL_TTL_SECONDS,
        ),
        (
            "max_pending_approvals_per_session",
            document.max_pending_approvals_per_session,
            1,
            MAX_PENDING_APPROVALS,
        ),
        (
            "max_pending_approvals_per_agent",
            document.max_pending_approvals_per_agent,
            1,
            MAX_PENDING_APPROVALS,
        ),
    ] {
        if !(min..=max).contains(&value) {
            return Err(PolicyError::OutOfRange {
                field,
                value,
                min,
                max,
            });
        }
    }
    let tool_effects = document
        .tool_effects
        .iter()
        .enumerate()
        .map(|(index, entry)| {
            let invalid = |problem: String| PolicyError::InvalidToolEffect { index, problem };
            if let Some(field) = entry.extra.keys().next() {
                return Err(invalid(format!("unknown field {field:?}")));
            }
            if entry.tools.is_empty() {
                return Err(invalid(
                    "tools must name at least one tool glob".to_string(),
                ));
            }
            tool_globs(&entry.tools).map_err(|problem| invalid(problem.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(CompiledPolicy {
        document: document.clone(),
        rules,
        tool_effects,
    })
}

fn compile_rule(rule: &PolicyRule) -> Result<CompiledRule, RuleProblem> {
    reject_unknown(&rule.extra, "")?;
    let input = rule.input.as_ref();
    if let Some(input) = input {
        reject_unknown(&input.extra, "input.")?;
    }
    let no_strings: &[String] = &[];
    let contains = input.map_or(no_strings, |input| &input.contains);
    let regexes = input.map_or(no_strings, |input| &input.regex);
    for (field, entries) in [
        ("tools", &rule.tools[..]),
        ("agents", &rule.agents[..]),
        ("require_capabilities", &rule.require_capabilities[..]),
        ("input.contains", contains),
        ("input.regex", regexes),
    ] {
        if let Some(position) = entries.iter().position(|entry| entry.trim().is_empty()) {
            return Err(RuleProblem::EmptyEntry {
                field: format!("{field}[{position}]"),
            });
        }
    }

    let tools = if rule.tools.is_empty() {
        None
    } else {
        Some(tool_globs(&rule.tools)?)
    };

    // Each regex is checked alone first, so that the error names the pattern at fault.
    for (position, pattern) in regexes.iter().enumerate() {
        RegexSetBuilder::new([pattern])
            .size_limit(REGEX_SIZE_LIMIT)
            .build()
            .map_err(|error| RuleProblem::BadRegex {
                position,
                pattern: pattern.clone(),
                message: regex_message(&error),
            })?;
    }
    let regexes = if regexes.is_empty() {
        None
    } else {
        Some(
            RegexSetBuilder::new(regexes)
                .size_limit(REGEX_SIZE_LIMIT)
                .build()
                .map_err(|error| RuleProblem::BadRegex {
                    position: 0,
                    pattern: regexes.join(" | "),
                    message: regex_message(&error),
                })?,
        )
    };

    Ok(CompiledRule {
        tools,
        contains: contains
            .iter()
            .map(|pattern| pattern.to_lowercase())
            .collect(),
        regexes,
    })
}

/// Globs over action names, as rules and `tool_effects` write them (case-insensitive).
fn tool_globs(patterns: &[String]) -> Result<GlobSet, RuleProblem> {
    let mut set = GlobSetBuilder::new();
    for (position, pattern) in patterns.iter().enumerate() {
        if pattern.trim().is_empty() {
            return Err(RuleProblem::EmptyEntry {
                field: format!("tools[{position}]"),
            });
        }
        let glob = GlobBuilder::new(pattern)
            .case_insensitive(true)
            .literal_separator(false)
            .backslash_escape(true)
            .build()
            .map_err(|error| RuleProblem::BadGlob {
                position,
                pattern: pattern.clone(),
                message: error.kind().to_string(),
            })?;
        set.add(glob);
    }
    set.build().map_err(|error| RuleProblem::BadGlob {
        position: 0,
        pattern: patterns.join(", "),
        message: error.to_string(),
    })
}

/// A regex error on one line (a syntax error is a multi-line drawing ending in `error: …`).
fn regex_message(error: &regex::Error) -> String {
    match error {
        regex::Error::Syntax(text) => text
            .lines()
            .find_map(|line| line.trim().strip_prefix("error: "))
            .unwrap_or(text)
            .to_string(),
        other => other.to_string(),
    }
}

fn reject_unknown(extra: &Extra, prefix: &str) -> Result<(), RuleProblem> {
    match extra.keys().next() {
        Some(field) => Err(RuleProblem::UnknownField {
            field: format!("{prefix}{field}"),
        }),
        None => Ok(()),
    }
}

impl Default for CompiledPolicy {
    /// The policy of an org that never stored one: no rules, the default defaults.
    fn default() -> Self {
        compile(&PolicyDocument::default()).expect("the default policy is valid")
    }
}

impl CompiledPolicy {
    /// The document this policy was compiled from.
    pub fn document(&self) -> &PolicyDocument {
        &self.document
    }

    pub fn defaults(&self) -> &EffectDefaults {
        &self.document.defaults
    }

    /// How long a new approval waits for a human.
    pub fn approval_ttl_seconds(&self) -> i64 {
        self.document.approval_ttl_seconds
    }

    /// Denials after which a session is locked.
    pub fn lockout_after_denials(&self) -> i64 {
        self.document.lockout_after_denials
    }

    /// The longest delegation chain the org allows.
    pub fn max_delegation_depth(&self) -> i64 {
        self.document.max_delegation_depth
    }

    /// Hard denials of one agent within [`Self::agent_lockout_window_seconds`] that lock it.
    pub fn agent_lockout_after_denials(&self) -> i64 {
        self.document.agent_lockout_after_denials
    }

    pub fn agent_lockout_window_seconds(&self) -> i64 {
        self.document.agent_lockout_window_seconds
    }

    /// Whether checks must name a session the gateway opened.
    pub fn require_registered_session(&self) -> bool {
        self.document.require_registered_session
    }

    /// Pending approvals a session, and an agent, may have open at once.
    pub fn max_pending_approvals(&self) -> (i64, i64) {
        (
            self.document.max_pending_approvals_per_session,
            self.document.max_pending_approvals_per_agent,
        )
    }

    /// The effect the org set for this action name, with the entry's first glob (for the
    /// reason), if any entry of `tool_effects` matches.
    pub fn tool_effect(&self, action_name: &str) -> Option<(Effect, &str)> {
        self.document
            .tool_effects
            .iter()
            .zip(&self.tool_effects)
            .find(|(_, globs)| globs.is_match(action_name))
            .map(|(entry, _)| (entry.effect, entry.tools[0].as_str()))
    }

    /// Whether any rule requires capabilities: only then does a check need the capabilities an
    /// agent holds by delegation.
    pub fn requires_capabilities(&self) -> bool {
        self.document
            .rules
            .iter()
            .any(|rule| !rule.require_capabilities.is_empty())
    }

    /// The first rule that matches, if any.
    pub(crate) fn first_match(&self, facts: &MatchFacts<'_>) -> Option<&PolicyRule> {
        let mut lowered_summary: Option<String> = None;
        self.document
            .rules
            .iter()
            .zip(&self.rules)
            .find(|(rule, compiled)| rule_matches(rule, compiled, facts, &mut lowered_summary))
            .map(|(rule, _)| rule)
    }
}

fn rule_matches(
    rule: &PolicyRule,
    compiled: &CompiledRule,
    facts: &MatchFacts<'_>,
    lowered_summary: &mut Option<String>,
) -> bool {
    if let Some(tools) = &compiled.tools
        && !tools.is_match(facts.action_name)
    {
        return false;
    }
    if !rule.effects.is_empty() && !rule.effects.contains(&facts.effect) {
        return false;
    }
    if !rule.agents.is_empty()
        && !rule.agents.iter().any(|agent| {
            agent == facts.agent_id || agent == facts.agent_name || agent == facts.agent_framework
        })
    {
        return false;
    }
    if !rule.session_modes.is_empty() && !rule.session_modes.contains(&facts.session_mode) {
        return false;
    }
    if compiled.contains.is_empty() && compiled.regexes.is_none() {
        return true;
    }
    let contained = !compiled.contains.is_empty() && {
        let summary = lowered_summary.get_or_insert_with(|| facts.input_summary.to_lowercase());
        compiled
            .contains
            .iter()
            .any(|pattern| summary.contains(pattern.as_str()))
    };
    contained
        || compiled
            .regexes
            .as_ref()
            .is_some_and(|regexes| regexes.is_match(facts.input_summary))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::policies::Verdict;

    fn document(json: &str) -> PolicyDocument {
        serde_json::from_str(json).expect("test document parses")
    }

    fn error_of(json: &str) -> PolicyError {
        compile(&document(json)).expect_err("the document is invalid")
    }

    fn facts(action_name: &'static str, input_summary: &'static str) -> MatchFacts<'static> {
        MatchFacts {
            action_name,
            effect: Effect::Mutating,
            agent_id: "agent-1",
            agent_name: "alice",
            agent_framework: "langchain",
            session_mode: SessionMode::Standard,
            input_summary,
        }
    }

    fn matched(policy: &CompiledPolicy, facts: &MatchFacts<'_>) -> Option<String> {
        policy.first_match(facts).map(|rule| rule.id.clone())
    }

    #[test]
    fn the_default_policy_compiles_and_gives_its_document_back() {
        let policy = CompiledPolicy::default();
        assert_eq!(policy.document(), &PolicyDocument::default());
        assert_eq!(policy.approval_ttl_seconds(), 900);
        assert_eq!(policy.lockout_after_denials(), 5);
        assert_eq!(policy.defaults().destructive, Verdict::RequireApproval);
        assert_eq!(matched(&policy, &facts("anything", "")), None);
    }

    #[test]
    fn a_valid_document_round_trips() {
        let source = document(
            r#"{"version": 3, "rules": [
                {"id": "a", "tools": ["files_*"], "effects": ["write"], "agents": ["alice"],
                 "session_modes": ["read_only"], "input": {"contains": ["x"], "regex": ["^y"]},
                 "require_capabilities": ["files:write"], "decision": "deny", "reason": "no"},
                {"id": "b", "decision": "allow"}],
              "defaults": {"admin": "require_approval"},
              "approval_ttl_seconds": 60, "lockout_after_denials": 2}"#,
        );
        let policy = compile(&source).expect("valid");
        assert_eq!(policy.document(), &source);
        assert_eq!(policy.document().rules[0].effects, [Effect::Mutating]);
        assert_eq!(policy.defaults().admin, Verdict::RequireApproval);
        assert_eq!(policy.defaults().read, Verdict::Allow);
    }

    #[test]
    fn compile_errors_name_the_first_invalid_rule_and_why() {
        let cases: &[(&str, usize, &str, &str)] = &[
            (
                r#"{"rules": [{"id": "ok", "decision": "allow"}, {"id": " ", "decision": "deny"}]}"#,
                1,
                " ",
                "id is empty",
            ),
            (
                r#"{"rules": [{"id": "a", "decision": "allow"}, {"id": "b", "decision": "allow"},
                              {"id": "a", "decision": "deny"}]}"#,
                2,
                "a",
                "already used by rules[0]",
            ),
            (
                r#"{"rules": [{"id": "g", "tools": ["ok_*", "bad[a-"], "decision": "deny"}]}"#,
                0,
                "g",
                "tools[1] \"bad[a-\" is not a valid glob",
            ),
            (
                r#"{"rules": [{"id": "ok", "decision": "allow"},
                              {"id": "r", "input": {"regex": ["fine", "(unclosed"]}, "decision": "deny"}]}"#,
                1,
                "r",
                "input.regex[1] \"(unclosed\" is not a valid regular expression: unclosed group",
            ),
            (
                r#"{"rules": [{"id": "t", "tools": ["a", ""], "decision": "deny"}]}"#,
                0,
                "t",
                "tools[1] is empty",
            ),
            (
                r#"{"rules": [{"id": "ag", "agents": [""], "decision": "deny"}]}"#,
                0,
                "ag",
                "agents[0] is empty",
            ),
            (
                r#"{"rules": [{"id": "cap", "require_capabilities": ["x", "  "], "decision": "allow"}]}"#,
                0,
                "cap",
                "require_capabilities[1] is empty",
            ),
            (
                r#"{"rules": [{"id": "c", "input": {"contains": [""]}, "decision": "deny"}]}"#,
                0,
                "c",
                "input.contains[0] is empty",
            ),
            (
                r#"{"rules": [{"id": "e", "input": {"regex": [""]}, "decision": "deny"}]}"#,
                0,
                "e",
                "input.regex[0] is empty",
            ),
            (
                r#"{"rules": [{"id": "typo", "tool": ["shell"], "decision": "deny"}]}"#,
                0,
                "typo",
                "unknown field \"tool\"",
            ),
            (
                r#"{"rules": [{"id": "typo2", "input": {"regexp": ["x"]}, "decision": "deny"}]}"#,
                0,
                "typo2",
                "unknown field \"input.regexp\"",
            ),
        ];
        for (json, index, id, why) in cases {
            let error = error_of(json);
            assert_eq!(error.rule_index(), Some(*index), "{error}");
            assert_eq!(error.rule_id(), Some(*id), "{error}");
            let message = error.to_string();
            assert!(
                message.starts_with(&format!("rules[{index}] (id {id:?}): ")),
                "{message}"
            );
            assert!(message.contains(why), "{message} lacks {why:?}");
            assert!(!message.contains('\n'), "one line: {message}");
        }
    }

    #[test]
    fn the_first_of_several_problems_is_reported() {
        let error = error_of(
            r#"{"rules": [{"id": "a", "decision": "allow"}, {"id": "", "tools": ["["], "decision": "deny"},
                          {"id": "a", "decision": "deny"}]}"#,
        );
        assert_eq!(error.rule_index(), Some(1));
        assert!(error.to_string().contains("id is empty"), "{error}");
    }

    #[test]
    fn settings_outside_their_range_are_refused() {
        for ttl in [0, -5, MAX_APPROVAL_TTL_SECONDS + 1] {
            let error = error_of(&format!(r#"{{"approval_ttl_seconds": {ttl}}}"#));
            assert_eq!(error, PolicyError::ApprovalTtl(ttl));
            assert!(
                error.to_string().contains("between 1 and 604800"),
                "{error}"
            );
            assert_eq!(error.rule_index(), None);
        }
        for lockout in [0, MAX_LOCKOUT_AFTER_DENIALS + 1] {
            let error = error_of(&format!(r#"{{"lockout_after_denials": {lockout}}}"#));
            assert_eq!(error, PolicyError::LockoutAfterDenials(lockout));
        }
        for ok in [
            r#"{"approval_ttl_seconds": 1, "lockout_after_denials": 1}"#,
            r#"{"approval_ttl_seconds": 604800, "lockout_after_denials": 10000}"#,
        ] {
            compile(&document(ok)).expect(ok);
        }
    }

    #[test]
    fn unknown_document_fields_are_refused_but_parse() {
        let parsed = document(r#"{"rule": [{"id": "x", "decision": "deny"}]}"#);
        assert!(parsed.rules.is_empty());
        assert_eq!(
            compile(&parsed).unwrap_err(),
            PolicyError::UnknownField("rule".to_string())
        );
        // A misspelt default is a parse error (the defaults are a closed set).
        assert!(
            serde_json::from_str::<PolicyDocument>(r#"{"defaults": {"destrutive": "allow"}}"#)
                .is_err()
        );
    }

    #[test]
    fn globs_match_the_whole_action_name_case_insensitively() {
        let policy = compile(&document(
            r#"{"rules": [
                {"id": "star", "tools": ["files_*"], "decision": "deny"},
                {"id": "infix", "tools": ["*delete*"], "decision": "deny"},
                {"id": "alternatives", "tools": ["{git,svn}_push", "dep?oy"], "decision": "deny"},
                {"id": "exact", "tools": ["shell"], "decision": "deny"}]}"#,
        ))
        .expect("valid");
        let cases = [
            ("files_read", Some("star")),
            ("FILES_READ", Some("star")),
            ("files_/etc/passwd", Some("star")),
            ("myfiles_read", None),
            ("bulkDeleteAll", Some("infix")),
            ("git_push", Some("alternatives")),
            ("svn_push", Some("alternatives")),
            ("hg_push", None),
            ("deploy", Some("alternatives")),
            ("shell", Some("exact")),
            ("shell_exec", None),
            ("run_shell", None),
        ];
        for (name, expected) in cases {
            assert_eq!(
                matched(&policy, &facts(name, "")).as_deref(),
                expected,
                "{name}"
            );
        }
    }

    #[test]
    fn input_patterns_match_by_substring_or_regex() {
        let policy = compile(&document(
            r#"{"rules": [
                {"id": "substring", "input": {"contains": ["Password"]}, "decision": "deny"},
                {"id": "regex", "input": {"regex": ["^\\d{3}-\\d{4}$", "(?i)token="]}, "decision": "deny"},
                {"id": "both", "input": {"contains": ["zzz"], "regex": ["^yyy"]}, "decision": "deny"}]}"#,
        ))
        .expect("valid");
        let cases = [
            ("my PASSWORD is", Some("substring")),
            ("passw0rd", None),
            ("555-1234", Some("regex")),
            ("call 555-1234", None),
            ("TOKEN=abc", Some("regex")),
            ("yyy first", Some("both")),
            ("a zzz b", Some("both")),
            ("", None),
        ];
        for (summary, expected) in cases {
            assert_eq!(
                matched(&policy, &facts("tool", summary)).as_deref(),
                expected,
                "{summary:?}"
            );
        }
    }

    #[test]
    fn an_empty_input_matcher_matches_everything() {
        let policy = compile(&document(
            r#"{"rules": [{"id": "any", "input": {}, "decision": "deny"}]}"#,
        ))
        .expect("valid");
        assert_eq!(matched(&policy, &facts("x", "")).as_deref(), Some("any"));
    }
}
