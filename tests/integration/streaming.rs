//! SIEM streaming end to end: the destinations API (shapes, masking, validation, who may call),
//! and the delivery engine against local receivers that implement each product's format
//! strictly (the HEC receiver refuses a wrong token or a malformed event, the webhook receiver
//! verifies the signature, the Elasticsearch receiver answers per item and conflicts on a
//! known `_id`). Receivers answer from a script (503, 429 with `Retry-After`, 400…) so
//! outages, backoff, rejection and restarts are exercised, and every test waits on a deadline,
//! never a blind sleep.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agenttrust::api::keys::Role;
use agenttrust::gateway::GatewayConfig;
use agenttrust::gateway::signing::SigningSecret;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::IntoResponse;
use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::runtime::Runtime;

use crate::harness::Harness;
use crate::on_both_backends_with;

pub(crate) const HEC_TOKEN: &str = "hec-0c1f-secret-token";
const DD_KEY: &str = "dd-api-key-secret";
const ES_KEY: &str = "es-api-key-secret";
const HOOK_SECRET: &str = "webhook-signing-secret";

/// Fast engine timing for tests, and a key-encryption key, so tokens are stored sealed.
fn configure(config: &mut GatewayConfig) {
    config.streaming.poll_interval = Duration::from_millis(50);
    config.streaming.backoff_base = Duration::from_millis(50);
    config.streaming.backoff_cap = Duration::from_millis(300);
    config.streaming.lease = Duration::from_secs(5);
    config.signing_secret =
        Some(SigningSecret::parse(&"ab".repeat(32)).expect("a 32-byte secret in hex"));
}

on_both_backends_with!(configure;
    destinations_crud_shapes_and_masking,
    invalid_destinations_are_refused_and_change_nothing,
    only_admin_keys_of_the_org_manage_destinations,
    splunk_receives_every_decision_once_in_order,
    an_outage_loses_nothing_and_resends_with_the_same_key,
    retry_after_is_honoured,
    rejected_batches_wait_for_a_fix_unless_skipped,
    filters_select_kinds_and_prefixes,
    elastic_conflicts_on_a_resend_count_as_delivered,
    streaming_cli_commands,
    logs_follow_prints_each_record_once,
    a_live_lease_holds_off_other_replicas_until_it_expires,
);

/// A restart needs the harness itself (not a borrow of it): one test per backend, by hand.
mod a_restart_mid_backlog_resumes_at_the_cursor {
    use crate::harness::{Harness, postgres_unavailable};

    #[test]
    fn sqlite() {
        let mut harness = Harness::sqlite_with(super::configure);
        super::a_restart_mid_backlog_resumes_at_the_cursor(&mut harness);
    }

    #[test]
    fn postgres() {
        match Harness::postgres_with(super::configure) {
            Some(mut harness) => super::a_restart_mid_backlog_resumes_at_the_cursor(&mut harness),
            None => postgres_unavailable(),
        }
    }
}

/// Two replicas on one PostgreSQL database, both with the test timing.
mod two_replicas_deliver_each_event_once {
    use crate::harness::{Harness, postgres_unavailable};

    #[test]
    fn postgres() {
        match Harness::postgres_with(super::configure) {
            Some(harness) => super::two_replicas_deliver_each_event_once(&harness),
            None => postgres_unavailable(),
        }
    }
}

// ---- a strict local receiver -------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Product {
    Splunk,
    Datadog,
    Elastic,
    Webhook,
}

/// A scripted answer, used before the receiver's natural one.
#[derive(Debug, Clone)]
struct Answer {
    status: u16,
    retry_after: Option<String>,
    /// Elasticsearch: index the documents, then answer `status` (an acknowledgement lost).
    keep: bool,
}

