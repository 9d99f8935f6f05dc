//! Guardian v1 through `POST /api/v1/agenttrust/check`: effects given or classified, the default
//! policy (read and mutating allowed, destructive needs an approval — a plain denial without a
//! session — and admin denied), unknown and revoked agents,
//! the decision record, and session counters that stay exact under concurrent checks.

use serde_json::{Value, json};

use crate::harness::Harness;
use crate::on_both_backends;

on_both_backends!(
    read_is_allowed,
    mutating_is_allowed,
    destructive_is_denied,
    admin_is_denied,
    a_stated_effect_raises_with_full_confidence_and_never_lowers,
    write_means_mutating,
    unknown_agent_is_denied,
    revoked_agent_is_denied,
    the_readme_path_is_served_too,
    session_counters_are_exact_under_concurrency,
);

fn check(h: &Harness, body: Value) -> Value {
    h.post("/api/v1/agenttrust/check", body).ok().clone()
}

fn check_tool(h: &Harness, agent_id: &str, tool: &str, input: &str) -> Value {
    // Exactly what the Python SDK sends.
    check(
        h,
        json!({
            "agent_id": agent_id,
            "session_id": "",
            "action_name": tool,
            "action_source": "api",
            "action_input_summary": input,
        }),
    )
}

fn assert_decision_shape(decision: &Value) {
    assert!(decision["allowed"].is_boolean(), "{decision}");
    assert!(
        decision["check_id"]
            .as_str()
            .is_some_and(|id| !id.is_empty()),
        "{decision}"
    );
    assert_eq!(decision["guard_tier"], "fast", "{decision}");
    assert!(
        decision["latency_ms"].is_i64() || decision["latency_ms"].is_u64(),
        "{decision}"
    );
    assert!(
        decision["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "{decision}"
    );
    let confidence = decision["confidence"].as_f64().expect("confidence");
    assert!(confidence > 0.0 && confidence <= 1.0, "{decision}");
    if decision["elevation_required"] == true {
        assert_eq!(decision["allowed"], false);
    }
    // Never null.
    for (key, value) in decision.as_object().unwrap() {
        assert!(
            !value.is_null() || key == "approval_id",
            "{key} is null: {decision}"
        );
    }
}

fn read_is_allowed(h: &Harness) {
    let agent = h.create_agent("reader", &["web:search"]);
    let checks_before = h.row_counts()["checks"];
    let decision = check_tool(h, agent["id"].as_str().unwrap(), "web_search", "rust async");
    assert_decision_shape(&decision);
    assert_eq!(decision["allowed"], true, "{decision}");
    assert_eq!(decision["effect"], "read", "{decision}");
    assert!(
        decision["confidence"].as_f64().unwrap() < 1.0,
        "a heuristic is not certain"
    );
    // The decision is recorded before the answer.
    assert_eq!(h.row_counts()["checks"], checks_before + 1);
    let stored = h
        .sql_integers(&format!(
            "SELECT COUNT(*) FROM checks WHERE id = '{}'",
            decision["check_id"].as_str().unwrap()
        ))
        .unwrap();
    assert_eq!(stored, vec![1]);
}

fn mutating_is_allowed(h: &Harness) {
    let agent = h.create_agent("mailer", &[]);
    let decision = check_tool(h, agent["id"].as_str().unwrap(), "send_email", "to bob");
    assert_decision_shape(&decision);
    assert_eq!(decision["allowed"], true, "{decision}");
    assert_eq!(decision["effect"], "mutating", "{decision}");
}

fn destructive_is_denied(h: &Harness) {
    let agent = h.create_agent("wrecker", &[]);
    let agent_id = agent["id"].as_str().unwrap();
    for (tool, input) in [
        ("delete_all", "delete everything"),
        ("shell", "rm -rf /"),
        ("sql", "DROP TABLE users"),
        ("tool_call", "delete everything"),
    ] {
        let decision = check_tool(h, agent_id, tool, input);
        assert_decision_shape(&decision);
        assert_eq!(decision["allowed"], false, "{tool} {input}: {decision}");
        assert_eq!(
            decision["effect"], "destructive",
            "{tool} {input}: {decision}"
        );
    }
}

fn admin_is_denied(h: &Harness) {
    let agent = h.create_agent("escalator", &[]);
    let agent_id = agent["id"].as_str().unwrap();
    for (tool, input) in [
        ("grant_role", "make me owner"),
        ("shell", "sudo su"),
        ("shell", "chmod 777 /etc/passwd"),
    ] {
        let decision = check_tool(h, agent_id, tool, input);
        assert_decision_shape(&decision);
        assert_eq!(decision["allowed"], false, "{tool} {input}: {decision}");
        assert_eq!(decision["effect"], "admin", "{tool} {input}: {decision}");
    }
}

fn a_stated_effect_raises_with_full_confidence_and_never_lowers(h: &Harness) {
    let agent = h.create_agent("explicit", &[]);
    let agent_id = agent["id"].as_str().unwrap();
    // A stated effect raises the classification with full confidence; it never lowers it.
    for (tool, stated, effect, allowed) in [
        ("delete_all", "read", "destructive", false),
        ("web_search", "destructive", "destructive", false),
        ("web_search", "admin", "admin", false),
        ("web_search", "mutating", "mutating", true),
    ] {
        let decision = check(
            h,
            json!({"agent_id": agent_id, "action_name": tool, "action_effect": stated}),
        );
        assert_decision_shape(&decision);
        assert_eq!(
            decision["allowed"], allowed,
            "{tool} as {stated}: {decision}"
        );
        assert_eq!(decision["effect"], effect, "{decision}");
        if stated == effect {
            assert_eq!(decision["confidence"].as_f64(), Some(1.0), "{decision}");
        }
    }
}

fn write_means_mutating(h: &Harness) {
    let agent = h.create_agent("writer", &[]);
    let decision = check(
        h,
        json!({"agent_id": agent["id"], "tool_name": "save_file", "action_effect": "write"}),
    );
    assert_eq!(decision["allowed"], true, "{decision}");
    assert_eq!(decision["effect"], "mutating", "{decision}");
    assert_eq!(decision["confidence"].as_f64(), Some(1.0));
}

fn unknown_agent_is_denied(h: &Harness) {
    let decision = check_tool(h, &uuid::Uuid::new_v4().to_string(), "web_search", "");
    assert_eq!(decision["allowed"], false, "{decision}");
    assert!(decision["reason"].as_str().is_some_and(|r| !r.is_empty()));
}

fn revoked_agent_is_denied(h: &Harness) {
    let agent = h.create_agent("retired", &[]);
    let agent_id = agent["id"].as_str().unwrap();
    assert_eq!(check_tool(h, agent_id, "web_search", "")["allowed"], true);
    h.post(
        &format!("/api/v1/agents/{agent_id}/revoke"),
        json!({"reason": "retired"}),
    )
    .ok();
    let decision = check_tool(h, agent_id, "web_search", "");
    assert_eq!(decision["allowed"], false, "{decision}");
    assert!(
        decision["reason"]
            .as_str()
            .unwrap_or("")
            .to_lowercase()
            .contains("revoked"),
        "{decision}"
    );
}

fn the_readme_path_is_served_too(h: &Harness) {
    let agent = h.create_agent("readme", &[]);
    let reply = h.post(
        "/api/v1/actions/check",
        json!({"agent_id": agent["id"], "action": "tool_call", "tool_name": "delete_all",
               "tool_input_summary": "delete everything", "session_id": "sess-1"}),
    );
    let decision = reply.ok();
    assert_eq!(decision["allowed"], false, "{decision}");
    assert_eq!(decision["effect"], "destructive", "{decision}");
}

fn session_counters_are_exact_under_concurrency(h: &Harness) {
    const CHECKERS: usize = 8;
    const ROUNDS: usize = 6;
    let agent = h.create_agent("busy", &[]);
    let agent_id = agent["id"].as_str().unwrap().to_string();
    let session = format!("sess-{}", uuid::Uuid::new_v4());
    // Each round: one read (allowed), one mutating (allowed), one destructive (elevation).
    let outcomes: Vec<(usize, usize)> = h.block_on(async {
        let client = reqwest::Client::new();
        let mut checkers = tokio::task::JoinSet::new();
        for _ in 0..CHECKERS {
            let client = client.clone();
            let url = format!("{}/api/v1/agenttrust/check", h.url);
            let key = h.admin_key.clone();
            let agent_id = agent_id.clone();
            let session = session.clone();
            checkers.spawn(async move {
                let (mut allowed, mut denied) = (0, 0);
                for _ in 0..ROUNDS {
                    for tool in ["web_search", "send_email", "delete_all"] {
                        let response = client
                            .post(&url)
                            .header("X-API-Key", &key)
                            .json(&json!({"agent_id": agent_id, "session_id": session,
                                          "action_name": tool}))
                            .send()
                            .await
                            .expect("check");
                        assert_eq!(response.status(), 200);
                        let decision: Value = response.json().await.expect("json");
                        if decision["allowed"] == true {
                            allowed += 1;
                        } else {
                            assert_eq!(decision["elevation_required"], true, "{decision}");
                            denied += 1;
                        }
                    }
                }
                (allowed, denied)
            });
        }
        let mut outcomes = Vec::new();
        while let Some(outcome) = checkers.join_next().await {
            outcomes.push(outcome.expect("checker"));
        }
        outcomes
    });
    let allowed: usize = outcomes.iter().map(|(allowed, _)| allowed).sum();
    let denied: usize = outcomes.iter().map(|(_, denied)| denied).sum();
    let total = CHECKERS * ROUNDS * 3;
    assert_eq!(
        (allowed, denied),
        (CHECKERS * ROUNDS * 2, CHECKERS * ROUNDS)
    );
    let counters = h
        .sql_integers(&format!(
            "SELECT CAST(total_calls AS BIGINT), CAST(read_calls AS BIGINT), \
             CAST(write_calls AS BIGINT), CAST(denied_calls AS BIGINT) \
             FROM sessions WHERE id = '{session}'"
        ))
        .expect("the session was created on first sight");
    let per_kind = (CHECKERS * ROUNDS) as i64;
    assert_eq!(counters[0], total as i64, "total_calls");
    assert_eq!(counters[1], per_kind, "read_calls");
    assert_eq!(
        counters[2],
        2 * per_kind,
        "write_calls: mutating and destructive"
    );
    // The destructive checks wait for a human: elevations are not denials (no lockout), and
    // every one of them, however concurrent, points at the same single pending approval.
    assert_eq!(counters[3], 0, "denied_calls");
    let approvals = h
        .sql_integers(&format!(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM approvals WHERE session_id = '{session}'"
        ))
        .expect("count approvals");
    assert_eq!(approvals[0], 1, "one pending approval for identical checks");
}
