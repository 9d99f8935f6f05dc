//! The binary's basics: `health`, `status`, usage errors, and the exit code of every failure
//! class (1 gateway error, 2 usage, 3 not found, 4 authentication, 69 unreachable).

use serde_json::Value;

use crate::harness::{Harness, run};
use crate::on_both_backends;

on_both_backends!(
    health_prints_the_gateway_status,
    status_reports_profile_url_and_key,
    not_found_exits_3,
    bad_key_exits_4,
    missing_key_exits_4,
    gateway_validation_error_exits_1,
    unreachable_gateway_exits_69,
    errors_are_json_on_stderr_with_output_json,
);

/// A URL where nothing listens: a port bound and released at once.
fn closed_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

fn health_prints_the_gateway_status(h: &Harness) {
    let table = h.run(&["health"]);
    table.success();
    assert!(table.stdout.contains("healthy"), "{}", table.stdout);
    let json = h.run(&["health", "-o", "json"]);
    json.success();
    let body = json.json();
    assert_eq!(body["status"], "healthy");
    assert!(body["version"].is_string(), "{body}");
    // `-o json` prints what the gateway returned, dropping nothing.
    let direct = h.get("/health").ok().clone();
    for key in direct.as_object().unwrap().keys() {
        assert!(body.get(key).is_some(), "`{key}` dropped: {body}");
    }
}

fn status_reports_profile_url_and_key(h: &Harness) {
    let run = h.run(&["status", "-o", "json"]);
    run.success();
    let status = run.json();
    let text = status.to_string();
    assert!(text.contains(&h.url), "{status}");
    assert!(text.contains("healthy"), "{status}");
    assert!(
        !text.contains(&h.admin_key),
        "status never prints the key: {status}"
    );
    // The key's role and org: an admin key names its org; a runtime key, which may not list
    // the org's keys, only its role.
    assert_eq!(status["api_key_role"], "admin");
    assert_eq!(status["org_id"], h.org_id.as_str());
    let table = h.run(&["status"]);
    table.success();
    assert!(table.stdout.contains(&h.url), "{}", table.stdout);
    assert!(
        table.stdout.contains("api_key_role\tadmin\n"),
        "{}",
        table.stdout
    );
    assert!(
        table.stdout.contains(&format!("org_id\t{}\n", h.org_id)),
        "{}",
        table.stdout
    );
    let (runtime, _) = h.new_key(agenttrust::api::keys::Role::Runtime);
    let as_runtime = crate::harness::run(
        h.cli()
            .env("AGENTTRUST_API_KEY", &runtime)
            .args(["status", "-o", "json"]),
    );
    as_runtime.success();
    assert_eq!(as_runtime.json()["api_key_role"], "runtime");
    assert_eq!(as_runtime.json().get("org_id"), None);

    let bad = h
        .cli()
        .env("AGENTTRUST_API_KEY", "sk_live_wrong")
        .arg("status")
        .output()
        .unwrap();
    assert_ne!(
        bad.status.code(),
        Some(0),
        "a rejected key is not a healthy status"
    );
}

fn not_found_exits_3(h: &Harness) {
    let unknown = uuid::Uuid::new_v4().to_string();
    let run = h.run(&["agents", "get", &unknown]);
    run.code(3);
    assert!(run.stdout.is_empty(), "errors go to stderr: {}", run.stdout);
    assert!(run.stderr.starts_with("error:"), "{}", run.stderr);
    h.run(&["agents", "revoke", &unknown, "--yes"]).code(3);
    h.run(&["keys", "revoke", &unknown, "--yes"]).code(3);
}

fn bad_key_exits_4(h: &Harness) {
    let run = run(h
        .cli()
        .env("AGENTTRUST_API_KEY", "sk_live_not_a_real_key")
        .args(["agents", "list"]));
    run.code(4);
    assert!(run.stderr.contains("error:"), "{}", run.stderr);
    assert!(
        run.stderr.contains("hint:"),
        "a fix is suggested: {}",
        run.stderr
    );
}

fn missing_key_exits_4(h: &Harness) {
    let run = run(h
        .cli_bare()
        .env("AGENTTRUST_URL", &h.url)
        .args(["agents", "list"]));
    run.code(4);
    assert!(run.stderr.contains("login"), "{}", run.stderr);
}

fn gateway_validation_error_exits_1(h: &Harness) {
    let run = h.run(&["agents", "create", "--name", "dup"]);
    run.success();
    let before = h.row_counts();
    let again = h.run(&["agents", "create", "--name", "dup"]);
    again.code(1);
    assert!(again.stderr.starts_with("error:"), "{}", again.stderr);
    let agent = h.run(&[
        "agents",
        "create",
        "--name",
        "scoped",
        "--capabilities",
        "web:search",
        "-q",
    ]);
    agent.success();
    let before_issue = h.row_counts();
    let issue = h.run(&[
        "tokens",
        "issue",
        "--agent",
        agent.value(),
        "--scopes",
        "files:write",
    ]);
    issue.code(1);
    assert!(issue.stderr.contains("files:write"), "{}", issue.stderr);
    assert_eq!(h.row_counts(), before_issue);
    assert_eq!(before["agents"] + 1, before_issue["agents"]);
}

fn unreachable_gateway_exits_69(h: &Harness) {
    let url = closed_url();
    for args in [
        &["health"][..],
        &["agents", "list"][..],
        &["actions", "check", "--agent", "a", "--tool", "web_search"][..],
    ] {
        let run = run(h.cli().env("AGENTTRUST_URL", &url).args(args));
        run.code(69);
        assert!(run.stderr.contains("error:"), "{}", run.stderr);
    }
    // `--url` wins over the environment.
    run(h
        .cli()
        .env("AGENTTRUST_URL", &h.url)
        .args(["--url", &url, "health"]))
    .code(69);
}

fn errors_are_json_on_stderr_with_output_json(h: &Harness) {
    let unknown = uuid::Uuid::new_v4().to_string();
    let outcome = h.run(&["agents", "get", &unknown, "-o", "json"]);
    outcome.code(3);
    assert!(outcome.stdout.trim().is_empty(), "{}", outcome.stdout);
    let error: Value = outcome.stderr_json();
    assert_eq!(error["error"]["status"], 404, "{error}");
    assert!(error["error"]["code"].is_string(), "{error}");
    assert!(
        error["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{error}"
    );
    let unreachable = run(h
        .cli()
        .env("AGENTTRUST_URL", closed_url())
        .args(["health", "-o", "json"]));
    unreachable.code(69);
    let error = unreachable.stderr_json();
    assert!(error["error"]["message"].is_string(), "{error}");
}
