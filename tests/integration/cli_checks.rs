//! Smaller refusals and warnings (issue 16 item 15): an unknown `--event-type` is refused before
//! anything is sent; `policies validate` names the rule a parse error is in and warns about a
//! rule that matches every call.

use std::io::Write;

use crate::harness::Harness;
use crate::on_both_backends;

on_both_backends!(an_unknown_event_type_is_refused);

fn an_unknown_event_type_is_refused(h: &Harness) {
    h.create_agent("reporter", &[]);
    let before = h.row_counts();
    let refused = h.run(&[
        "telemetry",
        "report",
        "--agent",
        "reporter",
        "--event-type",
        "bogus",
        "--tool",
        "x",
    ]);
    refused.code(2);
    assert!(
        refused.stderr.starts_with(
            "error: invalid value 'bogus' for '--event-type <TYPE>'\n  [possible values: \
             tool_start, tool_end, tool_error, task_start, task_end, step_start, step_end]"
        ),
        "{}",
        refused.stderr
    );
    assert_eq!(h.row_counts(), before);
}

fn policy_file(text: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(text.as_bytes()).unwrap();
    file
}

#[test]
fn a_policy_error_names_the_rule() {
    let file = policy_file(
        r#"{"rules": [
            {"id": "reads", "tools": ["read_*"], "decision": "allow"},
            {"id": "deploys", "tools": ["deploy_*"], "decision": "alow"}
        ]}"#,
    );
    let path = file.path().display().to_string();
    let run = crate::harness::run(
        assert_cmd::Command::new(crate::harness::binary())
            .env("NO_COLOR", "1")
            .args(["policies", "validate", &path]),
    );
    run.code(1);
    assert_eq!(
        run.stderr,
        format!(
            "error: {path} is not a policy document: rules[1] \"deploys\": unknown variant \
             `alow`, expected one of `allow`, `deny`, `require_approval`\n"
        )
    );
}

#[test]
fn a_rule_without_matchers_is_warned_about() {
    let file = policy_file(
        r#"{"rules": [
            {"id": "reads", "tools": ["read_*"], "decision": "allow"},
            {"id": "everything", "decision": "deny", "reason": "locked down"}
        ]}"#,
    );
    let run = crate::harness::run(
        assert_cmd::Command::new(crate::harness::binary())
            .env("NO_COLOR", "1")
            .args(["policies", "validate"])
            .arg(file.path()),
    );
    run.code(0);
    assert_eq!(run.stdout, "valid: 2 rules\n");
    assert_eq!(
        run.stderr,
        "warning: rules[1] \"everything\" has no matchers (tools, effects, agents, \
         session_modes, input, require_capabilities): it matches every call, so no rule after \
         it and no default is ever reached\n"
    );
}
