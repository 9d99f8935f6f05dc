//! The decision function, table-driven: every case states the agent, the call, the session, the
//! latest approval and the policy, and expects `allowed`, `elevation_required`, the deciding rule
//! and the approval action (plus, where it matters, the denial counters and a word of the reason).

use crate::api::actions::Effect;
use crate::api::delegations::Restrictions;
use crate::api::federation::TrustLevel;
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

/// A stored session: mode, scope ceiling, owning agent, calls so far, its delegation.
#[derive(Clone, Copy)]
struct Session {
    mode: SessionMode,
    ceiling: &'static [&'static str],
    agent_id: &'static str,
    total_calls: i64,
    delegation: Option<Delegated>,
    federation: Option<FederationFacts>,
}

const fn session(mode: SessionMode) -> Option<Session> {
    Some(Session {
        mode,
        ceiling: &[],
        agent_id: "agent-1",
        total_calls: 0,
        delegation: None,
        federation: None,
    })
}

/// The delegation a session was made from: its scope and the restrictions of its chain (root
/// first), active unless `inactive_because` is given.
#[derive(Clone, Copy)]
struct Delegated {
    inactive_because: Option<&'static str>,
    scope: &'static [&'static str],
    chain: &'static [Limits],
}

/// One restriction object.
#[derive(Clone, Copy)]
struct Limits {
    tools: Option<&'static [&'static str]>,
    effects: Option<&'static [Effect]>,
    max_calls: Option<u64>,
    paths: Option<&'static [&'static str]>,
}

const NO_LIMITS: Limits = Limits {
    tools: None,
    effects: None,
    max_calls: None,
    paths: None,
};

/// A standard session of agent-1 made from an active delegation.
const fn delegated(scope: &'static [&'static str], chain: &'static [Limits]) -> Option<Session> {
    Some(Session {
        mode: SessionMode::Standard,
        ceiling: &[],
        agent_id: "agent-1",
        total_calls: 0,
        delegation: Some(Delegated {
            inactive_because: None,
            scope,
            chain,
        }),
        federation: None,
    })
}

/// The same, in another mode.
const fn delegated_in(
    mode: SessionMode,
    scope: &'static [&'static str],
    chain: &'static [Limits],
) -> Option<Session> {
    let Some(session) = delegated(scope, chain) else {
        unreachable!()
    };
    Some(Session { mode, ..session })
}

/// After `total_calls` calls.
const fn delegated_after(
    total_calls: i64,
    scope: &'static [&'static str],
    chain: &'static [Limits],
) -> Option<Session> {
    let Some(session) = delegated(scope, chain) else {
        unreachable!()
    };
    Some(Session {
        total_calls,
        ..session
    })
}

/// Made from a delegation that is no longer active.
const fn ended(because: &'static str) -> Option<Session> {
    Some(Session {
        mode: SessionMode::Standard,
        ceiling: &[],
        agent_id: "agent-1",
        total_calls: 0,
        delegation: Some(Delegated {
            inactive_because: Some(because),
            scope: &["*:*"],
            chain: &[],
        }),
        federation: None,
    })
}

/// A federation session of agent-1, vouched for at `trust_level`.
const fn federated(
    trust_level: TrustLevel,
    provider_active: bool,
    expires_at: i64,
) -> Option<Session> {
    Some(Session {
        mode: SessionMode::Standard,
        ceiling: &[],
        agent_id: "agent-1",
        total_calls: 0,
        delegation: None,
        federation: Some(FederationFacts {
            trust_level,
            provider_active,
            expires_at,
            token_revoked: false,
        }),
    })
}

