//! Every verb of the backbone through the binary: agents, tokens, actions (exit 77 on a denial),
//! telemetry and keys, with `-q` printing the primary value and `-o json` keeping every field.

use serde_json::Value;

use crate::harness::{Harness, run};
use crate::on_both_backends;

on_both_backends!(
    agents_create_list_get_revoke,
    tokens_issue_introspect_revoke,
    actions_check_allows_and_denies,
    telemetry_report_and_list,
    keys_create_list_revoke,
    destructive_verbs_need_yes_without_a_tty,
);

fn agents_create_list_get_revoke(h: &Harness) {
    let created = h.run(&[
        "agents",
        "create",
        "--name",
        "demo",
        "--capabilities",
        "web:search,files:read",
        "--framework",
        "langchain",
        "-o",
        "json",
    ]);
    created.success();
    let agent = created.json();
    let id = agent["id"].as_str().expect("id").to_string();
    assert_eq!(agent["name"], "demo");
    assert_eq!(agent["framework"], "langchain");
    assert_eq!(agent["status"], "active");
    assert_eq!(agent["org_id"], Value::from(h.org_id.clone()));
    assert_eq!(
        agent["capabilities"],
        serde_json::json!(["web:search", "files:read"])
    );
    assert!(agent["created_at"].is_string());
    // Stored, as the gateway says.
    assert_eq!(h.get(&format!("/api/v1/agents/{id}")).ok()["name"], "demo");

    // Repeated --capabilities is the same as comma-separated.
    let quiet = h.run(&[
        "agents",
        "create",
        "--name",
        "second",
        "--capabilities",
        "a",
        "--capabilities",
        "b",
        "-q",
    ]);
    quiet.success();
    let second = quiet.value().to_string();
    assert!(
        uuid::Uuid::parse_str(&second).is_ok(),
        "-q prints only the id: {:?}",
        quiet.stdout
    );
    assert_eq!(
        h.get(&format!("/api/v1/agents/{second}")).ok()["capabilities"],
        serde_json::json!(["a", "b"])
    );

    let table = h.run(&["agents", "list"]);
    table.success();
    assert!(
        table.stdout.contains("demo") && table.stdout.contains(&id),
        "{}",
        table.stdout
    );
    let listed = h.run(&["agents", "list", "-o", "json"]);
    listed.success();
    assert_eq!(listed.json()["agents"].as_array().unwrap().len(), 2);
    let ids = h.run(&["agents", "list", "-q"]);
    ids.success();
    let mut lines: Vec<&str> = ids.stdout.lines().collect();
    lines.sort();
    let mut expected = vec![id.as_str(), second.as_str()];
    expected.sort();
    assert_eq!(lines, expected);

    let got = h.run(&["agents", "get", &id, "-o", "json"]);
    got.success();
    assert_eq!(got.json()["id"], Value::from(id.clone()));
    let got_table = h.run(&["agents", "get", &id]);
    got_table.success();
    assert!(
        got_table.stdout.contains("web:search"),
        "{}",
        got_table.stdout
    );

    h.run(&["agents", "revoke", &id, "--yes", "--reason", "test over"])
        .success();
    assert_eq!(
        h.get(&format!("/api/v1/agents/{id}")).ok()["status"],
        "revoked"
    );
    let shown = h.run(&["agents", "get", &id, "-o", "json"]);
    assert_eq!(shown.json()["status"], "revoked");
}

fn tokens_issue_introspect_revoke(h: &Harness) {
    let agent = h.run(&[
        "agents",
        "create",
        "--name",
        "tok",
        "--capabilities",
        "web:search",
        "-q",
    ]);
    agent.success();
    let agent_id = agent.value().to_string();

    let quiet = h.run(&[
        "tokens",
        "issue",
        "--agent",
        &agent_id,
        "--scopes",
        "web:search",
        "--ttl",
        "5m",
        "-q",
    ]);
    quiet.success();
    let token = quiet.value().to_string();
    assert!(
        token.starts_with("at_") && !token.contains(char::is_whitespace),
        "{token:?}"
    );
    let introspected = h.post(
        "/api/v1/agent-tokens/introspect",
        serde_json::json!({"token": token, "required_scopes": []}),
    );
    let body = introspected.ok();
    assert_eq!(body["active"], true);
    let ttl = agenttrust::api::time::parse(body["expires_at"].as_str().unwrap()).unwrap()
        - agenttrust::api::time::now();
    assert!((290..=300).contains(&ttl), "--ttl 5m is 300 s: {ttl}");

    let issued = h.run(&[
        "tokens",
        "issue",
        "--agent",
        &agent_id,
        "--scopes",
        "web:search",
        "--ttl",
        "60",
        "-o",
        "json",
    ]);
    issued.success();
    let issued = issued.json();
    assert_eq!(issued["agent_id"], Value::from(agent_id.clone()));
    assert!(
        issued["expires_at"].is_string() && issued["token_id"].is_string(),
        "{issued}"
    );

    let active = h.run(&["tokens", "introspect", &token, "-o", "json"]);
    active.success();
    let active = active.json();
    assert_eq!(active["active"], true);
    assert_eq!(active["agent_id"], Value::from(agent_id.clone()));
    let table = h.run(&["tokens", "introspect", &token]);
    table.success();
    assert!(
        table.stdout.contains("true") || table.stdout.contains("active"),
        "{}",
        table.stdout
    );

    h.run(&["tokens", "revoke", &token, "--yes"]).success();
    let inactive = h.run(&["tokens", "introspect", &token, "-o", "json"]);
    assert_eq!(inactive.json()["active"], false, "{}", inactive.stdout);
    assert!(
        inactive.json()["reasoning"]
            .as_str()
            .unwrap_or("")
            .to_lowercase()
            .contains("revoked")
    );
    assert_eq!(
        h.post(
            "/api/v1/agent-tokens/introspect",
            serde_json::json!({"token": token})
        )
        .ok()["active"],
        false
    );
}

