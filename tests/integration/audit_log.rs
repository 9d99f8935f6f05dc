//! The audit log as a security team reads and proves it: filtered listings, one event by id,
//! the live stream resumed with `Last-Event-ID`, range verification, signed checkpoints, and an
//! export verified offline — including against a database admin who rewrites history and
//! recomputes every hash after it.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use agenttrust::api::audit::{AuditCheckpoint, AuditEvent, ExportLine};
use agenttrust::api::keys::Role;
use agenttrust::gateway::GatewayConfig;
use agenttrust::store::audit;

use crate::harness::{self, Harness};
use crate::{on_both_backends, on_both_backends_with};

on_both_backends!(
    listings_filter_by_kind_agent_subject_and_time,
    one_event_by_id_and_only_the_orgs_own,
    telemetry_flows_into_the_chain_once,
    the_stream_resumes_after_the_last_event_id,
    revoking_its_key_ends_a_stream_at_once,
    a_range_verifies_apart_from_a_break_outside_it,
    older_events_are_indexed_by_agent_and_the_index_is_verified,
    a_rewritten_history_is_caught_by_the_signed_checkpoint,
    an_export_verifies_offline_and_every_edit_is_caught,
    cli_lists_gets_and_tails,
);

on_both_backends_with!(
    frequent_checkpoints;
    heads_that_grew_are_signed_periodically,
);

fn frequent_checkpoints(config: &mut GatewayConfig) {
    config.audit_checkpoint_interval = Some(Duration::from_millis(200));
}

fn agent(h: &Harness, name: &str) -> String {
    h.create_agent(name, &["read_file"])["id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn events(h: &Harness, query: &str) -> Vec<Value> {
    let limit = if query.contains("limit=") {
        ""
    } else {
        "limit=1000&"
    };
    h.get(&format!("/api/v1/audit/events?{limit}{query}")).ok()["events"]
        .as_array()
        .unwrap()
        .clone()
}

fn kinds(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|event| event["kind"].as_str().unwrap().to_string())
        .collect()
}

fn head_seq(h: &Harness) -> i64 {
    events(h, "order=desc&limit=1")[0]["seq"].as_i64().unwrap()
}

