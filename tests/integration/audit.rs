//! The audit log over HTTP and through the CLI: paging through the chain, verifying it, and
//! tamper detection (a row changed or deleted with SQL is found and named).

use reqwest::Method;
use serde_json::{Value, json};

use agenttrust::api::keys::Role;

use crate::harness::Harness;
use crate::on_both_backends;

on_both_backends!(
    audit_events_page_through_the_chain,
    verify_reports_an_intact_chain,
    verify_finds_a_modified_event,
    verify_finds_a_deleted_event,
    audit_needs_an_admin_key,
    cli_audit_verify_exit_codes,
);

/// Some state changes, each appending to the chain.
fn make_history(h: &Harness) {
    for name in ["one", "two", "three"] {
        let agent = h.create_agent(name, &[]);
        h.issue_token(agent["id"].as_str().unwrap(), &[], 60);
    }
}

fn chain_length(h: &Harness) -> i64 {
    h.sql_integers(&format!(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM audit_events WHERE org_id = '{}'",
        h.org_id
    ))
    .expect("a count")[0]
}

/// The id of the org's event at `seq`, read through the API.
fn event_at(h: &Harness, seq: i64) -> Value {
    let page = h
        .get(&format!("/api/v1/audit/events?cursor={}&limit=1", seq - 1))
        .ok()
        .clone();
    let event = page["events"][0].clone();
    assert_eq!(event["seq"], seq, "{page}");
    event
}

