//! Delegations over HTTP and through the CLI: create (wrapped) / list (filters) / get (bare) /
//! revoke; the chain, root-first including the delegation itself; every attenuation rule as a 400
//! naming it with nothing stored; org scoping; revocation as a tree (a delegation's descendants,
//! an agent's delegations) and expiry without any sweeper; sessions made from a delegation and
//! the Guardian's limits in them; the "done means" end to end with the CLI; and a
//! property test of random delegation trees and revocations against the real gateway.

use std::collections::{BTreeMap, BTreeSet};

use agenttrust::api::keys::Role;
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{Harness, Reply};
use crate::on_both_backends;

on_both_backends!(
    create_get_list_and_revoke,
    chains_are_root_first_and_include_the_delegation,
    every_violation_is_a_400_naming_its_rule,
    unknown_and_foreign_ids_are_not_found,
    revoking_a_delegation_revokes_every_descendant_at_once,
    revoking_an_agent_revokes_its_delegations,
    expired_delegations_stop_counting_without_a_sweeper,
    delegation_sessions_are_bounded_by_the_delegation,
    done_means_through_the_cli,
    random_delegation_trees_never_widen_and_revocation_leaves_no_active_descendant,
    a_rule_requiring_a_capability_is_met_only_in_its_delegation_session,
);

// ----- helpers -----

fn agent(h: &Harness, name: &str, capabilities: &[&str]) -> String {
    str_of(&h.create_agent(name, capabilities)["id"])
}

fn str_of(value: &Value) -> String {
    value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value}"))
        .to_string()
}

fn timestamp(value: &Value) -> i64 {
    agenttrust::api::time::parse(value.as_str().unwrap_or_else(|| panic!("{value}")))
        .unwrap_or_else(|| panic!("not a timestamp: {value}"))
}

/// Every field of the Delegation object (wire-api.md §3.11); only the optional ones may be
/// absent or null, `expires_at`/`created_at` never (the Rust SDK requires them).
fn assert_delegation_shape(delegation: &Value) {
    for key in [
        "id",
        "from_agent_id",
        "to_agent_id",
        "org_id",
        "status",
        "expires_at",
        "created_at",
    ] {
        assert!(
            delegation[key]
                .as_str()
                .is_some_and(|value| !value.is_empty()),
            "{key}: {delegation}"
        );
    }
    assert!(delegation["scope"].is_array(), "{delegation}");
    assert!(delegation["restrictions"].is_object(), "{delegation}");
    let chain = delegation["delegation_chain"]
        .as_array()
        .unwrap_or_else(|| panic!("delegation_chain: {delegation}"));
    assert_eq!(
        chain.last(),
        Some(&delegation["id"]),
        "the chain ends with the delegation itself: {delegation}"
    );
    assert!(
        ["active", "revoked", "expired"].contains(&delegation["status"].as_str().unwrap()),
        "{delegation}"
    );
    for (key, value) in delegation.as_object().unwrap() {
        assert!(
            !value.is_null()
                || ["parent_delegation_id", "revoked_at", "revoke_reason"].contains(&key.as_str()),
            "{key} is null: {delegation}"
        );
    }
}

/// `POST /api/v1/delegations` with the admin key.
fn create(h: &Harness, body: Value) -> Reply {
    h.post("/api/v1/delegations", body)
}

/// Creates a delegation: asserts the 201 and the `{"delegation": …}` wrapper, returns it.
fn delegate(h: &Harness, body: Value) -> Value {
    delegate_as(h, &h.admin_key, body)
}

fn delegate_as(h: &Harness, key: &str, body: Value) -> Value {
    let reply = h.request_as(key, Method::POST, "/api/v1/delegations", Some(body));
    assert_eq!(reply.status, 201, "create: {}", reply.text);
    let delegation = reply
        .body
        .get("delegation")
        .filter(|_| reply.body.get("id").is_none())
        .unwrap_or_else(|| panic!("not wrapped in {{\"delegation\": …}}: {}", reply.text))
        .clone();
    assert_delegation_shape(&delegation);
    delegation
}

/// `GET /api/v1/delegations/{id}`: a bare object.
fn get(h: &Harness, id: &str) -> Value {
    let body = h.get(&format!("/api/v1/delegations/{id}")).ok().clone();
    assert!(body.get("delegation").is_none(), "not bare: {body}");
    assert_eq!(body["id"], id, "{body}");
    assert_delegation_shape(&body);
    body
}

fn revoke(h: &Harness, id: &str) -> Value {
    h.request(Method::DELETE, &format!("/api/v1/delegations/{id}"), None)
        .ok()
        .clone()
}

/// The ids `GET /api/v1/delegations{query}` lists, sorted.
fn listed(h: &Harness, query: &str) -> Vec<String> {
    let body = h.get(&format!("/api/v1/delegations{query}")).ok().clone();
    let mut ids: Vec<String> = body["delegations"]
        .as_array()
        .unwrap_or_else(|| panic!("not {{\"delegations\": […]}}: {body}"))
        .iter()
        .map(|delegation| {
            assert_delegation_shape(delegation);
            str_of(&delegation["id"])
        })
        .collect();
    ids.sort();
    ids
}

fn sorted(ids: &[&str]) -> Vec<String> {
    let mut ids: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
    ids.sort();
    ids
}

/// `POST /api/v1/delegations/{id}/session` (no body).
fn open_session(h: &Harness, id: &str) -> Reply {
    h.raw(
        Method::POST,
        &format!("/api/v1/delegations/{id}/session"),
        &[("X-API-Key", h.admin_key.clone())],
        None,
    )
}

/// Opens a session from a delegation, asserting the 201 and the session's ties to it.
fn session_of(h: &Harness, delegation: &Value) -> String {
    let reply = open_session(h, delegation["id"].as_str().unwrap());
    assert_eq!(reply.status, 201, "session: {}", reply.text);
    let session = &reply.body;
    assert_eq!(session["source"], "a2a", "{session}");
    assert_eq!(session["delegation_id"], delegation["id"], "{session}");
    assert_eq!(session["agent_id"], delegation["to_agent_id"], "{session}");
    assert_eq!(session["org_id"], delegation["org_id"], "{session}");
    assert_eq!(session["scope_ceiling"], delegation["scope"], "{session}");
    str_of(&session["session_id"])
}

