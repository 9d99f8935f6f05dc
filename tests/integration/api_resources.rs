//! Agents, telemetry and keys at the gateway: the shapes the SDKs parse (bare objects, wrapped
//! lists, no nulls) and what is stored.

use serde_json::{Value, json};

use crate::harness::Harness;
use crate::on_both_backends;

on_both_backends!(
    agent_create_get_list_revoke,
    duplicate_agent_name_is_409,
    telemetry_is_stored_and_paginated,
    keys_create_list_revoke,
);

fn assert_no_nulls(value: &Value) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                assert!(!inner.is_null(), "`{key}` is null in {value}");
                assert_no_nulls(inner);
            }
        }
        Value::Array(items) => items.iter().for_each(assert_no_nulls),
        _ => {}
    }
}

fn agent_create_get_list_revoke(h: &Harness) {
    let created = h.post(
        "/api/v1/agents",
        json!({"name": "demo", "framework": "langchain", "capabilities": ["web:search"],
               "metadata": {"team": "blue"}}),
    );
    let agent = created.agent();
    assert_no_nulls(&created.body);
    assert_eq!(agent["name"], "demo");
    assert_eq!(agent["framework"], "langchain");
    assert_eq!(agent["status"], "active");
    assert_eq!(agent["org_id"], json!(h.org_id));
    assert_eq!(agent["capabilities"], json!(["web:search"]));
    assert_eq!(agent["metadata"], json!({"team": "blue"}));
    let id = agent["id"].as_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
    assert!(agent["created_at"].as_str().unwrap().ends_with('Z'));

    let fetched = h.get(&format!("/api/v1/agents/{id}")).ok().clone();
    assert_no_nulls(&fetched);
    assert_eq!(fetched["id"], agent["id"], "get returns the bare agent");
    assert_eq!(fetched["name"], "demo");

    let listed = h.get("/api/v1/agents").ok().clone();
    assert_no_nulls(&listed);
    let agents = listed["agents"].as_array().expect("wrapped list");
    assert_eq!(agents.len(), 1);
    assert_eq!(agents[0]["id"], agent["id"]);
    // `?org_id=` is accepted.
    let filtered = h
        .get(&format!("/api/v1/agents?org_id={}", h.org_id))
        .ok()
        .clone();
    assert_eq!(filtered["agents"].as_array().unwrap().len(), 1);

    h.post(
        &format!("/api/v1/agents/{id}/revoke"),
        json!({"reason": "done"}),
    )
    .ok();
    let revoked = h.get(&format!("/api/v1/agents/{id}")).ok().clone();
    assert_eq!(revoked["status"], "revoked");
    assert_no_nulls(&revoked);
}

fn duplicate_agent_name_is_409(h: &Harness) {
    h.create_agent("twin", &[]);
    let before = h.row_counts();
    let reply = h.post("/api/v1/agents", json!({"name": "twin"}));
    reply.expect_error(409);
    assert_eq!(h.row_counts(), before);
    // The same name in another org is fine.
    let (_, their_key) = h.other_org("initech");
    h.request_as(
        &their_key,
        reqwest::Method::POST,
        "/api/v1/agents",
        Some(json!({"name": "twin"})),
    )
    .ok();
}

