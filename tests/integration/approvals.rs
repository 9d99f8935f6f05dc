//! Human approvals (elevation) over HTTP: a `require_approval` check in a session creates one
//! pending approval (reused while pending), an admin approves or denies it once, the retried
//! check follows the answer, expiry and double decisions are conflicts, and every step is
//! audited.

use agenttrust::api::keys::Role;
use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::Harness;
use crate::on_both_backends;

on_both_backends!(
    elevation_loop_approve_then_allowed,
    identical_checks_reuse_the_pending_approval,
    denial_is_final_and_names_the_decider,
    without_a_session_it_is_a_plain_denial,
    deciding_twice_is_a_conflict,
    an_expired_approval_cannot_be_decided,
    only_admin_keys_decide,
    unknown_and_foreign_approvals_are_not_found,
    pending_approvals_are_listed,
    read_only_sessions_elevate_non_reads,
);

fn destructive(agent_id: &str, session: &str) -> Value {
    json!({"agent_id": agent_id, "session_id": session, "action_name": "delete_all",
           "action_source": "api", "action_input_summary": "delete everything"})
}

/// A fresh agent and a check that needs an approval: `(agent_id, session_id, approval_id)`.
fn pending(h: &Harness, name: &str) -> (String, String, String) {
    let agent = h.create_agent(name, &[]);
    let agent_id = agent["id"].as_str().unwrap().to_string();
    let session = format!("sess-{}", uuid::Uuid::new_v4());
    let decision = h.check(destructive(&agent_id, &session));
    assert_eq!(decision["allowed"], false, "{decision}");
    assert_eq!(decision["elevation_required"], true, "{decision}");
    assert_eq!(decision["rule"], "default:destructive", "{decision}");
    let approval_id = decision["approval_id"]
        .as_str()
        .filter(|id| !id.is_empty())
        .unwrap_or_else(|| panic!("an approval id: {decision}"))
        .to_string();
    (agent_id, session, approval_id)
}

fn elevation_loop_approve_then_allowed(h: &Harness) {
    let (agent_id, session, approval_id) = pending(h, "elevated");
    assert_eq!(h.audit_count("approval.requested"), 1);

    let approval = h.get(&format!("/mcp/approvals/{approval_id}")).ok().clone();
    assert_eq!(approval["id"], approval_id.as_str());
    assert_eq!(approval["status"], "pending", "{approval}");
    assert_eq!(approval["session_id"], session.as_str());
    assert_eq!(approval["agent_id"], agent_id.as_str());
    assert_eq!(approval["org_id"], h.org_id.as_str());
    assert_eq!(approval["action_name"], "delete_all");
    assert_eq!(approval["action_effect"], "destructive");
    assert!(
        approval.get("decided_by").is_none_or(Value::is_null),
        "{approval}"
    );
    let created = agenttrust::api::time::parse(approval["created_at"].as_str().unwrap()).unwrap();
    let expires = agenttrust::api::time::parse(approval["expires_at"].as_str().unwrap()).unwrap();
    assert_eq!(
        expires - created,
        900,
        "the default approval TTL: {approval}"
    );
    // The same path under /api/v1 too.
    assert_eq!(
        h.get(&format!("/api/v1/approvals/{approval_id}")).ok()["id"],
        approval_id.as_str()
    );

    let decided = h
        .post(
            &format!("/mcp/approvals/{approval_id}/approve"),
            json!({"decided_by": "alice@example.com"}),
        )
        .ok()
        .clone();
    assert_eq!(decided["status"], "approved", "{decided}");
    assert_eq!(decided["approval"]["status"], "approved", "{decided}");
    assert_eq!(
        decided["approval"]["decided_by"], "alice@example.com",
        "{decided}"
    );
    assert_eq!(h.audit_count("approval.approved"), 1);

    let approval = h.get(&format!("/mcp/approvals/{approval_id}")).ok().clone();
    assert_eq!(approval["status"], "approved");
    assert_eq!(approval["decided_by"], "alice@example.com");

    // The retried check in the same session is allowed, by the approval.
    let retried = h.check(destructive(&agent_id, &session));
    assert_eq!(retried["allowed"], true, "{retried}");
    assert_eq!(retried["elevation_required"], false, "{retried}");
    assert_eq!(
        retried["rule"],
        format!("approval:{approval_id}"),
        "{retried}"
    );
    let session_now = h.get(&format!("/mcp/sessions/{session}")).ok().clone();
    assert_eq!(session_now["mode"], "elevated", "{session_now}");

    // Another session is not elevated by it.
    let elsewhere = h.check(destructive(&agent_id, "sess-elsewhere"));
    assert_eq!(elsewhere["allowed"], false, "{elsewhere}");
    assert_eq!(elsewhere["elevation_required"], true, "{elsewhere}");
    assert_ne!(elsewhere["approval_id"], approval_id.as_str());
    // Elevations never count as denials.
    let session_now = h.get(&format!("/mcp/sessions/{session}")).ok().clone();
    assert_eq!(session_now["denied_calls"], 0, "{session_now}");
}

