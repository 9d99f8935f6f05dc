//! What a batch looks like on the wire for each destination type, and how each product's answer
//! is judged. Pure functions: no I/O, so each format is tested here byte for byte.
//!
//! - **Splunk HEC**: `POST /services/collector/event`, `Authorization: Splunk <token>`, the
//!   events as concatenated JSON objects (`time`, `host`, `source`, `sourcetype`, `event`).
//! - **Datadog Logs API v2**: `POST /api/v2/logs`, `DD-API-KEY: <token>`, a JSON array of log
//!   items (`ddsource`, `ddtags`, `hostname`, `service`, `message` = the event as JSON text).
//! - **Elasticsearch**: `POST /<index>/_bulk` (index `agenttrust-audit` unless the URL names
//!   one), `Authorization: ApiKey <token>`, NDJSON `create` actions whose `_id` is the event id,
//!   so a resent event is a per-item 409 conflict, which counts as delivered.
//! - **Webhook**: `POST` to the URL as given, a JSON object with the events, signed in
//!   `X-AgentTrust-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(token, "<t>.<body>")>`.
//!
//! Every request carries `Idempotency-Key` (the same on every resend of a batch). A bare
//! endpoint (no path, or `/`) gets the product's path; an endpoint with a path is used as is
//! (Elasticsearch: `/_bulk` is appended unless the path ends with it).

use std::time::{Duration, SystemTime};

use hmac::{Hmac, Mac};
use reqwest::Url;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::api::streaming::{DestinationType, EVENT_SCHEMA};

/// The index a bare Elasticsearch endpoint writes to.
pub const DEFAULT_ELASTIC_INDEX: &str = "agenttrust-audit";
/// The header carrying a webhook batch's signature.
pub const SIGNATURE_HEADER: &str = "x-agenttrust-signature";
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";
/// `source`/`ddsource`/`service` of what the gateway sends.
const SOURCE: &str = "agenttrust";
const SPLUNK_SOURCETYPE: &str = "agenttrust:audit";

/// One batch, ready to be formatted: events in the wire shape of the audit API plus `schema`.
#[derive(Debug, Clone)]
pub struct Batch {
    pub destination_id: String,
    /// `None` for a test delivery.
    pub range: Option<(i64, i64)>,
    pub idempotency_key: String,
    pub events: Vec<Value>,
}

/// The batch's idempotency key: the destination and the batch's boundaries, so every resend
/// of a batch carries the same key.
pub fn idempotency_key(destination_id: &str, first_seq: i64, last_seq: i64) -> String {
    format!("{destination_id}:{first_seq}-{last_seq}")
}

