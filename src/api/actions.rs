//! Action checks (the Guardian pre-flight): `POST /api/v1/agenttrust/check`, also served at
//! `/api/v1/actions/check`. A policy denial is a 200 with `allowed: false`, never an HTTP error.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{Extra, empty_as_none};

/// The action name when the caller gives neither a tool name nor an action.
pub const DEFAULT_ACTION: &str = "tool_call";

/// The SDKs cut input summaries to 200 characters; we accept a little more (they count in bytes,
/// code points or UTF-16 units) and reject only what is clearly not a summary.
pub const MAX_INPUT_SUMMARY_BYTES: usize = 2048;

/// What a tool call does to the world, from harmless to dangerous.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    Read,
    /// `write` on the wire is the same thing (the Rust and Java SDKs say `write`).
    #[serde(alias = "write")]
    Mutating,
    Destructive,
    Admin,
}

impl Effect {
    pub const ALL: [Effect; 4] = [
        Effect::Read,
        Effect::Mutating,
        Effect::Destructive,
        Effect::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Effect::Read => "read",
            Effect::Mutating => "mutating",
            Effect::Destructive => "destructive",
            Effect::Admin => "admin",
        }
    }
}

impl fmt::Display for Effect {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// The error of parsing an effect name, naming what is accepted.
#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown effect {0:?}: expected read, mutating (or write), destructive or admin")]
pub struct UnknownEffect(pub String);

impl FromStr for Effect {
    type Err = UnknownEffect;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "read" => Ok(Effect::Read),
            "mutating" | "write" => Ok(Effect::Mutating),
            "destructive" => Ok(Effect::Destructive),
            "admin" => Ok(Effect::Admin),
            _ => Err(UnknownEffect(text.to_string())),
        }
    }
}

/// The check body. The SDKs send `action_name`/`action_input_summary`; older clients and the
/// product README use `tool_name`/`tool_input_summary`/`action`: all are accepted as separate keys
/// (serde aliases would reject a body that carries two of them) and resolved by the accessors.
#[serde_with::apply(
    Option<String> => #[serde(default, deserialize_with = "empty_as_none", skip_serializing_if = "Option::is_none")],
)]
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CheckRequest {
    /// Optional when an agent token is presented as `Authorization: Bearer`.
    pub agent_id: Option<String>,
    pub action_name: Option<String>,
    pub tool_name: Option<String>,
    pub action: Option<String>,
    pub action_source: Option<String>,
    pub action_input_summary: Option<String>,
    pub tool_input_summary: Option<String>,
    pub session_id: Option<String>,
    /// `read`, `mutating`/`write`, `destructive`, `admin`; absent means "classify it".
    pub action_effect: Option<String>,
}

impl CheckRequest {
    /// The tool or action being checked: `action_name`, else `tool_name`, else `action`.
    pub fn resolved_action_name(&self) -> &str {
        self.action_name
            .as_deref()
            .or(self.tool_name.as_deref())
            .or(self.action.as_deref())
            .unwrap_or(DEFAULT_ACTION)
    }

    /// The input summary under either of its names, `""` when none.
    pub fn resolved_input_summary(&self) -> &str {
        self.action_input_summary
            .as_deref()
            .or(self.tool_input_summary.as_deref())
            .unwrap_or("")
    }
}

/// The Guardian's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckDecision {
    pub allowed: bool,
    /// Empty (and omitted) only in a policy test, which records nothing.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub check_id: String,
    #[serde(default)]
    pub confidence: f64,
    #[serde(default)]
    pub guard_tier: String,
    #[serde(default)]
    pub latency_ms: i64,
    #[serde(default)]
    pub reason: String,
    /// Always paired with `allowed: false` (the Rust and Java SDKs test it first).
    #[serde(default)]
    pub elevation_required: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_id: Option<String>,
    /// The effect the decision was made for (given or classified).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect: Option<Effect>,
    /// Which rule decided (`default:destructive`, `agent:revoked`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action_name: Option<String>,
    #[serde(flatten, default, skip_serializing_if = "Extra::is_empty")]
    pub extra: Extra,
}
