//! The scripting path, exact to the byte (issue 16 items 1–4; issue 8 "exit outcomes are
//! values"): how each outcome of a verb is reported — exit code, the one `error:`/`hint:` pair,
//! or one JSON object on stderr under `-o json` — what `-q` prints for each outcome, and that
//! `AGENTTRUST_OUTPUT=json` never corrupts what `guard` writes for the shell.

use std::process::{Command, Stdio};

use serde_json::Value;

use crate::harness::{self, Harness, Run};
use crate::on_both_backends;

on_both_backends!(
    outcomes_are_reported_once_in_the_chosen_format,
    quiet_check_prints_what_the_next_command_needs,
    closed_pipes_never_panic_nor_hide_a_denial,
    json_output_never_corrupts_guard,
    guard_session_end_unsets_even_when_delivery_fails,
    one_json_shape_per_object,
    agent_mode_never_prompts_and_reports_errors_as_json,
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

/// A pipe whose reader is gone: every write to it fails with EPIPE, deterministically (a real
/// `| head -c1` races the writer).
fn closed_pipe() -> std::io::PipeWriter {
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    writer
}

/// `program` with the environment `h.cli()` gives the binary (the harness gateway, its admin
/// key, a scratch state dir) and `agenttrust` on `PATH`, for real pipes and real shells.
fn command(h: &Harness, program: &str) -> Command {
    let mut command = Command::new(program);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("AGENTTRUST_") {
            command.env_remove(name);
        }
    }
    let bin_dir = harness::binary().parent().expect("the binary's dir");
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut paths = vec![bin_dir.to_path_buf()];
    paths.extend(std::env::split_paths(&path));
    command
        .env("PATH", std::env::join_paths(paths).expect("PATH"))
        .env("AGENTTRUST_CONFIG_DIR", h.config_dir.path())
        .env("AGENTTRUST_URL", &h.url)
        .env("AGENTTRUST_API_KEY", &h.admin_key)
        .env("AGENTTRUST_STATE_DIR", h.scratch.path().join("state"))
        .env("HOME", h.scratch.path())
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    command
}

/// Runs `sh -c SCRIPT` with `command`'s environment plus `env`.
fn shell(h: &Harness, script: &str, env: &[(&str, &str)]) -> Run {
    let mut shell = command(h, "sh");
    shell.arg("-c").arg(script).envs(env.iter().copied());
    Run::from(shell.output().expect("run sh"))
}