/// A request ready to send.
#[derive(Debug)]
pub struct Prepared {
    pub url: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// The URL a batch is POSTed to: the product's default path when the endpoint has none.
pub fn target_url(kind: DestinationType, endpoint: &Url) -> Url {
    let mut url = endpoint.clone();
    let bare = matches!(url.path(), "" | "/");
    match kind {
        DestinationType::Splunk if bare => url.set_path("/services/collector/event"),
        DestinationType::Datadog if bare => url.set_path("/api/v2/logs"),
        DestinationType::Elastic if bare => {
            url.set_path(&format!("/{DEFAULT_ELASTIC_INDEX}/_bulk"))
        }
        DestinationType::Elastic if !url.path().ends_with("/_bulk") => {
            let path = format!("{}/_bulk", url.path().trim_end_matches('/'));
            url.set_path(&path);
        }
        _ => {}
    }
    url
}

fn header(value: &str) -> Result<HeaderValue, String> {
    HeaderValue::from_str(value)
        .map_err(|_| "the auth token holds characters an HTTP header cannot carry".to_string())
}

/// The `X-AgentTrust-Signature` value for `body` signed at `timestamp` with `secret`.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC takes a key of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of every length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// The event's time in unix seconds (from its RFC 3339 `created_at`).
fn event_time(event: &Value) -> i64 {
    event
        .get("created_at")
        .and_then(Value::as_str)
        .and_then(crate::api::time::parse)
        .unwrap_or_default()
}

/// Formats `batch` for a destination of type `kind` at `endpoint`, with its token (if any),
/// naming this gateway as `host`, signed (webhooks) at `now`.
pub fn prepare(
    kind: DestinationType,
    endpoint: &Url,
    token: Option<&str>,
    host: &str,
    batch: &Batch,
    now: i64,
) -> Result<Prepared, String> {
    let url = target_url(kind, endpoint);
    let mut headers = HeaderMap::new();
    headers.insert(
        HeaderName::from_static(IDEMPOTENCY_HEADER),
        header(&batch.idempotency_key)?,
    );
    let json_type = HeaderValue::from_static("application/json");
    let body: Vec<u8> = match kind {
        DestinationType::Splunk => {
            headers.insert(CONTENT_TYPE, json_type);
            if let Some(token) = token {
                headers.insert(
                    reqwest::header::AUTHORIZATION,
                    header(&format!("Splunk {token}"))?,
                );
            }
            // The channel HEC needs when indexer acknowledgement is on; a GUID, as the
            // destination id is.
            headers.insert(
                HeaderName::from_static("x-splunk-request-channel"),
                header(&batch.destination_id)?,
            );
            let mut body = Vec::new();
            for (index, event) in batch.events.iter().enumerate() {
                if index > 0 {
                    body.push(b'\n');
                }
                let item = json!({
                    "time": event_time(event),
                    "host": host,
                    "source": SOURCE,
                    "sourcetype": SPLUNK_SOURCETYPE,
                    "event": event,
                });
                body.extend_from_slice(item.to_string().as_bytes());
            }
            body
        }
        DestinationType::Datadog => {
            headers.insert(CONTENT_TYPE, json_type);
            if let Some(token) = token {
                headers.insert(HeaderName::from_static("dd-api-key"), header(token)?);
            }
            let items: Vec<Value> = batch
                .events
                .iter()
                .map(|event| {
                    let kind = event.get("kind").and_then(Value::as_str).unwrap_or("");
                    json!({
                        "ddsource": SOURCE,
                        "ddtags": format!("schema:{EVENT_SCHEMA},kind:{kind}"),
                        "hostname": host,
                        "service": SOURCE,
                        "message": event.to_string(),
                    })
                })
                .collect();
            Value::Array(items).to_string().into_bytes()
        }
        DestinationType::Elastic => {
            headers.insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/x-ndjson"),
            );
            if let Some(token) = token {
                headers.insert(
                    reqwest::header::AUTHORIZATION,
                    header(&format!("ApiKey {token}"))?,
                );
            }
            // `/_bulk` alone names no index: each action names it.
            let names_index = url.path() != "/_bulk";
            let mut body = Vec::new();
            for event in &batch.events {
                let id = event.get("id").cloned().unwrap_or(Value::Null);
                let action = if names_index {
                    json!({ "create": { "_id": id } })
                } else {
                    json!({ "create": { "_index": DEFAULT_ELASTIC_INDEX, "_id": id } })
                };
                let mut document = event.clone();
                if let (Value::Object(map), Some(created_at)) =
                    (&mut document, event.get("created_at").cloned())
                {
                    // What Kibana and data streams order documents by.
                    map.insert("@timestamp".to_string(), created_at);
                }
                body.extend_from_slice(action.to_string().as_bytes());
                body.push(b'\n');
                body.extend_from_slice(document.to_string().as_bytes());
                body.push(b'\n');
            }
            body
        }
        DestinationType::Webhook => {
            headers.insert(CONTENT_TYPE, json_type);
            let mut object = json!({
                "schema": EVENT_SCHEMA,
                "idempotency_key": batch.idempotency_key,
                "destination_id": batch.destination_id,
                "events": batch.events,
            });
            if let Some((first, last)) = batch.range {
                object["first_seq"] = json!(first);
                object["last_seq"] = json!(last);
            } else {
                object["test"] = json!(true);
            }
            let body = object.to_string().into_bytes();
            if let Some(token) = token {
                headers.insert(
                    HeaderName::from_static(SIGNATURE_HEADER),
                    header(&signature(token, now, &body))?,
                );
            }
            body
        }
    };
    Ok(Prepared {
        url: url.to_string(),
        headers,
        body,
    })
}

/// What an answer means for the batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Delivered,
    /// Try again later (network, 408, 429, 5xx), not before `retry_after` when the destination
    /// said so.
    Retry {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// The destination refused the batch. `skippable`: it judged the batch's content (400,
    /// 413, 422, an Elasticsearch item error), so `skip_rejected_batches` may pass over it; a
    /// refusal of the destination's settings (401, 403, 404, a redirect) is never skipped, as
    /// every later batch would be lost the same way.
    Rejected {
        reason: String,
        skippable: bool,
    },
}