fn listings_filter_by_kind_agent_subject_and_time(h: &Harness) {
    let alice = agent(h, "alice");
    let bob = agent(h, "bob");
    for (agent_id, tool) in [(&alice, "read_file"), (&bob, "read_file"), (&alice, "x")] {
        h.check(json!({"agent_id": agent_id, "action_name": tool}));
    }

    let checks = events(h, "kind=check.decided");
    assert_eq!(checks.len(), 3, "{checks:?}");
    let agents = events(h, "kind=agent.*");
    assert_eq!(kinds(&agents), ["agent.created", "agent.created"]);
    let both = events(h, "kind=agent.created,check.decided");
    assert_eq!(both.len(), 5);
    // `_` is no wildcard in a prefix: `agent_*` names no kind.
    assert!(events(h, "kind=agent_*").is_empty());

    // An agent's events: its creation (subject) and its checks (detail), none of bob's.
    let of_alice = events(h, &format!("agent_id={alice}"));
    assert_eq!(
        kinds(&of_alice),
        ["agent.created", "check.decided", "check.decided"]
    );
    assert!(
        of_alice
            .iter()
            .all(|event| event["detail"]["agent_id"] != json!(bob))
    );
    let about_bob = events(h, &format!("subject=agent:{bob}"));
    assert_eq!(kinds(&about_bob), ["agent.created"]);
    assert_eq!(events(h, "subject=check").len(), 3);

    // Time windows.
    assert!(events(h, "since=2999-01-01T00:00:00Z").is_empty());
    assert!(events(h, "until=2000-01-01T00:00:00Z").is_empty());
    assert_eq!(
        events(h, "since=2000-01-01T00:00:00Z&kind=check.decided").len(),
        3
    );

    // Newest first, paged by cursor.
    let newest = h
        .get("/api/v1/audit/events?order=desc&limit=2&kind=check.decided")
        .ok()
        .clone();
    let seqs: Vec<i64> = newest["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["seq"].as_i64().unwrap())
        .collect();
    assert!(seqs[0] > seqs[1], "{newest}");
    let cursor = newest["next_cursor"].as_str().expect("a next page");
    let rest = events(h, &format!("order=desc&kind=check.decided&cursor={cursor}"));
    assert_eq!(rest.len(), 1);
    assert!(rest[0]["seq"].as_i64().unwrap() < seqs[1]);

    let before = h.row_counts();
    for bad in [
        "kind=a*b",
        "kind=*",
        "subject=:x",
        "subject=agent:",
        "since=yesterday",
        "since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z",
        "order=sideways",
        "after_seq=-1",
        "agent_id=has%20space",
    ] {
        let message = h
            .get(&format!("/api/v1/audit/events?{bad}"))
            .expect_error(400);
        assert!(!message.is_empty(), "{bad}");
    }
    assert_eq!(h.row_counts(), before, "a refused listing changes nothing");
}

fn one_event_by_id_and_only_the_orgs_own(h: &Harness) {
    agent(h, "carol");
    let listed = events(h, "kind=agent.created")[0].clone();
    let id = listed["id"].as_str().unwrap();
    let got = h.get(&format!("/api/v1/audit/events/{id}")).ok().clone();
    assert_eq!(got, listed);
    assert_eq!(got["org_id"], json!(h.org_id));
    let parsed: AuditEvent = serde_json::from_value(got).unwrap();
    assert!(parsed.hash_matches(), "the wire event hashes to its hash");

    h.get("/api/v1/audit/events/no-such-event")
        .expect_error(404);
    let (_, their_key) = h.other_org("nosy");
    let theirs = h.request_as(
        &their_key,
        Method::GET,
        &format!("/api/v1/audit/events/{id}"),
        None,
    );
    theirs.expect_error(404);
    // Only admin keys read the log, its stream, checkpoints and keys.
    let (reader, _) = h.new_key(agenttrust::api::keys::Role::Runtime);
    for path in [
        format!("/api/v1/audit/events/{id}"),
        "/api/v1/audit/stream".to_string(),
        "/api/v1/audit/checkpoints".to_string(),
        "/api/v1/audit/keys".to_string(),
    ] {
        h.request_as(&reader, Method::GET, &path, None)
            .expect_error(403);
    }
    h.request_as(
        &reader,
        Method::POST,
        "/api/v1/audit/checkpoints",
        Some(json!({})),
    )
    .expect_error(403);
}

fn telemetry_flows_into_the_chain_once(h: &Harness) {
    let dave = agent(h, "dave");
    let report = json!({"agent_id": dave, "session_id": "s-t", "events": [
        {"event_type": "tool_end", "tool_name": "read_file", "duration_ms": 12, "success": true, "event_id": "e-1"},
        {"event_type": "tool_error", "tool_name": "x", "error_type": "Timeout", "event_id": "e-2"}
    ]});
    assert_eq!(
        h.post("/api/v1/telemetry/report", report.clone()).ok()["events_processed"],
        2
    );
    // A retried report stores nothing and appends nothing.
    assert_eq!(
        h.post("/api/v1/telemetry/report", report).ok()["events_processed"],
        0
    );
    let reported = events(h, "kind=telemetry.reported");
    assert_eq!(reported.len(), 2, "{reported:?}");
    assert_eq!(reported[0]["detail"]["agent_id"], json!(dave));
    assert_eq!(reported[0]["detail"]["duration_ms"], 12);
    assert_eq!(reported[1]["detail"]["success"], false);
    assert_eq!(
        events(h, &format!("agent_id={dave}&kind=telemetry.*")).len(),
        2
    );
    assert_eq!(h.get("/api/v1/audit/verify").ok()["valid"], true);
}

/// Reads `count` `audit` events from an open stream, or fails after `within`.
fn read_stream(
    h: &Harness,
    response: &mut reqwest::Response,
    count: usize,
    within: Duration,
) -> Vec<(String, Value)> {
    h.block_on(async {
        let mut buffer = String::new();
        let mut found = Vec::new();
        let deadline = tokio::time::Instant::now() + within;
        while found.len() < count {
            let chunk = tokio::time::timeout_at(deadline, response.chunk())
                .await
                .unwrap_or_else(|_| {
                    panic!("only {} of {count} events arrived: {buffer}", found.len())
                })
                .unwrap()
                .expect("the stream stays open");
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buffer.find("\n\n") {
                let block: String = buffer.drain(..end + 2).collect();
                let field = |name: &str| {
                    block
                        .lines()
                        .find_map(|line| line.strip_prefix(&format!("{name}:")))
                        .map(|value| value.trim_start().to_string())
                };
                if field("event").as_deref() == Some("audit") {
                    let data: Value = serde_json::from_str(&field("data").unwrap()).unwrap();
                    found.push((field("id").unwrap(), data));
                }
            }
        }
        found
    })
}

fn open_stream(h: &Harness, query: &str, last_event_id: Option<&str>) -> reqwest::Response {
    open_stream_with_key(h, &h.admin_key, query, last_event_id)
}

/// Opens `GET /api/v1/audit/stream` with `key`.
pub fn open_stream_with_key(
    h: &Harness,
    key: &str,
    query: &str,
    last_event_id: Option<&str>,
) -> reqwest::Response {
    h.block_on(async {
        let mut request = reqwest::Client::new()
            .get(format!("{}/api/v1/audit/stream?{query}", h.url))
            .header("X-API-Key", key);
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream")
        );
        response
    })
}

