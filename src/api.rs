//! The wire contract shared by the client and the gateway: request and response bodies of every
//! API group, exactly as the official SDKs send and parse them (see `wire-api.md`).
//!
//! Rules every type here follows:
//! - requests are lenient: `null`, `""` and an absent key mean the same, and the aliases the SDKs
//!   disagree on (`scope`/`scopes`, `ttl`/`ttl_seconds`, `tool_name`/`action_name`) are accepted.
//!   A request type says so once, for all its optional text fields, with
//!   `#[serde_with::apply(Option<String> => #[serde(default, deserialize_with = "empty_as_none",
//!   skip_serializing_if = "Option::is_none")])]` rather than field by field;
//! - responses never carry `null` for strings, arrays, objects or booleans (the key is omitted),
//!   timestamps are RFC 3339 UTC with `Z` and no fraction;
//! - response types keep unknown fields in `extra`, so `-o json` drops nothing when the CLI talks
//!   to a newer or hosted gateway.

pub mod a2a;
pub mod actions;
pub mod agents;
pub mod approvals;
pub mod audit;
pub mod cards;
pub mod delegations;
pub mod error;
pub mod federation;
pub mod health;
pub mod keys;
pub mod mcp;
pub mod orgs;
pub mod policies;
pub mod sessions;
pub mod status;
pub mod streaming;
pub mod telemetry;
pub mod time;
pub mod tokens;
pub mod wimse;

use serde::{Deserialize, Deserializer};

/// Unknown response fields, kept so that nothing the gateway said is lost on the way to `-o json`.
pub type Extra = serde_json::Map<String, serde_json::Value>;

/// Deserializes an optional string where `null`, `""` and absence all mean "not given".
pub fn empty_as_none<'de, D>(deserializer: D) -> Result<Option<String>, D::Error>
where
    D: Deserializer<'de>,
{
    let value: Option<String> = Option::deserialize(deserializer)?;
    Ok(value.filter(|text| !text.is_empty()))
}

/// Deserializes a list where `null` and absence both mean "empty".
pub fn null_as_empty<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    let value: Option<Vec<T>> = Option::deserialize(deserializer)?;
    Ok(value.unwrap_or_default())
}

/// Joins a list for one-line human output (`a, b`), `-` when empty.
pub fn join_or_dash(items: &[String]) -> String {
    if items.is_empty() {
        "-".to_string()
    } else {
        items.join(", ")
    }
}
