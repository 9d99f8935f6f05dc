//! The audit log (our extension): `GET /api/v1/audit/events` pages through an org's hash-chained
//! events in chain order, `GET /api/v1/audit/verify` walks the chain and says whether it is
//! intact and, when not, where it breaks.

use serde::{Deserialize, Serialize};

use super::{Extra, empty_as_none};

/// Page size of the event listing when the caller names none, and the most it may ask for.
pub const DEFAULT_PAGE_SIZE: u32 = 100;
pub const MAX_PAGE_SIZE: u32 = 1000;

/// One event of the chain. `hash` covers `prev_hash` and every other field, so a change to any
/// of them is detectable.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditEvent {
    pub id: String,
    #[serde(default)]
    pub org_id: String,
    /// Position in the org's chain, from 1.
    pub seq: i64,
    /// `agent.created`, `token.revoked`, `check.decided`, …
    pub kind: String,
    /// `key:<id>`, `agent:<id>` or `operator`.
    pub actor: String,
    pub subject_type: String,
    pub subject_id: String,
    /// What changed (ids and digests only: secrets never enter the log).
    #[serde(default)]
    pub detail: serde_json::Value,
    pub created_at: String,
    pub prev_hash: String,
    pub hash: String,
    #[serde(flatten, default, skip_serializing_if = "Extra::is_empty")]
    pub extra: Extra,
}

/// Query of `GET /api/v1/audit/events`.
#[serde_with::apply(
    Option<String> => #[serde(default, deserialize_with = "empty_as_none", skip_serializing_if = "Option::is_none")],
)]
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AuditEventQuery {
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditEventPage {
    pub events: Vec<AuditEvent>,
    /// Present when more events follow; pass it back as `cursor`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
    #[serde(flatten, default, skip_serializing_if = "Extra::is_empty")]
    pub extra: Extra,
}

/// The answer of `GET /api/v1/audit/verify`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditVerification {
    /// True when every event links to its predecessor and the chain ends at its recorded head.
    pub valid: bool,
    /// Events found intact before the walk stopped (all of them when `valid`).
    #[serde(default)]
    pub events_checked: u64,
    /// The id of the first event that does not link (absent for a missing event).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_broken_event: Option<String>,
    /// The sequence number where the chain breaks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_broken_seq: Option<i64>,
    /// Why the chain breaks there, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(flatten, default, skip_serializing_if = "Extra::is_empty")]
    pub extra: Extra,
}