fn the_stream_resumes_after_the_last_event_id(h: &Harness) {
    agent(h, "erin");
    let head = head_seq(h);
    // Resuming after head-2 replays the last two events, then new ones arrive live.
    let mut stream = open_stream(h, "", Some(&(head - 2).to_string()));
    let replayed = read_stream(h, &mut stream, 2, Duration::from_secs(10));
    assert_eq!(replayed[0].0, (head - 1).to_string());
    assert_eq!(replayed[1].0, head.to_string());
    assert_eq!(replayed[1].1["seq"], head);
    let frank = agent(h, "frank");
    let live = read_stream(h, &mut stream, 1, Duration::from_secs(10));
    assert_eq!(live[0].1["kind"], "agent.created");
    assert_eq!(live[0].1["subject_id"], json!(frank));
    assert_eq!(live[0].0, (head + 1).to_string());

    // A filtered stream from now on skips what it does not keep.
    let mut checks = open_stream(h, "kind=check.decided", None);
    agent(h, "grace");
    h.check(json!({"agent_id": frank, "action_name": "read_file"}));
    let only = read_stream(h, &mut checks, 1, Duration::from_secs(10));
    assert_eq!(only[0].1["kind"], "check.decided");
    assert_eq!(only[0].1["detail"]["agent_id"], json!(frank));

    let bad = h.block_on(async {
        reqwest::Client::new()
            .get(format!("{}/api/v1/audit/stream", h.url))
            .header("X-API-Key", &h.admin_key)
            .header("Last-Event-ID", "not-a-number")
            .send()
            .await
            .unwrap()
            .status()
    });
    assert_eq!(bad, 400);
}

/// Reads an open stream until the gateway ends it; fails if it is still open after `within`.
pub fn wait_for_stream_end(h: &Harness, response: &mut reqwest::Response, within: Duration) {
    h.block_on(async {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, response.chunk()).await {
                Err(_) => panic!("the stream is still open after {within:?}"),
                Ok(Ok(Some(_))) => continue,
                Ok(Ok(None) | Err(_)) => return,
            }
        }
    })
}