fn actions_check_allows_and_denies(h: &Harness) {
    let agent = h.run(&["agents", "create", "--name", "guarded", "-q"]);
    agent.success();
    let agent_id = agent.value().to_string();
    let checks_before = h.row_counts()["checks"];

    let allowed = h.run(&[
        "actions",
        "check",
        "--agent",
        &agent_id,
        "--tool",
        "web_search",
        "--input",
        "rust news",
        "--session",
        "sess-cli",
        "-o",
        "json",
    ]);
    allowed.success();
    let decision = allowed.json();
    assert_eq!(decision["allowed"], true);
    assert!(
        decision["check_id"].is_string() && decision["guard_tier"].is_string(),
        "{decision}"
    );

    let denied = h.run(&[
        "actions",
        "check",
        "--agent",
        &agent_id,
        "--tool",
        "delete_all",
        "--input",
        "delete everything",
        "--session",
        "sess-cli",
    ]);
    // In a session, a destructive call waits for a human: elevation, never an allow.
    denied.code(75);
    assert!(
        denied.stderr.contains("agenttrust approvals approve"),
        "the elevation says how to approve: {} {}",
        denied.stdout,
        denied.stderr
    );
    // -o json changes the output, never the exit code.
    let denied_json = h.run(&[
        "actions",
        "check",
        "--agent",
        &agent_id,
        "--tool",
        "delete_all",
        "--input",
        "delete everything",
        "-o",
        "json",
    ]);
    denied_json.code(77);
    assert_eq!(denied_json.json()["allowed"], false);
    // An explicit effect.
    let explicit = h.run(&[
        "actions",
        "check",
        "--agent",
        &agent_id,
        "--tool",
        "web_search",
        "--effect",
        "destructive",
        "-q",
    ]);
    explicit.code(77);
    let write = h.run(&[
        "actions", "check", "--agent", &agent_id, "--tool", "save", "--effect", "write",
    ]);
    write.success();
    // A bad effect is a usage error, never a denial.
    h.run(&[
        "actions", "check", "--agent", &agent_id, "--tool", "x", "--effect", "harmless",
    ])
    .code(2);
    // An unknown agent is a denial (77), not an error.
    h.run(&[
        "actions",
        "check",
        "--agent",
        &uuid::Uuid::new_v4().to_string(),
        "--tool",
        "web_search",
    ])
    .code(77);

    assert_eq!(h.row_counts()["checks"], checks_before + 6);
    let counters = h
        .sql_integers(
            "SELECT CAST(total_calls AS BIGINT), CAST(denied_calls AS BIGINT) FROM sessions WHERE id = 'sess-cli'",
        )
        .expect("session created");
    // The elevation is not a hard denial: it does not count towards the lockout.
    assert_eq!(counters, vec![2, 0]);
}