/// A check in a session (the summary as `action_input_summary`).
fn check_in(h: &Harness, agent_id: &str, session_id: &str, tool: &str, input: &str) -> Value {
    h.check(
        json!({"agent_id": agent_id, "session_id": session_id, "action_name": tool,
                   "action_input_summary": input}),
    )
}

fn assert_allowed(decision: &Value) {
    assert_eq!(decision["allowed"], true, "{decision}");
}

fn assert_denied_by(decision: &Value, rule: &str) {
    assert_eq!(decision["allowed"], false, "{decision}");
    assert_eq!(decision["rule"], rule, "{decision}");
}

/// A rejected create: the status, the rule at the start of the message, nothing stored.
fn assert_rejected(h: &Harness, body: Value, status: u16, rule: &str) {
    let counts = h.row_counts();
    let reply = create(h, body.clone());
    reply.expect_error(status);
    assert!(
        reply.message().starts_with(rule),
        "{body}: the message should start with {rule:?}: {}",
        reply.text
    );
    assert_eq!(h.row_counts(), counts, "{body}: something was stored");
}

// ----- CRUD -----

fn create_get_list_and_revoke(h: &Harness) {
    let a = agent(h, "alice", &["files:read", "files:write", "web:search"]);
    let b = agent(h, "bob", &[]);
    let c = agent(h, "carol", &["web:search"]);

    let restrictions = json!({"paths": ["/tmp/*"], "max_calls": 10, "tools": ["read_*"],
                              "effects": ["read"], "max_file_size": 1024,
                              "note": {"kept": ["as", "given"]}});
    let first = delegate(
        h,
        json!({"from_agent_id": a, "to_agent_id": b, "scope": ["files:read", "web:search"],
               "ttl_seconds": 600, "restrictions": restrictions}),
    );
    let first_id = str_of(&first["id"]);
    assert_eq!(first["from_agent_id"], a.as_str());
    assert_eq!(first["to_agent_id"], b.as_str());
    assert_eq!(first["org_id"], h.org_id.as_str());
    assert_eq!(first["scope"], json!(["files:read", "web:search"]));
    assert_eq!(
        first["restrictions"], restrictions,
        "known and unknown keys kept"
    );
    assert_eq!(first["delegation_chain"], json!([first_id]));
    assert_eq!(first["status"], "active");
    for key in ["parent_delegation_id", "revoked_at"] {
        assert!(first.get(key).is_none_or(Value::is_null), "{first}");
    }
    assert_eq!(
        timestamp(&first["expires_at"]) - timestamp(&first["created_at"]),
        600
    );

    // No ttl: the default hour; no restrictions: an empty object.
    let second = delegate(
        h,
        json!({"from_agent_id": c, "to_agent_id": b, "scope": ["web:search"]}),
    );
    let second_id = str_of(&second["id"]);
    assert_eq!(
        timestamp(&second["expires_at"]) - timestamp(&second["created_at"]),
        3600
    );
    assert_eq!(second["restrictions"], json!({}));
    assert_eq!(h.audit_count("delegation.created"), 2);

    // Get: the bare object, as created.
    let fetched = get(h, &first_id);
    for key in [
        "from_agent_id",
        "to_agent_id",
        "scope",
        "restrictions",
        "delegation_chain",
        "status",
        "expires_at",
        "created_at",
    ] {
        assert_eq!(fetched[key], first[key], "{key}");
    }

    // List and its filters.
    let both = sorted(&[&first_id, &second_id]);
    assert_eq!(listed(h, ""), both);
    assert_eq!(listed(h, &format!("?from={a}")), vec![first_id.clone()]);
    assert_eq!(listed(h, &format!("?from={c}")), vec![second_id.clone()]);
    assert_eq!(listed(h, &format!("?to={b}")), both);
    assert_eq!(listed(h, &format!("?to={a}")), Vec::<String>::new());
    assert_eq!(
        listed(h, &format!("?from={a}&to={b}")),
        vec![first_id.clone()]
    );
    assert_eq!(listed(h, "?active=true"), both);
    assert_eq!(listed(h, "?active=false"), Vec::<String>::new());

    // A runtime key may read but neither create nor revoke.
    let (runtime, _) = h.new_key(Role::Runtime);
    let counts = h.row_counts();
    h.request_as(
        &runtime,
        Method::POST,
        "/api/v1/delegations",
        Some(json!({"from_agent_id": a, "to_agent_id": b, "scope": ["files:read"]})),
    )
    .expect_error(403);
    h.request_as(
        &runtime,
        Method::DELETE,
        &format!("/api/v1/delegations/{first_id}"),
        None,
    )
    .expect_error(403);
    assert_eq!(h.row_counts(), counts);
    assert_eq!(
        h.request_as(
            &runtime,
            Method::GET,
            &format!("/api/v1/delegations/{first_id}"),
            None
        )
        .ok()["id"],
        first_id.as_str()
    );

    // Revoke.
    let revoked = revoke(h, &first_id);
    assert_eq!(revoked["status"], "revoked", "{revoked}");
    assert_eq!(revoked["id"], first_id.as_str(), "{revoked}");
    assert_eq!(revoked["descendants_revoked"], 0, "{revoked}");
    let fetched = get(h, &first_id);
    assert_eq!(fetched["status"], "revoked");
    assert!(fetched["revoked_at"].is_string(), "{fetched}");
    assert_eq!(listed(h, "?active=true"), vec![second_id.clone()]);
    assert_eq!(listed(h, "?active=false"), vec![first_id.clone()]);
    assert_eq!(
        listed(h, &format!("?to={b}&active=true")),
        vec![second_id.clone()]
    );
    assert_eq!(h.audit_count("delegation.revoked"), 1);
    // A revoked delegation opens no session.
    open_session(h, &first_id).expect_error(409);
}