/// A stream is a standing read of the whole org's log: revoking the key it was opened with must
/// end it at once, not at the next periodic re-check (15 s), or a leaked key's holder keeps
/// reading after the revocation.
fn revoking_its_key_ends_a_stream_at_once(h: &Harness) {
    let (key, key_id) = h.new_key(Role::Admin);
    let mut stream = open_stream_with_key(h, &key, "", None);
    let mut untouched = open_stream(h, "", None);
    agent(h, "hank");
    assert_eq!(
        read_stream(h, &mut stream, 1, Duration::from_secs(10))[0].1["kind"],
        "agent.created"
    );

    h.request(Method::DELETE, &format!("/api/v1/keys/{key_id}"), None)
        .ok();
    wait_for_stream_end(h, &mut stream, Duration::from_secs(5));
    // A stream opened with another key goes on.
    let ivan = agent(h, "ivan");
    let seen = read_stream(h, &mut untouched, 3, Duration::from_secs(10));
    assert_eq!(seen.last().unwrap().1["subject_id"], json!(ivan));
    // And the revoked key cannot open a new one.
    let refused = h.block_on(async {
        reqwest::Client::new()
            .get(format!("{}/api/v1/audit/stream", h.url))
            .header("X-API-Key", &key)
            .send()
            .await
            .unwrap()
            .status()
    });
    assert_eq!(refused, 401);
}

/// Changes event `seq`'s detail the way a careless intruder does: its hash no longer matches.
fn tamper(h: &Harness, seq: i64) {
    let changed = h.sql_execute(&format!(
        "UPDATE audit_events SET detail = '{{\"tampered\":true}}' WHERE org_id = '{}' AND seq = {seq}",
        h.org_id
    ));
    assert_eq!(changed, 1);
}

/// Rewrites event `seq` the way a database admin who knows the hash rule does: the detail
/// changed, then every hash from it to the head recomputed, the head row too, so the chain
/// alone is self-consistent again.
fn rewrite_history(h: &Harness, seq: i64) {
    let rows = h.block_on(audit::list(&h.store, &h.org_id)).unwrap();
    let mut prev_hash = rows[(seq - 2) as usize].hash.clone();
    for mut row in rows.into_iter().skip((seq - 1) as usize) {
        if row.seq == seq {
            row.detail = r#"{"rewritten":true}"#.to_string();
        }
        row.prev_hash = prev_hash.clone();
        row.hash = audit::chain_hash(&prev_hash, &row);
        h.sql_execute(&format!(
            "UPDATE audit_events SET detail = '{}', prev_hash = '{}', hash = '{}' \
             WHERE org_id = '{}' AND seq = {}",
            row.detail, row.prev_hash, row.hash, h.org_id, row.seq
        ));
        prev_hash = row.hash;
    }
    h.sql_execute(&format!(
        "UPDATE audit_heads SET last_hash = '{prev_hash}' WHERE org_id = '{}'",
        h.org_id
    ));
}

fn a_range_verifies_apart_from_a_break_outside_it(h: &Harness) {
    for name in ["h1", "h2", "h3", "h4"] {
        agent(h, name);
    }
    let head = head_seq(h);
    tamper(h, 2);
    let whole = h.get("/api/v1/audit/verify").ok().clone();
    assert_eq!(whole["valid"], false);
    assert_eq!(whole["first_broken_seq"], 2);
    // From 4 on, the walk starts at event 3's stored hash: intact.
    let later = h.get("/api/v1/audit/verify?from_seq=4").ok().clone();
    assert_eq!(later["valid"], true, "{later}");
    assert_eq!(later["events_checked"], head - 3);
    assert_eq!(later["from_seq"], 4);
    assert_eq!(later["to_seq"], head);
    let first = h.get("/api/v1/audit/verify?to_seq=1").ok().clone();
    assert_eq!(first["valid"], true, "{first}");
    assert_eq!(first["events_checked"], 1);
    // Event 3 links to the tampered event 2's stored hash, which still links: the break is in
    // event 2's content, so a range starting at 3 is intact and one containing 2 is not.
    let around = h
        .get("/api/v1/audit/verify?from_seq=2&to_seq=3")
        .ok()
        .clone();
    assert_eq!(around["valid"], false);
    for bad in ["from_seq=0", "from_seq=5&to_seq=4", "from_seq=x"] {
        h.get(&format!("/api/v1/audit/verify?{bad}"))
            .expect_error(400);
    }
}

