//! Bad input straight to the gateway: every rejection is a JSON error body with the right status,
//! and nothing in the database changes.

use reqwest::Method;
use serde_json::json;

use crate::harness::Harness;
use crate::on_both_backends;

on_both_backends!(
    malformed_json_is_400,
    missing_fields_are_400,
    mistyped_fields_are_400,
    unknown_ids_are_404,
    oversized_body_is_413,
    unknown_route_is_json_404,
    get_with_content_type_and_no_body_is_accepted,
    nul_characters_are_400_everywhere,
);

/// A NUL character cannot be stored in PostgreSQL text: it is refused at the door on every
/// route (body, query string, path), never a 500, and never a failed write that would roll back
/// other requests' writes sharing its transaction. The agent picks its own input summary and
/// session id, so this is an agent's input too.
fn nul_characters_are_400_everywhere(h: &Harness) {
    let agent = h.create_agent("nul", &[]);
    let agent_id = agent["id"].as_str().unwrap();
    let before = h.row_counts();
    let bodies = [
        (
            "/api/v1/agenttrust/check",
            json!({"agent_id": agent_id, "action_name": "read_file",
                   "action_input_summary": "a\u{0}b", "session_id": "s-nul"}),
        ),
        (
            "/api/v1/agenttrust/check",
            json!({"agent_id": agent_id, "action_name": "read_file",
                   "input_summary": "ok", "session_id": "s\u{0}"}),
        ),
        (
            "/api/v1/telemetry/report",
            json!({"agent_id": agent_id, "events": [{"event_type": "tool_call",
                   "tool_name": "read_file", "success": false, "error_type": "x\u{0}y"}]}),
        ),
        (
            "/api/v1/agents",
            json!({"name": "n", "description": "d\u{0}"}),
        ),
    ];
    for (path, body) in bodies {
        // serde_json writes U+0000 as the escape `\u0000`, which is what a client sends.
        let text = body.to_string();
        assert!(text.contains("\\u0000"), "{text}");
        let reply = h.raw(
            Method::POST,
            path,
            &[
                ("X-API-Key", h.admin_key.clone()),
                ("Content-Type", "application/json".to_string()),
            ],
            Some(text.into_bytes()),
        );
        assert_eq!(reply.expect_error(400), "VALIDATION_ERROR");
        assert!(
            reply.message().contains("NUL"),
            "{path}: {}",
            reply.message()
        );
    }
    // An escaped backslash followed by the letters is text, not a NUL.
    let literal = json!({"agent_id": agent_id, "action_name": "read_file",
                         "action_input_summary": "C:\\u0000dir"});
    assert_eq!(
        h.post("/api/v1/agenttrust/check", literal).ok()["allowed"],
        true
    );
    let after_literal = h.row_counts();
    assert_eq!(after_literal["checks"], before["checks"] + 1);

    for path in [
        "/api/v1/agents?name_prefix=a%00".to_string(),
        format!("/api/v1/agents/{agent_id}%00"),
        "/api/v1/sessions/s%00".to_string(),
    ] {
        let reply = h.get(&path);
        assert_eq!(reply.expect_error(400), "VALIDATION_ERROR");
        assert!(
            reply.message().contains("NUL"),
            "{path}: {}",
            reply.message()
        );
    }
    assert_eq!(h.row_counts(), after_literal);
}

fn malformed_json_is_400(h: &Harness) {
    h.create_agent("existing", &[]);
    let before = h.row_counts();
    for path in [
        "/api/v1/agents",
        "/api/v1/agent-tokens/issue",
        "/api/v1/agent-tokens/introspect",
        "/api/v1/agenttrust/check",
        "/api/v1/telemetry/report",
        "/api/v1/keys",
    ] {
        for body in [&b"{\"name\": "[..], b"not json", b"[1, 2"] {
            let reply = h.raw(
                Method::POST,
                path,
                &[
                    ("X-API-Key", h.admin_key.clone()),
                    ("Content-Type", "application/json".to_string()),
                ],
                Some(body.to_vec()),
            );
            reply.expect_error(400);
        }
    }
    assert_eq!(h.row_counts(), before);
}

