//! The operator's flow of issue 3 through the real binary: write a policy file, validate it
//! offline, test it against the gateway, apply it, watch an agent's call in a session wait for a
//! human (exit 75 with the approval id), approve it from the CLI, and see the retried call
//! allowed. Also `approvals wait` (0 approved, 77 denied, 75 at the timeout) and the sessions
//! verbs.

use std::path::PathBuf;
use std::process::Stdio;

use serde_json::{Value, json};

use crate::harness::{self, Harness};
use crate::on_both_backends;

on_both_backends!(
    operator_flow_policy_to_approved_retry,
    policies_validate_is_offline_and_names_the_bad_rule,
    policies_set_needs_yes_and_refuses_a_stale_file,
    approvals_deny_and_decide_twice,
    approvals_wait_exits_by_outcome,
    sessions_verbs,
);

const POLICY: &str = r#"{
  "rules": [
    {"id": "deploys-need-a-human", "tools": ["deploy_*"], "decision": "require_approval",
     "reason": "deploys need a human"},
    {"id": "no-prod-sql", "tools": ["sql*"], "input": {"contains": ["prod"]}, "decision": "deny"}
  ],
  "defaults": {"read": "allow", "mutating": "allow", "destructive": "require_approval", "admin": "deny"},
  "approval_ttl_seconds": 600,
  "lockout_after_denials": 5
}
"#;

fn write_file(h: &Harness, name: &str, text: &str) -> PathBuf {
    let path = h.scratch.path().join(name);
    std::fs::write(&path, text).expect("write the file");
    path
}

fn agent(h: &Harness, name: &str) -> String {
    let created = h.run(&["agents", "create", "--name", name, "-q"]);
    created.success();
    created.value().to_string()
}