fn telemetry_report_and_list(h: &Harness) {
    let agent = h.run(&["agents", "create", "--name", "reporter", "-q"]);
    agent.success();
    let agent_id = agent.value().to_string();
    let reported = h.run(&[
        "telemetry",
        "report",
        "--agent",
        &agent_id,
        "--session",
        "sess-t",
        "--event-type",
        "tool_end",
        "--tool",
        "web_search",
        "--duration-ms",
        "120",
        "--success",
        "-o",
        "json",
    ]);
    reported.success();
    assert_eq!(
        reported.json()["events_processed"],
        1,
        "{}",
        reported.stdout
    );
    h.run(&[
        "telemetry",
        "report",
        "--agent",
        &agent_id,
        "--session",
        "sess-t",
        "--event-type",
        "tool_error",
        "--tool",
        "web_search",
        "--error-type",
        "Timeout",
    ])
    .success();
    assert_eq!(h.row_counts()["telemetry_events"], 2);

    let listed = h.run(&["telemetry", "list", "--agent", &agent_id, "-o", "json"]);
    listed.success();
    let page = listed.json();
    let events = page["events"].as_array().expect("events");
    assert_eq!(events.len(), 2, "{page}");
    assert!(
        events
            .iter()
            .any(|e| e["event_type"] == "tool_error" && e["success"] == false)
    );
    let stored = h
        .get(&format!("/api/v1/telemetry/events?agent_id={agent_id}"))
        .ok()
        .clone();
    let end = stored["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event_type"] == "tool_end")
        .cloned()
        .expect("tool_end stored");
    assert_eq!(end["duration_ms"], 120);
    assert_eq!(end["success"], true);
    assert_eq!(end["session_id"], "sess-t");
    // One event per page, every page followed.
    let all = h.run(&[
        "telemetry",
        "list",
        "--agent",
        &agent_id,
        "--limit",
        "1",
        "--all",
        "-q",
    ]);
    all.success();
    assert_eq!(all.stdout.lines().count(), 2, "{}", all.stdout);
    let by_session = h.run(&["telemetry", "list", "--session", "nope", "-o", "json"]);
    by_session.success();
    assert_eq!(by_session.json()["events"].as_array().unwrap().len(), 0);
    let table = h.run(&["telemetry", "list", "--agent", &agent_id]);
    table.success();
    assert!(table.stdout.contains("web_search"), "{}", table.stdout);
}

fn keys_create_list_revoke(h: &Harness) {
    let created = h.run(&[
        "keys", "create", "--role", "runtime", "--name", "worker", "-o", "json",
    ]);
    created.success();
    let key = created.json();
    let secret = key["key"]
        .as_str()
        .expect("the secret is shown once")
        .to_string();
    let id = key["id"].as_str().unwrap().to_string();
    assert!(secret.starts_with("sk_live_"));
    assert_eq!(key["role"], "runtime");

    let quiet = h.run(&["keys", "create", "--role", "admin", "--name", "ops", "-q"]);
    quiet.success();
    assert!(
        quiet.value().starts_with("sk_live_"),
        "-q prints the secret: {:?}",
        quiet.stdout
    );

    // The runtime key may check but not administer.
    let agent = h.run(&["agents", "create", "--name", "k", "-q"]);
    let agent_id = agent.value().to_string();
    run(h.cli().env("AGENTTRUST_API_KEY", &secret).args([
        "actions",
        "check",
        "--agent",
        &agent_id,
        "--tool",
        "web_search",
    ]))
    .success();
    let forbidden = run(h
        .cli()
        .env("AGENTTRUST_API_KEY", &secret)
        .args(["agents", "create", "--name", "nope"]));
    forbidden.code(4);

    let listed = h.run(&["keys", "list"]);
    listed.success();
    assert!(
        listed.stdout.contains("worker") && listed.stdout.contains(&id),
        "{}",
        listed.stdout
    );
    assert!(!listed.stdout.contains(&secret), "never the secret");
    let json = h.run(&["keys", "list", "-o", "json"]);
    assert_eq!(json.json()["keys"].as_array().unwrap().len(), 3);

    h.run(&["keys", "revoke", &id, "--yes"]).success();
    run(h.cli().env("AGENTTRUST_API_KEY", &secret).args([
        "actions",
        "check",
        "--agent",
        &agent_id,
        "--tool",
        "web_search",
    ]))
    .code(4);
}

fn destructive_verbs_need_yes_without_a_tty(h: &Harness) {
    let agent = h.run(&["agents", "create", "--name", "careful", "-q"]);
    let agent_id = agent.value().to_string();
    let token = h.run(&["tokens", "issue", "--agent", &agent_id, "-q"]);
    token.success();
    let (_, key_id) = h.new_key(agenttrust::api::keys::Role::Runtime);
    let before = h.row_counts();
    for args in [
        vec!["agents", "revoke", agent_id.as_str()],
        vec!["tokens", "revoke", token.value()],
        vec!["keys", "revoke", key_id.as_str()],
    ] {
        let refused = h.run(&args);
        assert_ne!(refused.code, 0, "{args:?} ran without --yes");
        assert_ne!(refused.code, 77);
        assert!(
            refused.stderr.contains("--yes"),
            "{args:?}: {}",
            refused.stderr
        );
    }
    assert_eq!(h.row_counts(), before);
    assert_eq!(
        h.get(&format!("/api/v1/agents/{agent_id}")).ok()["status"],
        "active"
    );
}