fn answer(status: u16) -> Answer {
    Answer {
        status,
        retry_after: None,
        keep: false,
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Received {
    path: String,
    headers: BTreeMap<String, String>,
    body: String,
    /// What the receiver answered.
    status: u16,
    /// The events the request carried (parsed per the product's format).
    pub(crate) events: Vec<Value>,
    at: Instant,
}

impl Received {
    pub(crate) fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or("")
    }
}

struct ReceiverState {
    product: Product,
    script: VecDeque<Answer>,
    /// Answers 503 to everything while set.
    down: bool,
    requests: Vec<Received>,
    /// Events acknowledged with a 2xx, in arrival order (Elasticsearch: created ones).
    accepted: Vec<Value>,
    elastic_ids: HashSet<String>,
}

pub(crate) struct Receiver {
    pub(crate) url: String,
    state: Arc<Mutex<ReceiverState>>,
    runtime: Option<Runtime>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Receiver {
    pub(crate) fn start(product: Product) -> Receiver {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let state = Arc::new(Mutex::new(ReceiverState {
            product,
            script: VecDeque::new(),
            down: false,
            requests: Vec::new(),
            accepted: Vec::new(),
            elastic_ids: HashSet::new(),
        }));
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let shared = Arc::clone(&state);
        let app = axum::Router::new().fallback(move |uri: Uri, headers: HeaderMap, body: Bytes| {
            let shared = Arc::clone(&shared);
            async move { handle(&shared, &uri, &headers, &body) }
        });
        runtime.spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Receiver {
            url,
            state,
            runtime: Some(runtime),
        }
    }

    fn script(&self, answers: impl IntoIterator<Item = Answer>) {
        self.state.lock().unwrap().script.extend(answers);
    }

    fn set_down(&self, down: bool) {
        self.state.lock().unwrap().down = down;
    }

    pub(crate) fn requests(&self) -> Vec<Received> {
        self.state.lock().unwrap().requests.clone()
    }

    fn accepted(&self) -> Vec<Value> {
        self.state.lock().unwrap().accepted.clone()
    }
}

fn hmac_hex(secret: &str, message: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(message);
    hex::encode(mac.finalize().into_bytes())
}

/// Parses a request strictly per the product's documented format; `Err((status, body))` is the
/// product's refusal.
fn parse(
    product: Product,
    path: &str,
    headers: &BTreeMap<String, String>,
    body: &[u8],
) -> Result<Vec<Value>, (u16, String)> {
    let header = |name: &str| headers.get(name).map(String::as_str).unwrap_or("");
    let text = std::str::from_utf8(body).map_err(|_| (400, "not UTF-8".to_string()))?;
    let bad = |why: &str| (400, format!("{{\"text\":\"{why}\",\"code\":6}}"));
    match product {
        Product::Splunk => {
            if header("authorization") != format!("Splunk {HEC_TOKEN}") {
                return Err((403, r#"{"text":"Invalid token","code":4}"#.to_string()));
            }
            if path != "/services/collector/event" {
                return Err((404, "no such endpoint".to_string()));
            }
            let mut events = Vec::new();
            for item in serde_json::Deserializer::from_str(text).into_iter::<Value>() {
                let item = item.map_err(|_| bad("Invalid data format"))?;
                let event = item.get("event").filter(|event| event.is_object());
                let ok = event.is_some()
                    && item["time"].is_i64()
                    && item["host"].is_string()
                    && item["source"] == "agenttrust"
                    && item["sourcetype"] == "agenttrust:audit";
                if !ok {
                    return Err(bad("Event field is required"));
                }
                events.push(item["event"].clone());
            }
            if events.is_empty() {
                return Err(bad("No data"));
            }
            Ok(events)
        }
        Product::Datadog => {
            if header("dd-api-key") != DD_KEY {
                return Err((403, r#"{"errors":["Forbidden"]}"#.to_string()));
            }
            if path != "/api/v2/logs" || header("content-type") != "application/json" {
                return Err((404, "no such endpoint".to_string()));
            }
            let items: Vec<Value> = serde_json::from_str(text).map_err(|_| bad("not an array"))?;
            items
                .iter()
                .map(|item| {
                    let ok = item["ddsource"] == "agenttrust"
                        && item["service"] == "agenttrust"
                        && item["hostname"].is_string()
                        && item["ddtags"]
                            .as_str()
                            .is_some_and(|tags| tags.contains("schema:agenttrust.audit.v1"));
                    let message = item["message"].as_str().filter(|_| ok);
                    message
                        .and_then(|message| serde_json::from_str(message).ok())
                        .ok_or_else(|| bad("bad log item"))
                })
                .collect()
        }
        Product::Elastic => {
            if header("authorization") != format!("ApiKey {ES_KEY}") {
                return Err((401, r#"{"error":"security_exception"}"#.to_string()));
            }
            if path != "/agenttrust-audit/_bulk"
                || header("content-type") != "application/x-ndjson"
                || !text.ends_with('\n')
            {
                return Err(bad("bad bulk request"));
            }
            let lines: Vec<&str> = text.lines().collect();
            if !lines.len().is_multiple_of(2) {
                return Err(bad("action without a document"));
            }
            let mut events = Vec::new();
            for pair in lines.chunks(2) {
                let action: Value = serde_json::from_str(pair[0]).map_err(|_| bad("action"))?;
                let document: Value = serde_json::from_str(pair[1]).map_err(|_| bad("doc"))?;
                if action["create"]["_id"] != document["id"] || document["@timestamp"].is_null() {
                    return Err(bad("create action must carry the event id"));
                }
                events.push(document);
            }
            Ok(events)
        }
        Product::Webhook => {
            let signature = header("x-agenttrust-signature");
            let (timestamp, given) = signature
                .split_once(",v1=")
                .and_then(|(t, v1)| Some((t.strip_prefix("t=")?.parse::<i64>().ok()?, v1)))
                .ok_or((401, "no signature".to_string()))?;
            let mut message = format!("{timestamp}.").into_bytes();
            message.extend_from_slice(body);
            if hmac_hex(HOOK_SECRET, &message) != given {
                return Err((401, "bad signature".to_string()));
            }
            if (chrono::Utc::now().timestamp() - timestamp).abs() > 300 {
                return Err((401, "replayed or stale".to_string()));
            }
            let batch: Value = serde_json::from_str(text).map_err(|_| bad("not JSON"))?;
            if batch["idempotency_key"] != header("idempotency-key") {
                return Err(bad("idempotency key differs from the header"));
            }
            Ok(batch["events"].as_array().cloned().unwrap_or_default())
        }
    }
}

fn handle(
    shared: &Mutex<ReceiverState>,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> axum::response::Response {
    let headers: BTreeMap<String, String> = headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_string(),
                value.to_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let mut state = shared.lock().unwrap();
    let product = state.product;
    let parsed = parse(product, uri.path(), &headers, body);
    let events = parsed.clone().unwrap_or_default();
    let (status, retry_after, text) = match parsed {
        Err((status, text)) => (status, None, text),
        Ok(_) if state.down => (503, None, "down".to_string()),
        Ok(events) => match state.script.pop_front() {
            Some(scripted) => {
                if scripted.keep {
                    for event in &events {
                        let id = event["id"].as_str().unwrap_or("").to_string();
                        if state.elastic_ids.insert(id) {
                            state.accepted.push(event.clone());
                        }
                    }
                }
                (
                    scripted.status,
                    scripted.retry_after,
                    "scripted".to_string(),
                )
            }
            None => {
                let text = match product {
                    Product::Elastic => {
                        let mut items = Vec::new();
                        let mut errors = false;
                        for event in &events {
                            let id = event["id"].as_str().unwrap_or("").to_string();
                            if state.elastic_ids.insert(id.clone()) {
                                state.accepted.push(event.clone());
                                items.push(json!({"create": {"_index": "agenttrust-audit", "_id": id, "status": 201, "result": "created"}}));
                            } else {
                                errors = true;
                                items.push(json!({"create": {"_index": "agenttrust-audit", "_id": id, "status": 409, "error": {"type": "version_conflict_engine_exception", "reason": "document already exists"}}}));
                            }
                        }
                        json!({"took": 3, "errors": errors, "items": items}).to_string()
                    }
                    _ => {
                        state.accepted.extend(events.iter().cloned());
                        r#"{"text":"Success","code":0}"#.to_string()
                    }
                };
                let status = if product == Product::Datadog {
                    202
                } else {
                    200
                };
                (status, None, text)
            }
        },
    };
    state.requests.push(Received {
        path: uri.path().to_string(),
        headers,
        body: String::from_utf8_lossy(body).into_owned(),
        status,
        events,
        at: Instant::now(),
    });
    let mut response = (
        StatusCode::from_u16(status).unwrap(),
        [("content-type", "application/json")],
        text,
    )
        .into_response();
    if let Some(value) = retry_after {
        response
            .headers_mut()
            .insert("retry-after", value.parse().unwrap());
    }
    response
}

// ---- helpers ------------------------------------------------------------------------------------

/// Polls `condition` every 25 ms until it holds, failing after `limit` with `what`.
fn wait_until(what: &str, limit: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn create(h: &Harness, body: Value) -> Value {
    let reply = h.post("/api/v1/siem/destinations", body);
    reply.expect_status(201..=201);
    reply.body.clone()
}

fn destination(h: &Harness, product: Product, receiver: &Receiver, extra: Value) -> Value {
    let (kind, token) = match product {
        Product::Splunk => ("splunk", HEC_TOKEN),
        Product::Datadog => ("datadog", DD_KEY),
        Product::Elastic => ("elastic", ES_KEY),
        Product::Webhook => ("webhook", HOOK_SECRET),
    };
    let endpoint = match product {
        Product::Webhook => format!("{}/hooks/agenttrust", receiver.url),
        _ => receiver.url.clone(),
    };
    let mut body = json!({
        "name": format!("{kind}-test"),
        "destination_type": kind,
        "endpoint_url": endpoint,
        "auth_token": token,
        "batch_size": 5,
        "flush_interval_seconds": 1,
    });
    for (key, value) in extra.as_object().cloned().unwrap_or_default() {
        body[key] = value;
    }
    create(h, body)
}

/// `n` decisions by one agent; their check ids, in order.
fn decisions(h: &Harness, n: usize) -> Vec<String> {
    let agent = h.create_agent(
        &format!("agent-{}", uuid::Uuid::new_v4().simple()),
        &["files:read"],
    );
    let agent_id = agent["id"].as_str().unwrap().to_string();
    (0..n)
        .map(|index| {
            let decision = h.check(json!({
                "agent_id": agent_id,
                "action_name": "files:read",
                "action_input_summary": format!("read {index}"),
            }));
            decision["check_id"].as_str().unwrap().to_string()
        })
        .collect()
}

fn head(h: &Harness) -> i64 {
    h.sql_integers(&format!(
        "SELECT CAST(last_seq AS BIGINT) FROM audit_heads WHERE org_id = '{}'",
        h.org_id
    ))
    .unwrap()[0]
}

fn get_destination(h: &Harness, id: &str) -> Value {
    h.get(&format!("/api/v1/siem/destinations/{id}"))
        .ok()
        .clone()
}

fn logs(h: &Harness, id: &str) -> Vec<Value> {
    h.get(&format!("/api/v1/siem/destinations/{id}/logs?limit=1000"))
        .ok()["logs"]
        .as_array()
        .unwrap()
        .clone()
}

fn seqs(events: &[Value]) -> Vec<i64> {
    events
        .iter()
        .map(|event| event["seq"].as_i64().unwrap())
        .collect()
}

/// Every accepted event is unique (by id) and in chain order.
fn assert_once_in_order(events: &[Value]) {
    let seqs = seqs(events);
    assert!(
        seqs.windows(2).all(|pair| pair[0] < pair[1]),
        "events out of order or repeated: {seqs:?}"
    );
    let ids: HashSet<&str> = events.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), events.len(), "an event arrived twice");
}

fn subject_ids(events: &[Value], kind: &str) -> Vec<String> {
    events
        .iter()
        .filter(|event| event["kind"] == kind)
        .map(|event| event["subject_id"].as_str().unwrap().to_string())
        .collect()
}

// ---- the API ------------------------------------------------------------------------------------

fn destinations_crud_shapes_and_masking(h: &Harness) {
    let receiver = Receiver::start(Product::Splunk);
    let created = create(
        h,
        json!({
            "name": "splunk-prod",
            "destination_type": "splunk_hec",
            "endpoint_url": receiver.url,
            "auth_token": HEC_TOKEN,
            "filter_event_types": ["check.decided", "agent.*"],
        }),
    );
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(created["org_id"], h.org_id.as_str());
    assert_eq!(created["destination_type"], "splunk");
    assert_eq!(created["auth_token"], "********");
    assert_eq!(created["is_active"], true);
    assert_eq!(created["batch_size"], 100);
    assert_eq!(created["flush_interval_seconds"], 30);
    assert_eq!(created["skip_rejected_batches"], false);
    assert_eq!(
        created["filter_event_types"],
        json!(["check.decided", "agent.*"])
    );
    for field in ["created_at", "updated_at"] {
        let text = created[field].as_str().unwrap();
        assert!(text.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(text).is_ok());
    }
    // The token is stored sealed, bound to the destination.
    let sealed = h.sql_integers(&format!(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM siem_destinations WHERE id = '{id}' \
         AND auth_token <> '{HEC_TOKEN}' AND auth_token_sealed_with LIKE 'aes-256-gcm:%'"
    ));
    assert_eq!(sealed, Some(vec![1]));

    let got = get_destination(h, &id);
    assert_eq!(got["id"], id.as_str());
    assert_eq!(got["auth_token"], "********");
    let listed = h.get("/api/v1/siem/destinations").ok().clone();
    assert_eq!(listed["total"], 1);
    assert_eq!(listed["destinations"][0]["id"], id.as_str());

    // Partial update: only what is given changes; a new token is masked too.
    let updated = h
        .request(
            Method::PUT,
            &format!("/api/v1/siem/destinations/{id}"),
            Some(json!({"batch_size": 10, "auth_token": "second-secret", "is_active": false})),
        )
        .ok()
        .clone();
    assert_eq!(updated["batch_size"], 10);
    assert_eq!(updated["is_active"], false);
    assert_eq!(updated["name"], "splunk-prod");
    assert_eq!(updated["flush_interval_seconds"], 30);
    assert_eq!(updated["auth_token"], "********");

    // A destination without a token shows none.
    let bare = create(
        h,
        json!({"name": "hook", "destination_type": "webhook", "endpoint_url": receiver.url}),
    );
    assert!(bare.get("auth_token").is_none(), "{bare}");

    let log = h
        .get(&format!("/api/v1/siem/destinations/{id}/logs"))
        .ok()
        .clone();
    assert_eq!(log["total"], 0);
    assert_eq!(log["logs"], json!([]));

    // Nothing any reader sees holds a token: answers, the audit log.
    let events = h.get("/api/v1/audit/events?limit=500").text;
    for text in [
        created.to_string(),
        got.to_string(),
        listed.to_string(),
        updated.to_string(),
        events.clone(),
    ] {
        assert!(
            !text.contains(HEC_TOKEN) && !text.contains("second-secret"),
            "{text}"
        );
    }
    assert_eq!(h.audit_count("siem.destination.created"), 2);
    assert_eq!(h.audit_count("siem.destination.updated"), 1);
    assert!(events.contains("\"auth_token_changed\":true"), "{events}");

    let deleted = h
        .request(
            Method::DELETE,
            &format!("/api/v1/siem/destinations/{id}"),
            None,
        )
        .ok()
        .clone();
    assert_eq!(deleted["status"], "deleted");
    assert_eq!(
        h.get(&format!("/api/v1/siem/destinations/{id}"))
            .expect_error(404),
        "NOT_FOUND"
    );
    assert_eq!(h.audit_count("siem.destination.deleted"), 1);
}

fn invalid_destinations_are_refused_and_change_nothing(h: &Harness) {
    let valid = json!({
        "name": "ok",
        "destination_type": "splunk",
        "endpoint_url": "https://splunk.example.com:8088",
    });
    let existing = create(h, valid.clone());
    let id = existing["id"].as_str().unwrap().to_string();
    let before = h.row_counts();
    let with = |key: &str, value: Value| {
        let mut body = valid.clone();
        body[key] = value;
        body
    };
    let refused = [
        with("name", json!("  ")),
        with("name", json!("x".repeat(300))),
        with("destination_type", json!("kafka")),
        with("destination_type", json!("")),
        with("endpoint_url", json!("")),
        with("endpoint_url", json!("ftp://splunk.example.com")),
        with("endpoint_url", json!("http://splunk.example.com:8088")),
        with("endpoint_url", json!("https://user:pw@splunk.example.com")),
        with("endpoint_url", json!("not a url")),
        with("batch_size", json!(0)),
        with("batch_size", json!(1001)),
        with("flush_interval_seconds", json!(0)),
        with("flush_interval_seconds", json!(3601)),
        with("filter_event_types", json!(["check.*x"])),
        with("filter_event_types", json!(["has space"])),
        with("auth_token", json!("line\nbreak")),
    ];
    for body in refused {
        let reply = h.post("/api/v1/siem/destinations", body.clone());
        assert_eq!(reply.expect_error(400), "VALIDATION_ERROR", "{body}");
    }
    let path = format!("/api/v1/siem/destinations/{id}");
    for body in [
        json!({"destination_type": "datadog"}),
        json!({"batch_size": -1}),
        json!({"endpoint_url": "http://remote.example.com"}),
        json!({"name": "new name", "flush_interval_seconds": 99999}),
    ] {
        let reply = h.request(Method::PUT, &path, Some(body.clone()));
        assert_eq!(reply.expect_error(400), "VALIDATION_ERROR", "{body}");
    }
    assert!(
        h.request(
            Method::PUT,
            &path,
            Some(json!({"endpoint_url": "http://remote.example.com"}))
        )
        .message()
        .contains("--streaming-allow-http")
    );
    assert_eq!(
        h.row_counts(),
        before,
        "a refused request changed something"
    );
    assert_eq!(get_destination(h, &id)["name"], "ok");
}

fn only_admin_keys_of_the_org_manage_destinations(h: &Harness) {
    let created = create(
        h,
        json!({"name": "d", "destination_type": "webhook", "endpoint_url": "https://hooks.example.com/x"}),
    );
    let id = created["id"].as_str().unwrap().to_string();
    let (runtime_key, _) = h.new_key(Role::Runtime);
    let agent = h.create_agent("streamer", &["files:read"]);
    let token = h.issue_token(agent["id"].as_str().unwrap(), &["files:read"], 300)["token"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, other_key) = h.other_org("rival");
    let before = h.row_counts();
    let one = format!("/api/v1/siem/destinations/{id}");
    let calls = [
        (Method::GET, "/api/v1/siem/destinations".to_string(), None),
        (
            Method::POST,
            "/api/v1/siem/destinations".to_string(),
            Some(
                json!({"name": "x", "destination_type": "webhook", "endpoint_url": "https://h.example.com"}),
            ),
        ),
        (Method::GET, one.clone(), None),
        (Method::PUT, one.clone(), Some(json!({"name": "stolen"}))),
        (Method::DELETE, one.clone(), None),
        (Method::GET, format!("{one}/logs"), None),
        (Method::POST, format!("{one}/test"), None),
    ];
    for (method, path, body) in &calls {
        let reply = h.request_as(&runtime_key, method.clone(), path, body.clone());
        reply.expect_error(403);
        let reply = h.raw(
            method.clone(),
            path,
            &[
                ("Authorization", format!("Bearer {token}")),
                ("Content-Type", "application/json".to_string()),
            ],
            body.as_ref().map(|body| body.to_string().into_bytes()),
        );
        assert!(
            reply.status == 401 || reply.status == 403,
            "{method} {path} with an agent token: {}",
            reply.status
        );
    }
    // Another org's admin: the destination does not exist for it.
    for (method, path, body) in calls.iter().skip(2) {
        let reply = h.request_as(&other_key, method.clone(), path, body.clone());
        assert_eq!(reply.expect_error(404), "NOT_FOUND", "{method} {path}");
    }
    let theirs = h
        .request_as(&other_key, Method::GET, "/api/v1/siem/destinations", None)
        .ok()
        .clone();
    assert_eq!(theirs["total"], 0);
    assert_eq!(h.row_counts(), before);
    assert_eq!(get_destination(h, &id)["name"], "d");
}

// ---- delivery -----------------------------------------------------------------------------------

fn splunk_receives_every_decision_once_in_order(h: &Harness) {
    let receiver = Receiver::start(Product::Splunk);
    let created = destination(h, Product::Splunk, &receiver, json!({}));
    let id = created["id"].as_str().unwrap().to_string();
    let checks = decisions(h, 12);
    let decided_at = Instant::now();
    wait_until(
        "every decision at the HEC receiver",
        Duration::from_secs(10),
        || subject_ids(&receiver.accepted(), "check.decided").len() >= checks.len(),
    );
    // Within the flush interval (1 s), plus the clock's second and the poll, plus slack for a
    // loaded CI machine: a flush interval not honoured would take the 30 s default or more.
    assert!(
        decided_at.elapsed() < Duration::from_secs(5),
        "took {:?}",
        decided_at.elapsed()
    );
    wait_until("the cursor at the head", Duration::from_secs(5), || {
        get_destination(h, &id)["cursor_seq"].as_i64() == Some(head(h))
    });
    let accepted = receiver.accepted();
    assert_once_in_order(&accepted);
    assert_eq!(subject_ids(&accepted, "check.decided"), checks);
    assert_eq!(accepted[0]["kind"], "siem.destination.created");
    let decided = accepted
        .iter()
        .find(|e| e["kind"] == "check.decided")
        .unwrap();
    assert_eq!(decided["schema"], "agenttrust.audit.v1");
    assert_eq!(decided["org_id"], h.org_id.as_str());
    assert_eq!(decided["detail"]["action_name"], "files:read");
    assert!(decided["hash"].as_str().unwrap().len() == 64);
    for request in receiver.requests() {
        assert_eq!(request.status, 200, "{}", request.body);
        assert_eq!(
            request.header("authorization"),
            format!("Splunk {HEC_TOKEN}")
        );
        assert!(request.events.len() <= 5, "batch_size is 5");
        let key = request.header("idempotency-key");
        let (first, last) = (
            request.events.first().unwrap()["seq"].as_i64().unwrap(),
            request.events.last().unwrap()["seq"].as_i64().unwrap(),
        );
        assert!(key.starts_with(&format!("{id}:{first}-")), "{key}");
        assert!(key.split('-').next_back().unwrap().parse::<i64>().unwrap() >= last);
    }
    let records = logs(h, &id);
    assert!(!records.is_empty());
    for record in &records {
        assert_eq!(record["status"], "success");
        assert_eq!(record["status_code"], 200);
        assert_eq!(record["destination_id"], id.as_str());
        assert!(
            chrono::DateTime::parse_from_rfc3339(record["delivered_at"].as_str().unwrap()).is_ok()
        );
    }
    let delivered: i64 = records
        .iter()
        .map(|r| r["batch_size"].as_i64().unwrap())
        .sum();
    assert_eq!(delivered as usize, accepted.len());
    let state = get_destination(h, &id);
    assert_eq!(state["consecutive_failures"], 0);
    assert!(state["last_delivered_at"].is_string());
}

fn an_outage_loses_nothing_and_resends_with_the_same_key(h: &Harness) {
    let receiver = Receiver::start(Product::Webhook);
    receiver.script([answer(500), answer(502), answer(503)]);
    let created = destination(h, Product::Webhook, &receiver, json!({}));
    let id = created["id"].as_str().unwrap().to_string();
    let checks = decisions(h, 7);
    wait_until(
        "every decision after the outage",
        Duration::from_secs(10),
        || subject_ids(&receiver.accepted(), "check.decided").len() >= checks.len(),
    );
    let requests = receiver.requests();
    // Every request was signed correctly (the receiver refuses others with 401).
    assert!(requests.iter().all(|request| request.status != 401));
    let first_key = requests[0].header("idempotency-key").to_string();
    assert_eq!(
        requests[..4]
            .iter()
            .map(|request| request.header("idempotency-key"))
            .collect::<Vec<_>>(),
        vec![first_key.as_str(); 4],
        "the resends carry the first attempt's key"
    );
    assert_eq!(
        requests[..4].iter().map(|r| r.status).collect::<Vec<_>>(),
        [500, 502, 503, 200]
    );
    assert_eq!(
        requests[0].body, requests[3].body,
        "a resend is the same batch"
    );
    let body: Value = serde_json::from_str(&requests[3].body).unwrap();
    assert_eq!(body["idempotency_key"], first_key.as_str());
    assert_eq!(requests[0].path, "/hooks/agenttrust");
    let accepted = receiver.accepted();
    assert_once_in_order(&accepted);
    assert_eq!(subject_ids(&accepted, "check.decided"), checks);
    let records = logs(h, &id);
    let oldest_first: Vec<&Value> = records.iter().rev().collect();
    let statuses: Vec<(&str, i64)> = oldest_first[..4]
        .iter()
        .map(|r| {
            (
                r["status"].as_str().unwrap(),
                r["status_code"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        [
            ("failure", 500),
            ("failure", 502),
            ("failure", 503),
            ("success", 200)
        ]
    );
    assert!(
        oldest_first[0]["error_message"]
            .as_str()
            .unwrap()
            .contains("500")
    );
    assert!(
        oldest_first[..4]
            .iter()
            .all(|r| r["idempotency_key"] == first_key.as_str())
    );
}

fn retry_after_is_honoured(h: &Harness) {
    let receiver = Receiver::start(Product::Datadog);
    receiver.script([Answer {
        status: 429,
        retry_after: Some("1".to_string()),
        keep: false,
    }]);
    let created = destination(h, Product::Datadog, &receiver, json!({}));
    let id = created["id"].as_str().unwrap().to_string();
    let checks = decisions(h, 3);
    wait_until(
        "the decisions after the 429",
        Duration::from_secs(10),
        || subject_ids(&receiver.accepted(), "check.decided").len() >= checks.len(),
    );
    let requests = receiver.requests();
    assert_eq!(requests[0].status, 429);
    assert_eq!(requests[1].status, 202);
    assert_eq!(requests[1].header("dd-api-key"), DD_KEY);
    assert_eq!(
        requests[0].header("idempotency-key"),
        requests[1].header("idempotency-key")
    );
    let waited = requests[1].at - requests[0].at;
    // The backoff alone would be at most 50 ms.
    assert!(
        waited >= Duration::from_millis(950),
        "retried after {waited:?}"
    );
    let failure = logs(h, &id).pop().unwrap();
    assert_eq!(failure["status"], "failure");
    assert_eq!(failure["status_code"], 429);
}

fn rejected_batches_wait_for_a_fix_unless_skipped(h: &Harness) {
    let receiver = Receiver::start(Product::Splunk);
    receiver.script([answer(400), answer(400), answer(400)]);
    let created = destination(h, Product::Splunk, &receiver, json!({}));
    let id = created["id"].as_str().unwrap().to_string();
    let cursor = created["cursor_seq"].as_i64().unwrap();
    let first = decisions(h, 2);
    // Without skip_rejected_batches the rejected batch is retried (backoff) until accepted.
    wait_until(
        "the rejected batch delivered at last",
        Duration::from_secs(10),
        || subject_ids(&receiver.accepted(), "check.decided") == first,
    );
    let requests = receiver.requests();
    assert_eq!(
        requests
            .iter()
            .map(|r| r.status)
            .take(4)
            .collect::<Vec<_>>(),
        [400, 400, 400, 200]
    );
    assert!(
        requests[..4]
            .iter()
            .all(|r| r.header("idempotency-key") == requests[0].header("idempotency-key"))
    );
    assert!(get_destination(h, &id)["cursor_seq"].as_i64().unwrap() > cursor);

    // With it, a rejected batch is passed over (and recorded as a failure); later ones flow.
    // The update's own event makes the next batch: it is the one rejected.
    let accepted_before = receiver.accepted().len();
    let requests_before = receiver.requests().len();
    receiver.script([answer(400)]);
    h.request(
        Method::PUT,
        &format!("/api/v1/siem/destinations/{id}"),
        Some(json!({"skip_rejected_batches": true})),
    )
    .ok();
    wait_until(
        "the rejected batch passed over",
        Duration::from_secs(10),
        || {
            logs(h, &id)[0]["status"] == "failure"
                && get_destination(h, &id)["cursor_seq"].as_i64() == Some(head(h))
        },
    );
    let skipped = receiver.requests()[requests_before].clone();
    assert_eq!(skipped.status, 400);
    assert_eq!(get_destination(h, &id)["consecutive_failures"], 0);
    let later = decisions(h, 2);
    wait_until("later batches delivered", Duration::from_secs(10), || {
        subject_ids(&receiver.accepted(), "check.decided").len() == first.len() + later.len()
    });
    let accepted = receiver.accepted();
    assert_once_in_order(&accepted);
    let skipped_ids: HashSet<&str> = skipped
        .events
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert!(
        accepted[accepted_before..]
            .iter()
            .all(|e| !skipped_ids.contains(e["id"].as_str().unwrap()))
    );
}

fn filters_select_kinds_and_prefixes(h: &Harness) {
    let receiver = Receiver::start(Product::Webhook);
    let created = destination(
        h,
        Product::Webhook,
        &receiver,
        json!({"filter_event_types": ["agent.*", "token.issued"], "batch_size": 100}),
    );
    let id = created["id"].as_str().unwrap().to_string();
    decisions(h, 3);
    let agent = h.create_agent("filtered", &["files:read"]);
    h.issue_token(agent["id"].as_str().unwrap(), &["files:read"], 60);
    decisions(h, 2);
    wait_until(
        "the cursor past every event",
        Duration::from_secs(10),
        || get_destination(h, &id)["cursor_seq"].as_i64() == Some(head(h)),
    );
    let accepted = receiver.accepted();
    assert_once_in_order(&accepted);
    let kinds: HashSet<&str> = accepted
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains("agent.created") && kinds.contains("token.issued"),
        "{kinds:?}"
    );
    assert!(
        kinds
            .iter()
            .all(|kind| kind.starts_with("agent.") || *kind == "token.issued"),
        "{kinds:?}"
    );
    // 2 agents made by `decisions` and one here.
    assert_eq!(subject_ids(&accepted, "agent.created").len(), 3);
}

fn elastic_conflicts_on_a_resend_count_as_delivered(h: &Harness) {
    let receiver = Receiver::start(Product::Elastic);
    // The first batch is indexed but its answer is lost (a 503 after indexing).
    receiver.script([Answer {
        status: 503,
        retry_after: None,
        keep: true,
    }]);
    let created = destination(h, Product::Elastic, &receiver, json!({}));
    let id = created["id"].as_str().unwrap().to_string();
    decisions(h, 3);
    wait_until("the cursor at the head", Duration::from_secs(10), || {
        get_destination(h, &id)["cursor_seq"].as_i64() == Some(head(h))
    });
    let requests = receiver.requests();
    assert_eq!(requests[0].status, 503);
    assert_eq!(requests[1].status, 200);
    assert_eq!(
        requests[0].header("idempotency-key"),
        requests[1].header("idempotency-key")
    );
    assert_eq!(
        requests[0].header("authorization"),
        format!("ApiKey {ES_KEY}")
    );
    assert_eq!(requests[0].path, "/agenttrust-audit/_bulk");
    let records = logs(h, &id);
    let resend = &records[records.len() - 2];
    assert_eq!(resend["status"], "success", "{records:?}");
    let accepted = receiver.accepted();
    assert_once_in_order(&accepted);
    let expected = head(h) - created["cursor_seq"].as_i64().unwrap();
    assert_eq!(accepted.len() as i64, expected);
}

fn a_restart_mid_backlog_resumes_at_the_cursor(h: &mut Harness) {
    let receiver = Receiver::start(Product::Splunk);
    receiver.set_down(true);
    let created = destination(h, Product::Splunk, &receiver, json!({}));
    let id = created["id"].as_str().unwrap().to_string();
    let checks = decisions(h, 9);
    wait_until(
        "a failed attempt while the receiver is down",
        Duration::from_secs(10),
        || !receiver.requests().is_empty(),
    );
    // The gateway stops while the batch is pending; a new one starts on the same database.
    h.restart_with(configure);
    let h: &Harness = h;
    receiver.set_down(false);
    let more = decisions(h, 2);
    wait_until(
        "the backlog delivered after the restart",
        Duration::from_secs(10),
        || subject_ids(&receiver.accepted(), "check.decided").len() >= checks.len() + more.len(),
    );
    wait_until("the cursor at the head", Duration::from_secs(5), || {
        get_destination(h, &id)["cursor_seq"].as_i64() == Some(head(h))
    });
    let accepted = receiver.accepted();
    assert_once_in_order(&accepted);
    assert_eq!(
        subject_ids(&accepted, "check.decided"),
        checks.into_iter().chain(more).collect::<Vec<_>>()
    );
    assert_eq!(
        accepted.len() as i64,
        head(h) - created["cursor_seq"].as_i64().unwrap()
    );
}

fn two_replicas_deliver_each_event_once(h: &Harness) {
    let replica = h.replica_with(configure);
    let receiver = Receiver::start(Product::Splunk);
    let created = destination(h, Product::Splunk, &receiver, json!({"batch_size": 3}));
    let id = created["id"].as_str().unwrap().to_string();
    let mut checks = decisions(h, 8);
    checks.extend(decisions(&replica, 8));
    wait_until("every decision once", Duration::from_secs(10), || {
        subject_ids(&receiver.accepted(), "check.decided").len() >= checks.len()
    });
    wait_until("the cursor at the head", Duration::from_secs(5), || {
        get_destination(h, &id)["cursor_seq"].as_i64() == Some(head(h))
    });
    let accepted = receiver.accepted();
    assert_once_in_order(&accepted);
    assert_eq!(subject_ids(&accepted, "check.decided"), checks);
    assert!(
        receiver
            .requests()
            .iter()
            .all(|request| request.status == 200)
    );
    drop(replica);
}

// ---- the CLI ------------------------------------------------------------------------------------

fn streaming_cli_commands(h: &Harness) {
    let receiver = Receiver::start(Product::Splunk);
    let created = crate::harness::run(
        h.cli()
            .args([
                "streaming",
                "create",
                "--name",
                "splunk",
                "--type",
                "splunk",
                "--endpoint",
                &receiver.url,
                "--auth-token-stdin",
                "--batch-size",
                "50",
                "--flush-interval",
                "1m",
                "-q",
            ])
            .write_stdin(format!("{HEC_TOKEN}\n")),
    );
    created.success();
    let id = created.value().to_string();
    assert!(!created.stdout.contains(HEC_TOKEN));

    let shown = h.run(&["streaming", "get", &id, "-o", "json"]);
    let shown = shown.success().json();
    assert_eq!(shown["auth_token"], "********");
    assert_eq!(shown["flush_interval_seconds"], 60);
    let table = h.run(&["streaming", "get", &id]);
    assert!(table.success().stdout.contains("********") && !table.stdout.contains(HEC_TOKEN));
    let listed = h.run(&["streaming", "list", "-o", "json"]).success().json();
    assert_eq!(listed["total"], 1);

    // The token was stored as given: the test delivery authenticates (exit 0).
    let test = h.run(&["streaming", "test", &id, "-o", "json"]);
    assert_eq!(test.success().json()["success"], true);
    let request = receiver.requests().pop().unwrap();
    assert_eq!(
        request.header("authorization"),
        format!("Splunk {HEC_TOKEN}")
    );
    assert_eq!(request.events[0]["kind"], "siem.test");

    // A failing test delivery exits 1 and says why.
    receiver.script([answer(500)]);
    let failed = h.run(&["streaming", "test", &id]);
    failed.code(1);
    assert!(failed.stderr.contains("HTTP 500"), "{}", failed.stderr);

    let updated = crate::harness::run(
        h.cli()
            .args([
                "streaming",
                "update",
                &id,
                "--auth-token-stdin",
                "--active",
                "false",
                "-o",
                "json",
            ])
            .write_stdin("wrong-token"),
    );
    assert_eq!(updated.success().json()["is_active"], false);
    let refused = h.run(&["streaming", "test", &id, "-o", "json"]);
    refused.code(1);
    assert_eq!(refused.stderr_json()["error"]["code"], "DELIVERY_FAILED");

    let log = h
        .run(&["streaming", "logs", &id, "-o", "json"])
        .success()
        .json();
    assert_eq!(log["total"], 3);
    assert_eq!(log["logs"][0]["status"], "failure");
    assert_eq!(log["logs"][0]["status_code"], 403);
    let table = h.run(&["streaming", "logs", &id]);
    assert!(table.success().stdout.contains("failure"));

    h.run(&["streaming", "update", &id]).code(2);
    h.run(&["streaming", "delete", &id, "--no-input"]).code(2);
    h.run(&["streaming", "delete", &id, "--yes"]).success();
    h.run(&["streaming", "get", &id]).code(3);
    h.run(&["streaming", "test", &id]).code(3);
    let (runtime_key, _) = h.new_key(Role::Runtime);
    crate::harness::run(
        h.cli()
            .env("AGENTTRUST_API_KEY", runtime_key)
            .args(["streaming", "list"]),
    )
    .code(4);
}

fn logs_follow_prints_each_record_once(h: &Harness) {
    use std::io::BufRead;
    let receiver = Receiver::start(Product::Splunk);
    let created = destination(h, Product::Splunk, &receiver, json!({"is_active": false}));
    let id = created["id"].as_str().unwrap().to_string();
    let test_path = format!("/api/v1/siem/destinations/{id}/test");
    h.post(&test_path, json!({})).ok();
    let mut command = std::process::Command::new(crate::harness::binary());
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("AGENTTRUST_") {
            command.env_remove(name);
        }
    }
    let mut child = command
        .args([
            "streaming",
            "logs",
            &id,
            "--follow",
            "--interval",
            "200ms",
            "-o",
            "json",
        ])
        .env("AGENTTRUST_URL", &h.url)
        .env("AGENTTRUST_API_KEY", &h.admin_key)
        .env("AGENTTRUST_CONFIG_DIR", h.config_dir.path())
        .env("HOME", h.scratch.path())
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let lines = Arc::new(Mutex::new(Vec::<Value>::new()));
    let reader = {
        let lines = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                lines
                    .lock()
                    .unwrap()
                    .push(serde_json::from_str(&line).unwrap());
            }
        })
    };
    wait_until("the first record", Duration::from_secs(10), || {
        lines.lock().unwrap().len() == 1
    });
    receiver.script([answer(503)]);
    h.post(&test_path, json!({})).ok();
    wait_until("the second record", Duration::from_secs(10), || {
        lines.lock().unwrap().len() == 2
    });
    // A few more polls print nothing again.
    std::thread::sleep(Duration::from_millis(700));
    child.kill().unwrap();
    child.wait().unwrap();
    reader.join().unwrap();
    let lines = lines.lock().unwrap().clone();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["status"], "success");
    assert_eq!(lines[1]["status"], "failure");
    assert_eq!(lines[1]["status_code"], 503);
    assert_ne!(lines[0]["id"], lines[1]["id"]);
}

fn a_live_lease_holds_off_other_replicas_until_it_expires(h: &Harness) {
    let receiver = Receiver::start(Product::Splunk);
    // Paused while the lease is planted, so nothing is sent before it.
    let created = destination(h, Product::Splunk, &receiver, json!({"is_active": false}));
    let id = created["id"].as_str().unwrap().to_string();
    // Another replica (one that died mid-batch, say) holds the lease for 1.5 s more.
    let expires = Instant::now() + Duration::from_millis(1500);
    let until_ms = chrono::Utc::now().timestamp_millis() + 1500;
    let leased = h.sql_execute(&format!(
        "UPDATE siem_destinations SET lease_owner = 'crashed-replica', \
         lease_expires_at_ms = {until_ms} WHERE id = '{id}'"
    ));
    assert_eq!(leased, 1);
    h.request(
        Method::PUT,
        &format!("/api/v1/siem/destinations/{id}"),
        Some(json!({"is_active": true})),
    )
    .ok();
    let checks = decisions(h, 3);
    wait_until(
        "delivery once the lease expired",
        Duration::from_secs(10),
        || subject_ids(&receiver.accepted(), "check.decided").len() == checks.len(),
    );
    let first = receiver.requests()[0].at;
    assert!(
        first >= expires - Duration::from_millis(50),
        "sent {:?} before the lease expired",
        expires - first
    );
    assert_once_in_order(&receiver.accepted());
    wait_until("the lease given back", Duration::from_secs(5), || {
        h.sql_integers(&format!(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM siem_destinations WHERE id = '{id}' \
             AND lease_owner IS NULL"
        )) == Some(vec![1])
    });
}