fn operator_flow_policy_to_approved_retry(h: &Harness) {
    let file = write_file(h, "policy.json", POLICY);
    let file = file.to_str().unwrap();
    let agent_id = agent(h, "deployer");

    // 1. Offline: no URL, no key.
    let valid = h.run_bare(&["policies", "validate", file]);
    valid.success();

    // 2. Against the gateway, with the file (nothing stored yet, nothing recorded).
    let counts = h.row_counts();
    let tested = h.run(&[
        "policies",
        "test",
        "--agent",
        &agent_id,
        "--tool",
        "deploy_prod",
        "--session",
        "sess-ops",
        "--file",
        file,
        "-o",
        "json",
    ]);
    // Exit status as `actions check`: 75, elevation required (but no approval is created).
    tested.code(75);
    let tested = tested.json();
    assert_eq!(tested["decision"]["elevation_required"], true, "{tested}");
    assert_eq!(tested["matched_rule"], "deploys-need-a-human", "{tested}");
    let table = h.run(&[
        "policies",
        "test",
        "--agent",
        &agent_id,
        "--tool",
        "sql_exec",
        "--input",
        "truncate prod.users",
        "--file",
        file,
    ]);
    table.code(77);
    assert!(table.stdout.contains("no-prod-sql"), "{}", table.stdout);
    assert_eq!(h.row_counts(), counts, "a policy test records nothing");

    // 3. Apply it.
    let set = h.run(&["policies", "set", file, "--yes"]);
    set.success();
    let stored = h.run(&["policies", "get"]);
    stored.success();
    let stored = stored.json();
    assert_eq!(stored["version"], 1, "{stored}");
    assert_eq!(stored["rules"][0]["id"], "deploys-need-a-human");
    // The stored policy now answers `policies test` without --file.
    let against_stored = h.run(&[
        "policies",
        "test",
        "--agent",
        &agent_id,
        "--tool",
        "deploy_prod",
        "-o",
        "json",
    ]);
    // Without a session nobody could approve: a plain denial.
    against_stored.code(77);
    assert_eq!(
        against_stored.json()["decision"]["rule"],
        "rule:deploys-need-a-human"
    );

    // 4. The agent's call in a session waits for a human: 75, with the approval id.
    let waiting = h.run(&[
        "actions",
        "check",
        "--agent",
        &agent_id,
        "--tool",
        "deploy_prod",
        "--input",
        "v2.1",
        "--session",
        "sess-ops",
    ]);
    waiting.code(75);
    let pending = h.get("/api/v1/approvals?status=pending").ok().clone();
    let approval_id = pending["approvals"][0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{pending}"))
        .to_string();
    assert!(
        waiting.stdout.contains(&approval_id) || waiting.stderr.contains(&approval_id),
        "the approval id is printed:\n{}\n{}",
        waiting.stdout,
        waiting.stderr
    );
    let as_json = h.run(&[
        "actions",
        "check",
        "--agent",
        &agent_id,
        "--tool",
        "deploy_prod",
        "--input",
        "v2.1",
        "--session",
        "sess-ops",
        "-o",
        "json",
    ]);
    as_json.code(75);
    assert_eq!(
        as_json.json()["approval_id"],
        approval_id.as_str(),
        "the same approval"
    );

    // The operator sees it.
    let listed = h.run(&["approvals", "list"]);
    listed.success();
    assert!(listed.stdout.contains(&approval_id), "{}", listed.stdout);
    let got = h.run(&["approvals", "get", &approval_id, "-o", "json"]);
    got.success();
    assert_eq!(got.json()["status"], "pending");
    assert_eq!(got.json()["action_name"], "deploy_prod");

    // 5. Approve it, retry: allowed.
    let approved = h.run(&[
        "approvals",
        "approve",
        &approval_id,
        "--yes",
        "--decided-by",
        "alice@example.com",
    ]);
    approved.success();
    let retried = h.run(&[
        "actions",
        "check",
        "--agent",
        &agent_id,
        "--tool",
        "deploy_prod",
        "--input",
        "v2.1",
        "--session",
        "sess-ops",
    ]);
    retried.success();
    let session = h.run(&["sessions", "get", "sess-ops", "-o", "json"]);
    session.success();
    assert_eq!(session.json()["mode"], "elevated", "{}", session.stdout);
    let decided = h.run(&["approvals", "get", &approval_id, "-o", "json"]);
    assert_eq!(decided.json()["status"], "approved");
    assert_eq!(decided.json()["decided_by"], "alice@example.com");

    // Without a session nobody can approve: a plain denial, as the README's tour says.
    h.run(&[
        "actions",
        "check",
        "--agent",
        &agent_id,
        "--tool",
        "delete_all",
        "--input",
        "delete everything",
    ])
    .code(77);
}

fn policies_validate_is_offline_and_names_the_bad_rule(h: &Harness) {
    let bad = write_file(
        h,
        "bad.json",
        r#"{"rules": [{"id": "ok", "decision": "allow"},
                      {"id": "broken-regex", "input": {"regex": ["(oops"]}, "decision": "deny"}]}"#,
    );
    let invalid = h.run_bare(&["policies", "validate", bad.to_str().unwrap()]);
    invalid.code(1);
    assert!(
        invalid.stderr.contains("broken-regex"),
        "{}",
        invalid.stderr
    );
    let duplicate = write_file(
        h,
        "duplicate.json",
        r#"{"rules": [{"id": "twice", "decision": "allow"}, {"id": "twice", "decision": "deny"}]}"#,
    );
    let refused = h.run_bare(&["policies", "validate", duplicate.to_str().unwrap()]);
    refused.code(1);
    assert!(refused.stderr.contains("twice"), "{}", refused.stderr);
    let not_json = write_file(h, "not.json", "rules: []\n");
    assert_ne!(
        h.run_bare(&["policies", "validate", not_json.to_str().unwrap()])
            .code,
        0
    );
    let missing = h.scratch.path().join("missing.json");
    assert_ne!(
        h.run_bare(&["policies", "validate", missing.to_str().unwrap()])
            .code,
        0
    );
    // From stdin.
    let stdin = harness::run(
        h.cli_bare()
            .args(["policies", "validate", "-"])
            .write_stdin(POLICY),
    );
    stdin.success();

    // `policies set` of an invalid file changes nothing.
    let counts = h.row_counts();
    let set = h.run(&["policies", "set", bad.to_str().unwrap(), "--yes"]);
    set.code(1);
    assert!(set.stderr.contains("broken-regex"), "{}", set.stderr);
    assert_eq!(h.row_counts(), counts);
    assert_eq!(h.get("/api/v1/policies").ok()["version"], 0);
}

