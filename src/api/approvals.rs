//! Approvals (elevation): `GET /mcp/approvals/{id}`, `POST /mcp/approvals/{id}/approve|deny`,
//! and our `GET /api/v1/approvals?status=…`.

use serde::{Deserialize, Serialize};

use super::status::ApprovalStatus;
use super::{Extra, empty_as_none};

/// The ApprovalRequest object (`id` is required by the Rust SDK).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Approval {
    pub id: String,
    #[serde(default)]
    pub session_id: String,
    #[serde(default)]
    pub agent_id: String,
    #[serde(default)]
    pub org_id: String,
    #[serde(default)]
    pub action_name: String,
    #[serde(default)]
    pub action_effect: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub input_summary: String,
    /// Why the check needed a human.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// `pending`, `approved`, `denied` or `expired`.
    #[serde(default)]
    pub status: ApprovalStatus,
    #[serde(default)]
    pub created_at: String,
    #[serde(default)]
    pub expires_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<String>,
    /// Until when an approval lets the same check through in the same session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_expires_at: Option<String>,
    #[serde(flatten, default, skip_serializing_if = "Extra::is_empty")]
    pub extra: Extra,
}

#[serde_with::apply(
    Option<String> => #[serde(default, deserialize_with = "empty_as_none", skip_serializing_if = "Option::is_none")],
)]
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DecideRequest {
    /// Who decided (the SDKs send `sdk_user`/`sdk` by default); the key is audited too.
    pub decided_by: Option<String>,
}

/// The answer of approve/deny: `{"status": "approved"|"denied"}` plus the approval.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DecideResponse {
    pub status: ApprovalStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Approval>,
    #[serde(flatten, default, skip_serializing_if = "Extra::is_empty")]
    pub extra: Extra,
}

#[serde_with::apply(
    Option<String> => #[serde(default, deserialize_with = "empty_as_none", skip_serializing_if = "Option::is_none")],
)]
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ApprovalQuery {
    pub status: Option<String>,
    pub agent_id: Option<String>,
    pub session_id: Option<String>,
    /// The `next_cursor` of the previous page (the list is newest first).
    pub cursor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApprovalList {
    pub approvals: Vec<Approval>,
    /// Present when more approvals follow; pass it back as `cursor`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
    #[serde(flatten, default, skip_serializing_if = "Extra::is_empty")]
    pub extra: Extra,
}