/// Runs the binary with stdout (and, when asked, stderr) a closed pipe; returns the exit code
/// and what reached stderr.
fn with_closed_output(h: &Harness, args: &[&str], close_stderr: bool) -> (Option<i32>, String) {
    let mut command = command(h, harness::binary().to_str().expect("a UTF-8 path"));
    command.args(args).stdout(closed_pipe());
    if close_stderr {
        command.stderr(closed_pipe());
    } else {
        command.stderr(Stdio::piped());
    }
    let output = command.output().expect("run");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn closed_pipes_never_panic_nor_hide_a_denial(h: &Harness) {
    let agent_id = setup(h, "piped");

    // Data for a reader that went away: exit 0, no panic, nothing said.
    for args in [
        &["agents", "list"][..],
        &["agents", "list", "-o", "json"],
        &["agents", "get", &agent_id, "-q"],
        &["completions", "bash"],
        &["guard", "session", "start", "--local"],
        &["--help"],
    ] {
        let (code, stderr) = with_closed_output(h, args, false);
        assert_eq!(code, Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }

    // A decision keeps its exit status when nobody reads the answer: a denial is never 0.
    let denied = [
        "actions",
        "check",
        "--agent",
        &agent_id,
        "--tool",
        "drop_users",
        "--effect",
        "admin",
    ];
    for format in ["table", "json"] {
        let args = [&denied[..], &["-o", format]].concat();
        let (code, stderr) = with_closed_output(h, &args, false);
        assert_eq!(code, Some(77), "{format}: {stderr}");
        assert!(
            stderr.contains("ACTION_DENIED") || stderr.contains("action denied"),
            "{stderr}"
        );
    }
    let guarded = [
        "guard",
        "check",
        "drop_users",
        "--agent",
        &agent_id,
        "--effect",
        "admin",
        "-o",
        "json",
    ];
    assert_eq!(with_closed_output(h, &guarded, false).0, Some(77));

    // With stderr closed too, errors and denials still exit with their codes, without a panic
    // (a panic exits 101).
    assert_eq!(with_closed_output(h, &denied, true).0, Some(77));
    let missing = uuid::Uuid::now_v7().to_string();
    assert_eq!(
        with_closed_output(h, &["agents", "get", &missing], true).0,
        Some(3)
    );
}

fn json_output_never_corrupts_guard(h: &Harness) {
    let agent_id = setup(h, "json-guard");
    let json = [
        ("AGENTTRUST_OUTPUT", "json"),
        ("AGENTTRUST_AGENT_ID", agent_id.as_str()),
    ];

    // `guard run`: stdout is the wrapped command's, byte for byte, whatever the format.
    let ran = shell(
        h,
        r"agenttrust guard run --tool list_files -- printf 'a\nb\n'",
        &json,
    );
    ran.success();
    assert_eq!(ran.stdout, "a\nb\n");
    let piped = shell(
        h,
        r"agenttrust guard run --tool list_files -- printf 'a\nb\n' | wc -l",
        &json,
    );
    assert_eq!(piped.stdout.trim(), "2");
    let denied = shell(
        h,
        "agenttrust guard run --tool drop_users --effect admin -- echo ran",
        &json,
    );
    denied.code(77);
    assert_eq!(denied.stdout, "");
    assert_eq!(denied.stderr_json()["error"]["code"], "ACTION_DENIED");

    // `guard session start|end`: shell code for `eval`, whatever the format.
    let session = shell(
        h,
        r#"eval "$(agenttrust guard session start)" && echo "during=$AGENTTRUST_SESSION_ID" &&
           agenttrust guard report list_files --success &&
           eval "$(agenttrust guard session end)" && echo "after=${AGENTTRUST_SESSION_ID-unset}""#,
        &json,
    );
    session.success();
    let (during, rest) = session.stdout.split_once('\n').unwrap();
    let during = during.strip_prefix("during=").unwrap();
    assert!(uuid::Uuid::parse_str(during).is_ok(), "{}", session.stdout);
    let (report, after) = rest.trim_end().rsplit_once('\n').unwrap();
    assert_eq!(after, "after=unset");
    // `guard report -o json`: one document, the event as delivered.
    let report: Value = serde_json::from_str(report).unwrap();
    assert_eq!(report["event_type"], "tool_end", "{report}");
    assert_eq!(report["tool_name"], "list_files", "{report}");
    assert_eq!(report["session_id"], during, "{report}");
    assert!(report["event_id"].is_string(), "{report}");

    // Elsewhere in `guard`, -o json is exactly one document on stdout.
    let mut guard = h.cli();
    guard.env("AGENTTRUST_STATE_DIR", h.scratch.path().join("state"));
    let checked = harness::run(guard.args([
        "guard",
        "check",
        "web_search",
        "--agent",
        &agent_id,
        "-o",
        "json",
    ]));
    checked.success();
    assert_eq!(checked.json()["allowed"], true);
    let mut guard = h.cli();
    guard.env("AGENTTRUST_STATE_DIR", h.scratch.path().join("state"));
    let flushed = harness::run(guard.args(["guard", "flush", "-o", "json"]));
    flushed.success();
    assert_eq!(flushed.json()["remaining"], 0);
}

fn guard_session_end_unsets_even_when_delivery_fails(h: &Harness) {
    let agent_id = setup(h, "offline");
    let dead = format!(
        "http://{}",
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
    );
    let env = [
        ("AGENTTRUST_AGENT_ID", agent_id.as_str()),
        ("AGENTTRUST_URL", dead.as_str()),
    ];
    // A report while the gateway is down stays in the spool.
    shell(h, "agenttrust guard report list_files --success", &env).success();
    let ended = shell(
        h,
        r#"export AGENTTRUST_SESSION_ID=s-1
           eval "$(agenttrust guard session end)"; status=$?
           echo "after=${AGENTTRUST_SESSION_ID-unset}""#,
        &env,
    );
    assert_eq!(ended.stdout, "after=unset\n", "{}", ended.stderr);
    // The command itself still says that delivery failed, and prints the unset code.
    let direct = shell(h, "agenttrust guard session end", &env);
    direct.code(69);
    assert_eq!(direct.stdout, "unset AGENTTRUST_SESSION_ID\n");
    assert!(
        direct.stderr.contains("1 telemetry event(s) remain"),
        "{}",
        direct.stderr
    );
    // The spool keeps the event for a later `guard flush`.
    let spool = h.scratch.path().join("state").join("spool");
    let spooled: usize = std::fs::read_dir(&spool)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name().to_string_lossy().ends_with(".jsonl"))
        .map(|entry| {
            std::fs::read_to_string(entry.path())
                .unwrap()
                .lines()
                .count()
        })
        .sum();
    assert_eq!(spooled, 1);
}

fn one_json_shape_per_object(h: &Harness) {
    let from = h.create_agent("delegator", &["files:read"])["id"]
        .as_str()
        .unwrap()
        .to_string();
    let to = h.create_agent("delegate", &[])["id"]
        .as_str()
        .unwrap()
        .to_string();
    let created = h.run(&[
        "delegations",
        "create",
        "--from",
        &from,
        "--to",
        &to,
        "--scope",
        "files:read",
        "--ttl",
        "1h",
        "-o",
        "json",
    ]);
    created.success();
    let created = created.json();
    assert!(created.get("delegation").is_none(), "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    let got = h.run(&["delegations", "get", &id, "-o", "json"]);
    got.success();
    assert_eq!(created, got.json());

    let agent = h.run(&["agents", "create", "--name", "shaped", "-o", "json"]);
    agent.success();
    let agent = agent.json();
    let got = h.run(&["agents", "get", agent["id"].as_str().unwrap(), "-o", "json"]);
    got.success();
    assert_eq!(agent, got.json());
}

/// `--no-input` / `AGENTTRUST_NO_INPUT`, the agent/CI mode: never a prompt, destructive verbs
/// need `--yes`, and every error is one JSON object on stderr whatever the output format.
fn agent_mode_never_prompts_and_reports_errors_as_json(h: &Harness) {
    let agent_id = setup(h, "agent-mode");
    for (flag, variable) in [(Some("--no-input"), None), (None, Some("1"))] {
        let mut missing = h.cli();
        if let Some(value) = variable {
            missing.env("AGENTTRUST_NO_INPUT", value);
        }
        let mut args = vec!["agents", "get", "no-such-agent-id"];
        args.extend(flag);
        let missing = harness::run(missing.args(&args));
        missing.code(3);
        assert_eq!(missing.stdout, "");
        assert_eq!(
            missing.stderr_json()["error"]["code"],
            "NOT_FOUND",
            "{}",
            missing.stderr
        );

        let mut revoke = h.cli();
        if let Some(value) = variable {
            revoke.env("AGENTTRUST_NO_INPUT", value);
        }
        let mut args = vec!["agents", "revoke", agent_id.as_str()];
        args.extend(flag);
        let refused = harness::run(revoke.args(&args));
        refused.code(2);
        assert!(
            refused.stderr_json()["error"]["message"]
                .as_str()
                .is_some_and(|message| message.contains("--yes")),
            "{}",
            refused.stderr
        );
    }
    // Nothing was revoked.
    assert_eq!(
        h.get(&format!("/api/v1/agents/{agent_id}")).ok()["status"],
        "active"
    );
}