fn chains_are_root_first_and_include_the_delegation(h: &Harness) {
    let a = agent(h, "a", &["files:read", "web:search"]);
    let b = agent(h, "b", &[]);
    let c = agent(h, "c", &[]);
    let d = agent(h, "d", &[]);
    let root = delegate(
        h,
        json!({"from_agent_id": a, "to_agent_id": b, "scope": ["files:read", "web:search"]}),
    );
    let root_id = str_of(&root["id"]);
    let middle = delegate(
        h,
        json!({"from_agent_id": b, "to_agent_id": c, "scope": ["files:read"],
               "ttl_seconds": 1800, "parent_delegation_id": root_id}),
    );
    let middle_id = str_of(&middle["id"]);
    let leaf = delegate(
        h,
        json!({"from_agent_id": c, "to_agent_id": d, "scope": ["files:read"],
               "ttl_seconds": 900, "parent_delegation_id": middle_id}),
    );
    let leaf_id = str_of(&leaf["id"]);
    assert_eq!(root["delegation_chain"], json!([root_id]));
    assert_eq!(middle["delegation_chain"], json!([root_id, middle_id]));
    assert_eq!(
        leaf["delegation_chain"],
        json!([root_id, middle_id, leaf_id])
    );
    assert_eq!(middle["parent_delegation_id"], root_id.as_str());
    assert_eq!(leaf["parent_delegation_id"], middle_id.as_str());
    assert_eq!(
        get(h, &leaf_id)["delegation_chain"],
        leaf["delegation_chain"]
    );
    assert!(timestamp(&leaf["expires_at"]) <= timestamp(&middle["expires_at"]));

    // The CLI's tree: the three, each indented deeper than its parent.
    let run = h.run(&["delegations", "tree", &leaf_id]);
    run.success();
    let column = |id: &str| -> usize {
        run.stdout
            .lines()
            .find_map(|line| line.find(id))
            .unwrap_or_else(|| panic!("{id} is not in the tree:\n{}", run.stdout))
    };
    let (root_at, middle_at, leaf_at) = (column(&root_id), column(&middle_id), column(&leaf_id));
    assert!(
        root_at < middle_at && middle_at < leaf_at,
        "indentation {root_at} {middle_at} {leaf_at}:\n{}",
        run.stdout
    );
}

// ----- bad input -----

fn every_violation_is_a_400_naming_its_rule(h: &Harness) {
    let a = agent(h, "a", &["files:read", "web:search"]);
    let b = agent(h, "b", &[]);
    let c = agent(h, "c", &[]);
    let d = agent(h, "d", &[]);
    let gone = agent(h, "gone", &["files:read"]);
    h.post(&format!("/api/v1/agents/{gone}/revoke"), json!({}))
        .ok();
    let root = delegate(
        h,
        json!({"from_agent_id": a, "to_agent_id": b, "scope": ["files:read"], "ttl_seconds": 600}),
    );
    let root_id = str_of(&root["id"]);
    let dead = delegate(
        h,
        json!({"from_agent_id": a, "to_agent_id": c, "scope": ["files:read"]}),
    );
    let dead_id = str_of(&dead["id"]);
    revoke(h, &dead_id);

    let cases = [
        (
            json!({"from_agent_id": a, "to_agent_id": a, "scope": ["files:read"]}),
            "self-delegation",
        ),
        (
            json!({"from_agent_id": a, "to_agent_id": b, "scope": []}),
            "empty scope",
        ),
        (
            json!({"from_agent_id": a, "to_agent_id": b, "scope": ["files:read"], "ttl_seconds": 0}),
            "ttl_seconds",
        ),
        (
            json!({"from_agent_id": a, "to_agent_id": b, "scope": ["files:read"], "ttl_seconds": -60}),
            "ttl_seconds",
        ),
        (
            json!({"from_agent_id": a, "to_agent_id": gone, "scope": ["files:read"]}),
            "inactive agent",
        ),
        (
            json!({"from_agent_id": gone, "to_agent_id": b, "scope": ["files:read"]}),
            "inactive agent",
        ),
        (
            json!({"from_agent_id": c, "to_agent_id": d, "scope": ["files:read"],
                   "parent_delegation_id": dead_id}),
            "inactive parent",
        ),
        (
            json!({"from_agent_id": c, "to_agent_id": d, "scope": ["files:read"],
                   "ttl_seconds": 60, "parent_delegation_id": root_id}),
            "not the parent's delegate",
        ),
        (
            json!({"from_agent_id": a, "to_agent_id": b, "scope": ["files:read", "files:write"]}),
            "scope escalation",
        ),
        // The delegate may not re-delegate more than it was given, even what the root holds.
        (
            json!({"from_agent_id": b, "to_agent_id": c, "scope": ["web:search"],
                   "ttl_seconds": 60, "parent_delegation_id": root_id}),
            "scope escalation",
        ),
        // Nor what it holds itself: a delegate's own capabilities do not widen a re-delegation.
        (
            json!({"from_agent_id": b, "to_agent_id": c, "scope": ["files:read"],
                   "ttl_seconds": 3600, "parent_delegation_id": root_id}),
            "expiry escalation",
        ),
        (
            json!({"from_agent_id": b, "to_agent_id": a, "scope": ["files:read"],
                   "ttl_seconds": 60, "parent_delegation_id": root_id}),
            "cycle",
        ),
        (
            json!({"from_agent_id": a, "to_agent_id": b, "scope": ["files:read"],
                   "restrictions": {"paths": ["tmp/*"]}}),
            "invalid restriction",
        ),
        (
            json!({"from_agent_id": a, "to_agent_id": b, "scope": ["files:read"],
                   "restrictions": {"max_calls": 0}}),
            "invalid restriction",
        ),
        (
            json!({"from_agent_id": a, "to_agent_id": b, "scope": ["files:read"],
                   "restrictions": {"tools": ["read_[file"]}}),
            "invalid restriction",
        ),
    ];
    for (body, rule) in cases {
        assert_rejected(h, body, 400, rule);
    }

    // A cycle deeper in the chain: a → b → c, then c back to b.
    let middle = delegate(
        h,
        json!({"from_agent_id": b, "to_agent_id": c, "scope": ["files:read"], "ttl_seconds": 300,
               "parent_delegation_id": root_id}),
    );
    let middle_id = str_of(&middle["id"]);
    assert_rejected(
        h,
        json!({"from_agent_id": c, "to_agent_id": b, "scope": ["files:read"], "ttl_seconds": 60,
               "parent_delegation_id": middle_id}),
        400,
        "cycle",
    );

    // The depth cap is an org policy setting (default 5; here 2).
    let policy = h.put_policy(json!({"rules": [], "max_delegation_depth": 2}));
    assert_eq!(policy["max_delegation_depth"], 2, "{policy}");
    assert_rejected(
        h,
        json!({"from_agent_id": c, "to_agent_id": d, "scope": ["files:read"], "ttl_seconds": 60,
               "parent_delegation_id": middle_id}),
        400,
        "depth exceeded",
    );
    h.put_policy(json!({"rules": [], "max_delegation_depth": 3}));
    delegate(
        h,
        json!({"from_agent_id": c, "to_agent_id": d, "scope": ["files:read"], "ttl_seconds": 60,
               "parent_delegation_id": middle_id}),
    );
}