fn audit_events_page_through_the_chain(h: &Harness) {
    make_history(h);
    let total = chain_length(h);
    assert!(total >= 8, "{total}");
    let mut seqs = Vec::new();
    let mut cursor: Option<String> = None;
    let mut previous_hash = Value::String("0".repeat(64));
    loop {
        let mut path = "/api/v1/audit/events?limit=3".to_string();
        if let Some(cursor) = &cursor {
            path.push_str(&format!("&cursor={cursor}"));
        }
        let page = h.get(&path).ok().clone();
        let events = page["events"].as_array().expect("events");
        assert!(events.len() <= 3, "{page}");
        for event in events {
            assert_eq!(event["prev_hash"], previous_hash, "{event}");
            previous_hash = event["hash"].clone();
            assert!(event["detail"].is_object(), "{event}");
            assert!(event["created_at"].as_str().unwrap().ends_with('Z'));
            seqs.push(event["seq"].as_i64().unwrap());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
        assert!(seqs.len() as i64 <= total, "paging does not end");
    }
    assert_eq!(seqs, (1..=total).collect::<Vec<_>>());
    let first = event_at(h, 1);
    assert_eq!(first["kind"], "org.created");
    assert_eq!(first["subject_id"], json!(h.org_id));

    // Secrets never appear, and another org reads only its own chain.
    let everything = h.get("/api/v1/audit/events?limit=1000").ok().to_string();
    assert!(!everything.contains(&h.admin_key));
    let (_, their_key) = h.other_org("elsewhere");
    let theirs = h.request_as(&their_key, Method::GET, "/api/v1/audit/events", None);
    let theirs = theirs.ok()["events"].as_array().unwrap().clone();
    assert!(
        theirs
            .iter()
            .all(|event| event["subject_id"] != json!(h.org_id))
    );

    for bad in ["cursor=abc", "cursor=-1", "limit=0", "limit=1001"] {
        h.get(&format!("/api/v1/audit/events?{bad}"))
            .expect_error(400);
    }
}

fn verify_reports_an_intact_chain(h: &Harness) {
    make_history(h);
    let reply = h.get("/api/v1/audit/verify").ok().clone();
    assert_eq!(
        reply,
        json!({"valid": true, "events_checked": chain_length(h), "checkpoints_checked": 0,
               "from_seq": 1, "to_seq": chain_length(h)}),
        "no nulls, no break fields"
    );
}

fn verify_finds_a_modified_event(h: &Harness) {
    make_history(h);
    let target = event_at(h, 4);
    let changed = h.sql_execute(&format!(
        "UPDATE audit_events SET detail = '{{\"tampered\":true}}' WHERE org_id = '{}' AND seq = 4",
        h.org_id
    ));
    assert_eq!(changed, 1);
    let reply = h.get("/api/v1/audit/verify").ok().clone();
    assert_eq!(reply["valid"], false, "{reply}");
    assert_eq!(reply["events_checked"], 3, "{reply}");
    assert_eq!(reply["first_broken_seq"], 4, "{reply}");
    assert_eq!(reply["first_broken_event"], target["id"], "{reply}");
    let reason = reply["reason"].as_str().unwrap();
    assert!(reason.contains("modified"), "{reason}");

    // Another org's chain is still intact.
    let (_, their_key) = h.other_org("bystander");
    let theirs = h.request_as(&their_key, Method::GET, "/api/v1/audit/verify", None);
    assert_eq!(theirs.ok()["valid"], true);
}

fn verify_finds_a_deleted_event(h: &Harness) {
    make_history(h);
    let deleted = h.sql_execute(&format!(
        "DELETE FROM audit_events WHERE org_id = '{}' AND seq = 5",
        h.org_id
    ));
    assert_eq!(deleted, 1);
    let reply = h.get("/api/v1/audit/verify").ok().clone();
    assert_eq!(reply["valid"], false, "{reply}");
    assert_eq!(reply["first_broken_seq"], 5, "{reply}");
    assert!(reply.get("first_broken_event").is_none(), "{reply}");
    assert!(
        reply["reason"].as_str().unwrap().contains("missing"),
        "{reply}"
    );
}

fn audit_needs_an_admin_key(h: &Harness) {
    let (runtime, _) = h.new_key(Role::Runtime);
    // An agent holding its own token reads no audit log either (not even its own events).
    let agent = h.create_agent("auditee", &[]);
    let token = h.issue_token(agent["id"].as_str().unwrap(), &[], 60)["token"]
        .as_str()
        .unwrap()
        .to_string();
    let bearer = format!("Bearer {token}");
    for path in [
        "/api/v1/audit/verify",
        "/api/v1/audit/events",
        "/api/v1/audit/stream",
        "/api/v1/audit/checkpoints",
        "/api/v1/audit/keys",
    ] {
        h.request_as(&runtime, Method::GET, path, None)
            .expect_error(403);
        h.raw(Method::GET, path, &[], None).expect_error(401);
        let as_agent = h.raw(
            Method::GET,
            path,
            &[("Authorization", bearer.clone())],
            None,
        );
        assert!(
            [401, 403].contains(&as_agent.status),
            "{path}: an agent token got {}",
            as_agent.status
        );
    }
    let before = h.row_counts();
    let signed = h.raw(
        Method::POST,
        "/api/v1/audit/checkpoints",
        &[("Authorization", bearer.clone())],
        Some(b"{}".to_vec()),
    );
    assert!([401, 403].contains(&signed.status), "{}", signed.status);
    assert_eq!(h.row_counts(), before, "a refused checkpoint signs nothing");
}

fn cli_audit_verify_exit_codes(h: &Harness) {
    make_history(h);
    let total = chain_length(h);
    let run = h.run(&["audit", "verify"]);
    run.success();
    assert!(
        run.stdout.contains("valid") && run.stdout.contains("true"),
        "{}",
        run.stdout
    );
    let run = h.run(&["audit", "verify", "-o", "json"]);
    run.success();
    assert_eq!(run.json()["events_checked"], total);

    let listed = h.run(&["audit", "list", "--all", "-o", "json"]);
    listed.success();
    assert_eq!(
        listed.json()["events"].as_array().unwrap().len() as i64,
        total
    );
    let quiet = h.run(&["audit", "list", "--limit", "2", "-q"]);
    quiet.success();
    assert_eq!(quiet.stdout.lines().count(), 2, "{}", quiet.stdout);
    let paged = h.run(&["audit", "list", "--limit", "2"]);
    paged.success();
    assert!(paged.stderr.contains("--cursor 2"), "{}", paged.stderr);

    let target = event_at(h, 2);
    h.sql_execute(&format!(
        "UPDATE audit_events SET kind = 'agent.deleted' WHERE org_id = '{}' AND seq = 2",
        h.org_id
    ));
    let run = h.run(&["audit", "verify"]);
    run.code(1);
    let id = target["id"].as_str().unwrap();
    assert!(
        run.stderr.contains("the audit chain is broken at event 2") && run.stderr.contains(id),
        "{}",
        run.stderr
    );
    let run = h.run(&["audit", "verify", "-o", "json"]);
    run.code(1);
    assert_eq!(run.json()["first_broken_event"], target["id"]);
    assert_eq!(
        run.stderr_json()["error"]["code"],
        "ERROR",
        "{}",
        run.stderr
    );
}
