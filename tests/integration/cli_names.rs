//! Agents named by name wherever an id is accepted (issue 16 item 8): the CLI resolves a name
//! to the id in one place; a UUID is taken as an id without a lookup (the guard paths stay one
//! request long); an unknown name is exit 3 with a message naming it.

use agenttrust::api::keys::Role;

use crate::harness::Harness;
use crate::on_both_backends;

on_both_backends!(
    agents_verbs_take_a_name,
    every_group_takes_a_name,
    an_unknown_name_is_not_found,
    an_id_is_not_looked_up,
);

fn agent_id(h: &Harness, name: &str) -> String {
    h.create_agent(name, &["files:read"])["id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn agents_verbs_take_a_name(h: &Harness) {
    let demo = agent_id(h, "demo");
    // A prefix of another name is not that name: `demo` is not `demo-2`.
    let demo_2 = agent_id(h, "demo-2");

    let got = h.run(&["agents", "get", "demo", "-o", "json"]);
    got.success();
    assert_eq!(got.json()["id"], demo.as_str());
    let got = h.run(&["agents", "get", "demo-2", "-q"]);
    got.success();
    assert_eq!(got.value(), demo_2);

    let moded = h.run(&["agents", "mode", "demo", "read_only", "-o", "json"]);
    moded.success();
    assert_eq!(moded.json()["id"], demo.as_str());
    assert_eq!(moded.json()["mode"], "read_only");
    h.run(&["agents", "unlock", "demo", "-q"]).success();

    let revoked = h.run(&["agents", "revoke", "demo-2", "--yes", "-q"]);
    revoked.success();
    assert_eq!(revoked.value(), demo_2);
    assert_eq!(revoked.stderr, "");
    let still = h.get(&format!("/api/v1/agents/{demo}")).ok().clone();
    assert_eq!(still["status"], "active", "{still}");
}

fn every_group_takes_a_name(h: &Harness) {
    let alice = agent_id(h, "alice");
    let bob = agent_id(h, "bob");

    // Runtime: a check, a guard check, a telemetry report, a session, a token.
    let checked = h.run(&[
        "actions",
        "check",
        "--agent",
        "alice",
        "--tool",
        "read_file",
    ]);
    checked.success();
    let guarded = h.run(&["guard", "check", "read_file", "--agent", "alice"]);
    guarded.success();
    assert_eq!(guarded.stdout, "");
    let from_env = h
        .cli()
        .env("AGENTTRUST_AGENT_ID", "alice")
        .args(["guard", "check", "read_file"])
        .output()
        .unwrap();
    assert_eq!(from_env.status.code(), Some(0), "{from_env:?}");
    h.run(&[
        "telemetry",
        "report",
        "--agent",
        "alice",
        "--event-type",
        "tool_end",
        "--tool",
        "read_file",
    ])
    .success();
    let token = h.run(&["tokens", "issue", "--agent", "alice", "-o", "json"]);
    token.success();
    assert_eq!(token.json()["agent_id"], alice.as_str());
    let tokens = h.run(&["tokens", "list", "--agent", "alice", "-o", "json"]);
    tokens.success();
    assert_eq!(tokens.json()["tokens"].as_array().unwrap().len(), 1);

    // Filters: by name, the same rows as by id.
    for group in ["sessions", "telemetry", "approvals", "tokens"] {
        let by_name = h.run(&[group, "list", "--agent", "alice", "-o", "json"]);
        by_name.success();
        let by_id = h.run(&[group, "list", "--agent", &alice, "-o", "json"]);
        by_id.success();
        assert_eq!(by_name.json(), by_id.json(), "{group}");
    }

    // Delegations: both ends by name.
    let created = h.run(&[
        "delegations",
        "create",
        "--from",
        "alice",
        "--to",
        "bob",
        "--scope",
        "files:read",
        "-o",
        "json",
    ]);
    created.success();
    assert_eq!(created.json()["from_agent_id"], alice.as_str());
    assert_eq!(created.json()["to_agent_id"], bob.as_str());
    let listed = h.run(&["delegations", "list", "--to", "bob", "-q"]);
    listed.success();
    assert_eq!(listed.value(), created.json()["id"].as_str().unwrap());
    let listed = h.run(&["delegations", "list", "--from", "bob", "-q"]);
    listed.success();
    assert_eq!(listed.value(), "");

    // A policy dry run.
    h.run(&["policies", "test", "--agent", "bob", "--tool", "read_file"])
        .success();
}

fn an_unknown_name_is_not_found(h: &Harness) {
    agent_id(h, "present");
    for args in [
        &["agents", "get", "absent"][..],
        &["agents", "revoke", "absent", "--yes"],
        &["tokens", "issue", "--agent", "absent"],
        &["sessions", "list", "--agent", "absent"],
        &["guard", "check", "read_file", "--agent", "absent"],
        &[
            "actions",
            "check",
            "--agent",
            "absent",
            "--tool",
            "read_file",
        ],
        &[
            "delegations",
            "create",
            "--from",
            "present",
            "--to",
            "absent",
            "--scope",
            "a:read",
        ],
        // A prefix of a name is not a name.
        &["agents", "get", "pres"],
    ] {
        let run = h.run(args);
        run.code(3);
        assert_eq!(run.stdout, "", "{args:?}");
        let absent = args
            .iter()
            .find(|arg| ["absent", "pres"].contains(arg))
            .unwrap();
        assert_eq!(
            run.stderr,
            format!(
                "error: no agent with the id or name `{absent}`\n\
                 hint: see `agenttrust agents list`\n"
            ),
            "{args:?}"
        );
    }
    let json = h.run(&["agents", "get", "absent", "-o", "json"]);
    json.code(3);
    assert_eq!(json.stderr_json()["error"]["code"], "NOT_FOUND");
}

fn an_id_is_not_looked_up(h: &Harness) {
    let id = agent_id(h, "runner");
    // A runtime key may check but not list agents: a check by id works with it (no lookup),
    // by name it needs a key that may list them.
    let (runtime, _) = h.new_key(Role::Runtime);
    let by_id = h
        .cli()
        .env("AGENTTRUST_API_KEY", &runtime)
        .args(["guard", "check", "read_file", "--agent", &id])
        .output()
        .unwrap();
    assert_eq!(by_id.status.code(), Some(0), "{by_id:?}");
    let by_name = h
        .cli()
        .env("AGENTTRUST_API_KEY", &runtime)
        .args(["guard", "check", "read_file", "--agent", "runner"])
        .output()
        .unwrap();
    assert_eq!(by_name.status.code(), Some(4), "{by_name:?}");
    let stderr = String::from_utf8_lossy(&by_name.stderr);
    assert!(
        stderr.starts_with("error: cannot look up agent `runner` by name: "),
        "{stderr}"
    );
    // An id nobody has goes to the gateway as it is: its answer, not the CLI's lookup.
    let unknown = h.run(&["agents", "get", "0190aaaa-0000-7000-8000-000000000000"]);
    unknown.code(3);
    assert!(
        !unknown.stderr.contains("no agent with the id or name"),
        "{}",
        unknown.stderr
    );
}
