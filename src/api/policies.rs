//! Org policies (our extension): `GET/PUT /api/v1/policies`, `POST /api/v1/policies/test`.
//!
//! A policy is an ordered list of rules — the first rule that matches decides — followed by the
//! defaults per effect. The document is versioned: a `PUT` naming a `version` other than the
//! stored one is refused (409), so two operators cannot overwrite each other unknowingly.

use serde::{Deserialize, Serialize};

use super::Extra;
use super::actions::{CheckDecision, Effect};
use super::empty_as_none;

/// How long a pending approval waits for a human, unless the policy says otherwise.
pub const DEFAULT_APPROVAL_TTL_SECONDS: i64 = 15 * 60;
/// Denials after which a session is locked, unless the policy says otherwise.
pub const DEFAULT_LOCKOUT_AFTER_DENIALS: i64 = 5;
/// Hard denials of one agent, across all its sessions, within the window that lock the agent.
pub const DEFAULT_AGENT_LOCKOUT_AFTER_DENIALS: i64 = 20;
pub const DEFAULT_AGENT_LOCKOUT_WINDOW_SECONDS: i64 = 10 * 60;
/// Pending approvals one session, and one agent across its sessions, may have open at once.
pub const DEFAULT_MAX_PENDING_APPROVALS_PER_SESSION: i64 = 10;
pub const DEFAULT_MAX_PENDING_APPROVALS_PER_AGENT: i64 = 50;

/// What a rule (or a default) decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Allow,
    Deny,
    /// Denied until a human approves (elevation).
    RequireApproval,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Deny => "deny",
            Verdict::RequireApproval => "require_approval",
        }
    }
}

/// The mode of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionMode {
    Standard,
    /// Anything but a read needs an approval.
    ReadOnly,
    /// A human approved something in this session.
    Elevated,
    /// Too many denials: only reads until an admin unlocks it.
    Locked,
}

impl SessionMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionMode::Standard => "standard",
            SessionMode::ReadOnly => "read_only",
            SessionMode::Elevated => "elevated",
            SessionMode::Locked => "locked",
        }
    }
}

impl std::str::FromStr for SessionMode {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim() {
            "standard" | "normal" => Ok(SessionMode::Standard),
            "read_only" | "readonly" | "read-only" => Ok(SessionMode::ReadOnly),
            "elevated" => Ok(SessionMode::Elevated),
            "locked" => Ok(SessionMode::Locked),
            other => Err(format!(
                "unknown session mode {other:?}: expected standard, read_only, elevated or locked"
            )),
        }
    }
}

/// The decision per effect when no rule matches. Unknown keys are refused: a misspelt effect
/// would otherwise silently keep its default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EffectDefaults {
    #[serde(default = "allow")]
    pub read: Verdict,
    #[serde(default = "allow")]
    pub mutating: Verdict,
    #[serde(default = "require_approval")]
    pub destructive: Verdict,
    #[serde(default = "deny")]
    pub admin: Verdict,
}

fn allow() -> Verdict {
    Verdict::Allow
}
fn deny() -> Verdict {
    Verdict::Deny
}
fn require_approval() -> Verdict {
    Verdict::RequireApproval
}

impl Default for EffectDefaults {
    fn default() -> Self {
        EffectDefaults {
            read: Verdict::Allow,
            mutating: Verdict::Allow,
            destructive: Verdict::RequireApproval,
            admin: Verdict::Deny,
        }
    }
}

impl EffectDefaults {
    pub fn for_effect(&self, effect: Effect) -> Verdict {
        match effect {
            Effect::Read => self.read,
            Effect::Mutating => self.mutating,
            Effect::Destructive => self.destructive,
            Effect::Admin => self.admin,
        }
    }
}

/// Patterns over the input summary; the rule matches when any pattern matches.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputMatch {
    /// Case-insensitive substrings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contains: Vec<String>,
    /// Regular expressions (Rust `regex` syntax; add `(?i)` for case-insensitive).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regex: Vec<String>,
    /// Unknown keys: kept so that parsing stays lenient, refused by validation (a misspelt
    /// matcher would otherwise silently match everything).
    #[serde(flatten, default, skip_serializing_if = "Extra::is_empty")]
    pub extra: Extra,
}

/// One rule. Every matcher that is given must match (an empty list matches anything).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyRule {
    /// Unique within the policy; named in every decision it makes.
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Globs over the action (tool) name: `files_*`, `*delete*`, `shell`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub effects: Vec<Effect>,
    /// Agents by id, name or framework.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub agents: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub session_modes: Vec<SessionMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<InputMatch>,
    /// When the rule matches and the agent lacks any of these capabilities (directly or through
    /// an active delegation), the call is denied whatever `decision` says.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub require_capabilities: Vec<String>,
    pub decision: Verdict,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Unknown keys: kept so that parsing stays lenient, refused by validation (`"tool": […]`
    /// instead of `"tools"` would otherwise make the rule match every call).
    #[serde(flatten, default, skip_serializing_if = "Extra::is_empty")]
    pub extra: Extra,
}

