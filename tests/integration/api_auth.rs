//! Identity at the gateway: missing, wrong and revoked keys (401), roles (403), org scoping
//! (another org's ids are 404) and agent tokens as bearer credentials.

use agenttrust::api::keys::Role;
use reqwest::Method;
use serde_json::json;

use crate::harness::Harness;
use crate::on_both_backends;

on_both_backends!(
    missing_or_wrong_key_is_401,
    header_name_is_case_insensitive,
    revoked_key_is_401_at_once,
    runtime_key_is_403_on_admin_endpoints,
    runtime_key_may_check_issue_and_report,
    another_orgs_ids_are_404,
    bearer_token_identity,
    bearer_token_for_another_agent_is_403,
    health_needs_no_key,
);

fn missing_or_wrong_key_is_401(h: &Harness) {
    let before = h.row_counts();
    let no_key = h.raw(Method::GET, "/api/v1/agents", &[], None);
    no_key.expect_error(401);
    for key in [
        "sk_live_wrong".to_string(),
        format!("{}x", h.admin_key),
        String::new(),
    ] {
        h.request_as(&key, Method::GET, "/api/v1/agents", None)
            .expect_error(401);
        h.request_as(
            &key,
            Method::POST,
            "/api/v1/agents",
            Some(json!({"name": "x"})),
        )
        .expect_error(401);
    }
    assert_eq!(h.row_counts(), before);
}

fn header_name_is_case_insensitive(h: &Harness) {
    for name in ["X-API-Key", "x-api-key", "X-Api-Key", "X-api-key"] {
        let reply = h.raw(
            Method::GET,
            "/api/v1/agents",
            &[(name, h.admin_key.clone())],
            None,
        );
        reply.ok();
    }
}

fn revoked_key_is_401_at_once(h: &Harness) {
    let created = h.post(
        "/api/v1/keys",
        json!({"role": "admin", "name": "short-lived"}),
    );
    let body = created.ok().clone();
    let secret = body["key"].as_str().unwrap().to_string();
    let id = body["id"].as_str().unwrap().to_string();
    h.request_as(&secret, Method::GET, "/api/v1/agents", None)
        .ok();

    h.request(Method::DELETE, &format!("/api/v1/keys/{id}"), None)
        .ok();
    let before = h.row_counts();
    h.request_as(&secret, Method::GET, "/api/v1/agents", None)
        .expect_error(401);
    h.request_as(
        &secret,
        Method::POST,
        "/api/v1/agents",
        Some(json!({"name": "after-revoke"})),
    )
    .expect_error(401);
    assert_eq!(h.row_counts(), before);
    // The other key still works.
    h.get("/api/v1/agents").ok();
}

fn runtime_key_is_403_on_admin_endpoints(h: &Harness) {
    let agent = h.create_agent("admin-made", &[]);
    let agent_id = agent["id"].as_str().unwrap();
    let (runtime, _) = h.new_key(Role::Runtime);
    let before = h.row_counts();
    let cases = [
        (
            Method::POST,
            "/api/v1/agents".to_string(),
            Some(json!({"name": "x"})),
        ),
        (
            Method::POST,
            format!("/api/v1/agents/{agent_id}/revoke"),
            Some(json!({"reason": "x"})),
        ),
        (Method::GET, "/api/v1/keys".to_string(), None),
        (
            Method::POST,
            "/api/v1/keys".to_string(),
            Some(json!({"role": "admin"})),
        ),
    ];
    for (method, path, body) in cases {
        h.request_as(&runtime, method, &path, body)
            .expect_error(403);
    }
    assert_eq!(h.row_counts(), before);
}

fn runtime_key_may_check_issue_and_report(h: &Harness) {
    let agent = h.create_agent("runtime-used", &[]);
    let agent_id = agent["id"].as_str().unwrap();
    let (runtime, _) = h.new_key(Role::Runtime);
    let issued = h.request_as(
        &runtime,
        Method::POST,
        "/api/v1/agent-tokens/issue",
        Some(json!({"agent_id": agent_id, "scopes": [], "ttl": 60})),
    );
    let token = issued.ok()["token"].as_str().unwrap().to_string();
    let introspected = h.request_as(
        &runtime,
        Method::POST,
        "/api/v1/agent-tokens/introspect",
        Some(json!({"token": token, "required_scopes": []})),
    );
    assert_eq!(introspected.ok()["active"], true);
    let check = h.request_as(
        &runtime,
        Method::POST,
        "/api/v1/agenttrust/check",
        Some(json!({"agent_id": agent_id, "action_name": "web_search"})),
    );
    assert_eq!(check.ok()["allowed"], true);
    let report = h.request_as(
        &runtime,
        Method::POST,
        "/api/v1/telemetry/report",
        Some(json!({"agent_id": agent_id, "session_id": "s1", "events": [
            {"event_type": "tool_end", "tool_name": "web_search", "duration_ms": 5, "success": true}
        ]})),
    );
    assert_eq!(report.ok()["events_processed"], 1);
}

