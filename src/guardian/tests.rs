//! The decision function, table-driven: every case states the agent, the call, the session, the
//! latest approval and the policy, and expects `allowed`, `elevation_required`, the deciding rule
//! and the approval action (plus, where it matters, the denial counters and a word of the reason).

use crate::api::actions::Effect;
use crate::api::policies::{PolicyDocument, SessionMode};

use super::*;

const NOW: i64 = 1_772_359_200;
const SID: Option<&str> = Some("sess-1");

/// The policy of the fixture org: every matcher kind, capability requirements, ordering.
const RULES: &str = r#"{
  "rules": [
    {"id": "block-shell-rm", "tools": ["shell"], "input": {"contains": ["RM -RF"]},
     "decision": "deny", "reason": "no recursive deletes from the shell"},
    {"id": "deploy-needs-cap", "tools": ["deploy_*"], "require_capabilities": ["deploy:prod"],
     "decision": "allow"},
    {"id": "files-write", "tools": ["files_write*"], "require_capabilities": ["files:write"],
     "decision": "allow"},
    {"id": "billing-approval", "tools": ["*refund*"], "decision": "require_approval"},
    {"id": "crewai-no-email", "agents": ["crewai"], "tools": ["send_email"], "decision": "deny"},
    {"id": "bob-by-name", "agents": ["bob-bot"], "decision": "deny"},
    {"id": "by-id", "agents": ["agent-9"], "tools": ["special"], "decision": "allow"},
    {"id": "secrets-regex", "input": {"regex": ["(?i)api[_-]?key\\s*="]}, "decision": "deny"},
    {"id": "readonly-no-download", "session_modes": ["read_only"], "tools": ["download_*"],
     "decision": "deny"},
    {"id": "admin-ops", "effects": ["admin"], "agents": ["ops-agent"], "decision": "allow"},
    {"id": "first", "tools": ["order_*"], "decision": "deny"},
    {"id": "second", "tools": ["order_pizza"], "decision": "allow"},
    {"id": "sql-drop", "tools": ["sql"], "input": {"regex": ["(?i)\\bdrop\\s+table\\b"]},
     "decision": "require_approval", "reason": "dropping tables needs a DBA"}
  ],
  "approval_ttl_seconds": 600,
  "lockout_after_denials": 3
}"#;

/// Custom defaults and an immediate lockout.
const CUSTOM: &str = r#"{
  "defaults": {"mutating": "require_approval", "destructive": "deny"},
  "lockout_after_denials": 1
}"#;

#[derive(Clone, Copy)]
enum Policy {
    Default,
    Rules,
    Custom,
}

#[derive(Clone, Copy)]
enum Agent {
    Unknown,
    /// agent-1 "alice-bot" (langchain): files:read, files:write; delegated deploy:prod.
    Alice,
    /// agent-2 "bob-bot" (crewai): no capabilities.
    Bob,
    /// agent-3 "ops-agent" (autogen).
    Ops,
    /// agent-9 "nine" (custom).
    Nine,
    /// agent-4, revoked.
    Revoked,
}

/// A stored session: mode, scope ceiling, owning agent.
#[derive(Clone, Copy)]
struct Session {
    mode: SessionMode,
    ceiling: &'static [&'static str],
    agent_id: &'static str,
}

