//! One shape per kind of flag (issue 16 item 12): the tool as `--tool` or positionally in every
//! decision verb, the same effect names for `--effect` and `--effects`, and a missing profile
//! exiting 3 wherever it is named.

use crate::harness::Harness;
use crate::on_both_backends;

on_both_backends!(
    the_tool_is_taken_both_ways,
    effects_take_the_effect_names,
    a_missing_profile_is_not_found_everywhere,
);

fn the_tool_is_taken_both_ways(h: &Harness) {
    let agent = h.create_agent("toolbox", &[]);
    let agent_id = agent["id"].as_str().unwrap();
    for tool in [&["--tool", "read_file"][..], &["read_file"]] {
        let mut check = vec!["actions", "check", "--agent", agent_id];
        check.extend_from_slice(tool);
        let checked = h.run(&[&check[..], &["-o", "json"]].concat());
        checked.success();
        assert_eq!(checked.json()["allowed"], true);

        let mut guard = vec!["guard", "check", "--agent", agent_id];
        guard.extend_from_slice(tool);
        h.run(&guard).success();

        let mut run = vec!["guard", "run", "--agent", agent_id];
        run.extend_from_slice(tool);
        run.extend_from_slice(&["--", "echo", "ran"]);
        let ran = h.run(&run);
        ran.success();
        assert_eq!(ran.stdout, "ran\n");

        let mut report = vec!["guard", "report", "--agent", agent_id, "--success"];
        report.extend_from_slice(tool);
        h.run(&report).success();
    }
    // Both at once, or neither, is a usage error.
    for args in [
        &["actions", "check", "--agent", agent_id, "--tool", "a", "b"][..],
        &["guard", "check", "--agent", agent_id, "--tool", "a", "b"],
        &[
            "guard", "run", "--agent", agent_id, "--tool", "a", "b", "--", "true",
        ],
        &["guard", "check", "--agent", agent_id],
        &["actions", "check", "--agent", agent_id],
    ] {
        let refused = h.run(args);
        refused.code(2);
        assert_eq!(refused.stdout, "", "{args:?}");
    }
}

fn effects_take_the_effect_names(h: &Harness) {
    h.create_agent("giver", &["files:read", "files:write"]);
    h.create_agent("taker", &[]);
    let created = h.run(&[
        "delegations",
        "create",
        "--from",
        "giver",
        "--to",
        "taker",
        "--scope",
        "files:read",
        "--effects",
        "read,write",
        "-o",
        "json",
    ]);
    created.success();
    assert_eq!(
        created.json()["restrictions"]["effects"],
        serde_json::json!(["read", "mutating"])
    );
    // The same refusal, naming the same values, as `--effect`.
    let effects = h.run(&[
        "delegations",
        "create",
        "--from",
        "giver",
        "--to",
        "taker",
        "--scope",
        "files:read",
        "--effects",
        "nuke",
    ]);
    effects.code(2);
    let effect = h.run(&["actions", "check", "--tool", "x", "--effect", "nuke"]);
    effect.code(2);
    let values = |stderr: &str| {
        stderr
            .lines()
            .find(|line| line.contains("possible values"))
            .map(str::trim)
            .map(str::to_string)
    };
    assert_eq!(
        values(&effects.stderr),
        Some("[possible values: read, mutating, write, destructive, admin]".to_string()),
        "{}",
        effects.stderr
    );
    assert_eq!(values(&effects.stderr), values(&effect.stderr));
}

fn a_missing_profile_is_not_found_everywhere(h: &Harness) {
    let expected = "error: profile `nope` not found (known: none)\n\
                    hint: create it with `agenttrust login --profile nope`, or see \
                    `agenttrust profile list`\n";
    for args in [
        &["--profile", "nope", "agents", "list"][..],
        &["--profile", "nope", "status"],
        &["--profile", "nope", "api", "GET", "/health"],
        &["profile", "show", "nope"],
        &["profile", "use", "nope"],
        &["profile", "delete", "nope", "--yes"],
    ] {
        let run = h.run_bare(args);
        run.code(3);
        assert_eq!(run.stdout, "", "{args:?}");
        assert_eq!(run.stderr, expected, "{args:?}");
    }
    let env = crate::harness::run(
        h.cli_bare()
            .env("AGENTTRUST_PROFILE", "nope")
            .args(["agents", "list"]),
    );
    env.code(3);
    assert_eq!(env.stderr, expected);
}