fn telemetry_is_stored_and_paginated(h: &Harness) {
    let agent = h.create_agent("reporter", &[]);
    let other = h.create_agent("quiet", &[]);
    let agent_id = agent["id"].as_str().unwrap();
    let events: Vec<Value> = (0..5)
        .map(|n| {
            json!({"event_type": "tool_end", "tool_name": format!("tool_{n}"), "duration_ms": n * 10,
                   "success": true, "timestamp": "2026-03-01T10:00:00.123456+00:00"})
        })
        .collect();
    let reply = h.post(
        "/api/v1/telemetry/report",
        json!({"agent_id": agent_id, "session_id": "s-1", "events": events}),
    );
    assert_eq!(reply.ok()["accepted"], true);
    assert_eq!(reply.ok()["events_processed"], 5);
    // Go omits `success: false`; a start event carries neither success nor duration.
    h.post(
        "/api/v1/telemetry/report",
        json!({"agent_id": agent_id, "session_id": "s-2", "events": [
            {"event_type": "tool_start", "tool_name": "x", "timestamp": "2026-03-01T10:00:00Z"},
            {"event_type": "tool_error", "tool_name": "x", "error_type": "Timeout"}
        ]}),
    )
    .ok();
    h.post(
        "/api/v1/telemetry/report",
        json!({"agent_id": other["id"], "session_id": "s-1", "events": [{"event_type": "tool_end", "tool_name": "y", "success": true}]}),
    )
    .ok();
    assert_eq!(h.row_counts()["telemetry_events"], 8);

    // Pages of 2 over the agent's 7 events: 2 + 2 + 2 + 1, no duplicates.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut path = format!("/api/v1/telemetry/events?agent_id={agent_id}&limit=2");
        if let Some(cursor) = &cursor {
            path.push_str(&format!("&cursor={cursor}"));
        }
        let page = h.get(&path).ok().clone();
        assert_no_nulls(&page);
        pages += 1;
        for event in page["events"].as_array().unwrap() {
            assert_eq!(event["agent_id"], agent["id"]);
            seen.push(event["id"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
        assert!(pages < 10, "pagination does not end");
    }
    assert_eq!(seen.len(), 7);
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 7);

    let session = h
        .get(&format!(
            "/api/v1/telemetry/events?agent_id={agent_id}&session_id=s-2"
        ))
        .ok()
        .clone();
    let events = session["events"].as_array().unwrap();
    assert_eq!(events.len(), 2);
    let error = events
        .iter()
        .find(|e| e["event_type"] == "tool_error")
        .unwrap();
    assert_eq!(error["success"], false);
    assert_eq!(error["error_type"], "Timeout");
    let start = events
        .iter()
        .find(|e| e["event_type"] == "tool_start")
        .unwrap();
    assert_eq!(start["timestamp"], "2026-03-01T10:00:00Z");

    let by_session = h
        .get("/api/v1/telemetry/events?session_id=s-1")
        .ok()
        .clone();
    assert_eq!(by_session["events"].as_array().unwrap().len(), 6);

    // Another org sees none of it.
    let (_, their_key) = h.other_org("snoop");
    let theirs = h.request_as(
        &their_key,
        reqwest::Method::GET,
        "/api/v1/telemetry/events",
        None,
    );
    assert_eq!(theirs.ok()["events"].as_array().unwrap().len(), 0);
}

fn keys_create_list_revoke(h: &Harness) {
    let created = h.post("/api/v1/keys", json!({"role": "runtime", "name": "worker"}));
    let key = created.ok().clone();
    assert_no_nulls(&key);
    let secret = key["key"].as_str().unwrap();
    assert!(secret.starts_with("sk_live_"), "{key}");
    assert_eq!(key["role"], "runtime");
    assert_eq!(key["name"], "worker");
    assert_eq!(key["org_id"], json!(h.org_id));
    let id = key["id"].as_str().unwrap();

    let listed = h.get("/api/v1/keys").ok().clone();
    assert_no_nulls(&listed);
    let keys = listed["keys"].as_array().unwrap();
    assert_eq!(
        keys.len(),
        2,
        "the harness admin key and the new one: {listed}"
    );
    assert!(
        !listed.to_string().contains(secret),
        "a listing never shows a secret"
    );
    let entry = keys.iter().find(|k| k["id"] == key["id"]).unwrap();
    assert!(secret.starts_with(entry["prefix"].as_str().unwrap()));

    let revoked = h
        .request(reqwest::Method::DELETE, &format!("/api/v1/keys/{id}"), None)
        .ok()
        .clone();
    assert_eq!(revoked["success"], true, "{revoked}");
    assert_eq!(revoked["id"], key["id"], "{revoked}");
    // A revoked key stays listed, marked with when it was revoked; the other key is untouched.
    let listed = h.get("/api/v1/keys").ok().clone();
    assert_no_nulls(&listed);
    let keys = listed["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2, "{listed}");
    let entry = keys
        .iter()
        .find(|k| k["id"] == key["id"])
        .unwrap_or_else(|| panic!("the revoked key is still listed: {listed}"));
    let revoked_at = entry["revoked_at"]
        .as_str()
        .unwrap_or_else(|| panic!("revoked_at is a timestamp: {entry}"));
    let revoked_at = agenttrust::api::time::parse(revoked_at).expect("RFC 3339");
    assert!(
        (agenttrust::api::time::now() - revoked_at).abs() <= 60,
        "revoked just now: {entry}"
    );
    let admin = keys.iter().find(|k| k["id"] != key["id"]).unwrap();
    assert!(admin.get("revoked_at").is_none(), "{admin}");
    // The stored row says the same, and the key no longer authenticates.
    assert_eq!(
        h.sql_integers(&format!(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM api_keys WHERE id = '{id}' AND revoked_at IS NOT NULL"
        )),
        Some(vec![1])
    );
    h.request_as(secret, reqwest::Method::GET, "/api/v1/agents", None)
        .expect_error(401);
}