fn identical_checks_reuse_the_pending_approval(h: &Harness) {
    let (agent_id, session, approval_id) = pending(h, "impatient");
    let approvals_before = h.row_counts()["approvals"];
    for _ in 0..3 {
        let again = h.check(destructive(&agent_id, &session));
        assert_eq!(again["elevation_required"], true, "{again}");
        assert_eq!(again["approval_id"], approval_id.as_str(), "{again}");
    }
    assert_eq!(
        h.row_counts()["approvals"],
        approvals_before,
        "no approval spam"
    );
    assert_eq!(h.audit_count("approval.requested"), 1);

    // A different input summary is a different request.
    let mut other = destructive(&agent_id, &session);
    other["action_input_summary"] = json!("delete the logs");
    let other = h.check(other);
    assert_eq!(other["elevation_required"], true, "{other}");
    assert_ne!(other["approval_id"], approval_id.as_str(), "{other}");
    assert_eq!(h.row_counts()["approvals"], approvals_before + 1);

    // Concurrent identical checks still make one approval.
    let session = format!("sess-{}", uuid::Uuid::new_v4());
    let ids: Vec<String> = h.block_on(async {
        let client = reqwest::Client::new();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let client = client.clone();
            let url = format!("{}/api/v1/agenttrust/check", h.url);
            let key = h.admin_key.clone();
            let body = destructive(&agent_id, &session);
            tasks.spawn(async move {
                let decision: Value = client
                    .post(url)
                    .header("X-API-Key", key)
                    .json(&body)
                    .send()
                    .await
                    .expect("check")
                    .json()
                    .await
                    .expect("json");
                decision["approval_id"]
                    .as_str()
                    .expect("approval id")
                    .to_string()
            });
        }
        let mut ids = Vec::new();
        while let Some(id) = tasks.join_next().await {
            ids.push(id.expect("task"));
        }
        ids
    });
    assert!(ids.iter().all(|id| id == &ids[0]), "one approval: {ids:?}");
}

fn denial_is_final_and_names_the_decider(h: &Harness) {
    let (agent_id, session, approval_id) = pending(h, "refused");
    let decided = h
        .post(
            &format!("/mcp/approvals/{approval_id}/deny"),
            json!({"decided_by": "bob@example.com"}),
        )
        .ok()
        .clone();
    assert_eq!(decided["status"], "denied", "{decided}");
    assert_eq!(h.audit_count("approval.denied"), 1);
    let retried = h.check(destructive(&agent_id, &session));
    assert_eq!(retried["allowed"], false, "{retried}");
    assert_eq!(retried["elevation_required"], false, "{retried}");
    assert_eq!(
        retried["rule"],
        format!("approval:{approval_id}"),
        "{retried}"
    );
    assert!(
        retried["reason"]
            .as_str()
            .unwrap()
            .contains("bob@example.com"),
        "{retried}"
    );
    let approval = h.get(&format!("/mcp/approvals/{approval_id}")).ok().clone();
    assert_eq!(approval["status"], "denied");
    assert_eq!(approval["decided_by"], "bob@example.com");
}

