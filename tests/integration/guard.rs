//! `agenttrust guard` (issue 4) through the real binary: every exit path of `check` and `run`
//! (allowed, denied, elevation with and without `--wait`, unreachable fail-closed and
//! `--fail-open`, 401/403 never allowed), the wrapped command's own status and signals, the
//! command never starting when not allowed, and telemetry: the right fields, batches, the spool
//! surviving a gateway outage, and concurrent guard processes delivering every event exactly
//! once; and the README's sample shell agent, run as written. Issue 9: TLS errors fail closed
//! even with `--fail-open`, `guard run` scrubs credentials and binds the tool to the command, and
//! a shell agent holding only an agent token can check and run, but never as another agent.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{self, Harness, Run};
use crate::on_both_backends;

on_both_backends!(
    check_exit_paths,
    check_wait_for_the_human,
    unreachable_gateway_fails_closed_unless_fail_open,
    authentication_failures_are_never_an_allow,
    run_passes_the_command_status_through,
    run_never_starts_a_command_that_is_not_allowed,
    telemetry_spools_while_the_gateway_is_down,
    concurrent_guards_deliver_every_event_once,
    report_and_session_verbs,
    a_full_batch_is_delivered_without_a_flush,
    reports_carrying_an_event_id_are_stored_once,
    the_readme_shell_agent_is_guarded,
    tls_and_protocol_errors_fail_closed_even_with_fail_open,
    run_scrubs_credentials_from_the_command,
    run_binds_the_checked_tool_to_the_command,
    a_shell_agent_holding_only_an_agent_token,
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

fn state_dir(h: &Harness) -> PathBuf {
    h.scratch.path().join("state")
}

/// `agenttrust` against the harness gateway, with the spool in the scratch dir and the agent
/// exported as a shell agent would.
fn guard(h: &Harness, agent_id: &str) -> assert_cmd::Command {
    let mut command = h.cli();
    command
        .env("AGENTTRUST_STATE_DIR", state_dir(h))
        .env("AGENTTRUST_AGENT_ID", agent_id);
    command
}

/// The same, against another URL (a dead port, a fake or a proxy).
fn guard_at(h: &Harness, agent_id: &str, url: &str) -> assert_cmd::Command {
    let mut command = guard(h, agent_id);
    command.env("AGENTTRUST_URL", url);
    command
}

fn run(mut command: assert_cmd::Command, args: &[&str]) -> Run {
    harness::run(command.args(args))
}

/// The agent's telemetry events, oldest first.
fn events(h: &Harness, agent_id: &str) -> Vec<Value> {
    let page = h
        .get(&format!(
            "/api/v1/telemetry/events?agent_id={agent_id}&limit=1000"
        ))
        .ok()
        .clone();
    page["events"].as_array().cloned().unwrap_or_default()
}

/// Spooled lines in every spool file.
fn spooled(h: &Harness) -> usize {
    let Ok(entries) = std::fs::read_dir(state_dir(h).join("spool")) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name().to_string_lossy().ends_with(".jsonl"))
        .map(|entry| {
            std::fs::read_to_string(entry.path())
                .unwrap()
                .lines()
                .filter(|line| !line.trim().is_empty())
                .count()
        })
        .sum()
}

/// A port nothing listens on (bound, then released).
fn dead_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A one-trick HTTP server answering every request with `status` and a gateway error body.
fn fake_gateway(status: u16) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { break };
            let mut buffer = [0u8; 8192];
            let _ = stream.read(&mut buffer);
            let body = r#"{"error":"no","message":"not allowed here","code":"AUTH_DENIED"}"#;
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

/// A TCP proxy on `port` to the harness gateway: "the gateway is back" on the old address.
fn proxy(port: u16, target: &str) {
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("the old port is free again");
    let target = target.trim_start_matches("http://").to_string();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { break };
            let Ok(upstream) = TcpStream::connect(&target) else {
                continue;
            };
            let pump = |mut from: TcpStream, mut to: TcpStream| {
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut from, &mut to);
                    let _ = to.shutdown(std::net::Shutdown::Write);
                });
            };
            pump(client.try_clone().unwrap(), upstream.try_clone().unwrap());
            pump(upstream, client);
        }
    });
}