fn unknown_and_foreign_ids_are_not_found(h: &Harness) {
    let a = agent(h, "a", &["files:read"]);
    let b = agent(h, "b", &[]);
    let mine = delegate(
        h,
        json!({"from_agent_id": a, "to_agent_id": b, "scope": ["files:read"]}),
    );
    let mine_id = str_of(&mine["id"]);
    let unknown = uuid::Uuid::new_v4().to_string();
    for body in [
        json!({"from_agent_id": unknown, "to_agent_id": b, "scope": ["files:read"]}),
        json!({"from_agent_id": a, "to_agent_id": unknown, "scope": ["files:read"]}),
        json!({"from_agent_id": b, "to_agent_id": a, "scope": ["files:read"],
               "parent_delegation_id": unknown}),
    ] {
        let counts = h.row_counts();
        create(h, body).expect_error(404);
        assert_eq!(h.row_counts(), counts);
    }
    h.get(&format!("/api/v1/delegations/{unknown}"))
        .expect_error(404);
    h.request(
        Method::DELETE,
        &format!("/api/v1/delegations/{unknown}"),
        None,
    )
    .expect_error(404);
    open_session(h, &unknown).expect_error(404);

    // Another org sees nothing of ours, and cannot build on it; we cannot use its agents.
    let (_, other_key) = h.other_org("globex");
    let theirs = {
        let reply = h.request_as(
            &other_key,
            Method::POST,
            "/api/v1/agents",
            Some(json!({"name": "x", "capabilities": ["files:read"]})),
        );
        str_of(&reply.ok().clone()["id"])
    };
    let counts = h.row_counts();
    for (method, path) in [
        (Method::GET, format!("/api/v1/delegations/{mine_id}")),
        (Method::DELETE, format!("/api/v1/delegations/{mine_id}")),
        (
            Method::POST,
            format!("/api/v1/delegations/{mine_id}/session"),
        ),
    ] {
        h.request_as(&other_key, method, &path, None)
            .expect_error(404);
    }
    h.request_as(
        &other_key,
        Method::POST,
        "/api/v1/delegations",
        Some(
            json!({"from_agent_id": b, "to_agent_id": theirs, "scope": ["files:read"],
                    "parent_delegation_id": mine_id}),
        ),
    )
    .expect_error(404);
    let their_list = h
        .request_as(&other_key, Method::GET, "/api/v1/delegations", None)
        .ok()
        .clone();
    assert_eq!(their_list["delegations"], json!([]), "{their_list}");
    create(
        h,
        json!({"from_agent_id": a, "to_agent_id": theirs, "scope": ["files:read"]}),
    )
    .expect_error(404);
    assert_eq!(h.row_counts(), counts);
    assert_eq!(get(h, &mine_id)["status"], "active");
}

// ----- revocation and expiry -----

/// a → b → c → d (each built on the previous one), plus a → e beside it.
struct Tree {
    agents: [String; 5],
    ab: String,
    bc: String,
    cd: String,
    ae: String,
}

fn tree(h: &Harness) -> Tree {
    let a = agent(h, "a", &["files:read", "web:search"]);
    let [b, c, d, e] = ["b", "c", "d", "e"].map(|name| agent(h, name, &[]));
    let ab = str_of(
        &delegate(
            h,
            json!({"from_agent_id": a, "to_agent_id": b, "scope": ["files:read"]}),
        )["id"],
    );
    let bc = str_of(
        &delegate(
            h,
            json!({"from_agent_id": b, "to_agent_id": c, "scope": ["files:read"],
                   "ttl_seconds": 1800, "parent_delegation_id": ab}),
        )["id"],
    );
    let cd = str_of(
        &delegate(
            h,
            json!({"from_agent_id": c, "to_agent_id": d, "scope": ["files:read"],
                   "ttl_seconds": 900, "parent_delegation_id": bc}),
        )["id"],
    );
    let ae = str_of(
        &delegate(
            h,
            json!({"from_agent_id": a, "to_agent_id": e, "scope": ["web:search"]}),
        )["id"],
    );
    Tree {
        agents: [a, b, c, d, e],
        ab,
        bc,
        cd,
        ae,
    }
}

fn revoking_a_delegation_revokes_every_descendant_at_once(h: &Harness) {
    let t = tree(h);
    let d = &t.agents[3];
    let leaf_session = session_of(h, &get(h, &t.cd));
    assert_allowed(&check_in(h, d, &leaf_session, "read_file", "notes.txt"));

    let revoked = revoke(h, &t.ab);
    assert_eq!(revoked["status"], "revoked", "{revoked}");
    assert_eq!(revoked["id"], t.ab.as_str(), "{revoked}");
    assert_eq!(revoked["descendants_revoked"], 2, "{revoked}");
    let stamps: BTreeSet<String> = [&t.ab, &t.bc, &t.cd]
        .iter()
        .map(|id| {
            let delegation = get(h, id);
            assert_eq!(delegation["status"], "revoked", "{delegation}");
            str_of(&delegation["revoked_at"])
        })
        .collect();
    assert_eq!(stamps.len(), 1, "revoked in one go: {stamps:?}");
    assert_eq!(get(h, &t.ae)["status"], "active", "a sibling tree stays");
    assert_eq!(listed(h, "?active=true"), vec![t.ae.clone()]);

    // The audit trail records the cascade.
    assert_eq!(
        h.sql_integers(&format!(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM audit_events WHERE org_id = '{}' \
             AND kind = 'delegation.revoked' AND subject_id = '{}' \
             AND detail LIKE '%\"descendants_revoked\":2%'",
            h.org_id, t.ab
        ))
        .unwrap()[0],
        1
    );
    // Nothing built on it works any more: no new session, and the open one is cut off.
    for id in [&t.ab, &t.bc, &t.cd] {
        open_session(h, id).expect_error(409);
    }
    assert_denied_by(
        &check_in(h, d, &leaf_session, "read_file", "notes.txt"),
        "delegation:revoked",
    );
}