/// Parses `Retry-After`: delay seconds or an HTTP date.
pub fn retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

/// A short, printable excerpt of an answer for the delivery log.
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text: String = text
        .chars()
        .map(|character| {
            if character.is_control() {
                ' '
            } else {
                character
            }
        })
        .take(300)
        .collect();
    text.trim().to_string()
}

/// Judges an HTTP answer to a batch.
pub fn judge(
    kind: DestinationType,
    status: u16,
    retry_after_header: Option<&str>,
    body: &[u8],
    truncated: bool,
) -> Verdict {
    let said = excerpt(body);
    let reason = |prefix: String| {
        if said.is_empty() {
            prefix
        } else {
            format!("{prefix}: {said}")
        }
    };
    match status {
        200..=299 if kind == DestinationType::Elastic => judge_bulk(body, truncated),
        200..=299 => Verdict::Delivered,
        408 | 429 | 500..=599 => Verdict::Retry {
            reason: reason(format!("HTTP {status}")),
            retry_after: retry_after_header.and_then(|value| retry_after(value, SystemTime::now())),
        },
        401 | 403 | 404 | 405 | 300..=399 => Verdict::Rejected {
            reason: reason(format!("HTTP {status}")),
            skippable: false,
        },
        _ => Verdict::Rejected {
            reason: reason(format!("HTTP {status}")),
            skippable: true,
        },
    }
}