fn older_events_are_indexed_by_agent_and_the_index_is_verified(h: &Harness) {
    let kim = agent(h, "kim");
    h.check(json!({"agent_id": kim, "action_name": "read_file"}));
    // Events stored before the index existed have none; start-up fills it in.
    h.sql_execute(&format!(
        "UPDATE audit_events SET agent_id = NULL WHERE org_id = '{}'",
        h.org_id
    ));
    assert!(events(h, &format!("agent_id={kim}")).is_empty());
    let indexed = h.block_on(audit::index_agents(&h.store)).unwrap();
    assert!(indexed >= 4, "{indexed}");
    assert_eq!(
        kinds(&events(h, &format!("agent_id={kim}"))),
        ["agent.created", "check.decided"]
    );
    assert_eq!(h.block_on(audit::index_agents(&h.store)).unwrap(), 0);
    assert_eq!(h.get("/api/v1/audit/verify").ok()["valid"], true);

    // Hiding an event from an agent's listing by editing the index is caught.
    let check = events(h, "kind=check.decided")[0].clone();
    h.sql_execute(&format!(
        "UPDATE audit_events SET agent_id = 'someone-else' WHERE org_id = '{}' AND seq = {}",
        h.org_id, check["seq"]
    ));
    let caught = h.get("/api/v1/audit/verify").ok().clone();
    assert_eq!(caught["valid"], false);
    assert_eq!(caught["first_broken_seq"], check["seq"]);
    assert!(
        caught["reason"].as_str().unwrap().contains("another agent"),
        "{caught}"
    );
}

fn a_rewritten_history_is_caught_by_the_signed_checkpoint(h: &Harness) {
    for name in ["i1", "i2", "i3"] {
        agent(h, name);
    }
    let head = head_seq(h);
    let signed: AuditCheckpoint = serde_json::from_value(
        h.post("/api/v1/audit/checkpoints", json!({}))
            .expect_status(201..=201)
            .ok()
            .clone(),
    )
    .unwrap();
    assert_eq!(signed.seq, head);
    assert_eq!(signed.org_id, h.org_id);
    // Signing the same head again answers the same checkpoint.
    let again: AuditCheckpoint =
        serde_json::from_value(h.post("/api/v1/audit/checkpoints", json!({})).ok().clone())
            .unwrap();
    assert_eq!(again, signed);
    let keys: jsonwebtoken::jwk::JwkSet =
        serde_json::from_value(h.get("/api/v1/audit/keys").ok().clone()).unwrap();
    agenttrust::audit_proof::verify_checkpoint(&signed, &keys).unwrap();
    let listed = h.get("/api/v1/audit/checkpoints").ok().clone();
    assert_eq!(listed["checkpoints"][0]["seq"], head);

    let intact = h.get("/api/v1/audit/verify").ok().clone();
    assert_eq!(intact["valid"], true);
    assert_eq!(intact["checkpoints_checked"], 1);

    rewrite_history(h, 3);
    // The chain alone is consistent again (up to the checkpoint's place)...
    let up_to_before = h
        .get(&format!("/api/v1/audit/verify?to_seq={}", head - 1))
        .ok()
        .clone();
    assert_eq!(up_to_before["valid"], true, "{up_to_before}");
    // ...but the signed head is not the head any more.
    let caught = h.get("/api/v1/audit/verify").ok().clone();
    assert_eq!(caught["valid"], false, "{caught}");
    assert_eq!(caught["first_broken_seq"], head);
    let reason = caught["reason"].as_str().unwrap();
    assert!(reason.contains("rewritten"), "{reason}");

    // A forged checkpoint (signed by another key) is caught too.
    let other_key = agenttrust::gateway::signing::generate(None).unwrap();
    let forged_keys: jsonwebtoken::jwk::JwkSet = serde_json::from_value(
        json!({"keys": [serde_json::from_str::<Value>(&other_key.public_jwk).unwrap()]}),
    )
    .unwrap();
    let refused = agenttrust::audit_proof::verify_checkpoint(&signed, &forged_keys).unwrap_err();
    assert!(refused.contains("not among the keys"), "{refused}");
}