fn revoking_an_agent_revokes_its_delegations(h: &Harness) {
    let t = tree(h);
    let x = agent(h, "x", &["files:read"]);
    let xc = str_of(
        &delegate(
            h,
            json!({"from_agent_id": x, "to_agent_id": t.agents[2], "scope": ["files:read"]}),
        )["id"],
    );
    // Revoking b: the delegation to it, the one from it, and what was built on that.
    h.post(
        &format!("/api/v1/agents/{}/revoke", t.agents[1]),
        json!({"reason": "compromised"}),
    )
    .ok();
    for id in [&t.ab, &t.bc, &t.cd] {
        assert_eq!(get(h, id)["status"], "revoked", "{id}");
    }
    assert_eq!(listed(h, "?active=true"), sorted(&[&t.ae, &xc]));
    // Revoking a: its remaining delegation goes too; x's is none of its business.
    h.post(&format!("/api/v1/agents/{}/revoke", t.agents[0]), json!({}))
        .ok();
    assert_eq!(get(h, &t.ae)["status"], "revoked");
    assert_eq!(listed(h, "?active=true"), vec![xc]);
}

fn expired_delegations_stop_counting_without_a_sweeper(h: &Harness) {
    let a = agent(h, "a", &["files:read"]);
    let b = agent(h, "b", &[]);
    let c = agent(h, "c", &[]);
    let ab = delegate(
        h,
        json!({"from_agent_id": a, "to_agent_id": b, "scope": ["files:read"], "ttl_seconds": 600}),
    );
    let ab_id = str_of(&ab["id"]);
    let bc = delegate(
        h,
        json!({"from_agent_id": b, "to_agent_id": c, "scope": ["files:read"], "ttl_seconds": 300,
               "parent_delegation_id": ab_id}),
    );
    let bc_id = str_of(&bc["id"]);
    let session = session_of(h, &bc);
    assert_allowed(&check_in(h, &c, &session, "read_file", "notes.txt"));

    // Time passes (both expire: a child never outlives its parent).
    let moved = h.sql_execute(&format!(
        "UPDATE delegations SET expires_at = created_at - 1 WHERE id IN ('{ab_id}', '{bc_id}')"
    ));
    assert_eq!(moved, 2);
    for id in [&ab_id, &bc_id] {
        let delegation = get(h, id);
        assert_eq!(delegation["status"], "expired", "{delegation}");
        assert!(
            delegation.get("revoked_at").is_none_or(Value::is_null),
            "{delegation}"
        );
        open_session(h, id).expect_error(409);
    }
    assert_eq!(listed(h, "?active=true"), Vec::<String>::new());
    assert_eq!(listed(h, "?active=false"), sorted(&[&ab_id, &bc_id]));
    assert_rejected(
        h,
        json!({"from_agent_id": b, "to_agent_id": c, "scope": ["files:read"], "ttl_seconds": 60,
               "parent_delegation_id": ab_id}),
        400,
        "inactive parent",
    );
    assert_denied_by(
        &check_in(h, &c, &session, "read_file", "notes.txt"),
        "delegation:expired",
    );
}

// ----- the Guardian in delegation sessions -----

fn delegation_sessions_are_bounded_by_the_delegation(h: &Harness) {
    let a = agent(h, "a", &["files:read", "files:write", "web:search"]);
    let b = agent(h, "b", &["files:write", "web:search"]);
    let open = |scope: Value, restrictions: Value| -> String {
        let delegation = delegate(
            h,
            json!({"from_agent_id": a, "to_agent_id": b, "scope": scope,
                   "restrictions": restrictions}),
        );
        session_of(h, &delegation)
    };

    // Scope: files:read covers reading files, not writing them nor searching the web — even
    // though b holds those capabilities itself.
    let session = open(json!(["files:read"]), json!({}));
    assert_allowed(&check_in(h, &b, &session, "read_file", "notes.txt"));
    assert_allowed(&check_in(h, &b, &session, "list_files", ""));
    assert_denied_by(
        &check_in(h, &b, &session, "write_file", "notes.txt"),
        "delegation:scope",
    );
    assert_denied_by(
        &check_in(h, &b, &session, "web_search", "rust"),
        "delegation:scope",
    );
    // files:write covers reads of files too (read < write).
    let session = open(json!(["files:write"]), json!({}));
    assert_allowed(&check_in(h, &b, &session, "read_file", "notes.txt"));
    assert_allowed(&check_in(h, &b, &session, "write_file", "notes.txt"));
    assert_denied_by(
        &check_in(h, &b, &session, "delete_file", "notes.txt"),
        "delegation:scope",
    );

    // tools
    let session = open(
        json!(["files:read", "files:write"]),
        json!({"tools": ["read_*"]}),
    );
    assert_allowed(&check_in(h, &b, &session, "read_file", "notes.txt"));
    assert_denied_by(
        &check_in(h, &b, &session, "write_file", "notes.txt"),
        "delegation:restriction:tools",
    );
    // effects
    let session = open(
        json!(["files:read", "files:write"]),
        json!({"effects": ["read"]}),
    );
    assert_allowed(&check_in(h, &b, &session, "read_file", "notes.txt"));
    assert_denied_by(
        &check_in(h, &b, &session, "write_file", "notes.txt"),
        "delegation:restriction:effects",
    );
    // max_calls: the session's budget
    let session = open(json!(["files:read"]), json!({"max_calls": 2}));
    assert_allowed(&check_in(h, &b, &session, "read_file", "a.txt"));
    assert_allowed(&check_in(h, &b, &session, "read_file", "b.txt"));
    assert_denied_by(
        &check_in(h, &b, &session, "read_file", "c.txt"),
        "delegation:restriction:max_calls",
    );
    // paths: every absolute path must match; `*` stays within one directory.
    let session = open(
        json!(["files:read"]),
        json!({"paths": ["/tmp/*", "/srv/data/*.csv"]}),
    );
    assert_allowed(&check_in(h, &b, &session, "read_file", "/tmp/x"));
    assert_allowed(&check_in(
        h,
        &b,
        &session,
        "read_file",
        "diff /tmp/x /srv/data/q1.csv",
    ));
    for input in ["/etc/passwd", "/tmp/a/b", "cat /tmp/x /etc/shadow"] {
        assert_denied_by(
            &check_in(h, &b, &session, "read_file", input),
            "delegation:restriction:paths",
        );
    }
}

// ----- the "done means", as an operator would do it -----