const fn session(mode: SessionMode) -> Option<Session> {
    Some(Session {
        mode,
        ceiling: &[],
        agent_id: "agent-1",
    })
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Approval {
    None,
    Reuse(&'static str),
    Create,
}

#[derive(Clone, Copy)]
struct Case {
    name: &'static str,
    policy: Policy,
    agent: Agent,
    action: &'static str,
    summary: &'static str,
    effect: Option<Effect>,
    session_id: Option<&'static str>,
    session: Option<Session>,
    approval: ApprovalState<'static>,
    // Expectations.
    allowed: bool,
    elevation: bool,
    rule: &'static str,
    approval_action: Approval,
    /// `counts_as_denial`, checked when given.
    counters: Option<bool>,
    /// A word the reason must contain.
    reason: &'static str,
}

const BASE: Case = Case {
    name: "",
    policy: Policy::Default,
    agent: Agent::Alice,
    action: "web_search",
    summary: "",
    effect: None,
    session_id: None,
    session: None,
    approval: ApprovalState::None,
    allowed: true,
    elevation: false,
    rule: "default:read",
    approval_action: Approval::None,
    counters: None,
    reason: "",
};

/// `(allowed, elevation_required, rule, approval action)`.
type Expected = (bool, bool, &'static str, Approval);

#[rustfmt::skip]
fn cases() -> Vec<Case> {
    use SessionMode::*;
    let denied = |rule| (false, false, rule, Approval::None);
    let allowed = |rule| (true, false, rule, Approval::None);
    let create = |rule| (false, true, rule, Approval::Create);
    let table: Vec<(Case, Expected)> = vec![
        // Defaults per effect.
        (Case { name: "read allowed by default", summary: "AI news", ..BASE }, allowed("default:read")),
        (Case { name: "mutating allowed by default", action: "send_email", ..BASE }, allowed("default:mutating")),
        (Case { name: "destructive without session is denied", action: "delete_all", counters: Some(true), reason: "retry with a session id", ..BASE }, denied("default:destructive")),
        (Case { name: "destructive in a new session asks approval", action: "delete_all", session_id: SID, counters: Some(false), reason: "need approval by default", ..BASE }, create("default:destructive")),
        (Case { name: "admin denied by default", action: "grant_role", ..BASE }, denied("default:admin")),
        (Case { name: "stated destructive beats the name", effect: Some(Effect::Destructive), session_id: SID, session: session(Standard), reason: "stated by the caller", ..BASE }, create("default:destructive")),
        (Case { name: "stated read beats the name", action: "delete_file", effect: Some(Effect::Read), ..BASE }, allowed("default:read")),
        (Case { name: "unknown verb is mutating", action: "frobnicate", ..BASE }, allowed("default:mutating")),
        (Case { name: "dangerous input raises the effect", action: "shell", summary: "rm -rf /", session_id: SID, ..BASE }, create("default:destructive")),
        // Identity.
        (Case { name: "unknown agent", agent: Agent::Unknown, session_id: SID, counters: Some(false), ..BASE }, denied("agent:unknown")),
        (Case { name: "revoked agent", agent: Agent::Revoked, counters: Some(false), ..BASE }, denied("agent:revoked")),
        (Case { name: "session of another agent never counts against it", session_id: SID, session: Some(Session { agent_id: "agent-2", ..session(Standard).unwrap() }), counters: Some(false), ..BASE }, denied("session:agent-mismatch")),
        // Rules: tools, input, agents.
        (Case { name: "contains is case-insensitive", policy: Policy::Rules, action: "shell", summary: "rm -rf /tmp", reason: "no recursive deletes", ..BASE }, denied("rule:block-shell-rm")),
        (Case { name: "contains not matching falls through", policy: Policy::Rules, action: "shell", summary: "ls -la", ..BASE }, allowed("default:mutating")),
        (Case { name: "input regex", policy: Policy::Rules, action: "notes_update", summary: "set API_KEY = 123", ..BASE }, denied("rule:secrets-regex")),
        (Case { name: "agent by framework", policy: Policy::Rules, agent: Agent::Bob, action: "send_email", ..BASE }, denied("rule:crewai-no-email")),
        (Case { name: "agent by name", policy: Policy::Rules, agent: Agent::Bob, ..BASE }, denied("rule:bob-by-name")),
        (Case { name: "agent by id", policy: Policy::Rules, agent: Agent::Nine, action: "special", ..BASE }, allowed("rule:by-id")),
        (Case { name: "other agents skip an agent rule", policy: Policy::Rules, action: "special", ..BASE }, allowed("default:mutating")),
        (Case { name: "agent and effect rule", policy: Policy::Rules, agent: Agent::Ops, action: "grant_role", ..BASE }, allowed("rule:admin-ops")),
        (Case { name: "effect rule of another agent", policy: Policy::Rules, action: "grant_role", ..BASE }, denied("default:admin")),
        (Case { name: "first match wins", policy: Policy::Rules, action: "order_pizza", ..BASE }, denied("rule:first")),
        (Case { name: "rule reason and approval", policy: Policy::Rules, action: "sql", summary: "DROP TABLE users", session_id: SID, reason: "needs a DBA", ..BASE }, create("rule:sql-drop")),
        (Case { name: "regex not matching", policy: Policy::Rules, action: "sql", summary: "select 1", ..BASE }, allowed("default:mutating")),
        (Case { name: "session mode matcher in read_only", policy: Policy::Rules, action: "download_file", session_id: SID, session: session(ReadOnly), ..BASE }, denied("rule:readonly-no-download")),
        (Case { name: "session mode matcher in standard", policy: Policy::Rules, action: "download_file", session_id: SID, session: session(Standard), ..BASE }, allowed("default:read")),
        (Case { name: "no session counts as standard", policy: Policy::Rules, action: "download_file", ..BASE }, allowed("default:read")),
        // Capabilities.
        (Case { name: "delegated capability", policy: Policy::Rules, action: "deploy_prod", ..BASE }, allowed("rule:deploy-needs-cap")),
        (Case { name: "glob is case-insensitive", policy: Policy::Rules, action: "DEPLOY_PROD", ..BASE }, allowed("rule:deploy-needs-cap")),
        (Case { name: "missing capability", policy: Policy::Rules, agent: Agent::Bob, action: "deploy_prod", reason: "\"deploy:prod\", which agent agent-2 does not hold", ..BASE }, denied("rule:deploy-needs-cap")),
        (Case { name: "capability above the ceiling", policy: Policy::Rules, action: "deploy_prod", session_id: SID, session: Some(Session { ceiling: &["files:read"], ..session(Standard).unwrap() }), reason: "scope ceiling", ..BASE }, denied("rule:deploy-needs-cap")),
        (Case { name: "capability within the ceiling", policy: Policy::Rules, action: "deploy_prod", session_id: SID, session: Some(Session { ceiling: &["deploy:prod", "files:read"], ..session(Standard).unwrap() }), ..BASE }, allowed("rule:deploy-needs-cap")),
        (Case { name: "direct capability", policy: Policy::Rules, action: "files_write_text", ..BASE }, allowed("rule:files-write")),
        (Case { name: "direct capability missing", policy: Policy::Rules, agent: Agent::Nine, action: "files_write_text", reason: "files:write", ..BASE }, denied("rule:files-write")),
        // Approvals.
        (Case { name: "require_approval creates one", policy: Policy::Rules, action: "issue_refund", session_id: SID, session: session(Standard), ..BASE }, create("rule:billing-approval")),
        (Case { name: "pending approval is reused", policy: Policy::Rules, action: "issue_refund", session_id: SID, session: session(Standard), approval: ApprovalState::Pending { id: "ap-1" }, reason: "ap-1", counters: Some(false), ..BASE }, (false, true, "rule:billing-approval", Approval::Reuse("ap-1"))),
        (Case { name: "approved and granted", policy: Policy::Rules, action: "issue_refund", session_id: SID, session: session(Elevated), approval: ApprovalState::Approved { id: "ap-1", grant_expires_at: NOW + 60 }, ..BASE }, allowed("session:elevated")),
        (Case { name: "approved in a standard session", policy: Policy::Rules, action: "issue_refund", session_id: SID, session: session(Standard), approval: ApprovalState::Approved { id: "ap-1", grant_expires_at: NOW + 60 }, reason: "approved", ..BASE }, allowed("approval:ap-1")),
        (Case { name: "grant expired", policy: Policy::Rules, action: "issue_refund", session_id: SID, session: session(Standard), approval: ApprovalState::Approved { id: "ap-1", grant_expires_at: NOW - 1 }, reason: "expired", ..BASE }, create("rule:billing-approval")),
        (Case { name: "grant expiring now", policy: Policy::Rules, action: "issue_refund", session_id: SID, session: session(Standard), approval: ApprovalState::Approved { id: "ap-1", grant_expires_at: NOW }, ..BASE }, create("rule:billing-approval")),
        (Case { name: "denied by a human", policy: Policy::Rules, action: "issue_refund", session_id: SID, session: session(Standard), approval: ApprovalState::Denied { id: "ap-1", decided_by: "carol" }, reason: "denied by carol", counters: Some(true), ..BASE }, denied("approval:ap-1")),
        (Case { name: "expired undecided", policy: Policy::Rules, action: "issue_refund", session_id: SID, session: session(Standard), approval: ApprovalState::Expired { id: "ap-1" }, ..BASE }, create("rule:billing-approval")),
        (Case { name: "approval needs a session", policy: Policy::Rules, action: "issue_refund", reason: "granted per session", ..BASE }, denied("rule:billing-approval")),
        // Session modes.
        (Case { name: "read_only allows reads", session_id: SID, session: session(ReadOnly), ..BASE }, allowed("default:read")),
        (Case { name: "read_only asks approval for writes", action: "send_email", session_id: SID, session: session(ReadOnly), reason: "read-only", ..BASE }, create("session:read_only")),
        (Case { name: "read_only write approved", action: "send_email", session_id: SID, session: session(ReadOnly), approval: ApprovalState::Approved { id: "ap-2", grant_expires_at: NOW + 1 }, ..BASE }, allowed("approval:ap-2")),
        (Case { name: "read_only write pending", action: "send_email", session_id: SID, session: session(ReadOnly), approval: ApprovalState::Pending { id: "ap-2" }, ..BASE }, (false, true, "session:read_only", Approval::Reuse("ap-2"))),
        (Case { name: "read_only keeps denials", action: "grant_role", session_id: SID, session: session(ReadOnly), ..BASE }, denied("default:admin")),
        (Case { name: "elevated waives approvals", action: "delete_all", session_id: SID, session: session(Elevated), ..BASE }, allowed("session:elevated")),
        (Case { name: "elevated keeps denials", action: "grant_role", session_id: SID, session: session(Elevated), ..BASE }, denied("default:admin")),
        (Case { name: "locked refuses writes", action: "send_email", session_id: SID, session: Some(Session { ..session(Locked).unwrap() }), reason: "agenttrust sessions unlock sess-1", counters: Some(true), ..BASE }, denied("session:locked")),
        (Case { name: "locked allows reads", session_id: SID, session: session(Locked), ..BASE }, allowed("default:read")),
        (Case { name: "locked refuses destructive without approval", action: "delete_all", session_id: SID, session: session(Locked), ..BASE }, denied("session:locked")),
        (Case { name: "locked read still follows rules", policy: Policy::Rules, agent: Agent::Bob, session_id: SID, session: Some(Session { agent_id: "agent-2", ..session(Locked).unwrap() }), counters: Some(true), ..BASE }, denied("rule:bob-by-name")),
        // Lockout.
        (Case { name: "denial below the threshold", policy: Policy::Rules, action: "grant_role", session_id: SID, session: Some(Session { ..session(Standard).unwrap() }), counters: Some(true), ..BASE }, denied("default:admin")),
        (Case { name: "a denial at the lockout threshold counts", policy: Policy::Rules, action: "grant_role", session_id: SID, session: Some(Session { ..session(Standard).unwrap() }), counters: Some(true), ..BASE }, denied("default:admin")),
        (Case { name: "a denial in a read-only session counts", policy: Policy::Rules, action: "grant_role", session_id: SID, session: Some(Session { ..session(ReadOnly).unwrap() }), counters: Some(true), ..BASE }, denied("default:admin")),
        (Case { name: "elevation never counts", policy: Policy::Rules, action: "delete_all", session_id: SID, session: Some(Session { ..session(Standard).unwrap() }), counters: Some(false), ..BASE }, create("default:destructive")),
        (Case { name: "allowed never counts", policy: Policy::Rules, session_id: SID, session: Some(Session { ..session(Standard).unwrap() }), counters: Some(false), ..BASE }, allowed("default:read")),
        (Case { name: "a denial in a new session counts", policy: Policy::Custom, action: "delete_all", session_id: SID, counters: Some(true), ..BASE }, denied("default:destructive")),
        (Case { name: "a denial without a session counts", policy: Policy::Custom, action: "grant_role", counters: Some(true), ..BASE }, denied("default:admin")),
        // Custom defaults.
        (Case { name: "custom default asks approval for mutating", policy: Policy::Custom, action: "send_email", session_id: SID, ..BASE }, create("default:mutating")),
        (Case { name: "custom default keeps read", policy: Policy::Custom, ..BASE }, allowed("default:read")),
        (Case { name: "custom default denies destructive", policy: Policy::Custom, action: "delete_all", reason: "destructive actions are denied by default", ..BASE }, denied("default:destructive")),
    ];
    table
        .into_iter()
        .map(|(case, (allowed, elevation, rule, approval_action))| Case {
            allowed,
            elevation,
            rule,
            approval_action,
            ..case
        })
        .collect()
}

fn policy(kind: Policy) -> CompiledPolicy {
    let json = match kind {
        Policy::Default => return CompiledPolicy::default(),
        Policy::Rules => RULES,
        Policy::Custom => CUSTOM,
    };
    let document: PolicyDocument = serde_json::from_str(json).expect("fixture policy parses");
    compile(&document).expect("fixture policy compiles")
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|text| text.to_string()).collect()
}

fn run(case: &Case, policy: &CompiledPolicy) -> Decision {
    let alice_capabilities = strings(&["files:read", "files:write"]);
    let alice_delegated = strings(&["deploy:prod"]);
    let none: Vec<String> = Vec::new();
    let agent = |id, name, framework, capabilities, delegated, active| AgentFacts {
        id,
        name,
        framework,
        capabilities,
        delegated_capabilities: delegated,
        active,
    };
    let agent = match case.agent {
        Agent::Unknown => None,
        Agent::Alice => Some(agent(
            "agent-1",
            "alice-bot",
            "langchain",
            &alice_capabilities,
            &alice_delegated,
            true,
        )),
        Agent::Bob => Some(agent("agent-2", "bob-bot", "crewai", &none, &none, true)),
        Agent::Ops => Some(agent("agent-3", "ops-agent", "autogen", &none, &none, true)),
        Agent::Nine => Some(agent("agent-9", "nine", "custom", &none, &none, true)),
        Agent::Revoked => Some(agent(
            "agent-4",
            "old-bot",
            "langchain",
            &alice_capabilities,
            &none,
            false,
        )),
    };
    let ceiling = case
        .session
        .map(|session| strings(session.ceiling))
        .unwrap_or_default();
    decide(&CheckInput {
        agent,
        action_name: case.action,
        input_summary: case.summary,
        stated_effect: case.effect,
        session_id: case.session_id,
        session: case.session.map(|session| SessionFacts {
            agent_id: session.agent_id,
            mode: session.mode,
            scope_ceiling: (!ceiling.is_empty()).then_some(&ceiling[..]),
        }),
        approval: case.approval,
        policy,
        now: NOW,
    })
}

#[test]
fn decision_table() {
    let policies = [
        policy(Policy::Default),
        policy(Policy::Rules),
        policy(Policy::Custom),
    ];
    let cases = cases();
    assert!(cases.len() >= 40, "{} cases", cases.len());
    let mut names = std::collections::HashSet::new();
    for case in &cases {
        assert!(
            names.insert(case.name),
            "duplicate case name {:?}",
            case.name
        );
        let decision = run(case, &policies[case.policy as usize]);
        let context = format!("case {:?}: {decision:#?}", case.name);
        assert_eq!(decision.allowed, case.allowed, "allowed, {context}");
        assert_eq!(
            decision.elevation_required, case.elevation,
            "elevation_required, {context}"
        );
        assert_eq!(decision.rule, case.rule, "rule, {context}");
        let expected_approval = match case.approval_action {
            Approval::None => ApprovalAction::None,
            Approval::Create => ApprovalAction::Create,
            Approval::Reuse(id) => ApprovalAction::Reuse(id.to_string()),
        };
        assert_eq!(decision.approval, expected_approval, "approval, {context}");
        if let Some(counts) = case.counters {
            assert_eq!(
                decision.counts_as_denial, counts,
                "counts_as_denial, {context}"
            );
        }
        assert!(
            decision.reason.contains(case.reason),
            "reason lacks {:?}, {context}",
            case.reason
        );
        // Invariants of every decision.
        assert!(!decision.reason.is_empty(), "{context}");
        assert!(
            !(decision.allowed && decision.elevation_required),
            "{context}"
        );
        assert_eq!(
            decision.counts_as_denial,
            !decision.allowed
                && !decision.elevation_required
                && !decision.rule.starts_with("agent:")
                && decision.rule != "session:agent-mismatch",
            "{context}"
        );
        assert!((0.0..=1.0).contains(&decision.confidence), "{context}");
        if let Some(id) = decision.rule.strip_prefix("rule:") {
            assert_eq!(decision.matched_rule.as_deref(), Some(id), "{context}");
        }
        if decision.rule.starts_with("default:") {
            assert_eq!(decision.matched_rule, None, "{context}");
        }
    }
}

fn single(case: Case) -> Decision {
    run(&case, &policy(case.policy))
}

#[test]
fn the_default_reason_reads_as_a_sentence() {
    let decision = single(Case {
        action: "delete_all",
        ..BASE
    });
    assert!(
        decision.reason.starts_with(
            "destructive actions need approval by default: delete_all is destructive \
             (\"delete\" in the action name)"
        ),
        "{}",
        decision.reason
    );
    assert_eq!(decision.effect, Effect::Destructive);
}

#[test]
fn matched_rule_survives_session_and_approval_overrides() {
    let decision = single(Case {
        policy: Policy::Rules,
        action: "issue_refund",
        session_id: SID,
        session: session(SessionMode::Standard),
        approval: ApprovalState::Approved {
            id: "ap-1",
            grant_expires_at: NOW + 5,
        },
        ..BASE
    });
    assert_eq!(decision.rule, "approval:ap-1");
    assert_eq!(decision.matched_rule.as_deref(), Some("billing-approval"));
    assert_eq!(decision.confidence, 1.0);

    let locked = single(Case {
        policy: Policy::Rules,
        action: "issue_refund",
        session_id: SID,
        session: session(SessionMode::Locked),
        ..BASE
    });
    assert_eq!(locked.rule, "session:locked");
    assert_eq!(locked.matched_rule, None);
}

#[test]
fn confidence_follows_what_the_decision_rests_on() {
    // Identity facts and stated effects are certain.
    let unknown = single(Case {
        agent: Agent::Unknown,
        ..BASE
    });
    assert_eq!(unknown.confidence, 1.0);
    let stated = single(Case {
        effect: Some(Effect::Read),
        ..BASE
    });
    assert_eq!(stated.confidence, 1.0);
    // A default applied to a classified effect is as sure as the classification.
    let classified = single(BASE);
    assert!(classified.confidence < 1.0);
    // A rule that matched on the tool name alone does not depend on the classification.
    let by_tool = single(Case {
        policy: Policy::Rules,
        action: "order_pizza",
        ..BASE
    });
    assert_eq!(by_tool.confidence, 1.0);
    // One that matched on the effect does.
    let by_effect = single(Case {
        policy: Policy::Rules,
        agent: Agent::Ops,
        action: "grant_role",
        ..BASE
    });
    assert!(by_effect.confidence < 1.0);
}

#[test]
fn a_missing_capability_beats_the_rule_decision_and_names_every_gap() {
    let decision = single(Case {
        policy: Policy::Rules,
        agent: Agent::Nine,
        action: "deploy_staging",
        session_id: SID,
        session: Some(Session {
            agent_id: "agent-9",
            ..session(SessionMode::Elevated).unwrap()
        }),
        ..BASE
    });
    assert!(!decision.allowed);
    assert_eq!(decision.rule, "rule:deploy-needs-cap");
    assert!(
        decision.reason.contains("\"deploy:prod\""),
        "{}",
        decision.reason
    );
    assert!(decision.counts_as_denial);
}