const FILES_READ: &[&str] = &["files:read"];
const EVERYTHING: &[&str] = &["*:*"];
const TMP_ONLY: &[Limits] = &[Limits {
    paths: Some(&["/tmp/*"]),
    ..NO_LIMITS
}];
/// A parent limited to `/tmp/**`, a child that names `/srv/*` too: the parent still applies.
const CHAINED_PATHS: &[Limits] = &[
    Limits {
        paths: Some(&["/tmp/**"]),
        ..NO_LIMITS
    },
    Limits {
        paths: Some(&["/tmp/*", "/srv/*"]),
        ..NO_LIMITS
    },
];
const FILES_TOOLS: &[Limits] = &[Limits {
    tools: Some(&["files_*"]),
    ..NO_LIMITS
}];
const READS_ONLY: &[Limits] = &[Limits {
    effects: Some(&[Effect::Read]),
    ..NO_LIMITS
}];
/// A parent allowing 10 calls and a child allowing 3: the smaller budget applies.
const THREE_CALLS: &[Limits] = &[
    Limits {
        max_calls: Some(10),
        ..NO_LIMITS
    },
    Limits {
        max_calls: Some(3),
        ..NO_LIMITS
    },
];

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
        (Case { name: "a stated read cannot lower the name", action: "delete_file", effect: Some(Effect::Read), reason: "cannot lower", ..BASE }, denied("default:destructive")),
        (Case { name: "a stated read cannot lower an admin call", action: "sudo_grant_admin", effect: Some(Effect::Read), ..BASE }, denied("default:admin")),
        (Case { name: "unknown verb is mutating", action: "frobnicate", ..BASE }, allowed("default:mutating")),
        (Case { name: "dangerous input raises the effect", action: "shell", summary: "rm -rf /", session_id: SID, ..BASE }, create("default:destructive")),
        // Federation sessions: the provider's trust level bounds the effect, a disabled provider
        // or an expired token ends the session; neither identity fact counts as a denial.
        (Case { name: "low trust reads", session_id: SID, session: federated(TrustLevel::Low, true, NOW + 60), ..BASE }, allowed("default:read")),
        (Case { name: "low trust cannot write", action: "send_email", session_id: SID, session: federated(TrustLevel::Low, true, NOW + 60), counters: Some(true), reason: "trusted at level low", ..BASE }, denied("federation:trust_level")),
        (Case { name: "low trust cannot write by stating read", action: "send_email", effect: Some(Effect::Read), session_id: SID, session: federated(TrustLevel::Low, true, NOW + 60), counters: Some(true), ..BASE }, denied("federation:trust_level")),
        (Case { name: "standard trust writes", action: "send_email", session_id: SID, session: federated(TrustLevel::Standard, true, NOW + 60), ..BASE }, allowed("default:mutating")),
        (Case { name: "standard trust never destroys, not even with approval", action: "delete_all", session_id: SID, session: federated(TrustLevel::Standard, true, NOW + 60), counters: Some(true), ..BASE }, denied("federation:trust_level")),
        (Case { name: "high trust leaves it to the policy", action: "delete_all", session_id: SID, session: federated(TrustLevel::High, true, NOW + 60), ..BASE }, create("default:destructive")),
        (Case { name: "a disabled provider ends its sessions", session_id: SID, session: federated(TrustLevel::High, false, NOW + 60), counters: Some(false), reason: "disabled or deleted", ..BASE }, denied("federation:provider")),
        (Case { name: "an expired token ends its session", session_id: SID, session: federated(TrustLevel::High, true, NOW), counters: Some(false), reason: "fresh token", ..BASE }, denied("federation:expired")),
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
        (Case { name: "capability held", policy: Policy::Rules, action: "deploy_prod", ..BASE }, allowed("rule:deploy-needs-cap")),
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
        // Delegation sessions: scope coverage.
        (Case { name: "delegated read is covered", action: "files_read", session_id: SID, session: delegated(FILES_READ, &[]), ..BASE }, allowed("default:read")),
        (Case { name: "singular resource covers the plural, any naming style", action: "readFile", session_id: SID, session: delegated(&["files:read"], &[]), ..BASE }, allowed("default:read")),
        (Case { name: "plural resource covers the singular", action: "file.get", session_id: SID, session: delegated(&["file:list"], &[]), ..BASE }, allowed("default:read")),
        (Case { name: "a read verb does not cover a write", action: "files_write", session_id: SID, session: delegated(FILES_READ, &[]), counters: Some(true), reason: "outside the scope of delegation del-1 (files:read)", ..BASE }, denied("delegation:scope")),
        (Case { name: "another resource is not covered", session_id: SID, session: delegated(FILES_READ, &[]), counters: Some(true), ..BASE }, denied("delegation:scope")),
        (Case { name: "a write verb covers reads", action: "files_list", session_id: SID, session: delegated(&["files:write"], &[]), ..BASE }, allowed("default:read")),
        (Case { name: "a delete verb covers destructive, the policy still asks", action: "files_delete", session_id: SID, session: delegated(&["files:delete"], &[]), ..BASE }, create("default:destructive")),
        (Case { name: "star resource covers any read", session_id: SID, session: delegated(&["*:read"], &[]), ..BASE }, allowed("default:read")),
        (Case { name: "star resource stays within its verb", action: "send_email", session_id: SID, session: delegated(&["*:read"], &[]), ..BASE }, denied("delegation:scope")),
        (Case { name: "an exact-name entry covers that action", action: "send_email", session_id: SID, session: delegated(&["files:read", "send_email"], &[]), ..BASE }, allowed("default:mutating")),
        (Case { name: "an exact-name entry covers no other action", action: "send_emails", session_id: SID, session: delegated(&["send_email"], &[]), ..BASE }, denied("delegation:scope")),
        (Case { name: "an exact-name entry stops below destructive", action: "delete_all", session_id: SID, session: delegated(&["delete_all"], &[]), ..BASE }, denied("delegation:scope")),
        (Case { name: "an unknown verb grants reads only", action: "deploy_prod", session_id: SID, session: delegated(&["deploy:prod"], &[]), ..BASE }, denied("delegation:scope")),
        (Case { name: "the input raising the effect leaves the scope", action: "files_read", summary: "rm -rf /", session_id: SID, session: delegated(FILES_READ, &[]), ..BASE }, denied("delegation:scope")),
        (Case { name: "an empty scope covers nothing", session_id: SID, session: delegated(&[], &[]), reason: "(nothing)", ..BASE }, denied("delegation:scope")),
        // Restrictions.
        (Case { name: "tools restriction refuses other tools", session_id: SID, session: delegated(EVERYTHING, FILES_TOOLS), counters: Some(true), reason: "files_*", ..BASE }, denied("delegation:restriction:tools")),
        (Case { name: "tools restriction is case-insensitive", action: "FILES_READ", session_id: SID, session: delegated(EVERYTHING, FILES_TOOLS), ..BASE }, allowed("default:read")),
        (Case { name: "effects restriction", action: "files_write", session_id: SID, session: delegated(&["files:write"], READS_ONLY), counters: Some(true), reason: "only read calls", ..BASE }, denied("delegation:restriction:effects")),
        (Case { name: "max_calls: the last call of the budget", action: "files_read", session_id: SID, session: delegated_after(2, FILES_READ, THREE_CALLS), ..BASE }, allowed("default:read")),
        (Case { name: "max_calls: the budget is spent", action: "files_read", session_id: SID, session: delegated_after(3, FILES_READ, THREE_CALLS), counters: Some(true), reason: "3 calls", ..BASE }, denied("delegation:restriction:max_calls")),
        (Case { name: "paths: inside the glob", action: "files_read", summary: "cat /tmp/x", session_id: SID, session: delegated(FILES_READ, TMP_ONLY), ..BASE }, allowed("default:read")),
        (Case { name: "paths: outside the glob", action: "files_read", summary: "/etc/passwd", session_id: SID, session: delegated(FILES_READ, TMP_ONLY), counters: Some(true), reason: "/etc/passwd is outside", ..BASE }, denied("delegation:restriction:paths")),
        (Case { name: "paths: every path must match", action: "files_read", summary: "diff /tmp/a /etc/shadow", session_id: SID, session: delegated(FILES_READ, TMP_ONLY), reason: "/etc/shadow", ..BASE }, denied("delegation:restriction:paths")),
        (Case { name: "paths: a star stops at a slash", action: "files_read", summary: "/tmp/a/b", session_id: SID, session: delegated(FILES_READ, TMP_ONLY), ..BASE }, denied("delegation:restriction:paths")),
        (Case { name: "paths: dot-dot is resolved", action: "files_read", summary: "/tmp/../etc/passwd", session_id: SID, session: delegated(FILES_READ, TMP_ONLY), reason: "/etc/passwd", ..BASE }, denied("delegation:restriction:paths")),
        (Case { name: "paths: no path passes", action: "files_read", summary: "notes.txt", session_id: SID, session: delegated(FILES_READ, TMP_ONLY), ..BASE }, allowed("default:read")),
        (Case { name: "chained paths: the parent's glob applies to the child", action: "files_read", summary: "/srv/x", session_id: SID, session: delegated(FILES_READ, CHAINED_PATHS), reason: "/tmp/**", ..BASE }, denied("delegation:restriction:paths")),
        (Case { name: "chained paths: within both", action: "files_read", summary: "/tmp/x", session_id: SID, session: delegated(FILES_READ, CHAINED_PATHS), ..BASE }, allowed("default:read")),
        // Inactive delegations.
        (Case { name: "a revoked delegation allows nothing", session_id: SID, session: ended("revoked"), counters: Some(false), reason: "del-1 is revoked", ..BASE }, denied("delegation:revoked")),
        (Case { name: "an expired delegation allows nothing", session_id: SID, session: ended("expired"), counters: Some(false), ..BASE }, denied("delegation:expired")),
        (Case { name: "identity comes before the delegation", session_id: SID, session: Some(Session { agent_id: "agent-2", ..ended("revoked").unwrap() }), ..BASE }, denied("session:agent-mismatch")),
        // The policy keeps the last word.
        (Case { name: "a delegation never allows what a rule denies", policy: Policy::Rules, action: "shell", summary: "rm -rf /tmp", session_id: SID, session: delegated(EVERYTHING, &[]), ..BASE }, denied("rule:block-shell-rm")),
        (Case { name: "a delegation never allows what a default denies", action: "grant_role", session_id: SID, session: delegated(EVERYTHING, &[]), ..BASE }, denied("default:admin")),
        (Case { name: "a delegated session still needs the rule's capability", policy: Policy::Rules, agent: Agent::Nine, action: "deploy_prod", session_id: SID, session: Some(Session { agent_id: "agent-9", ..delegated(&["deploy:write"], &[]).unwrap() }), ..BASE }, denied("rule:deploy-needs-cap")),
        (Case { name: "a covered call with the capability follows the rule", policy: Policy::Rules, action: "deploy_prod", session_id: SID, session: delegated(&["deploy:write"], &[]), ..BASE }, allowed("rule:deploy-needs-cap")),
        (Case { name: "a locked delegation session allows reads only", action: "files_write", session_id: SID, session: delegated_in(Locked, &["files:write"], &[]), ..BASE }, denied("session:locked")),
        (Case { name: "a read-only delegation session asks for writes", action: "files_write", session_id: SID, session: delegated_in(ReadOnly, &["files:write"], &[]), ..BASE }, create("session:read_only")),
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
    let alice_capabilities = strings(&["files:read", "files:write", "deploy:prod"]);
    let none: Vec<String> = Vec::new();
    let agent = |id, name, framework, capabilities, _unused: &Vec<String>, active| AgentFacts {
        id,
        name,
        framework,
        capabilities,
        active,
        mode: SessionMode::Standard,
    };
    let agent = match case.agent {
        Agent::Unknown => None,
        Agent::Alice => Some(agent(
            "agent-1",
            "alice-bot",
            "langchain",
            &alice_capabilities,
            &none,
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
    let delegation = case.session.and_then(|session| session.delegation);
    let scope = delegation
        .map(|delegation| strings(delegation.scope))
        .unwrap_or_default();
    let restrictions: Vec<Restrictions> = delegation
        .map(|delegation| delegation.chain.iter().map(restrictions).collect())
        .unwrap_or_default();
    let calls_made: Vec<i64> = case
        .session
        .map(|session| vec![session.total_calls; restrictions.len()])
        .unwrap_or_default();
    decide(&CheckInput {
        agent,
        token_scopes: None,
        action_name: case.action,
        input_summary: case.summary,
        stated_effect: case.effect,
        session_id: case.session_id,
        session: case.session.map(|session| SessionFacts {
            agent_id: session.agent_id,
            mode: session.mode,
            scope_ceiling: (!ceiling.is_empty()).then_some(&ceiling[..]),
            registered: true,
            delegation: session.delegation.map(|delegation| DelegationFacts {
                id: "del-1",
                active: delegation.inactive_because.is_none(),
                inactive_because: delegation.inactive_because.unwrap_or(""),
                scope: &scope,
                restrictions: &restrictions,
                calls_made: &calls_made,
            }),
            federation: session.federation,
        }),
        approval: case.approval,
        policy,
        now: NOW,
    })
}

fn restrictions(limits: &Limits) -> Restrictions {
    Restrictions {
        tools: limits.tools.map(strings),
        effects: limits.effects.map(<[Effect]>::to_vec),
        max_calls: limits.max_calls,
        paths: limits.paths.map(strings),
        ..Restrictions::default()
    }
}

#[test]
fn decision_table() {
    let policies = [
        policy(Policy::Default),
        policy(Policy::Rules),
        policy(Policy::Custom),
    ];
    let cases = cases();
    assert!(cases.len() >= 100, "{} cases", cases.len());
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
                && decision.rule != "session:agent-mismatch"
                && decision.rule != "delegation:revoked"
                && decision.rule != "delegation:expired"
                && decision.rule != "federation:provider"
                && decision.rule != "federation:revoked"
                && decision.rule != "federation:expired",
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
    // Identity facts and stated effects that raise the classification are certain.
    let unknown = single(Case {
        agent: Agent::Unknown,
        ..BASE
    });
    assert_eq!(unknown.confidence, 1.0);
    let stated = single(Case {
        effect: Some(Effect::Mutating),
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
