//! SIEM streaming (wire-api §3.13): the destinations an org streams its audit log to
//! (`/api/v1/siem/destinations`), each destination's delivery log (`…/{id}/logs`) and a test
//! delivery (`…/{id}/test`). Destinations are bare objects on create, get and update; lists are
//! wrapped (`destinations`, `logs`, each with `total`).
//!
//! `auth_token` is write-only: a read shows [`MASKED_TOKEN`] when one is set and omits the key
//! otherwise. Our extensions: `skip_rejected_batches` (writable) and the delivery state
//! (`cursor_seq`, `last_delivered_at`, `consecutive_failures`, `next_attempt_at`,
//! `last_error`, read-only) on a destination; `purpose`, `first_seq`, `last_seq` and
//! `idempotency_key` on a delivery record.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{Extra, empty_as_none};

/// What a read shows in place of a destination's auth token.
pub const MASKED_TOKEN: &str = "********";
/// The `schema` every streamed event carries: the one versioned shape of an event.
pub const EVENT_SCHEMA: &str = "agenttrust.audit.v1";
/// Batch size and flush interval when the request names none (the SDKs' examples).
pub const DEFAULT_BATCH_SIZE: i64 = 100;
pub const DEFAULT_FLUSH_INTERVAL_SECONDS: i64 = 30;
pub const MAX_BATCH_SIZE: i64 = 1000;
pub const MAX_FLUSH_INTERVAL_SECONDS: i64 = 3600;
/// Delivery records a log read returns unless asked for another number, and the most.
pub const DEFAULT_LOG_LIMIT: u32 = 50;
pub const MAX_LOG_LIMIT: u32 = 1000;

/// Where a destination's events go, and in which product's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DestinationType {
    /// Splunk HTTP Event Collector (`splunk_hec` is an alias).
    Splunk,
    /// Datadog Logs API v2.
    Datadog,
    /// Elasticsearch `_bulk`.
    Elastic,
    /// A JSON batch signed with HMAC-SHA256.
    Webhook,
}

impl DestinationType {
    pub fn as_str(self) -> &'static str {
        match self {
            DestinationType::Splunk => "splunk",
            DestinationType::Datadog => "datadog",
            DestinationType::Elastic => "elastic",
            DestinationType::Webhook => "webhook",
        }
    }
}

impl fmt::Display for DestinationType {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl FromStr for DestinationType {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "splunk" | "splunk_hec" => Ok(DestinationType::Splunk),
            "datadog" => Ok(DestinationType::Datadog),
            "elastic" | "elasticsearch" => Ok(DestinationType::Elastic),
            "webhook" => Ok(DestinationType::Webhook),
            _ => Err(format!(
                "unknown destination_type {text:?}: expected splunk (or splunk_hec), datadog, \
                 elastic or webhook"
            )),
        }
    }
}

/// A destination as every read shows it (the auth token masked).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Destination {
    pub id: String,
    #[serde(default)]
    pub org_id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub destination_type: String,
    #[serde(default)]
    pub endpoint_url: String,
    /// [`MASKED_TOKEN`] when a token is set; absent when none is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_token: Option<String>,
    #[serde(default)]
    pub is_active: bool,
    #[serde(default)]
    pub batch_size: i64,
    #[serde(default)]
    pub flush_interval_seconds: i64,
    #[serde(default, deserialize_with = "super::null_as_empty")]
    pub filter_event_types: Vec<String>,
    #[serde(default)]
    pub skip_rejected_batches: bool,
    /// The last audit `seq` of the org delivered (or passed over by the filter).
    #[serde(default)]
    pub cursor_seq: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_delivered_at: Option<String>,
    #[serde(default)]
    pub consecutive_failures: i64,
    /// When the next attempt is due, while the destination is retrying.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(default)]
    pub created_at: String,
    #[serde(default)]
    pub updated_at: String,
    #[serde(flatten, default, skip_serializing_if = "Extra::is_empty")]
    pub extra: Extra,
}

/// `POST /api/v1/siem/destinations`.
#[serde_with::apply(
    Option<String> => #[serde(default, deserialize_with = "empty_as_none", skip_serializing_if = "Option::is_none")],
)]
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct CreateDestinationRequest {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub destination_type: String,
    #[serde(default)]
    pub endpoint_url: String,
    pub auth_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flush_interval_seconds: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter_event_types: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_active: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_rejected_batches: Option<bool>,
}