fn without_a_session_it_is_a_plain_denial(h: &Harness) {
    let agent = h.create_agent("sessionless", &[]);
    let approvals_before = h.row_counts()["approvals"];
    for session in [json!(""), Value::Null] {
        let mut body = destructive(agent["id"].as_str().unwrap(), "");
        body["session_id"] = session;
        let decision = h.check(body);
        assert_eq!(decision["allowed"], false, "{decision}");
        assert_ne!(decision["elevation_required"], true, "{decision}");
        assert!(
            decision.get("approval_id").is_none_or(Value::is_null),
            "{decision}"
        );
        assert_eq!(decision["rule"], "default:destructive", "{decision}");
    }
    assert_eq!(h.row_counts()["approvals"], approvals_before);
}

fn deciding_twice_is_a_conflict(h: &Harness) {
    let (_, _, approval_id) = pending(h, "twice");
    h.post(
        &format!("/mcp/approvals/{approval_id}/approve"),
        json!({"decided_by": "alice"}),
    )
    .ok();
    let counts = h.row_counts();
    for verb in ["approve", "deny"] {
        let reply = h.post(
            &format!("/mcp/approvals/{approval_id}/{verb}"),
            json!({"decided_by": "mallory"}),
        );
        reply.expect_error(409);
        assert!(reply.message().contains("approved"), "{}", reply.text);
        assert!(reply.message().contains("alice"), "{}", reply.text);
    }
    assert_eq!(h.row_counts(), counts, "nothing changed");
    let approval = h.get(&format!("/mcp/approvals/{approval_id}")).ok().clone();
    assert_eq!(approval["status"], "approved");
    assert_eq!(approval["decided_by"], "alice");
}

fn an_expired_approval_cannot_be_decided(h: &Harness) {
    let (agent_id, session, approval_id) = pending(h, "slow-human");
    h.expire_approval(&approval_id);
    let approval = h.get(&format!("/mcp/approvals/{approval_id}")).ok().clone();
    assert_eq!(approval["status"], "expired", "{approval}");
    let counts = h.row_counts();
    let reply = h.post(
        &format!("/mcp/approvals/{approval_id}/approve"),
        json!({"decided_by": "alice"}),
    );
    reply.expect_error(409);
    assert!(reply.message().contains("expired"), "{}", reply.text);
    assert_eq!(h.row_counts(), counts, "nothing changed");
    let expired_ids = |h: &Harness| -> Vec<String> {
        h.get("/api/v1/approvals?status=expired").ok()["approvals"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|a| a["id"].as_str().map(str::to_string))
            .collect()
    };
    assert_eq!(expired_ids(h), vec![approval_id.clone()]);
    assert_eq!(
        h.get("/api/v1/approvals?status=pending").ok()["approvals"],
        json!([]),
        "an expired approval is not pending"
    );
    // The next identical check asks again, with a new approval.
    let again = h.check(destructive(&agent_id, &session));
    assert_eq!(again["elevation_required"], true, "{again}");
    assert_ne!(again["approval_id"], approval_id.as_str(), "{again}");
    // Still listed as expired once the new request settled the old row.
    assert_eq!(expired_ids(h), vec![approval_id.clone()]);
    assert_eq!(
        h.get(&format!("/mcp/approvals/{approval_id}")).ok()["status"],
        "expired"
    );
}