fn done_means_through_the_cli(h: &Harness) {
    let id = |args: &[&str]| -> String {
        let run = h.run(args);
        run.success();
        run.value().to_string()
    };
    let a = id(&[
        "agents",
        "create",
        "--name",
        "A",
        "--capabilities",
        "files:read",
        "-q",
    ]);
    let b = id(&["agents", "create", "--name", "B", "-q"]);
    let c = id(&["agents", "create", "--name", "C", "-q"]);

    // A hands files:read to B, only under /tmp.
    let ab = id(&[
        "delegations",
        "create",
        "--from",
        &a,
        "--to",
        &b,
        "--scope",
        "files:read",
        "--paths",
        "/tmp/*",
        "-q",
    ]);
    let shown = h.run(&["delegations", "get", &ab, "-o", "json"]);
    shown.success();
    let shown = shown.json();
    assert_eq!(
        shown["restrictions"],
        json!({"paths": ["/tmp/*"]}),
        "{shown}"
    );
    assert_eq!(shown["scope"], json!(["files:read"]), "{shown}");

    let b_session = id(&["delegations", "session", &ab, "-q"]);
    let check = |agent: &str, session: &str, input: &str| {
        h.run(&[
            "actions",
            "check",
            "--agent",
            agent,
            "--session",
            session,
            "--tool",
            "read_file",
            "--input",
            input,
            "-o",
            "json",
        ])
    };
    check(&b, &b_session, "/tmp/x").success();
    let denied = check(&b, &b_session, "/etc/passwd");
    denied.code(77);
    assert_eq!(
        denied.json()["rule"],
        "delegation:restriction:paths",
        "{}",
        denied.stdout
    );

    // B re-delegates to C (from defaults to the parent's delegate).
    let bc = id(&[
        "delegations",
        "create",
        "--parent",
        &ab,
        "--to",
        &c,
        "--scope",
        "files:read",
        "--ttl",
        "30m",
        "-q",
    ]);
    let chained = h.run(&["delegations", "get", &bc, "-o", "json"]).json();
    assert_eq!(chained["from_agent_id"], b.as_str(), "{chained}");
    assert_eq!(chained["delegation_chain"], json!([ab, bc]), "{chained}");
    let c_session = id(&["delegations", "session", &bc, "-q"]);
    check(&c, &c_session, "/tmp/y").success();
    // The restrictions of A→B hold in C's session too.
    check(&c, &c_session, "/etc/passwd").code(77);

    // Revoke A→B: C's access ends with it, in the same second.
    let revoked = h.run(&["delegations", "revoke", &ab, "--yes"]);
    revoked.success();
    assert!(
        revoked.stdout.contains('1') && revoked.stdout.contains("descendant"),
        "says how many descendants went with it: {}",
        revoked.stdout
    );
    let revoked_at = timestamp(&get(h, &ab)["revoked_at"]);
    let denied = check(&c, &c_session, "/tmp/y");
    let checked_at = agenttrust::api::time::now();
    denied.code(77);
    assert_eq!(
        denied.json()["rule"],
        "delegation:revoked",
        "{}",
        denied.stdout
    );
    assert!(
        checked_at - revoked_at <= 1,
        "revoked at {revoked_at}, still checked at {checked_at}"
    );
    check(&b, &b_session, "/tmp/x").code(77);
    assert_eq!(get(h, &bc)["status"], "revoked");

    let listed = h.run(&["delegations", "list", "--inactive", "-o", "json"]);
    listed.success();
    let listed = listed.json();
    let mut ids: Vec<String> = listed["delegations"]
        .as_array()
        .unwrap_or_else(|| panic!("{listed}"))
        .iter()
        .map(|delegation| str_of(&delegation["id"]))
        .collect();
    ids.sort();
    assert_eq!(ids, sorted(&[&ab, &bc]));
    let tree = h.run(&["delegations", "tree", &bc]);
    tree.success();
    assert!(
        tree.stdout.contains("revoked"),
        "the tree shows the status: {}",
        tree.stdout
    );
}

// ----- the property test -----

/// The capabilities of the property test, with an action each that exactly one entry (and any
/// wider verb of the same resource) covers.
const UNIVERSE: [&str; 4] = ["files:read", "files:write", "db:read", "db:write"];
const ACTIONS: [(&str, &str); 4] = [
    ("read_file", "read"),
    ("write_file", "write"),
    ("query_db", "read"),
    ("update_db", "write"),
];
const AGENTS: usize = 5;
const MAX_DEPTH: usize = 3;
/// Lifetimes long enough that nothing expires during a case.
const TTLS: [i64; 3] = [600, 3600, 7200];

/// Whether a scope covers UNIVERSE[capability]'s action: the same resource with at least the verb.
fn covers(scope: &[String], capability: usize) -> bool {
    let (resource, verb) = UNIVERSE[capability].split_once(':').unwrap();
    scope.iter().any(|entry| {
        entry
            .split_once(':')
            .is_some_and(|(r, v)| r == resource && (v == verb || (verb == "read" && v == "write")))
    })
}

#[derive(Debug, Clone)]
enum Op {
    Create {
        /// Build on an earlier accepted delegation (picked by this index), if any…
        parent: Option<prop::sample::Index>,
        /// …an active one, or any (maybe revoked) one.
        any_parent: bool,
        /// Re-delegate as the parent's delegate (else `from` picks any agent).
        honest: bool,
        from: usize,
        /// The delegate: `from + to` (0 is a self-delegation).
        to: usize,
        /// Which of the delegator's held scope to hand over…
        keep: [bool; 4],
        /// …and maybe one more capability of the universe (an escalation unless held).
        widen: Option<usize>,
        ttl: usize,
        /// Under a parent: half its remaining lifetime instead of `ttl`.
        shrink: bool,
    },
    Revoke(prop::sample::Index),
}

#[derive(Debug, Clone)]
struct Plan {
    capabilities: [[bool; 4]; AGENTS],
    ops: Vec<Op>,
}

fn plan() -> impl Strategy<Value = Plan> {
    let create = (
        (
            prop::option::weighted(0.8, any::<prop::sample::Index>()),
            prop::bool::weighted(0.1),
            prop::bool::weighted(0.9),
            0..AGENTS,
            prop_oneof![1 => Just(0), 12 => 1..AGENTS],
        ),
        (
            prop::array::uniform4(prop::bool::weighted(0.8)),
            prop::option::weighted(0.15, 0..UNIVERSE.len()),
            0..TTLS.len(),
            prop::bool::weighted(0.85),
        ),
    )
        .prop_map(
            |((parent, any_parent, honest, from, to), (keep, widen, ttl, shrink))| Op::Create {
                parent,
                any_parent,
                honest,
                from,
                to,
                keep,
                widen,
                ttl,
                shrink,
            },
        );
    let op = prop_oneof![5 => create, 1 => any::<prop::sample::Index>().prop_map(Op::Revoke)];
    (
        prop::array::uniform5(prop::array::uniform4(prop::bool::weighted(0.6))),
        prop::collection::vec(op, 4..14),
    )
        .prop_map(|(capabilities, ops)| Plan { capabilities, ops })
}