// Written by hand so that no log line or panic message ever shows the token.
impl fmt::Debug for CreateDestinationRequest {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("CreateDestinationRequest")
            .field("name", &self.name)
            .field("destination_type", &self.destination_type)
            .field("endpoint_url", &self.endpoint_url)
            .field(
                "auth_token",
                &self.auth_token.as_ref().map(|_| MASKED_TOKEN),
            )
            .field("batch_size", &self.batch_size)
            .field("flush_interval_seconds", &self.flush_interval_seconds)
            .field("filter_event_types", &self.filter_event_types)
            .field("is_active", &self.is_active)
            .field("skip_rejected_batches", &self.skip_rejected_batches)
            .finish()
    }
}

/// `PUT /api/v1/siem/destinations/{id}`: what is given changes, the rest stays. A destination's
/// type cannot change (`destination_type` is refused): create another destination.
#[serde_with::apply(
    Option<String> => #[serde(default, deserialize_with = "empty_as_none", skip_serializing_if = "Option::is_none")],
)]
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct UpdateDestinationRequest {
    pub name: Option<String>,
    pub endpoint_url: Option<String>,
    pub auth_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_active: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flush_interval_seconds: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter_event_types: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_rejected_batches: Option<bool>,
    /// Only read to be refused with a clear message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_type: Option<serde_json::Value>,
}

impl UpdateDestinationRequest {
    /// Whether the request changes nothing.
    pub fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.endpoint_url.is_none()
            && self.auth_token.is_none()
            && self.is_active.is_none()
            && self.batch_size.is_none()
            && self.flush_interval_seconds.is_none()
            && self.filter_event_types.is_none()
            && self.skip_rejected_batches.is_none()
            && self.destination_type.is_none()
    }
}

impl fmt::Debug for UpdateDestinationRequest {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("UpdateDestinationRequest")
            .field("name", &self.name)
            .field("endpoint_url", &self.endpoint_url)
            .field(
                "auth_token",
                &self.auth_token.as_ref().map(|_| MASKED_TOKEN),
            )
            .field("is_active", &self.is_active)
            .field("batch_size", &self.batch_size)
            .field("flush_interval_seconds", &self.flush_interval_seconds)
            .field("filter_event_types", &self.filter_event_types)
            .field("skip_rejected_batches", &self.skip_rejected_batches)
            .finish()
    }
}

/// The Go SDK requires the wrapper and `total`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DestinationList {
    pub destinations: Vec<Destination>,
    #[serde(default)]
    pub total: u64,
    #[serde(flatten, default, skip_serializing_if = "Extra::is_empty")]
    pub extra: Extra,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeletedDestination {
    pub status: String,
    #[serde(default)]
    pub id: String,
    #[serde(flatten, default, skip_serializing_if = "Extra::is_empty")]
    pub extra: Extra,
}

/// One delivery attempt.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeliveryRecord {
    pub id: String,
    #[serde(default)]
    pub destination_id: String,
    /// Events in the batch (1 for a test delivery).
    #[serde(default)]
    pub batch_size: i64,
    /// `success` or `failure`.
    #[serde(default)]
    pub status: String,
    /// The destination's HTTP status; `null` when no answer came (network error, timeout).
    #[serde(default)]
    pub status_code: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// Always an RFC 3339 time.
    #[serde(default)]
    pub delivered_at: String,
    /// `batch` (audit events) or `test`.
    #[serde(default)]
    pub purpose: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_seq: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seq: Option<i64>,
    #[serde(default)]
    pub idempotency_key: String,
    #[serde(flatten, default, skip_serializing_if = "Extra::is_empty")]
    pub extra: Extra,
}

/// `GET …/{id}/logs`: newest first; `total` counts every record of the destination.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeliveryLog {
    pub logs: Vec<DeliveryRecord>,
    #[serde(default)]
    pub total: u64,
    #[serde(flatten, default, skip_serializing_if = "Extra::is_empty")]
    pub extra: Extra,
}

/// `GET …/{id}/logs?limit=N`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DeliveryLogQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// `POST …/{id}/test`: one test event sent now.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TestResult {
    pub success: bool,
    #[serde(default)]
    pub status_code: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// The delivery record the attempt left.
    #[serde(default)]
    pub delivery_id: String,
    #[serde(flatten, default, skip_serializing_if = "Extra::is_empty")]
    pub extra: Extra,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_and_aliases_parse() {
        assert_eq!("splunk_hec".parse(), Ok(DestinationType::Splunk));
        assert_eq!(" Datadog ".parse(), Ok(DestinationType::Datadog));
        assert!("kafka".parse::<DestinationType>().is_err());
    }

    #[test]
    fn debug_never_shows_the_token() {
        let create = CreateDestinationRequest {
            auth_token: Some("hec-secret".to_string()),
            ..Default::default()
        };
        let update = UpdateDestinationRequest {
            auth_token: Some("hec-secret".to_string()),
            ..Default::default()
        };
        assert!(!format!("{create:?}").contains("hec-secret"));
        assert!(!format!("{update:?}").contains("hec-secret"));
    }
}
