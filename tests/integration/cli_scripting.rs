//! The scripting path, exact to the byte (issue 16 items 1–4; issue 8 "exit outcomes are
//! values"): how each outcome of a verb is reported — exit code, the one `error:`/`hint:` pair,
//! or one JSON object on stderr under `-o json` — what `-q` prints for each outcome, and that
//! `AGENTTRUST_OUTPUT=json` never corrupts what `guard` writes for the shell.

use serde_json::Value;

use crate::harness::{self, Harness, Run};
use crate::on_both_backends;

on_both_backends!(
    outcomes_are_reported_once_in_the_chosen_format,
    quiet_check_prints_what_the_next_command_needs,
);

const POLICY: &str = r#"{
  "rules": [
    {"id": "deploys-need-a-human", "tools": ["deploy_*"], "decision": "require_approval",
     "reason": "deploys need a human"}
  ],
  "defaults": {"read": "allow", "mutating": "allow", "destructive": "require_approval", "admin": "deny"}
}"#;

/// A fresh agent under the test policy.
fn setup(h: &Harness, name: &str) -> String {
    h.put_policy(serde_json::from_str(POLICY).unwrap());
    h.create_agent(name, &[])["id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn check(h: &Harness, agent_id: &str, extra: &[&str]) -> Run {
    let mut args = vec!["actions", "check", "--agent", agent_id];
    args.extend_from_slice(extra);
    h.run(&args)
}

/// The pending approvals of a session.
fn approvals_of(h: &Harness, session: &str) -> Vec<Value> {
    h.get(&format!("/api/v1/approvals?session_id={session}"))
        .ok()["approvals"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn outcomes_are_reported_once_in_the_chosen_format(h: &Harness) {
    let agent_id = setup(h, "reporter");

    // A denial in table mode: the record on stdout, one `error:` line naming the tool on stderr.
    let denied = check(h, &agent_id, &["--tool", "drop_users", "--effect", "admin"]);
    denied.code(77);
    assert!(
        denied.stdout.contains("allowed\tfalse"),
        "{}",
        denied.stdout
    );
    assert_eq!(denied.stderr.lines().count(), 1, "{}", denied.stderr);
    assert!(
        denied
            .stderr
            .starts_with("error: action denied: `drop_users`: "),
        "{}",
        denied.stderr
    );

    // The same under -o json: the decision is the one document on stdout, the outcome one JSON
    // object on stderr with its machine code.
    let denied = check(
        h,
        &agent_id,
        &["--tool", "drop_users", "--effect", "admin", "-o", "json"],
    );
    denied.code(77);
    assert_eq!(denied.json()["allowed"], false);
    assert_eq!(denied.stderr.lines().count(), 1, "{}", denied.stderr);
    let report = denied.stderr_json();
    assert_eq!(report["error"]["code"], "ACTION_DENIED", "{report}");
    assert!(
        report["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`drop_users`"),
        "{report}"
    );

    // An elevation under -o json names the approval on stderr too.
    let elevated = check(
        h,
        &agent_id,
        &["--tool", "deploy_web", "--session", "s-json", "-o", "json"],
    );
    elevated.code(75);
    let approval_id = approvals_of(h, "s-json")[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(elevated.json()["approval_id"], approval_id.as_str());
    let report = elevated.stderr_json();
    assert_eq!(report["error"]["code"], "ELEVATION_REQUIRED", "{report}");
    assert_eq!(report["error"]["approval_id"], approval_id.as_str());
    assert!(
        report["error"]["hint"]
            .as_str()
            .unwrap()
            .contains(&format!("`agenttrust approvals approve {approval_id}`")),
        "{report}"
    );

    // `approvals wait` at its timeout: 75, the same machine code, the approval named.
    let waited = h.run(&[
        "approvals",
        "wait",
        &approval_id,
        "--timeout",
        "1s",
        "--interval",
        "200ms",
        "-o",
        "json",
    ]);
    waited.code(75);
    assert_eq!(waited.json()["status"], "pending");
    let report = waited.stderr_json();
    assert_eq!(report["error"]["code"], "ELEVATION_REQUIRED", "{report}");
    assert_eq!(report["error"]["approval_id"], approval_id.as_str());

    // An inactive token: exit 1, the document on stdout with -o json, TOKEN_INACTIVE on stderr.
    let inactive = h.run(&["tokens", "introspect", "at_not-a-token", "-o", "json"]);
    inactive.code(1);
    assert_eq!(inactive.json()["active"], false);
    assert_eq!(inactive.stderr_json()["error"]["code"], "TOKEN_INACTIVE");
    let inactive = h.run(&["tokens", "introspect", "at_not-a-token"]);
    inactive.code(1);
    assert_eq!(inactive.stdout, "");
    assert!(
        inactive.stderr.starts_with("error: token inactive: "),
        "{}",
        inactive.stderr
    );
}

fn quiet_check_prints_what_the_next_command_needs(h: &Harness) {
    let agent_id = setup(h, "quiet");

    // Allowed and denied: the check id.
    let allowed = check(h, &agent_id, &["--tool", "web_search", "-q"]);
    allowed.success();
    let check_id = allowed.value().to_string();
    assert!(uuid::Uuid::parse_str(&check_id).is_ok(), "{check_id}");
    let denied = check(
        h,
        &agent_id,
        &["--tool", "drop_users", "--effect", "admin", "-q"],
    );
    denied.code(77);
    assert!(
        uuid::Uuid::parse_str(denied.value()).is_ok(),
        "{}",
        denied.stdout
    );

    // Elevation: the approval id, so `ID=$(… -q); agenttrust approvals wait "$ID"` works.
    let elevated = check(
        h,
        &agent_id,
        &["--tool", "deploy_web", "--session", "s-quiet", "-q"],
    );
    elevated.code(75);
    let approval_id = approvals_of(h, "s-quiet")[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(elevated.value(), approval_id);
    h.run(&["approvals", "approve", &approval_id, "--yes"])
        .success();
    let waited = harness::run(h.cli().args(["approvals", "wait", elevated.value(), "-q"]));
    waited.success();
    assert_eq!(waited.value(), "approved");
}