/// The effect of the tools matching `tools`, set by the org: it replaces the classification
/// (raising or lowering it), and a caller's stated effect may still only raise it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolEffect {
    /// Globs over the action (tool) name, as in a rule's `tools`.
    pub tools: Vec<String>,
    pub effect: Effect,
    #[serde(flatten, default, skip_serializing_if = "Extra::is_empty")]
    pub extra: Extra,
}

/// The whole policy document of an org.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyDocument {
    /// Set by the gateway (0 when the org never stored one). On `PUT`, when given, it must equal
    /// the stored version; omitted, the document replaces whatever is stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    #[serde(default)]
    pub rules: Vec<PolicyRule>,
    #[serde(default)]
    pub defaults: EffectDefaults,
    #[serde(default = "default_approval_ttl")]
    pub approval_ttl_seconds: i64,
    #[serde(default = "default_lockout")]
    pub lockout_after_denials: i64,
    /// The longest delegation chain (a root delegation is 1).
    #[serde(default = "default_max_delegation_depth")]
    pub max_delegation_depth: i64,
    /// Hard denials of one agent, counted across every session of it (and calls naming none),
    /// within `agent_lockout_window_seconds`, after which the agent is locked (reads only) in
    /// every session until an admin unlocks it.
    #[serde(default = "default_agent_lockout")]
    pub agent_lockout_after_denials: i64,
    #[serde(default = "default_agent_lockout_window")]
    pub agent_lockout_window_seconds: i64,
    /// Checks must name a session the gateway opened (sessions init, an API-token or
    /// delegation session, `guard session start`); otherwise they are denied.
    #[serde(default)]
    pub require_registered_session: bool,
    /// Past these, a call that needs a human is a denial instead of one more pending approval.
    #[serde(default = "default_max_pending_per_session")]
    pub max_pending_approvals_per_session: i64,
    #[serde(default = "default_max_pending_per_agent")]
    pub max_pending_approvals_per_agent: i64,
    /// The effect of named tools, set by the org (first match wins). Only the org may lower an
    /// effect: a caller's stated effect can only raise it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_effects: Vec<ToolEffect>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_by: Option<String>,
    /// Unknown keys: kept so that a client reading a newer gateway's document loses nothing,
    /// refused by validation (`"rule": […]` would otherwise store an empty policy).
    #[serde(flatten, default, skip_serializing_if = "Extra::is_empty")]
    pub extra: Extra,
}

fn default_approval_ttl() -> i64 {
    DEFAULT_APPROVAL_TTL_SECONDS
}
fn default_lockout() -> i64 {
    DEFAULT_LOCKOUT_AFTER_DENIALS
}
fn default_max_delegation_depth() -> i64 {
    super::delegations::DEFAULT_MAX_DEPTH
}
fn default_agent_lockout() -> i64 {
    DEFAULT_AGENT_LOCKOUT_AFTER_DENIALS
}
fn default_agent_lockout_window() -> i64 {
    DEFAULT_AGENT_LOCKOUT_WINDOW_SECONDS
}
fn default_max_pending_per_session() -> i64 {
    DEFAULT_MAX_PENDING_APPROVALS_PER_SESSION
}
fn default_max_pending_per_agent() -> i64 {
    DEFAULT_MAX_PENDING_APPROVALS_PER_AGENT
}

impl Default for PolicyDocument {
    /// The policy of an org that never stored one.
    fn default() -> Self {
        PolicyDocument {
            version: None,
            rules: Vec::new(),
            defaults: EffectDefaults::default(),
            approval_ttl_seconds: DEFAULT_APPROVAL_TTL_SECONDS,
            lockout_after_denials: DEFAULT_LOCKOUT_AFTER_DENIALS,
            max_delegation_depth: super::delegations::DEFAULT_MAX_DEPTH,
            agent_lockout_after_denials: DEFAULT_AGENT_LOCKOUT_AFTER_DENIALS,
            agent_lockout_window_seconds: DEFAULT_AGENT_LOCKOUT_WINDOW_SECONDS,
            require_registered_session: false,
            max_pending_approvals_per_session: DEFAULT_MAX_PENDING_APPROVALS_PER_SESSION,
            max_pending_approvals_per_agent: DEFAULT_MAX_PENDING_APPROVALS_PER_AGENT,
            tool_effects: Vec::new(),
            updated_at: None,
            updated_by: None,
            extra: Extra::new(),
        }
    }
}

/// `POST /api/v1/policies/test`: a hypothetical check, against the stored policy or `policy`.
/// Records nothing.
#[serde_with::apply(
    Option<String> => #[serde(default, deserialize_with = "empty_as_none", skip_serializing_if = "Option::is_none")],
)]
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PolicyTestRequest {
    pub agent_id: String,
    pub action_name: String,
    pub action_input_summary: Option<String>,
    pub action_effect: Option<String>,
    pub session_id: Option<String>,
    /// Evaluate this document instead of the stored one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<PolicyDocument>,
}

/// The answer of a policy test: the decision a check would get, without `check_id`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PolicyTestResponse {
    pub decision: CheckDecision,
    /// The id of the policy rule that matched, absent when no rule matched (a default decided) or
    /// an agent/session fact decided before the rules. Present even when the session mode or an
    /// approval then changed the outcome (`decision.rule` names what finally decided).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matched_rule: Option<String>,
    #[serde(flatten, default, skip_serializing_if = "Extra::is_empty")]
    pub extra: Extra,
}