/// An Elasticsearch `_bulk` answer: HTTP 200 even when items failed, so each item is judged. A
/// `create` that conflicts (409) was delivered before: delivered.
fn judge_bulk(body: &[u8], truncated: bool) -> Verdict {
    let unreadable = |why: &str| Verdict::Retry {
        reason: format!("the _bulk answer {why}"),
        retry_after: None,
    };
    if truncated {
        return unreadable("was too large to read");
    }
    let Ok(answer) = serde_json::from_slice::<Value>(body) else {
        return unreadable("is not JSON");
    };
    match answer.get("errors").and_then(Value::as_bool) {
        Some(false) => return Verdict::Delivered,
        Some(true) => {}
        None => return unreadable("has no `errors` field"),
    }
    let Some(items) = answer.get("items").and_then(Value::as_array) else {
        return unreadable("has no `items`");
    };
    let mut retry: Option<String> = None;
    for item in items {
        let Some(result) = item.as_object().and_then(|item| item.values().next()) else {
            continue;
        };
        let status = result.get("status").and_then(Value::as_u64).unwrap_or(0);
        if (200..300).contains(&status) || status == 409 {
            continue;
        }
        let error = result.get("error");
        let what = format!(
            "item {} failed with HTTP {status}: {} {}",
            result.get("_id").and_then(Value::as_str).unwrap_or("?"),
            error
                .and_then(|error| error.get("type"))
                .and_then(Value::as_str)
                .unwrap_or(""),
            error
                .and_then(|error| error.get("reason"))
                .and_then(Value::as_str)
                .unwrap_or(""),
        );
        if status == 429 || status >= 500 {
            retry.get_or_insert(what);
        } else {
            return Verdict::Rejected {
                reason: what.trim().to_string(),
                skippable: true,
            };
        }
    }
    match retry {
        Some(reason) => Verdict::Retry {
            reason: reason.trim().to_string(),
            retry_after: None,
        },
        None => Verdict::Delivered,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch() -> Batch {
        Batch {
            destination_id: "0190a3e4-0000-7000-8000-000000000001".to_string(),
            range: Some((5, 6)),
            idempotency_key: idempotency_key("d", 5, 6),
            events: vec![
                json!({"id": "e5", "kind": "check.decided", "created_at": "2026-01-01T00:00:00Z"}),
                json!({"id": "e6", "kind": "agent.created", "created_at": "2026-01-01T00:00:01Z"}),
            ],
        }
    }

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap()
    }

    #[test]
    fn bare_endpoints_get_the_products_paths() {
        let bare = url("https://siem.example.com:8088");
        assert_eq!(
            target_url(DestinationType::Splunk, &bare).path(),
            "/services/collector/event"
        );
        assert_eq!(
            target_url(DestinationType::Datadog, &bare).path(),
            "/api/v2/logs"
        );
        assert_eq!(
            target_url(DestinationType::Elastic, &bare).path(),
            "/agenttrust-audit/_bulk"
        );
        assert_eq!(
            target_url(DestinationType::Elastic, &url("https://es/logs")).path(),
            "/logs/_bulk"
        );
        assert_eq!(
            target_url(DestinationType::Splunk, &url("https://s/custom?x=1")).as_str(),
            "https://s/custom?x=1"
        );
        assert_eq!(
            target_url(DestinationType::Webhook, &bare).as_str(),
            "https://siem.example.com:8088/"
        );
    }

    #[test]
    fn splunk_is_concatenated_event_objects() {
        let prepared = prepare(
            DestinationType::Splunk,
            &url("https://s"),
            Some("tok"),
            "gw",
            &batch(),
            0,
        )
        .unwrap();
        assert_eq!(prepared.headers["authorization"], "Splunk tok");
        let text = String::from_utf8(prepared.body).unwrap();
        let items: Vec<Value> = serde_json::Deserializer::from_str(&text)
            .into_iter()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0]["time"], 1767225600);
        assert_eq!(items[0]["host"], "gw");
        assert_eq!(items[0]["sourcetype"], "agenttrust:audit");
        assert_eq!(items[1]["event"]["id"], "e6");
    }

    #[test]
    fn elastic_creates_by_event_id_and_conflicts_count_as_delivered() {
        let prepared = prepare(
            DestinationType::Elastic,
            &url("https://es"),
            Some("k"),
            "gw",
            &batch(),
            0,
        )
        .unwrap();
        let text = String::from_utf8(prepared.body).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(lines[0], json!({"create": {"_id": "e5"}}));
        assert_eq!(lines[1]["@timestamp"], "2026-01-01T00:00:00Z");
        assert!(text.ends_with('\n'));
        let answer = json!({"errors": true, "items": [
            {"create": {"_id": "e5", "status": 409, "error": {"type": "version_conflict_engine_exception"}}},
            {"create": {"_id": "e6", "status": 201}},
        ]});
        assert_eq!(
            judge(
                DestinationType::Elastic,
                200,
                None,
                answer.to_string().as_bytes(),
                false
            ),
            Verdict::Delivered
        );
        let mapping = json!({"errors": true, "items": [
            {"create": {"_id": "e5", "status": 400, "error": {"type": "mapper_parsing_exception", "reason": "bad"}}},
        ]});
        assert!(matches!(
            judge(
                DestinationType::Elastic,
                200,
                None,
                mapping.to_string().as_bytes(),
                false
            ),
            Verdict::Rejected {
                skippable: true,
                ..
            }
        ));
    }

    #[test]
    fn webhook_signature_covers_timestamp_and_body() {
        let prepared = prepare(
            DestinationType::Webhook,
            &url("https://hook"),
            Some("secret"),
            "gw",
            &batch(),
            1700000000,
        )
        .unwrap();
        let header = prepared.headers[SIGNATURE_HEADER].to_str().unwrap();
        assert_eq!(header, signature("secret", 1700000000, &prepared.body));
        assert!(header.starts_with("t=1700000000,v1="));
        let body: Value = serde_json::from_slice(&prepared.body).unwrap();
        assert_eq!(body["idempotency_key"], "d:5-6");
        assert_eq!(prepared.headers[IDEMPOTENCY_HEADER], "d:5-6");
    }

    #[test]
    fn answers_are_judged() {
        assert!(matches!(
            judge(DestinationType::Splunk, 503, Some("7"), b"", false),
            Verdict::Retry { retry_after: Some(delay), .. } if delay == Duration::from_secs(7)
        ));
        assert!(matches!(
            judge(DestinationType::Datadog, 400, None, b"bad", false),
            Verdict::Rejected {
                skippable: true,
                ..
            }
        ));
        assert!(matches!(
            judge(DestinationType::Splunk, 403, None, b"", false),
            Verdict::Rejected {
                skippable: false,
                ..
            }
        ));
        assert_eq!(
            judge(DestinationType::Datadog, 202, None, b"{}", false),
            Verdict::Delivered
        );
    }

    #[test]
    fn retry_after_takes_seconds_or_a_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(retry_after("120", now), Some(Duration::from_secs(120)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(retry_after(&later, now), Some(Duration::from_secs(30)));
        assert_eq!(retry_after("soon", now), None);
    }
}
