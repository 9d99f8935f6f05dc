//! The org's security settings: `GET|PUT /api/v1/orgs/security-settings` (reference §3.15).

use serde::{Deserialize, Serialize};

use super::Extra;

/// What the org enforces about agent credentials (both off unless turned on).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SecuritySettings {
    /// WIMSE tokens are issued only against a proof of possession of the agent's key.
    #[serde(default)]
    pub require_proof_of_possession: bool,
    /// An agent credential (agent token, WIMSE token) counts only with a DPoP proof of its key,
    /// and a check must carry one.
    #[serde(default)]
    pub require_sender_constrained_tokens: bool,
    #[serde(flatten, default, skip_serializing_if = "Extra::is_empty")]
    pub extra: Extra,
}

/// `PUT`: a field left out keeps its value.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UpdateSecuritySettingsRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_proof_of_possession: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_sender_constrained_tokens: Option<bool>,
}