fn policies_set_needs_yes_and_refuses_a_stale_file(h: &Harness) {
    let file = write_file(h, "policy.json", POLICY);
    let file = file.to_str().unwrap();
    let counts = h.row_counts();
    let refused = h.run(&["policies", "set", file]);
    assert_ne!(refused.code, 0, "set without --yes off a TTY");
    assert!(refused.stderr.contains("--yes"), "{}", refused.stderr);
    assert_eq!(h.row_counts(), counts);
    h.run(&["policies", "set", file, "--yes"]).success();
    let mut changed: Value = serde_json::from_str(POLICY).unwrap();
    changed["approval_ttl_seconds"] = json!(300);
    let changed = write_file(h, "changed.json", &changed.to_string());
    let set = h.run(&["policies", "set", changed.to_str().unwrap(), "--yes"]);
    set.success();
    assert!(
        set.stderr.contains("approval_ttl_seconds"),
        "the change is shown: {}",
        set.stderr
    );
    assert_eq!(h.get("/api/v1/policies").ok()["version"], 2);

    // A file naming an old version is a conflict (exit 1), nothing changed.
    let mut stale: Value = serde_json::from_str(POLICY).unwrap();
    stale["version"] = json!(1);
    stale["rules"] = json!([]);
    let stale = write_file(h, "stale.json", &stale.to_string());
    let conflict = h.run(&["policies", "set", stale.to_str().unwrap(), "--yes"]);
    conflict.code(1);
    assert_eq!(h.get("/api/v1/policies").ok()["version"], 2);
    assert_eq!(
        h.get("/api/v1/policies").ok()["rules"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

/// A check in a fresh session that needs an approval; returns the approval id.
fn pending_approval(h: &Harness, agent_id: &str, session: &str) -> String {
    let waiting = h.run(&[
        "actions",
        "check",
        "--agent",
        agent_id,
        "--tool",
        "delete_all",
        "--input",
        "delete everything",
        "--session",
        session,
        "-o",
        "json",
    ]);
    waiting.code(75);
    waiting.json()["approval_id"]
        .as_str()
        .expect("approval id")
        .to_string()
}

fn approvals_deny_and_decide_twice(h: &Harness) {
    let agent_id = agent(h, "denied");
    let approval_id = pending_approval(h, &agent_id, "sess-deny");
    h.run(&[
        "approvals",
        "deny",
        &approval_id,
        "--yes",
        "--decided-by",
        "bob",
    ])
    .success();
    let retried = h.run(&[
        "actions",
        "check",
        "--agent",
        &agent_id,
        "--tool",
        "delete_all",
        "--input",
        "delete everything",
        "--session",
        "sess-deny",
    ]);
    retried.code(77);
    assert!(
        retried.stdout.contains("bob") || retried.stderr.contains("bob"),
        "the decider is named: {} {}",
        retried.stdout,
        retried.stderr
    );
    // Deciding twice: a conflict (exit 1) with the gateway's message, and only that message.
    let twice = h.run(&["approvals", "approve", &approval_id, "--yes"]);
    twice.code(1);
    assert!(twice.stderr.contains("denied"), "{}", twice.stderr);
    assert!(twice.stderr.starts_with("error: "), "{}", twice.stderr);
    assert_eq!(twice.stderr.lines().count(), 1, "{}", twice.stderr);
    assert_eq!(twice.stdout, "");
    // Unknown approval: 3.
    h.run(&["approvals", "get", &uuid::Uuid::new_v4().to_string()])
        .code(3);
    h.run(&[
        "approvals",
        "approve",
        &uuid::Uuid::new_v4().to_string(),
        "--yes",
    ])
    .code(3);
    // Without --yes off a TTY: refused, nothing decided.
    let other = pending_approval(h, &agent_id, "sess-deny-2");
    let refused = h.run(&["approvals", "approve", &other]);
    assert_ne!(refused.code, 0);
    assert!(refused.stderr.contains("--yes"), "{}", refused.stderr);
    assert_eq!(
        h.get(&format!("/mcp/approvals/{other}")).ok()["status"],
        "pending"
    );
    let listed = h.run(&["approvals", "list", "--status", "denied", "-o", "json"]);
    listed.success();
    assert!(listed.stdout.contains(&approval_id), "{}", listed.stdout);
}

/// Starts `agenttrust approvals wait ID …` in the background.
fn spawn_wait(h: &Harness, args: &[&str]) -> std::process::Child {
    let mut command = std::process::Command::new(harness::binary());
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("AGENTTRUST_") {
            command.env_remove(name);
        }
    }
    command
        .env("AGENTTRUST_CONFIG_DIR", h.config_dir.path())
        .env("AGENTTRUST_URL", &h.url)
        .env("AGENTTRUST_API_KEY", &h.admin_key)
        .env("HOME", h.scratch.path())
        .env("NO_COLOR", "1")
        .arg("approvals")
        .arg("wait")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn approvals wait")
}

fn finish(child: std::process::Child) -> harness::Run {
    harness::Run::from(child.wait_with_output().expect("approvals wait"))
}

fn approvals_wait_exits_by_outcome(h: &Harness) {
    let agent_id = agent(h, "waiter");

    // Approved while waiting: 0.
    let approval_id = pending_approval(h, &agent_id, "sess-wait-1");
    let waiting = spawn_wait(
        h,
        &[&approval_id, "--timeout", "30s", "--interval", "100ms"],
    );
    h.post(
        &format!("/mcp/approvals/{approval_id}/approve"),
        json!({"decided_by": "alice"}),
    )
    .ok();
    let done = finish(waiting);
    done.success();
    assert!(done.stdout.contains("approved"), "{}", done.stdout);

    // Denied while waiting: 77.
    let approval_id = pending_approval(h, &agent_id, "sess-wait-2");
    let waiting = spawn_wait(
        h,
        &[&approval_id, "--timeout", "30s", "--interval", "100ms"],
    );
    h.post(
        &format!("/mcp/approvals/{approval_id}/deny"),
        json!({"decided_by": "bob"}),
    )
    .ok();
    let done = finish(waiting);
    done.code(77);
    assert!(done.stdout.contains("denied"), "{}", done.stdout);

    // Nobody decides: 75 at the timeout.
    let approval_id = pending_approval(h, &agent_id, "sess-wait-3");
    let started = std::time::Instant::now();
    let done = finish(spawn_wait(
        h,
        &[&approval_id, "--timeout", "1s", "--interval", "200ms"],
    ));
    done.code(75);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "the timeout is honoured"
    );
    assert_eq!(
        h.get(&format!("/mcp/approvals/{approval_id}")).ok()["status"],
        "pending"
    );

    // Already decided: immediate answer; expired: 1; unknown: 3.
    let approved = h.run(&["approvals", "wait", &approval_id, "--timeout", "1s"]);
    approved.code(75);
    h.expire_approval(&approval_id);
    h.run(&["approvals", "wait", &approval_id, "--timeout", "5s"])
        .code(1);
    h.run(&[
        "approvals",
        "wait",
        &uuid::Uuid::new_v4().to_string(),
        "--timeout",
        "5s",
    ])
    .code(3);
}

fn sessions_verbs(h: &Harness) {
    let agent_id = h
        .run(&[
            "agents",
            "create",
            "--name",
            "sessioned",
            "--capabilities",
            "web:search",
            "-q",
        ])
        .value()
        .to_string();
    let server = h.register_mcp_server("github");
    let init = h.run(&[
        "sessions", "init", "--agent", &agent_id, "--server", &server, "-q",
    ]);
    init.success();
    let session_id = init.value().to_string();
    assert!(!session_id.is_empty());
    let got = h.run(&["sessions", "get", &session_id, "-o", "json"]);
    got.success();
    let got = got.json();
    assert_eq!(got["source"], "mcp");
    assert_eq!(got["server_id"], server.as_str());
    assert_eq!(got["mode"], "standard");

    let token = h.run(&[
        "tokens",
        "issue",
        "--agent",
        &agent_id,
        "--scopes",
        "web:search",
        "-q",
    ]);
    token.success();
    let api = h.run(&["sessions", "init-api", token.value(), "-o", "json"]);
    api.success();
    assert_eq!(api.json()["source"], "api");
    assert_eq!(api.json()["scope_ceiling"], json!(["web:search"]));
    let from_stdin = harness::run(
        h.cli()
            .args(["sessions", "init-api", "-", "-q"])
            .write_stdin(format!("{}\n", token.value())),
    );
    from_stdin.success();
    h.run(&["sessions", "init-api", "at_bogus"]).code(4);

    let listed = h.run(&["sessions", "list", "--source", "mcp", "-o", "json"]);
    listed.success();
    assert!(listed.stdout.contains(&session_id), "{}", listed.stdout);
    let table = h.run(&["sessions", "list", "--agent", &agent_id]);
    table.success();
    assert!(table.stdout.contains(&session_id), "{}", table.stdout);

    h.run(&["sessions", "set-mode", &session_id, "read_only"])
        .success();
    let write = h.run(&[
        "actions",
        "check",
        "--agent",
        &agent_id,
        "--tool",
        "save_file",
        "--effect",
        "mutating",
        "--session",
        &session_id,
    ]);
    write.code(75);
    h.run(&["sessions", "set-mode", &session_id, "locked"])
        .success();
    let locked = h.run(&["sessions", "list", "--mode", "locked", "-q"]);
    locked.success();
    assert_eq!(locked.value(), session_id);
    h.run(&[
        "actions",
        "check",
        "--agent",
        &agent_id,
        "--tool",
        "save_file",
        "--effect",
        "mutating",
        "--session",
        &session_id,
    ])
    .code(77);
    h.run(&["sessions", "unlock", &session_id]).success();
    assert_eq!(
        h.get(&format!("/mcp/sessions/{session_id}")).ok()["mode"],
        "standard"
    );
    h.run(&[
        "actions",
        "check",
        "--agent",
        &agent_id,
        "--tool",
        "save_file",
        "--effect",
        "mutating",
        "--session",
        &session_id,
    ])
    .success();

    // Bad input.
    h.run(&["sessions", "set-mode", &session_id, "bogus"])
        .code(2);
    h.run(&["sessions", "get", &uuid::Uuid::new_v4().to_string()])
        .code(3);
    let (_, other_key) = h.other_org("globex");
    let foreign = harness::run(h.cli().env("AGENTTRUST_API_KEY", &other_key).args([
        "sessions",
        "get",
        &session_id,
    ]));
    foreign.code(3);
}
