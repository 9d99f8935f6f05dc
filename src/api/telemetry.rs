//! Telemetry: `POST /api/v1/telemetry/report` (what happened after a tool ran) and our listing
//! `GET /api/v1/telemetry/events` with agent/session filters and cursor pagination.

use serde::{Deserialize, Serialize};

use super::{Extra, empty_as_none, null_as_empty};

/// At most this many events in one report.
pub const MAX_EVENTS_PER_REPORT: usize = 1000;
/// Page size of the event listing when the caller names none, and the most it may ask for.
pub const DEFAULT_PAGE_SIZE: u32 = 100;
pub const MAX_PAGE_SIZE: u32 = 1000;

#[serde_with::apply(
    Option<String> => #[serde(default, deserialize_with = "empty_as_none", skip_serializing_if = "Option::is_none")],
)]
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ReportRequest {
    /// Optional when an agent token is presented as `Authorization: Bearer`.
    pub agent_id: Option<String>,
    pub session_id: Option<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub events: Vec<ReportedEvent>,
}

/// One event as a client reports it.
#[serde_with::apply(
    Option<String> => #[serde(default, deserialize_with = "empty_as_none", skip_serializing_if = "Option::is_none")],
)]
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ReportedEvent {
    pub event_type: String,
    pub tool_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<i64>,
    /// Go omits `false`; `*_start` events carry none: the gateway infers it from `event_type`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success: Option<bool>,
    pub error_type: Option<String>,
    /// Any RFC 3339 form; the time of receipt when absent.
    pub timestamp: Option<String>,
    /// Our extension: a client-chosen unique id that makes a report idempotent — an event
    /// whose id the org already has is accepted and not stored again (a report retried after
    /// a lost answer). The SDKs send none.
    pub event_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReportResponse {
    pub accepted: bool,
    pub events_processed: u64,
    #[serde(flatten, default, skip_serializing_if = "Extra::is_empty")]
    pub extra: Extra,
}

/// A stored event, as the listing returns it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TelemetryEvent {
    pub id: String,
    pub agent_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    pub event_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<i64>,
    #[serde(default)]
    pub success: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
    /// The reporter's own id of the event, when it gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    pub timestamp: String,
    #[serde(default)]
    pub received_at: String,
    #[serde(flatten, default, skip_serializing_if = "Extra::is_empty")]
    pub extra: Extra,
}

/// Query of `GET /api/v1/telemetry/events`.
#[serde_with::apply(
    Option<String> => #[serde(default, deserialize_with = "empty_as_none", skip_serializing_if = "Option::is_none")],
)]
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EventQuery {
    pub agent_id: Option<String>,
    pub session_id: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventPage {
    pub events: Vec<TelemetryEvent>,
    /// Present when more events follow; pass it back as `cursor`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
    #[serde(flatten, default, skip_serializing_if = "Extra::is_empty")]
    pub extra: Extra,
}