fn check_exit_paths(h: &Harness) {
    let agent_id = setup(h, "checker");

    // Allowed: silent, exit 0.
    let allowed = run(guard(h, &agent_id), &["guard", "check", "web_search"]);
    allowed.success();
    assert_eq!(allowed.stdout, "");
    assert_eq!(allowed.stderr, "");

    // Denied: 77 and one line on stderr.
    let denied = run(
        guard(h, &agent_id),
        &["guard", "check", "drop_users", "--effect", "admin"],
    );
    denied.code(77);
    assert_eq!(denied.stdout, "");
    assert_eq!(denied.stderr.lines().count(), 1, "{}", denied.stderr);
    assert!(denied.stderr.contains("denied"), "{}", denied.stderr);

    // Elevation: 75, the approval id and the exact command to approve it.
    let elevated = run(
        guard(h, &agent_id),
        &["guard", "check", "deploy_prod", "--session", "s-elev"],
    );
    elevated.code(75);
    let approvals = h.get("/api/v1/approvals?session_id=s-elev").ok().clone();
    let approval_id = approvals["approvals"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        elevated
            .stderr
            .contains(&format!("`agenttrust approvals approve {approval_id}`")),
        "{}",
        elevated.stderr
    );

    // -o json: the decision on stdout, the same exit codes.
    let json_allowed = run(
        guard(h, &agent_id),
        &["guard", "check", "web_search", "-o", "json"],
    );
    json_allowed.success();
    assert_eq!(json_allowed.json()["allowed"], true);
    let json_denied = run(
        guard(h, &agent_id),
        &[
            "guard",
            "check",
            "drop_users",
            "--effect",
            "admin",
            "-o",
            "json",
        ],
    );
    json_denied.code(77);
    assert_eq!(json_denied.json()["allowed"], false);
    let json_elevated = run(
        guard(h, &agent_id),
        &["guard", "check", "deploy_prod", "-o", "json"],
    );
    json_elevated.code(75);
    assert_eq!(json_elevated.json()["elevation_required"], true);

    // The agent is required (flag or env): a usage error otherwise.
    run(h.cli(), &["guard", "check", "web_search"]).code(2);
    // --agent beats the env; the session defaults to a fresh id the gateway accepts.
    let flagged = run(
        guard(h, "nobody"),
        &[
            "guard",
            "check",
            "web_search",
            "--agent",
            &agent_id,
            "-o",
            "json",
        ],
    );
    flagged.success();
    let session = flagged.json()["session_id"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(
        session.is_empty() || uuid::Uuid::parse_str(&session).is_ok(),
        "{session}"
    );
}

/// Waits until the session has a pending approval and returns its id.
fn pending_approval(h: &Harness, session: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let list = h
            .get(&format!("/api/v1/approvals?session_id={session}"))
            .ok()
            .clone();
        if let Some(id) = list["approvals"][0]["id"].as_str() {
            return id.to_string();
        }
        assert!(Instant::now() < deadline, "no approval for {session}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn check_wait_for_the_human(h: &Harness) {
    let agent_id = setup(h, "waiter");
    for (session, verb, expected) in [("s-approve", "approve", 0), ("s-deny", "deny", 77)] {
        let mut waiting = guard(h, &agent_id);
        waiting.args([
            "guard",
            "check",
            "deploy_prod",
            "--session",
            session,
            "--wait",
            "--timeout",
            "30s",
        ]);
        let outcome = std::thread::scope(|scope| {
            let handle = scope.spawn(move || harness::run(&mut waiting));
            let approval_id = pending_approval(h, session);
            h.run(&["approvals", verb, &approval_id, "--yes"]).success();
            handle.join().unwrap()
        });
        outcome.code(expected);
    }
    // `guard run --wait`: the command runs once approved.
    let marker = h.scratch.path().join("deployed");
    let mut waiting = guard(h, &agent_id);
    waiting.args([
        "guard",
        "run",
        "--tool",
        "deploy_prod",
        "--session",
        "s-run",
        "--wait",
        "--timeout",
        "30s",
        "--",
        "touch",
        marker.to_str().unwrap(),
    ]);
    let outcome = std::thread::scope(|scope| {
        let handle = scope.spawn(move || harness::run(&mut waiting));
        let approval_id = pending_approval(h, "s-run");
        h.run(&["approvals", "approve", &approval_id, "--yes"])
            .success();
        handle.join().unwrap()
    });
    outcome.success();
    assert!(marker.exists());

    // Nobody decides in time: 75.
    run(
        guard(h, &agent_id),
        &[
            "guard",
            "check",
            "deploy_prod",
            "--session",
            "s-late",
            "--wait",
            "--timeout",
            "1s",
        ],
    )
    .code(75);
}

fn unreachable_gateway_fails_closed_unless_fail_open(h: &Harness) {
    let agent_id = setup(h, "lonely");
    let url = format!("http://127.0.0.1:{}", dead_port());
    let closed = run(
        guard_at(h, &agent_id, &url),
        &["guard", "check", "web_search"],
    );
    closed.code(69);
    let open = run(
        guard_at(h, &agent_id, &url),
        &["guard", "check", "web_search", "--fail-open"],
    );
    open.success();
    assert!(open.stderr.contains("warning:"), "{}", open.stderr);
    let mut from_env = guard_at(h, &agent_id, &url);
    from_env.env("AGENTTRUST_FAIL_OPEN", "1");
    run(from_env, &["guard", "check", "web_search"]).success();
    // --fail-open never turns a denial into an allow.
    run(
        guard(h, &agent_id),
        &[
            "guard",
            "check",
            "drop_users",
            "--effect",
            "admin",
            "--fail-open",
        ],
    )
    .code(77);
    // A server error is not "unreachable": no allow either.
    run(
        guard_at(h, &agent_id, &fake_gateway(500)),
        &["guard", "check", "web_search", "--fail-open"],
    )
    .code(1);
}

fn authentication_failures_are_never_an_allow(h: &Harness) {
    let agent_id = setup(h, "locked-out");
    let mut bad_key = guard(h, &agent_id);
    bad_key.env(
        "AGENTTRUST_API_KEY",
        "sk_live_not_a_real_key_0000000000000000",
    );
    run(bad_key, &["guard", "check", "web_search", "--fail-open"]).code(4);
    for status in [401, 403] {
        let url = fake_gateway(status);
        run(
            guard_at(h, &agent_id, &url),
            &["guard", "check", "web_search", "--fail-open"],
        )
        .code(4);
        let marker = h.scratch.path().join(format!("ran-{status}"));
        run(
            guard_at(h, &agent_id, &url),
            &[
                "guard",
                "run",
                "--tool",
                "web_search",
                "--fail-open",
                "--",
                "touch",
                marker.to_str().unwrap(),
            ],
        )
        .code(4);
        assert!(!marker.exists());
    }
    // No key at all: 4.
    let mut no_key = guard(h, &agent_id);
    no_key.env_remove("AGENTTRUST_API_KEY");
    run(no_key, &["guard", "check", "web_search"]).code(4);
}

fn run_passes_the_command_status_through(h: &Harness) {
    let agent_id = setup(h, "runner");
    let ok = run(
        guard(h, &agent_id),
        &["guard", "run", "--tool", "echo", "--", "echo", "hello"],
    );
    ok.success();
    assert_eq!(ok.stdout, "hello\n");
    run(
        guard(h, &agent_id),
        &[
            "guard", "run", "--tool", "shell", "--", "sh", "-c", "exit 3",
        ],
    )
    .code(3);
    run(
        guard(h, &agent_id),
        &[
            "guard",
            "run",
            "--tool",
            "suicide",
            "--",
            "sh",
            "-c",
            "kill -9 $$",
        ],
    )
    .code(137);
    run(
        guard(h, &agent_id),
        &["guard", "run", "--tool", "ghost", "--", "/nonexistent/tool"],
    )
    .code(127);

    // Four events are less than a batch and none has waited 5 s: still spooled, as the SDKs
    // buffer them; a flush (or `guard session end`) delivers them.
    assert_eq!(spooled(h), 4);
    assert!(events(h, &agent_id).is_empty());
    run(guard(h, &agent_id), &["guard", "flush"]).success();
    let events = events(h, &agent_id);
    let by_tool = |tool: &str| -> Value {
        events
            .iter()
            .find(|event| event["tool_name"] == tool)
            .unwrap_or_else(|| panic!("no event for {tool}: {events:?}"))
            .clone()
    };
    let echo = by_tool("echo");
    assert_eq!(echo["event_type"], "tool_end", "{echo}");
    assert_eq!(echo["success"], true, "{echo}");
    assert!(echo["duration_ms"].is_i64(), "{echo}");
    assert!(echo["session_id"].is_string(), "{echo}");
    let shell = by_tool("shell");
    assert_eq!(shell["event_type"], "tool_error", "{shell}");
    assert_eq!(shell["success"], false, "{shell}");
    assert_eq!(shell["error_type"], "exit:3", "{shell}");
    let killed = by_tool("suicide");
    assert_eq!(killed["error_type"], "signal:SIGKILL", "{killed}");
    assert_eq!(by_tool("ghost")["success"], false);
    assert_eq!(spooled(h), 0, "everything was delivered");
}

fn run_never_starts_a_command_that_is_not_allowed(h: &Harness) {
    let agent_id = setup(h, "blocked");
    let marker = h.scratch.path().join("should-not-exist");
    let touch = ["--", "touch", marker.to_str().unwrap()];
    let with = |head: &[&str]| -> Vec<String> {
        head.iter()
            .chain(touch.iter())
            .map(|text| text.to_string())
            .collect()
    };
    let args = with(&["guard", "run", "--tool", "drop_users", "--effect", "admin"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run(guard(h, &agent_id), &args).code(77);
    let args = with(&["guard", "run", "--tool", "deploy_prod"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run(guard(h, &agent_id), &args).code(75);
    let url = format!("http://127.0.0.1:{}", dead_port());
    let args = with(&["guard", "run", "--tool", "web_search"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run(guard_at(h, &agent_id, &url), &args).code(69);
    assert!(!marker.exists());
    assert!(events(h, &agent_id).is_empty());

    // The command line is always the input summary (binding the check to what runs), whole;
    // --log-inputs is still accepted and changes nothing.
    let long = "é".repeat(300);
    for (session, log_inputs) in [("s-log", true), ("s-default", false)] {
        let mut args = vec!["guard", "run", "--tool", "deploy_x", "--session", session];
        if log_inputs {
            args.push("--log-inputs");
        }
        args.extend(["--", "echo", &long]);
        run(guard(h, &agent_id), &args).code(75);
    }
    let summary = |session: &str| -> String {
        let list = h
            .get(&format!("/api/v1/approvals?session_id={session}"))
            .ok()
            .clone();
        list["approvals"][0]["input_summary"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    for session in ["s-log", "s-default"] {
        assert_eq!(summary(session), format!("echo {long}"));
    }

    // The agent writes the command line: a long first argument does not push what runs out of
    // the check (a cut at 200 characters would have let this run).
    h.put_policy(json!({"rules": [{"id": "no-marker", "tools": ["shell"],
                                    "input": {"contains": ["should-not-exist"]},
                                    "decision": "deny"}]}));
    let script = format!("echo {}; touch {}", "a".repeat(400), marker.display());
    run(
        guard(h, &agent_id),
        &["guard", "run", "--tool", "shell", "--", "sh", "-c", &script],
    )
    .code(77);
    assert!(!marker.exists());
    // One too long to check whole is refused before anything is asked or run.
    let checks_before = h
        .sql_integers("SELECT CAST(COUNT(*) AS BIGINT) FROM checks")
        .unwrap();
    let script = format!("echo {}; touch {}", "a".repeat(3000), marker.display());
    let refused = run(
        guard(h, &agent_id),
        &["guard", "run", "--tool", "shell", "--", "sh", "-c", &script],
    );
    refused.code(2);
    assert!(
        refused.stderr.contains("nothing was run"),
        "{}",
        refused.stderr
    );
    assert!(!marker.exists());
    assert_eq!(
        h.sql_integers("SELECT CAST(COUNT(*) AS BIGINT) FROM checks")
            .unwrap(),
        checks_before
    );
}

fn telemetry_spools_while_the_gateway_is_down(h: &Harness) {
    let agent_id = setup(h, "offline");
    let port = dead_port();
    let url = format!("http://127.0.0.1:{port}");
    for tool in ["one", "two", "three"] {
        let ran = run(
            guard_at(h, &agent_id, &url),
            &["guard", "run", "--tool", tool, "--fail-open", "--", "true"],
        );
        ran.success();
        assert!(ran.stderr.contains("warning:"), "{}", ran.stderr);
    }
    let reported = run(
        guard_at(h, &agent_id, &url),
        &[
            "guard",
            "report",
            "four",
            "--failure",
            "--error-type",
            "timeout",
        ],
    );
    reported.success();
    assert_eq!(spooled(h), 4);
    // Still down: flush says so (69) and keeps everything.
    run(guard_at(h, &agent_id, &url), &["guard", "flush"]).code(69);
    assert_eq!(spooled(h), 4);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let dir = state_dir(h).join("spool");
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        for entry in std::fs::read_dir(&dir).unwrap() {
            let mode = entry.unwrap().metadata().unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "spool files are private");
        }
    }
    assert!(events(h, &agent_id).is_empty());

    // The gateway is back on the same address.
    proxy(port, &h.url);
    run(guard_at(h, &agent_id, &url), &["guard", "flush"]).success();
    assert_eq!(spooled(h), 0);
    let events = events(h, &agent_id);
    let tools: Vec<&str> = events
        .iter()
        .map(|event| event["tool_name"].as_str().unwrap())
        .collect();
    assert_eq!(tools.len(), 4, "{events:?}");
    for tool in ["one", "two", "three", "four"] {
        assert!(tools.contains(&tool), "{tools:?}");
    }
    let four = events
        .iter()
        .find(|event| event["tool_name"] == "four")
        .unwrap();
    assert_eq!(four["error_type"], "timeout", "{four}");
}

fn concurrent_guards_deliver_every_event_once(h: &Harness) {
    const PROCESSES: usize = 4;
    const EACH: usize = 6;
    let agent_id = setup(h, "busy");
    let port = dead_port();
    let dead = format!("http://127.0.0.1:{port}");

    // Phase 1, gateway down: concurrent appends only.
    // Phase 2, gateway up: concurrent appends and deliveries.
    for (phase, url) in [("down", dead.clone()), ("up", h.url.clone())] {
        std::thread::scope(|scope| {
            for process in 0..PROCESSES {
                let (agent_id, url) = (&agent_id, &url);
                scope.spawn(move || {
                    for index in 0..EACH {
                        let tool = format!("{phase}-{process}-{index}");
                        run(
                            guard_at(h, agent_id, url),
                            &["guard", "report", &tool, "--success", "--duration-ms", "7"],
                        )
                        .success();
                    }
                });
            }
        });
        if phase == "down" {
            assert_eq!(spooled(h), PROCESSES * EACH);
        }
    }
    // The first phase's spool is the dead address's: bring that address back and flush both.
    proxy(port, &h.url);
    run(guard_at(h, &agent_id, &dead), &["guard", "flush"]).success();
    run(guard(h, &agent_id), &["guard", "flush"]).success();
    assert_eq!(spooled(h), 0);

    let events = events(h, &agent_id);
    let mut tools: Vec<String> = events
        .iter()
        .map(|event| event["tool_name"].as_str().unwrap().to_string())
        .collect();
    tools.sort();
    let before = tools.len();
    tools.dedup();
    assert_eq!(before, tools.len(), "an event was delivered twice");
    assert_eq!(tools.len(), 2 * PROCESSES * EACH, "an event was lost");
    assert!(events.iter().all(|event| event["duration_ms"] == 7));
}

fn report_and_session_verbs(h: &Harness) {
    let agent_id = setup(h, "reporter");
    let started = run(
        h.cli(),
        &["guard", "session", "start", "--agent", &agent_id],
    );
    started.success();
    let lines: Vec<&str> = started.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", started.stdout);
    let session = lines[0]
        .strip_prefix("export AGENTTRUST_SESSION_ID=")
        .unwrap_or_else(|| panic!("{}", started.stdout));
    assert!(uuid::Uuid::parse_str(session).is_ok(), "{session}");
    assert_eq!(lines[1], format!("export AGENTTRUST_AGENT_ID={agent_id}"));
    // Opened at the gateway: a registered session, which a policy may require.
    let opened = h.get(&format!("/api/v1/sessions/{session}"));
    assert_eq!(opened.ok()["source"], "shell", "{}", opened.text);
    assert_eq!(opened.body["agent_id"], agent_id.as_str());
    // Without an agent there is nothing to open (usage error); `--local` makes an id up.
    run(h.cli(), &["guard", "session", "start"]).code(2);
    let local = run(h.cli(), &["guard", "session", "start", "--local"]);
    local.success();
    let local_id = local
        .stdout
        .trim()
        .strip_prefix("export AGENTTRUST_SESSION_ID=")
        .unwrap();
    h.get(&format!("/api/v1/sessions/{local_id}"))
        .expect_error(404);

    let mut in_session = guard(h, &agent_id);
    in_session.env("AGENTTRUST_SESSION_ID", session);
    run(
        in_session,
        &[
            "guard",
            "report",
            "fetch",
            "--success",
            "--duration-ms",
            "42",
        ],
    )
    .success();
    let mut ended = guard(h, &agent_id);
    ended.env("AGENTTRUST_SESSION_ID", session);
    let ended = run(ended, &["guard", "session", "end"]);
    ended.success();
    assert_eq!(ended.stdout, "unset AGENTTRUST_SESSION_ID\n");
    let events = events(h, &agent_id);
    assert_eq!(events.len(), 1, "{events:?}");
    let event = &events[0];
    assert_eq!(event["tool_name"], "fetch");
    assert_eq!(event["session_id"], session);
    assert_eq!(event["duration_ms"], 42);
    assert_eq!(event["success"], true);
    assert_eq!(event["event_type"], "tool_end");
    // --success and --failure exclude each other; one is required.
    run(guard(h, &agent_id), &["guard", "report", "x"]).code(2);
    run(
        guard(h, &agent_id),
        &["guard", "report", "x", "--success", "--failure"],
    )
    .code(2);
}

fn a_full_batch_is_delivered_without_a_flush(h: &Harness) {
    let agent_id = setup(h, "batcher");
    for index in 0..9 {
        let tool = format!("tool-{index}");
        run(
            guard(h, &agent_id),
            &["guard", "report", &tool, "--success"],
        )
        .success();
    }
    assert_eq!(spooled(h), 9, "below a batch nothing is sent");
    assert!(events(h, &agent_id).is_empty());
    run(
        guard(h, &agent_id),
        &["guard", "report", "tool-9", "--success"],
    )
    .success();
    assert_eq!(spooled(h), 0, "the tenth event completes a batch");
    let events = events(h, &agent_id);
    assert_eq!(events.len(), 10, "{events:?}");
    // Each went with its spool id, which makes a resent batch harmless.
    assert!(
        events.iter().all(|event| event["event_id"].is_string()),
        "{events:?}"
    );
}

fn reports_carrying_an_event_id_are_stored_once(h: &Harness) {
    let agent_id = setup(h, "retrier");
    let report = serde_json::json!({
        "agent_id": agent_id,
        "session_id": "s-1",
        "events": [
            {"event_type": "tool_end", "tool_name": "a", "event_id": "e-1"},
            {"event_type": "tool_end", "tool_name": "b", "event_id": "e-2"},
            {"event_type": "tool_end", "tool_name": "c"}
        ]
    });
    for _ in 0..2 {
        let answer = h
            .post("/api/v1/telemetry/report", report.clone())
            .ok()
            .clone();
        assert_eq!(answer["accepted"], true);
    }
    let tools: Vec<String> = events(h, &agent_id)
        .iter()
        .map(|event| event["tool_name"].as_str().unwrap().to_string())
        .collect();
    // The named events once, the unnamed one each time it was sent.
    assert_eq!(tools, ["a", "b", "c", "c"]);
}

/// The sample shell agent of the README, run as written (the block after the marker).
fn readme_shell_agent() -> String {
    let readme = include_str!("../../README.md");
    let after_marker = readme
        .split("<!-- sample-shell-agent -->")
        .nth(1)
        .expect("the README marks its sample shell agent");
    let start = after_marker.find("```bash\n").expect("a bash block") + "```bash\n".len();
    let length = after_marker[start..].find("```").expect("the block ends");
    after_marker[start..start + length].to_string()
}

fn the_readme_shell_agent_is_guarded(h: &Harness) {
    let agent_id = setup(h, "shell-agent");
    let work = h.scratch.path().join("agent-work");
    std::fs::create_dir_all(work.join("cache")).unwrap();
    std::fs::write(work.join("notes.txt"), "remember the milk\n").unwrap();
    let script = h.scratch.path().join("agent.sh");
    std::fs::write(&script, readme_shell_agent()).unwrap();

    let binary_dir = harness::binary().parent().unwrap();
    let path = format!(
        "{}:{}",
        binary_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut command = std::process::Command::new("bash");
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("AGENTTRUST_") {
            command.env_remove(name);
        }
    }
    let output = command
        .arg(&script)
        .current_dir(&work)
        .env("PATH", path)
        .env("HOME", h.scratch.path())
        .env("NO_COLOR", "1")
        .env("AGENTTRUST_CONFIG_DIR", h.config_dir.path())
        .env("AGENTTRUST_STATE_DIR", state_dir(h))
        .env("AGENTTRUST_URL", &h.url)
        .env("AGENTTRUST_API_KEY", &h.admin_key)
        .env("AGENTTRUST_AGENT_ID", &agent_id)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run the sample agent");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    // The allowed calls ran…
    assert!(stdout.contains("notes.txt"), "ls ran: {stdout}");
    assert!(stdout.contains("remember the milk"), "cat ran: {stdout}");
    assert!(stdout.ends_with("agent: done\n"), "{stdout}");
    // …the others never started.
    assert!(work.join("cache").is_dir(), "rm -rf must not have run");
    assert!(
        stderr.contains("clear_cache needs a human approval"),
        "{stderr}"
    );
    assert!(stderr.contains("chmod_notes was denied"), "{stderr}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(work.join("notes.txt"))
            .unwrap()
            .permissions()
            .mode();
        assert_ne!(mode & 0o777, 0o777, "chmod must not have run");
    }
    // One session for the whole run, its telemetry delivered by `guard session end`.
    assert_eq!(spooled(h), 0);
    let events = events(h, &agent_id);
    let tools: Vec<&str> = events
        .iter()
        .map(|event| event["tool_name"].as_str().unwrap())
        .collect();
    assert_eq!(tools, ["list_files", "read_notes"], "{events:?}");
    assert_eq!(events[0]["session_id"], events[1]["session_id"]);
}

fn tls_and_protocol_errors_fail_closed_even_with_fail_open(h: &Harness) {
    let agent_id = setup(h, "tls");
    // https:// against the plain-HTTP gateway: TLS fails after the connection is made. That is
    // not "unreachable": someone answered, and not with a gateway we trust.
    let url = h.url.replacen("http://", "https://", 1);
    let checked = run(
        guard_at(h, &agent_id, &url),
        &["guard", "check", "web_search", "--fail-open"],
    );
    checked.code(69);
    assert!(!checked.stderr.contains("anyway"), "{}", checked.stderr);
    assert!(checked.stderr.contains("TLS"), "{}", checked.stderr);
    let marker = h.scratch.path().join("ran-tls");
    let mut from_env = guard_at(h, &agent_id, &url);
    from_env.env("AGENTTRUST_FAIL_OPEN", "1");
    run(
        from_env,
        &[
            "guard",
            "run",
            "--tool",
            "web_search",
            "--",
            "touch",
            marker.to_str().unwrap(),
        ],
    )
    .code(69);
    assert!(!marker.exists());
    // A refused connection is what --fail-open is for.
    let dead = format!("http://127.0.0.1:{}", dead_port());
    run(
        guard_at(h, &agent_id, &dead),
        &["guard", "check", "web_search", "--fail-open"],
    )
    .success();
}

fn run_scrubs_credentials_from_the_command(h: &Harness) {
    h.put_policy(serde_json::from_str(POLICY).unwrap());
    // The token's scope covers the tool: a token is a ceiling on what its holder may check.
    let agent_id = h.create_agent("scrubbed", &["print_env"])["id"]
        .as_str()
        .unwrap()
        .to_string();
    let print = r#"echo "key=${AGENTTRUST_API_KEY-unset} token=${AGENTTRUST_AGENT_TOKEN-unset}""#;
    let token = h.issue_token(&agent_id, &["print_env"], 600)["token"]
        .as_str()
        .unwrap()
        .to_string();
    let mut command = guard(h, &agent_id);
    command.env("AGENTTRUST_AGENT_TOKEN", &token);
    let scrubbed = run(
        command,
        &[
            "guard",
            "run",
            "--tool",
            "print_env",
            "--",
            "sh",
            "-c",
            print,
        ],
    );
    scrubbed.success();
    assert_eq!(scrubbed.stdout, "key=unset token=unset\n");
    let passed = run(
        guard(h, &agent_id),
        &[
            "guard",
            "run",
            "--tool",
            "print_env",
            "--pass-credentials",
            "--",
            "sh",
            "-c",
            print,
        ],
    );
    passed.success();
    assert_eq!(passed.stdout, format!("key={} token=unset\n", h.admin_key));
}

fn run_binds_the_checked_tool_to_the_command(h: &Harness) {
    h.put_policy(serde_json::json!({
        "rules": [
            {"id": "no-secrets", "tools": ["*"], "input": {"contains": ["secret.txt"]},
             "decision": "deny", "reason": "secrets stay put"},
            {"id": "no-curl", "tools": ["curl"], "decision": "deny", "reason": "no network"}
        ]
    }));
    let agent_id = h.create_agent("bound", &[])["id"]
        .as_str()
        .unwrap()
        .to_string();
    // The command line is the input summary: a harmless tool name does not hide what runs.
    let denied = run(
        guard(h, &agent_id),
        &[
            "guard",
            "run",
            "--tool",
            "read_notes",
            "--",
            "cat",
            "secret.txt",
        ],
    );
    denied.code(77);
    assert!(
        denied.stderr.contains("secrets stay put"),
        "{}",
        denied.stderr
    );
    // --input adds context; it cannot replace the command line.
    run(
        guard(h, &agent_id),
        &[
            "guard",
            "run",
            "--tool",
            "read_notes",
            "--input",
            "notes",
            "--",
            "cat",
            "secret.txt",
        ],
    )
    .code(77);
    // --tool-from-argv0: the tool is the program that runs.
    let curl = run(
        guard(h, &agent_id),
        &[
            "guard",
            "run",
            "--tool-from-argv0",
            "--",
            "/usr/bin/curl",
            "--version",
        ],
    );
    curl.code(77);
    assert!(curl.stderr.contains("no network"), "{}", curl.stderr);
    let echoed = run(
        guard(h, &agent_id),
        &["guard", "run", "--tool-from-argv0", "--", "echo", "hi"],
    );
    echoed.success();
    assert_eq!(echoed.stdout, "hi\n");
    // A --tool that disagrees with argv[0] is refused before anything is checked or run.
    let marker = h.scratch.path().join("ran-disagree");
    let disagree = run(
        guard(h, &agent_id),
        &[
            "guard",
            "run",
            "--tool",
            "web_search",
            "--tool-from-argv0",
            "--",
            "touch",
            marker.to_str().unwrap(),
        ],
    );
    disagree.code(2);
    assert!(disagree.stderr.contains("disagrees"), "{}", disagree.stderr);
    assert!(!marker.exists());
}

fn a_shell_agent_holding_only_an_agent_token(h: &Harness) {
    h.put_policy(serde_json::from_str(POLICY).unwrap());
    let agent_id = h.create_agent("token-holder", &["web:read"])["id"]
        .as_str()
        .unwrap()
        .to_string();
    let other_id = h.create_agent("someone-else", &["web:read"])["id"]
        .as_str()
        .unwrap()
        .to_string();
    let token = h.issue_token(&agent_id, &["web:read"], 600)["token"]
        .as_str()
        .unwrap()
        .to_string();
    // No API key, no agent id: only the token, from the environment.
    let token_only = || {
        let mut command = h.cli_bare();
        command
            .env("AGENTTRUST_URL", &h.url)
            .env("AGENTTRUST_STATE_DIR", state_dir(h))
            .env("AGENTTRUST_AGENT_TOKEN", &token);
        command
    };
    let checked = run(
        token_only(),
        &["guard", "check", "web_search", "-o", "json"],
    );
    checked.success();
    assert_eq!(checked.json()["agent_id"], agent_id.as_str());
    let ran = run(
        token_only(),
        &["guard", "run", "--tool", "web_search", "--", "echo", "ran"],
    );
    ran.success();
    assert_eq!(ran.stdout, "ran\n");
    run(token_only(), &["guard", "flush"]).success();
    let stored = events(h, &agent_id);
    assert!(
        stored
            .iter()
            .any(|event| event["tool_name"] == "web_search" && event["event_type"] == "tool_end"),
        "{stored:?}"
    );
    // The token cannot act as another agent (403: exit 4), nor run a command as it.
    let marker = h.scratch.path().join("ran-as-other");
    run(
        token_only(),
        &["guard", "check", "web_search", "--agent", &other_id],
    )
    .code(4);
    let mut as_other = token_only();
    as_other.env("AGENTTRUST_AGENT_ID", &other_id);
    run(
        as_other,
        &[
            "guard",
            "run",
            "--tool",
            "web_search",
            "--",
            "touch",
            marker.to_str().unwrap(),
        ],
    )
    .code(4);
    assert!(!marker.exists());
    // The token from a file or stdin works the same; `actions check` takes it too.
    let file = h.scratch.path().join("agent-token");
    std::fs::write(&file, format!("{token}\n")).unwrap();
    let mut from_file = h.cli_bare();
    from_file
        .env("AGENTTRUST_URL", &h.url)
        .env("AGENTTRUST_STATE_DIR", state_dir(h));
    run(
        from_file,
        &[
            "guard",
            "check",
            "web_search",
            "--agent-token-file",
            file.to_str().unwrap(),
        ],
    )
    .success();
    let mut from_stdin = h.cli_bare();
    from_stdin
        .env("AGENTTRUST_URL", &h.url)
        .write_stdin(token.clone());
    let checked = run(
        from_stdin,
        &[
            "actions",
            "check",
            "--tool",
            "web_search",
            "--agent-token-file",
            "-",
            "-o",
            "json",
        ],
    );
    checked.success();
    assert_eq!(checked.json()["agent_id"], agent_id.as_str());
    // Something that is not an agent token is refused before anything is sent.
    let mut wrong = h.cli_bare();
    wrong
        .env("AGENTTRUST_URL", &h.url)
        .env("AGENTTRUST_AGENT_TOKEN", &h.admin_key);
    run(wrong, &["guard", "check", "web_search"]).code(2);
}