fn missing_fields_are_400(h: &Harness) {
    let agent = h.create_agent("present", &[]);
    let agent_id = agent["id"].as_str().unwrap();
    let before = h.row_counts();
    let cases = [
        ("/api/v1/agents", json!({"framework": "custom"})),
        ("/api/v1/agents", json!({"name": ""})),
        ("/api/v1/agent-tokens/issue", json!({"scopes": ["a"]})),
        ("/api/v1/agent-tokens/introspect", json!({"target": null})),
        ("/api/v1/agent-tokens/revoke", json!({"reason": "x"})),
        (
            "/api/v1/agenttrust/check",
            json!({"action_name": "web_search"}),
        ),
        (
            "/api/v1/telemetry/report",
            json!({"session_id": "s", "events": [{"event_type": "tool_end"}]}),
        ),
        (
            "/api/v1/telemetry/report",
            json!({"agent_id": agent_id, "events": [{"tool_name": "x"}]}),
        ),
        ("/api/v1/keys", json!({"name": "no role"})),
    ];
    for (path, body) in cases {
        let reply = h.post(path, body.clone());
        assert_eq!(reply.status, 400, "{path} {body}: {}", reply.text);
        reply.expect_error(400);
    }
    assert_eq!(h.row_counts(), before);
}

fn mistyped_fields_are_400(h: &Harness) {
    let agent = h.create_agent("typed", &["web:search"]);
    let agent_id = agent["id"].as_str().unwrap();
    let before = h.row_counts();
    let cases = [
        ("/api/v1/agents", json!({"name": 42})),
        (
            "/api/v1/agents",
            json!({"name": "x", "capabilities": "web:search"}),
        ),
        ("/api/v1/agents", json!({"name": "x", "metadata": [1]})),
        ("/api/v1/agents", json!({"name": "x", "framework": "cobol"})),
        (
            "/api/v1/agent-tokens/issue",
            json!({"agent_id": agent_id, "scopes": ["web:search"], "ttl": "long"}),
        ),
        (
            "/api/v1/agent-tokens/issue",
            json!({"agent_id": agent_id, "scopes": "web:search"}),
        ),
        (
            "/api/v1/agent-tokens/issue",
            json!({"agent_id": agent_id, "scopes": ["web:search"], "ttl": -5}),
        ),
        ("/api/v1/agent-tokens/introspect", json!({"token": 7})),
        (
            "/api/v1/agenttrust/check",
            json!({"agent_id": agent_id, "action_name": "web_search", "action_effect": "harmless"}),
        ),
        (
            "/api/v1/agenttrust/check",
            json!({"agent_id": agent_id, "action_name": ["web_search"]}),
        ),
        (
            "/api/v1/telemetry/report",
            json!({"agent_id": agent_id, "events": {"event_type": "tool_end"}}),
        ),
        ("/api/v1/keys", json!({"role": "superuser"})),
    ];
    for (path, body) in cases {
        let reply = h.post(path, body.clone());
        assert_eq!(reply.status, 400, "{path} {body}: {}", reply.text);
        reply.expect_error(400);
    }
    assert_eq!(h.row_counts(), before);
}

fn unknown_ids_are_404(h: &Harness) {
    let agent = h.create_agent("known", &[]);
    assert!(agent["id"].is_string());
    let before = h.row_counts();
    let unknown = uuid::Uuid::new_v4().to_string();
    for id in [unknown.as_str(), "not-a-uuid"] {
        h.get(&format!("/api/v1/agents/{id}")).expect_error(404);
        h.post(
            &format!("/api/v1/agents/{id}/revoke"),
            json!({"reason": "x"}),
        )
        .expect_error(404);
        h.post(
            "/api/v1/agent-tokens/issue",
            json!({"agent_id": id, "scopes": [], "ttl": 60}),
        )
        .expect_error(404);
        h.request(Method::DELETE, &format!("/api/v1/keys/{id}"), None)
            .expect_error(404);
    }
    assert_eq!(h.row_counts(), before);
}

fn oversized_body_is_413(h: &Harness) {
    let before = h.row_counts();
    let padding = "x".repeat(1024 * 1024 + 1);
    let body = json!({"name": "big", "metadata": {"padding": padding}}).to_string();
    let reply = h.raw(
        Method::POST,
        "/api/v1/agents",
        &[
            ("X-API-Key", h.admin_key.clone()),
            ("Content-Type", "application/json".to_string()),
        ],
        Some(body.into_bytes()),
    );
    reply.expect_error(413);
    assert_eq!(h.row_counts(), before);
}

fn unknown_route_is_json_404(h: &Harness) {
    h.get("/api/v1/no-such-thing").expect_error(404);
}

fn get_with_content_type_and_no_body_is_accepted(h: &Harness) {
    // Every SDK sends `Content-Type: application/json` on GET too.
    let reply = h.raw(
        Method::GET,
        "/api/v1/agents",
        &[
            ("x-api-key", h.admin_key.clone()),
            ("Content-Type", "application/json".to_string()),
        ],
        None,
    );
    assert!(reply.ok()["agents"].is_array(), "{}", reply.text);
}