fn heads_that_grew_are_signed_periodically(h: &Harness) {
    agent(h, "periodic");
    let head = head_seq(h);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let listed = h.get("/api/v1/audit/checkpoints").ok().clone();
        let seqs: Vec<i64> = listed["checkpoints"]
            .as_array()
            .unwrap()
            .iter()
            .map(|checkpoint| checkpoint["seq"].as_i64().unwrap())
            .collect();
        if seqs.last() == Some(&head) {
            // A head that did not grow is not signed again.
            std::thread::sleep(Duration::from_millis(600));
            let again = h.get("/api/v1/audit/checkpoints").ok().clone();
            assert_eq!(again["checkpoints"].as_array().unwrap().len(), seqs.len());
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no checkpoint at {head}: {listed}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let verified = h.get("/api/v1/audit/verify").ok().clone();
    assert_eq!(verified["valid"], true);
    assert!(verified["checkpoints_checked"].as_u64().unwrap() >= 1);
}

fn read_lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn write_lines(path: &std::path::Path, lines: &[String]) {
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

fn an_export_verifies_offline_and_every_edit_is_caught(h: &Harness) {
    let agent_id = agent(h, "exported");
    h.check(json!({"agent_id": agent_id, "action_name": "read_file"}));
    let file = h.scratch.path().join("audit.jsonl");
    let keys = h.scratch.path().join("keys.json");
    let export = h.run(&["audit", "export", "--output-file", file.to_str().unwrap()]);
    export.success();
    let head = head_seq(h);
    let keys_out = h.run(&["audit", "keys"]);
    keys_out.success();
    std::fs::write(&keys, &keys_out.stdout).unwrap();

    let lines = read_lines(&file);
    let parsed: Vec<ExportLine> = lines
        .iter()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert!(matches!(parsed[0], ExportLine::Header(_)));
    let events: Vec<&AuditEvent> = parsed
        .iter()
        .filter_map(|line| match line {
            ExportLine::Event(event) => Some(event),
            _ => None,
        })
        .collect();
    assert_eq!(
        events.len() as i64,
        head,
        "the whole chain, up to the head signed now"
    );

    let offline = |path: &std::path::Path, keys: &std::path::Path| {
        // No URL and no key: the offline check needs no gateway.
        h.run_bare(&[
            "audit",
            "verify",
            "--offline",
            path.to_str().unwrap(),
            "--key",
            keys.to_str().unwrap(),
            "-o",
            "json",
        ])
    };
    let good = offline(&file, &keys);
    good.success();
    let report = good.json();
    assert_eq!(report["valid"], true);
    assert_eq!(report["events_checked"], head);
    assert_eq!(report["anchored_through"], head);

    // An edited detail.
    let edited = h.scratch.path().join("edited.jsonl");
    let mut changed = lines.clone();
    let target = changed
        .iter()
        .position(|line| line.contains("check.decided"))
        .unwrap();
    changed[target] = changed[target].replace("read_file", "rm_rf");
    write_lines(&edited, &changed);
    let caught = offline(&edited, &keys);
    caught.code(1);
    assert!(caught.stderr.contains("modified"), "{}", caught.stderr);

    // A dropped event (the agent's creation, before the check).
    let mut dropped = lines.clone();
    let creation = dropped
        .iter()
        .position(|line| line.contains("agent.created"))
        .unwrap();
    dropped.remove(creation);
    write_lines(&edited, &dropped);
    let caught = offline(&edited, &keys);
    caught.code(1);
    assert!(caught.stderr.contains("missing"), "{}", caught.stderr);

    // A cut tail: the signed head is past the events left.
    write_lines(&edited, &lines[..lines.len() - 1]);
    let caught = offline(&edited, &keys);
    caught.code(1);

    // Another key set: the checkpoint's key is not among them.
    let other = agenttrust::gateway::signing::generate(None).unwrap();
    let other_keys = h.scratch.path().join("other-keys.json");
    std::fs::write(&other_keys, format!("{{\"keys\":[{}]}}", other.public_jwk)).unwrap();
    let caught = offline(&file, &other_keys);
    caught.code(1);
    assert!(
        caught.stderr.contains("not among the keys"),
        "{}",
        caught.stderr
    );

    // A database admin rewrites history with every hash recomputed: the next export verifies
    // link by link, but not against the checkpoint signed before the rewrite.
    rewrite_history(h, 3);
    let rewritten = h.scratch.path().join("rewritten.jsonl");
    h.run(&[
        "audit",
        "export",
        "--output-file",
        rewritten.to_str().unwrap(),
    ])
    .success();
    let caught = offline(&rewritten, &keys);
    caught.code(1);
    assert!(caught.stderr.contains("rewritten"), "{}", caught.stderr);

    // Not an export at all.
    std::fs::write(&edited, "hello\n").unwrap();
    offline(&edited, &keys).code(1);

    // `--since` exports from the first event in the window, to stdout.
    let recent = h.run(&["audit", "export", "--since", "1h"]);
    recent.success();
    assert!(recent.stdout.lines().count() > 2);
    h.run(&["audit", "export", "--since", "2999-01-01T00:00:00Z"])
        .code(1);
}

fn cli_lists_gets_and_tails(h: &Harness) {
    let agent_id = agent(h, "tailed");
    h.check(json!({"agent_id": agent_id, "action_name": "read_file"}));
    let listed = h.run(&[
        "audit",
        "list",
        "--kind",
        "check.decided",
        "--agent",
        &agent_id,
        "-o",
        "json",
    ]);
    listed.success();
    let listed = listed.json();
    assert_eq!(listed["events"].as_array().unwrap().len(), 1);
    let id = listed["events"][0]["id"].as_str().unwrap().to_string();
    let got = h.run(&["audit", "get", &id, "-o", "json"]);
    got.success();
    assert_eq!(got.json()["id"], json!(id));
    h.run(&["audit", "get", "no-such-event"]).code(3);
    h.run(&["audit", "list", "--since", "soon"]).code(2);

    let tail = h.run(&["audit", "tail", "-n", "2", "-o", "json"]);
    tail.success();
    let lines: Vec<Value> = tail
        .stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["kind"], "check.decided");
    assert!(lines[0]["seq"].as_i64() < lines[1]["seq"].as_i64());

    // `tail -f` prints what is appended after it started, once.
    let mut child = std::process::Command::new(harness::binary())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("AGENTTRUST_CONFIG_DIR", h.config_dir.path())
        .env("AGENTTRUST_URL", &h.url)
        .env("AGENTTRUST_API_KEY", &h.admin_key)
        .env("HOME", h.scratch.path())
        .env("NO_COLOR", "1")
        .args([
            "audit",
            "tail",
            "-f",
            "-n",
            "0",
            "--kind",
            "agent.created",
            "-o",
            "json",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    // The follower is connected once the gateway has a stream open; give it a moment, then
    // append until the line shows (an event before the connection is missed by design of -n 0
    // only if it precedes the head the tail read first, so each try is a fresh agent).
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        while stdout.read_line(&mut line).unwrap_or(0) > 0 {
            let _ = sender.send(line.clone());
            line.clear();
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut created = Vec::new();
    let seen: Value = loop {
        created.push(agent(h, &format!("followed-{}", created.len())));
        if let Ok(line) = receiver.recv_timeout(Duration::from_millis(500)) {
            break serde_json::from_str(&line).unwrap();
        }
        assert!(Instant::now() < deadline, "tail -f printed nothing");
    };
    assert_eq!(seen["kind"], "agent.created");
    assert!(created.iter().any(|id| seen["subject_id"] == json!(id)));
    child.kill().unwrap();
    let _ = child.wait();
}
