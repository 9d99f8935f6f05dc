//! `GET /health`.

use serde::{Deserialize, Serialize};

use super::Extra;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Health {
    /// `healthy`, `degraded` or `unhealthy` (required by the Rust SDK).
    pub status: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub service: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub version: String,
    #[serde(flatten, default, skip_serializing_if = "Extra::is_empty")]
    pub extra: Extra,
}