/// What the model knows of one accepted delegation.
#[derive(Debug, Clone)]
struct Node {
    id: String,
    from: usize,
    to: usize,
    scope: Vec<String>,
    chain: Vec<String>,
    expires_at: i64,
    revoked: bool,
    session: String,
}

fn random_delegation_trees_never_widen_and_revocation_leaves_no_active_descendant(h: &Harness) {
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 24,
        max_shrink_iters: 16,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let case = std::cell::Cell::new(0);
    runner
        .run(&plan(), |plan| {
            case.set(case.get() + 1);
            run_plan(h, &plan, case.get());
            Ok(())
        })
        .unwrap_or_else(|error| panic!("{error}"));
}

fn run_plan(h: &Harness, plan: &Plan, case: usize) {
    let (_, key) = h.other_org(&format!("prop-{case}-{}", uuid::Uuid::new_v4().simple()));
    let call = |method: Method, path: &str, body: Option<Value>| -> Reply {
        h.request_as(&key, method, path, body)
    };
    call(
        Method::PUT,
        "/api/v1/policies",
        Some(json!({"rules": [], "max_delegation_depth": MAX_DEPTH})),
    )
    .ok();
    let capabilities: Vec<Vec<String>> = plan
        .capabilities
        .iter()
        .map(|held| {
            UNIVERSE
                .iter()
                .zip(held)
                .filter(|(_, held)| **held)
                .map(|(capability, _)| capability.to_string())
                .collect()
        })
        .collect();
    let agents: Vec<String> = capabilities
        .iter()
        .enumerate()
        .map(|(index, held)| {
            let reply = call(
                Method::POST,
                "/api/v1/agents",
                Some(json!({"name": format!("agent-{index}"), "capabilities": held})),
            );
            str_of(&reply.ok().clone()["id"])
        })
        .collect();
    let index_of = |id: &str| agents.iter().position(|agent| agent == id).unwrap();
    let mut nodes: Vec<Node> = Vec::new();

    for op in &plan.ops {
        match op {
            Op::Create {
                parent,
                any_parent,
                honest,
                from,
                to,
                keep,
                widen,
                ttl,
                shrink,
            } => {
                let candidates: Vec<&Node> = nodes
                    .iter()
                    .filter(|node| *any_parent || !node.revoked)
                    .collect();
                let parent = parent
                    .filter(|_| !candidates.is_empty())
                    .map(|index| candidates[index.index(candidates.len())].clone());
                let from = match &parent {
                    Some(parent) if *honest => parent.to,
                    _ => *from,
                };
                let to = &((from + to) % AGENTS);
                let held: Vec<String> = match &parent {
                    Some(parent) => parent.scope.clone(),
                    None => capabilities[from].clone(),
                };
                let mut scope: Vec<String> = held
                    .iter()
                    .filter(|entry| keep[UNIVERSE.iter().position(|u| u == entry).unwrap()])
                    .cloned()
                    .collect();
                if let Some(extra) = widen
                    && !scope.iter().any(|entry| entry == UNIVERSE[*extra])
                {
                    scope.push(UNIVERSE[*extra].to_string());
                }
                let before = agenttrust::api::time::now();
                let ttl = match &parent {
                    Some(parent) if *shrink => ((parent.expires_at - before) / 2).max(1),
                    _ => TTLS[*ttl],
                };
                let body = json!({
                    "from_agent_id": agents[from], "to_agent_id": agents[*to], "scope": scope,
                    "ttl_seconds": ttl,
                    "parent_delegation_id": parent.as_ref().map(|parent| parent.id.clone()),
                });
                let reply = call(Method::POST, "/api/v1/delegations", Some(body.clone()));
                let after = agenttrust::api::time::now();

                // The model's verdict, in the gateway's order of rules; `None` when the
                // expiry comparison falls within the request's second(s) and either is right.
                let expiry = parent.as_ref().map(|parent| {
                    let late = after + ttl > parent.expires_at;
                    let early = before + ttl > parent.expires_at;
                    (early, late)
                });
                let expected: Option<Option<&str>> = if from == *to {
                    Some(Some("self-delegation"))
                } else if scope.is_empty() {
                    Some(Some("empty scope"))
                } else if let Some(parent) = &parent {
                    if parent.revoked {
                        Some(Some("inactive parent"))
                    } else if parent.to != from {
                        Some(Some("not the parent's delegate"))
                    } else if expiry == Some((true, true)) {
                        Some(Some("expiry escalation"))
                    } else if expiry == Some((false, true)) {
                        None
                    } else if parent
                        .chain
                        .iter()
                        .map(|id| nodes.iter().find(|node| &node.id == id).unwrap().from)
                        .chain([from])
                        .any(|agent| agent == *to)
                    {
                        Some(Some("cycle"))
                    } else if scope.iter().any(|entry| !held.contains(entry)) {
                        Some(Some("scope escalation"))
                    } else if parent.chain.len() + 1 > MAX_DEPTH {
                        Some(Some("depth exceeded"))
                    } else {
                        Some(None)
                    }
                } else if scope.iter().any(|entry| !held.contains(entry)) {
                    Some(Some("scope escalation"))
                } else {
                    Some(None)
                };

                if reply.status != 201 {
                    // (Nothing stored: the listing below still has only the model's nodes.)
                    reply.expect_error(400);
                    if let Some(expected) = expected {
                        let rule = expected.unwrap_or_else(|| {
                            panic!("{body}: should be accepted: {}", reply.text)
                        });
                        assert!(
                            reply.message().starts_with(rule),
                            "{body}: expected {rule:?}: {}",
                            reply.text
                        );
                    }
                    continue;
                }
                if let Some(Some(rule)) = expected {
                    panic!("{body}: accepted, expected {rule:?}: {}", reply.text);
                }
                let delegation = reply.body["delegation"].clone();
                assert_delegation_shape(&delegation);
                let id = str_of(&delegation["id"]);
                let granted: Vec<String> =
                    serde_json::from_value(delegation["scope"].clone()).expect("scope");
                assert_eq!(granted, scope, "{delegation}");
                let expires_at = timestamp(&delegation["expires_at"]);
                let chain: Vec<String> =
                    serde_json::from_value(delegation["delegation_chain"].clone()).expect("chain");
                match &parent {
                    Some(parent) => {
                        assert!(expires_at <= parent.expires_at, "{delegation}");
                        let mut expected_chain = parent.chain.clone();
                        expected_chain.push(id.clone());
                        assert_eq!(chain, expected_chain, "{delegation}");
                    }
                    None => assert_eq!(chain, vec![id.clone()], "{delegation}"),
                }
                let session = {
                    let reply = call(
                        Method::POST,
                        &format!("/api/v1/delegations/{id}/session"),
                        None,
                    );
                    assert_eq!(reply.status, 201, "{}", reply.text);
                    assert_eq!(reply.body["scope_ceiling"], delegation["scope"]);
                    str_of(&reply.body["session_id"])
                };
                nodes.push(Node {
                    id,
                    from,
                    to: *to,
                    scope,
                    chain,
                    expires_at,
                    revoked: false,
                    session,
                });
            }
            Op::Revoke(pick) => {
                let active: Vec<usize> = (0..nodes.len()).filter(|i| !nodes[*i].revoked).collect();
                if active.is_empty() {
                    continue;
                }
                let target = nodes[active[pick.index(active.len())]].id.clone();
                let mut descendants = 0;
                for node in nodes.iter_mut() {
                    if node.chain.contains(&target) {
                        if node.id != target && !node.revoked {
                            descendants += 1;
                        }
                        node.revoked = true;
                    }
                }
                let reply = call(
                    Method::DELETE,
                    &format!("/api/v1/delegations/{target}"),
                    None,
                );
                let body = reply.ok();
                assert_eq!(body["status"], "revoked", "{body}");
                assert_eq!(body["descendants_revoked"], descendants, "{body}");
            }
        }

        // After every step, from the gateway's own answers: nothing wider than its root
        // delegator's capabilities, no expiry beyond its parent's, and no active delegation
        // with a revoked ancestor; the statuses are the model's.
        let listed = call(Method::GET, "/api/v1/delegations", None).ok().clone();
        let listed: BTreeMap<String, Value> = listed["delegations"]
            .as_array()
            .unwrap_or_else(|| panic!("{listed}"))
            .iter()
            .map(|delegation| (str_of(&delegation["id"]), delegation.clone()))
            .collect();
        assert_eq!(listed.len(), nodes.len());
        for (id, delegation) in &listed {
            let chain: Vec<String> =
                serde_json::from_value(delegation["delegation_chain"].clone()).unwrap();
            let root = &listed[&chain[0]];
            let root_capabilities =
                &capabilities[index_of(root["from_agent_id"].as_str().unwrap())];
            for entry in delegation["scope"].as_array().unwrap() {
                assert!(
                    root_capabilities.contains(&str_of(entry)),
                    "{delegation} is wider than its root's delegator ({root_capabilities:?})"
                );
            }
            if let Some(parent) = delegation["parent_delegation_id"].as_str() {
                assert!(
                    timestamp(&delegation["expires_at"])
                        <= timestamp(&listed[parent]["expires_at"]),
                    "{delegation}"
                );
                let parent_scope = listed[parent]["scope"].as_array().unwrap();
                for entry in delegation["scope"].as_array().unwrap() {
                    assert!(parent_scope.contains(entry), "{delegation}");
                }
            }
            if delegation["status"] == "active" {
                for ancestor in &chain {
                    assert_eq!(
                        listed[ancestor]["status"], "active",
                        "{id} is active under a revoked {ancestor}"
                    );
                }
            }
            let node = nodes.iter().find(|node| &node.id == id).unwrap();
            let expected = if node.revoked { "revoked" } else { "active" };
            assert_eq!(delegation["status"], expected, "{delegation}");
        }
    }

    // Sessions and checks: a revoked delegation's session allows nothing and opens no more; an
    // active one allows what its scope covers and nothing beyond (and so nothing beyond its
    // root's grant).
    for node in &nodes {
        let agent = &agents[node.to];
        if node.revoked {
            let reply = call(
                Method::POST,
                &format!("/api/v1/delegations/{}/session", node.id),
                None,
            );
            assert_eq!(reply.status, 409, "{}", reply.text);
        }
        for (capability, (action, effect)) in ACTIONS.iter().enumerate() {
            let covered = covers(&node.scope, capability);
            if node.revoked && !covered {
                continue;
            }
            let decision = call(
                Method::POST,
                "/api/v1/agenttrust/check",
                Some(json!({"agent_id": agent, "session_id": node.session,
                            "action_name": action, "action_effect": effect})),
            )
            .ok()
            .clone();
            match (node.revoked, covered) {
                (true, _) => assert_denied_by(&decision, "delegation:revoked"),
                (false, true) => assert_allowed(&decision),
                (false, false) => assert_denied_by(&decision, "delegation:scope"),
            }
        }
    }
}

