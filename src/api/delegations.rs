//! Delegations: an agent hands part of its capabilities to another agent, attenuated, chained
//! and revocable. `POST/GET /api/v1/delegations`, `GET/DELETE /api/v1/delegations/{id}`,
//! `POST /api/v1/delegations/{id}/session`.
//!
//! `delegation_chain` is root-first and includes the delegation itself:
//! `[root, …, parent, self]`.

use serde::{Deserialize, Serialize};

use super::actions::Effect;
use super::status::DelegationStatus;
use super::{Extra, empty_as_none, null_as_empty};

/// The lifetime of a delegation when the caller names none (every SDK's default).
pub const DEFAULT_TTL_SECONDS: i64 = 3600;
/// The longest chain (root = 1) unless the org's policy says otherwise.
pub const DEFAULT_MAX_DEPTH: i64 = 5;

#[serde_with::apply(
    Option<String> => #[serde(default, deserialize_with = "empty_as_none", skip_serializing_if = "Option::is_none")],
)]
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CreateDelegationRequest {
    pub from_agent_id: String,
    pub to_agent_id: String,
    /// The capabilities handed over (`scope` on the wire; `scopes` accepted).
    #[serde(default, alias = "scopes", deserialize_with = "null_as_empty")]
    pub scope: Vec<String>,
    /// Seconds; `ttl` accepted too.
    #[serde(default, alias = "ttl", skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restrictions: Option<Restrictions>,
    pub parent_delegation_id: Option<String>,
}

/// Limits on what the delegate may do with the delegation. The known keys are enforced on
/// every check of a session made from the delegation (and of its re-delegations); unknown keys
/// are kept and returned unchanged.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Restrictions {
    /// Tool-name globs the delegate may call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<String>>,
    /// Effects the delegate may cause.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effects: Option<Vec<Effect>>,
    /// Calls a session made from the delegation may make in all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_calls: Option<u64>,
    /// Globs every absolute path in a call's input summary must match (`/tmp/*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paths: Option<Vec<String>>,
    #[serde(flatten, default, skip_serializing_if = "Extra::is_empty")]
    pub extra: Extra,
}

/// A delegation as the gateway returns it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Delegation {
    pub id: String,
    pub from_agent_id: String,
    pub to_agent_id: String,
    pub org_id: String,
    #[serde(default)]
    pub scope: Vec<String>,
    #[serde(default)]
    pub restrictions: Restrictions,
    /// Root-first, including this delegation.
    #[serde(default)]
    pub delegation_chain: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_delegation_id: Option<String>,
    /// `active`, `revoked` or `expired` (as of the answer).
    #[serde(default)]
    pub status: DelegationStatus,
    #[serde(default)]
    pub expires_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoke_reason: Option<String>,
    #[serde(default)]
    pub created_at: String,
    #[serde(flatten, default, skip_serializing_if = "Extra::is_empty")]
    pub extra: Extra,
}

/// The answer of a create: wrapped (the Go SDK requires it; the others accept it).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DelegationCreated {
    pub delegation: Delegation,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DelegationList {
    pub delegations: Vec<Delegation>,
    /// Present when more delegations follow; pass it back as `cursor`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
    #[serde(flatten, default, skip_serializing_if = "Extra::is_empty")]
    pub extra: Extra,
}

/// Query of `GET /api/v1/delegations`.
#[serde_with::apply(
    Option<String> => #[serde(default, deserialize_with = "empty_as_none", skip_serializing_if = "Option::is_none")],
)]
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DelegationQuery {
    /// Delegations from this agent (`from_agent_id` accepted too).
    #[serde(alias = "from_agent_id")]
    pub from: Option<String>,
    /// Delegations to this agent (`to_agent_id` accepted too).
    #[serde(alias = "to_agent_id")]
    pub to: Option<String>,
    /// Only active (true) or only inactive (false) ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// The answer of a revoke: how many descendants went with it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DelegationRevoked {
    pub status: DelegationStatus,
    pub id: String,
    /// Active delegations built on this one that were revoked with it.
    #[serde(default)]
    pub descendants_revoked: u64,
    #[serde(flatten, default, skip_serializing_if = "Extra::is_empty")]
    pub extra: Extra,
}