fn another_orgs_ids_are_404(h: &Harness) {
    let ours = h.create_agent("ours", &["web:search"]);
    let our_agent = ours["id"].as_str().unwrap().to_string();
    let token = h.issue_token(&our_agent, &["web:search"], 60)["token"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, our_key_id) = h.new_key(Role::Runtime);

    let (_, their_key) = h.other_org("globex");
    let before = h.row_counts();
    let as_them = |method: Method, path: &str, body: Option<serde_json::Value>| {
        h.request_as(&their_key, method, path, body)
    };
    as_them(Method::GET, &format!("/api/v1/agents/{our_agent}"), None).expect_error(404);
    as_them(
        Method::POST,
        &format!("/api/v1/agents/{our_agent}/revoke"),
        Some(json!({"reason": "hostile"})),
    )
    .expect_error(404);
    as_them(
        Method::POST,
        "/api/v1/agent-tokens/issue",
        Some(json!({"agent_id": our_agent, "scopes": [], "ttl": 60})),
    )
    .expect_error(404);
    as_them(Method::DELETE, &format!("/api/v1/keys/{our_key_id}"), None).expect_error(404);
    let listed = as_them(Method::GET, "/api/v1/agents", None);
    assert_eq!(listed.ok()["agents"].as_array().unwrap().len(), 0);
    let keys = as_them(Method::GET, "/api/v1/keys", None);
    let key_ids: Vec<&str> = keys.ok()["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|key| key["id"].as_str().unwrap())
        .collect();
    assert!(!key_ids.contains(&our_key_id.as_str()));
    // Our token is nothing to them: inactive, and it says nothing about our agent.
    let introspected = as_them(
        Method::POST,
        "/api/v1/agent-tokens/introspect",
        Some(json!({"token": token, "required_scopes": []})),
    );
    let body = introspected.ok();
    assert_eq!(body["active"], false, "{body}");
    assert!(body.get("agent_id").is_none(), "{body}");
    assert_eq!(h.row_counts(), before);
    // And to us it is still active: their attempts changed nothing.
    let ours_again = h.post(
        "/api/v1/agent-tokens/introspect",
        json!({"token": token, "required_scopes": []}),
    );
    assert_eq!(ours_again.ok()["active"], true);
}

fn bearer_token_identity(h: &Harness) {
    let agent = h.create_agent("bearer", &["web:search"]);
    let agent_id = agent["id"].as_str().unwrap();
    let token = h.issue_token(agent_id, &["web:search"], 60)["token"]
        .as_str()
        .unwrap()
        .to_string();
    // The agent comes from the token: no agent_id in the body.
    let reply = h.raw(
        Method::POST,
        "/api/v1/agenttrust/check",
        &[
            ("Authorization", format!("Bearer {token}")),
            ("Content-Type", "application/json".to_string()),
        ],
        Some(
            json!({"action_name": "web_search"})
                .to_string()
                .into_bytes(),
        ),
    );
    let body = reply.ok();
    assert_eq!(body["allowed"], true, "{body}");
    assert_eq!(
        body["agent_id"], agent_id,
        "the token names the agent: {body}"
    );
    // The recorded check is the token's agent's.
    let check_id = body["check_id"].as_str().expect("a recorded check");
    assert_eq!(
        h.sql_integers(&format!(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM checks WHERE id = '{check_id}' \
             AND agent_id = '{agent_id}' AND org_id = '{}'",
            h.org_id
        )),
        Some(vec![1])
    );
    // Naming itself is fine too.
    let reply = h.raw(
        Method::POST,
        "/api/v1/telemetry/report",
        &[
            ("Authorization", format!("Bearer {token}")),
            ("Content-Type", "application/json".to_string()),
        ],
        Some(
            json!({"agent_id": agent_id, "session_id": "s", "events": [{"event_type": "tool_start", "tool_name": "web_search"}]})
                .to_string()
                .into_bytes(),
        ),
    );
    assert_eq!(reply.ok()["events_processed"], 1);
    // A revoked token is no identity.
    h.post(
        "/api/v1/agent-tokens/revoke",
        json!({"token": token, "reason": "done"}),
    )
    .ok();
    let reply = h.raw(
        Method::POST,
        "/api/v1/agenttrust/check",
        &[
            ("Authorization", format!("Bearer {token}")),
            ("Content-Type", "application/json".to_string()),
        ],
        Some(
            json!({"action_name": "web_search"})
                .to_string()
                .into_bytes(),
        ),
    );
    reply.expect_error(401);
}

fn bearer_token_for_another_agent_is_403(h: &Harness) {
    let alice = h.create_agent("alice", &[]);
    let bob = h.create_agent("bob", &[]);
    let token = h.issue_token(alice["id"].as_str().unwrap(), &[], 60)["token"]
        .as_str()
        .unwrap()
        .to_string();
    let before = h.row_counts();
    for path in ["/api/v1/agenttrust/check", "/api/v1/telemetry/report"] {
        let body = json!({
            "agent_id": bob["id"],
            "action_name": "web_search",
            "session_id": "s",
            "events": [{"event_type": "tool_end", "tool_name": "web_search", "success": true}],
        });
        let reply = h.raw(
            Method::POST,
            path,
            &[
                ("Authorization", format!("Bearer {token}")),
                ("Content-Type", "application/json".to_string()),
            ],
            Some(body.to_string().into_bytes()),
        );
        reply.expect_error(403);
    }
    assert_eq!(h.row_counts(), before);
}

fn health_needs_no_key(h: &Harness) {
    let reply = h.raw(Method::GET, "/health", &[], None);
    let body = reply.ok();
    assert_eq!(body["status"], "healthy");
    assert!(
        body["version"].as_str().is_some_and(|v| !v.is_empty()),
        "{body}"
    );
}
