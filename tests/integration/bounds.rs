//! Bounds on what callers may ask for: token and delegation lifetimes (configurable maxima,
//! never an overflow, never an expiry past year 9999), timestamps in range, and telemetry event
//! ids that are unique per agent, counted only when stored.

use serde_json::{Value, json};

use agenttrust::gateway::GatewayConfig;

use crate::harness::Harness;
use crate::{on_both_backends, on_both_backends_with};

on_both_backends!(
    delegation_ttl_past_the_maximum_is_refused,
    telemetry_timestamps_out_of_range_are_refused,
    telemetry_event_ids_are_unique_per_agent,
);

on_both_backends_with!(unbounded_lifetimes; expiries_past_year_9999_are_refused);

fn unbounded_lifetimes(config: &mut GatewayConfig) {
    config.max_token_ttl_seconds = i64::MAX;
    config.max_delegation_ttl_seconds = i64::MAX;
}

fn seconds(value: &Value) -> i64 {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("not a timestamp: {value}"));
    agenttrust::api::time::parse(text).unwrap_or_else(|| panic!("not RFC 3339: {text}"))
}

fn delegation_ttl_past_the_maximum_is_refused(h: &Harness) {
    let from = h.create_agent("grantor", &["files:read"]);
    let to = h.create_agent("grantee", &[]);
    let before = h.row_counts();
    for ttl in [30 * 86_400 + 1, i64::MAX] {
        let reply = h.post(
            "/api/v1/delegations",
            json!({"from_agent_id": from["id"], "to_agent_id": to["id"],
                   "scope": ["files:read"], "ttl_seconds": ttl}),
        );
        reply.expect_error(400);
        assert!(
            reply.message().contains("--max-delegation-ttl") && reply.message().contains("2592000"),
            "{}",
            reply.text
        );
    }
    assert_eq!(h.row_counts(), before, "nothing stored");
    let created = h.post(
        "/api/v1/delegations",
        json!({"from_agent_id": from["id"], "to_agent_id": to["id"],
               "scope": ["files:read"], "ttl_seconds": 30 * 86_400}),
    );
    let delegation = created.ok()["delegation"].clone();
    let expires_at = seconds(&delegation["expires_at"]);
    let now = agenttrust::api::time::now();
    assert!(
        (expires_at - now - 30 * 86_400).abs() <= 60,
        "expires in 30 days: {delegation}"
    );
}

fn expiries_past_year_9999_are_refused(h: &Harness) {
    let agent = h.create_agent("forever", &["files:read"]);
    let other = h.create_agent("other", &[]);
    let before = h.row_counts();
    let reply = h.post(
        "/api/v1/agent-tokens/issue",
        json!({"agent_id": agent["id"], "scopes": [], "ttl": i64::MAX}),
    );
    reply.expect_error(400);
    assert!(reply.message().contains("out of range"), "{}", reply.text);
    let reply = h.post(
        "/api/v1/delegations",
        json!({"from_agent_id": agent["id"], "to_agent_id": other["id"],
               "scope": ["files:read"], "ttl_seconds": i64::MAX}),
    );
    reply.expect_error(400);
    assert!(reply.message().contains("out of range"), "{}", reply.text);
    assert_eq!(h.row_counts(), before, "nothing stored");
    // Long but representable lifetimes render as themselves, never as 1970.
    let issued = h.issue_token(agent["id"].as_str().unwrap(), &[], 100 * 365 * 86_400_i64);
    assert!(
        seconds(&issued["expires_at"]) > agenttrust::api::time::now(),
        "{issued}"
    );
    assert_eq!(issued["ttl_seconds"], 100 * 365 * 86_400_i64);
}

fn telemetry_timestamps_out_of_range_are_refused(h: &Harness) {
    let agent = h.create_agent("clock", &[]);
    let before = h.row_counts();
    for timestamp in [
        "1969-12-31T23:59:59Z",
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59-01:00",
    ] {
        let reply = h.post(
            "/api/v1/telemetry/report",
            json!({"agent_id": agent["id"], "events": [
                {"event_type": "tool_end", "tool_name": "x", "timestamp": "2026-03-01T10:00:00Z"},
                {"event_type": "tool_end", "tool_name": "x", "timestamp": timestamp}
            ]}),
        );
        reply.expect_error(400);
        assert!(
            reply.message().contains("events[1].timestamp")
                && reply.message().contains("out of range"),
            "{}",
            reply.text
        );
    }
    assert_eq!(
        h.row_counts(),
        before,
        "nothing of a refused batch is stored"
    );
    let reply = h.post(
        "/api/v1/telemetry/report",
        json!({"agent_id": agent["id"], "events": [
            {"event_type": "tool_end", "tool_name": "x", "timestamp": "9999-12-31T23:59:59Z"}
        ]}),
    );
    assert_eq!(reply.ok()["events_processed"], 1);
    let listed = h
        .get(&format!(
            "/api/v1/telemetry/events?agent_id={}",
            agent["id"].as_str().unwrap()
        ))
        .ok()
        .clone();
    assert_eq!(listed["events"][0]["timestamp"], "9999-12-31T23:59:59Z");
}

fn report(h: &Harness, agent: &Value, event_ids: &[&str]) -> Value {
    let events: Vec<Value> = event_ids
        .iter()
        .map(|id| json!({"event_type": "tool_end", "tool_name": "x", "success": true, "event_id": id}))
        .collect();
    h.post(
        "/api/v1/telemetry/report",
        json!({"agent_id": agent["id"], "events": events}),
    )
    .ok()
    .clone()
}

fn stored_events(h: &Harness, agent: &Value) -> i64 {
    h.sql_integers(&format!(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM telemetry_events WHERE agent_id = '{}'",
        agent["id"].as_str().unwrap()
    ))
    .expect("a count")[0]
}

fn telemetry_event_ids_are_unique_per_agent(h: &Harness) {
    let alice = h.create_agent("alice", &[]);
    let bob = h.create_agent("bob", &[]);
    assert_eq!(report(h, &alice, &["e-1", "e-2"])["events_processed"], 2);
    // Another agent's event with the same id is its own event: stored, counted.
    assert_eq!(report(h, &bob, &["e-1"])["events_processed"], 1);
    assert_eq!((stored_events(h, &alice), stored_events(h, &bob)), (2, 1));
    // A retried report stores nothing and says so; a batch naming an event twice stores it once.
    let retried = report(h, &alice, &["e-1", "e-2", "e-3", "e-3"]);
    assert_eq!(retried["accepted"], true);
    assert_eq!(retried["events_processed"], 1, "{retried}");
    assert_eq!((stored_events(h, &alice), stored_events(h, &bob)), (3, 1));
    // Events without an id are never deduplicated.
    let anonymous = h.post(
        "/api/v1/telemetry/report",
        json!({"agent_id": bob["id"], "events": [
            {"event_type": "tool_end", "tool_name": "x"}, {"event_type": "tool_end", "tool_name": "x"}
        ]}),
    );
    assert_eq!(anonymous.ok()["events_processed"], 2);
    assert_eq!(stored_events(h, &bob), 3);
}
