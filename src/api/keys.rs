//! Org API keys (our extension): `POST/GET /api/v1/keys`, `GET/DELETE /api/v1/keys/{id}`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{Extra, empty_as_none};

/// What a key may do. `admin` manages the org; `runtime` may only check actions, report
/// telemetry and issue/introspect/revoke tokens (what an agent runtime needs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Runtime,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Runtime => "runtime",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown role {0:?}: expected admin or runtime")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "admin" => Ok(Role::Admin),
            "runtime" => Ok(Role::Runtime),
            _ => Err(UnknownRole(text.to_string())),
        }
    }
}

#[serde_with::apply(
    Option<String> => #[serde(default, deserialize_with = "empty_as_none", skip_serializing_if = "Option::is_none")],
)]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateKeyRequest {
    pub role: Role,
    pub name: Option<String>,
}

/// A key as listed: never the secret, only its first characters (`prefix`) to tell keys apart.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiKey {
    pub id: String,
    pub org_id: String,
    #[serde(default)]
    pub name: String,
    pub role: Role,
    #[serde(default)]
    pub prefix: String,
    #[serde(default)]
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
    /// True on the key that made the request (present only then), so a client can tell that
    /// it is about to revoke its own key.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub current: bool,
    #[serde(flatten, default, skip_serializing_if = "Extra::is_empty")]
    pub extra: Extra,
}

/// The answer to a create: the only time the secret is ever shown.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreatedKey {
    pub key: String,
    #[serde(flatten)]
    pub api_key: ApiKey,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyList {
    pub keys: Vec<ApiKey>,
    /// Present when more keys follow; pass it back as `cursor`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
    #[serde(flatten, default, skip_serializing_if = "Extra::is_empty")]
    pub extra: Extra,
}

/// Query of `GET /api/v1/keys`: a page, oldest first (by id).
#[serde_with::apply(
    Option<String> => #[serde(default, deserialize_with = "empty_as_none", skip_serializing_if = "Option::is_none")],
)]
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct KeyQuery {
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RevokeKeyResponse {
    pub success: bool,
    #[serde(default)]
    pub id: String,
    #[serde(flatten, default, skip_serializing_if = "Extra::is_empty")]
    pub extra: Extra,
}