fn a_rule_requiring_a_capability_is_met_only_in_its_delegation_session(h: &Harness) {
    h.put_policy(json!({"rules": [{
        "id": "deploys", "tools": ["deploy_*"], "require_capabilities": ["deploy:write"],
        "decision": "allow"
    }]}));
    let owner = agent(h, "owner", &["deploy:write"]);
    let helper = agent(h, "helper", &[]);
    let deploy = |session: Option<&str>| {
        let mut body = json!({"agent_id": helper, "action_name": "deploy_web"});
        if let Some(session) = session {
            body["session_id"] = json!(session);
        }
        h.check(body)
    };
    let without = deploy(None);
    assert_denied_by(&without, "rule:deploys");
    assert!(
        str_of(&without["reason"]).contains("does not hold"),
        "{without}"
    );
    let delegation = delegate(
        h,
        json!({"from_agent_id": owner, "to_agent_id": helper, "scope": ["deploy:write"]}),
    );
    // Held by delegation, the capability counts only in a session of that delegation, where
    // the delegation's restrictions apply too: not outside it, not in a session of the
    // helper's own choosing.
    assert_denied_by(&deploy(None), "rule:deploys");
    assert_denied_by(&deploy(Some("helpers-own-session")), "rule:deploys");
    let session = session_of(h, &delegation);
    let with = deploy(Some(&session));
    assert_allowed(&with);
    assert_eq!(with["rule"], "rule:deploys", "{with}");
    // Revoked, the session may do nothing.
    revoke(h, &str_of(&delegation["id"]));
    assert_denied_by(&deploy(Some(&session)), "delegation:revoked");
}