fn only_admin_keys_decide(h: &Harness) {
    let (agent_id, _, approval_id) = pending(h, "self-approver");
    let (runtime, _) = h.new_key(Role::Runtime);
    let counts = h.row_counts();
    for verb in ["approve", "deny"] {
        h.request_as(
            &runtime,
            Method::POST,
            &format!("/mcp/approvals/{approval_id}/{verb}"),
            Some(json!({"decided_by": "the agent itself"})),
        )
        .expect_error(403);
    }
    // An agent token as Bearer may not decide either.
    let agent_token = h.issue_token(&agent_id, &[], 300)["token"]
        .as_str()
        .unwrap()
        .to_string();
    let counts_after_issue = h.row_counts();
    let reply = h.raw(
        Method::POST,
        &format!("/mcp/approvals/{approval_id}/approve"),
        &[
            ("X-API-Key", runtime.clone()),
            ("Authorization", format!("Bearer {agent_token}")),
            ("Content-Type", "application/json".to_string()),
        ],
        Some(br#"{"decided_by":"me"}"#.to_vec()),
    );
    reply.expect_error(403);
    assert_eq!(h.row_counts(), counts_after_issue);
    assert_eq!(counts["approvals"], counts_after_issue["approvals"]);
    // A runtime key may still read it (it is how a wrapper polls).
    let read = h.request_as(
        &runtime,
        Method::GET,
        &format!("/mcp/approvals/{approval_id}"),
        None,
    );
    assert_eq!(read.ok()["status"], "pending");
}

fn unknown_and_foreign_approvals_are_not_found(h: &Harness) {
    let unknown = uuid::Uuid::new_v4().to_string();
    h.get(&format!("/mcp/approvals/{unknown}"))
        .expect_error(404);
    h.post(
        &format!("/mcp/approvals/{unknown}/approve"),
        json!({"decided_by": "a"}),
    )
    .expect_error(404);
    h.post(&format!("/mcp/approvals/{unknown}/deny"), json!({}))
        .expect_error(404);

    let (_, _, approval_id) = pending(h, "ours");
    let (_, other_key) = h.other_org("globex");
    let counts = h.row_counts();
    h.request_as(
        &other_key,
        Method::GET,
        &format!("/mcp/approvals/{approval_id}"),
        None,
    )
    .expect_error(404);
    h.request_as(
        &other_key,
        Method::POST,
        &format!("/mcp/approvals/{approval_id}/approve"),
        Some(json!({"decided_by": "intruder"})),
    )
    .expect_error(404);
    assert_eq!(h.row_counts(), counts);
    assert_eq!(
        h.get(&format!("/mcp/approvals/{approval_id}")).ok()["status"],
        "pending"
    );
}

fn pending_approvals_are_listed(h: &Harness) {
    let (_, _, first) = pending(h, "lister-1");
    let (_, _, second) = pending(h, "lister-2");
    h.post(
        &format!("/mcp/approvals/{second}/deny"),
        json!({"decided_by": "x"}),
    )
    .ok();
    let ids = |query: &str| -> Vec<String> {
        h.get(&format!("/api/v1/approvals{query}")).ok()["approvals"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids("?status=pending"), vec![first.clone()]);
    assert_eq!(ids("?status=denied"), vec![second.clone()]);
    let mut all = ids("");
    all.sort();
    let mut expected = vec![first, second];
    expected.sort();
    assert_eq!(all, expected);
    h.get("/api/v1/approvals?status=bogus").expect_error(400);
    // Another org lists none of ours.
    let (_, other_key) = h.other_org("globex");
    let theirs = h.request_as(&other_key, Method::GET, "/api/v1/approvals", None);
    assert_eq!(theirs.ok()["approvals"], json!([]));
}

fn read_only_sessions_elevate_non_reads(h: &Harness) {
    let agent = h.create_agent("careful", &[]);
    let server = h.register_mcp_server("files");
    let session = h
        .post(
            "/mcp/sessions/init",
            json!({"agent_id": agent["id"], "server_id": server}),
        )
        .ok()
        .clone();
    let session_id = session["session_id"].as_str().unwrap();
    h.request(
        Method::PUT,
        &format!("/api/v1/sessions/{session_id}/mode"),
        Some(json!({"mode": "read_only"})),
    )
    .ok();
    let read = h.check(json!({"agent_id": agent["id"], "session_id": session_id,
                              "action_name": "web_search", "action_effect": "read"}));
    assert_eq!(read["allowed"], true, "{read}");
    let write = h.check(json!({"agent_id": agent["id"], "session_id": session_id,
                               "action_name": "save_file", "action_effect": "mutating"}));
    assert_eq!(write["allowed"], false, "{write}");
    assert_eq!(write["elevation_required"], true, "{write}");
    assert_eq!(write["rule"], "session:read_only", "{write}");
    let approval_id = write["approval_id"].as_str().unwrap();
    h.post(
        &format!("/mcp/approvals/{approval_id}/approve"),
        json!({"decided_by": "ops"}),
    )
    .ok();
    let retried = h.check(json!({"agent_id": agent["id"], "session_id": session_id,
                                 "action_name": "save_file", "action_effect": "mutating"}));
    assert_eq!(retried["allowed"], true, "{retried}");
    assert_eq!(
        retried["rule"],
        format!("approval:{approval_id}"),
        "{retried}"
    );
    let now = h.get(&format!("/mcp/sessions/{session_id}")).ok().clone();
    assert_eq!(now["mode"], "elevated", "{now}");
}
