//! `--jq EXPR` on the JSON a verb prints (strings raw, other values compact, one a line), and
//! the `-o json` contract: exactly one JSON document on stdout, errors as one JSON object on
//! stderr.

use serde_json::Value;

use crate::harness::Harness;
use crate::on_both_backends;

on_both_backends!(
    jq_prints_strings_raw_and_values_compact,
    jq_implies_json_whatever_the_environment_says,
    an_invalid_jq_expression_is_a_usage_error_before_any_request,
    a_failing_jq_program_exits_1,
    gateway_errors_under_jq_keep_their_exit_code,
    output_json_is_exactly_one_document,
);

fn jq_prints_strings_raw_and_values_compact(h: &Harness) {
    let alpha = h.create_agent("alpha", &["files:read"]);
    h.create_agent("beta", &[]);

    let names = h.run(&["agents", "list", "--jq", ".agents[].name"]);
    names.success();
    assert_eq!(names.stdout, "alpha\nbeta\n");
    assert_eq!(names.stderr, "");

    let count = h.run(&["agents", "list", "--jq", ".agents | length"]);
    count.success();
    assert_eq!(count.stdout, "2\n");

    let id = alpha["id"].as_str().unwrap();
    let capabilities = h.run(&["agents", "get", id, "--jq", ".capabilities"]);
    capabilities.success();
    assert_eq!(capabilities.stdout, "[\"files:read\"]\n");

    // `.` is the whole document, compact, on one line: the same object `-o json` prints.
    let whole = h.run(&["agents", "get", id, "--jq", "."]);
    whole.success();
    assert_eq!(whole.stdout.lines().count(), 1, "{}", whole.stdout);
    let pretty = h.run(&["agents", "get", id, "-o", "json"]);
    pretty.success();
    assert_eq!(whole.json(), pretty.json());

    // Several results, one a line; `empty` prints nothing at all.
    let pairs = h.run(&["agents", "list", "--jq", ".agents[] | {name, status}"]);
    pairs.success();
    assert_eq!(
        pairs.stdout,
        "{\"name\":\"alpha\",\"status\":\"active\"}\n{\"name\":\"beta\",\"status\":\"active\"}\n"
    );
    let nothing = h.run(&["agents", "list", "--jq", "empty"]);
    nothing.success();
    assert_eq!(nothing.stdout, "");
}

fn jq_implies_json_whatever_the_environment_says(h: &Harness) {
    h.create_agent("gamma", &[]);
    let run = crate::harness::run(h.cli().env("AGENTTRUST_OUTPUT", "table").args([
        "agents",
        "list",
        "--jq",
        ".agents[0].name",
    ]));
    run.success();
    assert_eq!(run.stdout, "gamma\n");
    // `-q` prints ids, `--jq` prints what the program makes: asking for both is a usage error.
    let both = h.run(&["agents", "list", "-q", "--jq", "."]);
    both.code(2);
    assert_eq!(both.stdout, "");
}

fn an_invalid_jq_expression_is_a_usage_error_before_any_request(h: &Harness) {
    let before = h.row_counts();
    let run = h.run(&["agents", "create", "--name", "never", "--jq", ".agents["]);
    run.code(2);
    assert_eq!(run.stdout, "");
    let error: Value = serde_json::from_str(run.stderr.trim()).expect("one JSON object");
    assert_eq!(error["error"]["code"], "USAGE_ERROR");
    assert_eq!(
        error["error"]["message"],
        "invalid --jq expression \".agents[\": expected a closing bracket at character 9"
    );
    assert_eq!(h.row_counts(), before, "nothing was created");

    let undefined = h.run(&["agents", "list", "--jq", ".agents | nosuchfilter"]);
    undefined.code(2);
    assert!(
        undefined.stderr.contains("undefined filter `nosuchfilter`"),
        "{}",
        undefined.stderr
    );
}

fn a_failing_jq_program_exits_1(h: &Harness) {
    h.create_agent("delta", &[]);
    let run = h.run(&["agents", "list", "--jq", ".agents.name"]);
    run.code(1);
    assert_eq!(run.stdout, "");
    let error: Value = serde_json::from_str(run.stderr.trim()).expect("one JSON object");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("--jq: "), "{message}");
}

fn gateway_errors_under_jq_keep_their_exit_code(h: &Harness) {
    let unknown = uuid::Uuid::new_v4().to_string();
    let run = h.run(&["agents", "get", &unknown, "--jq", ".name"]);
    run.code(3);
    assert_eq!(run.stdout, "");
    let error: Value = serde_json::from_str(run.stderr.trim()).expect("one JSON object");
    assert_eq!(error["error"]["status"], 404);
}

fn output_json_is_exactly_one_document(h: &Harness) {
    h.create_agent("epsilon", &[]);
    for args in [
        &["agents", "list", "-o", "json"][..],
        &["keys", "list", "-o", "json"],
        &["health", "-o", "json"],
        &["sessions", "list", "-o", "json"],
    ] {
        let run = h.run(args);
        run.success();
        // serde_json::from_str refuses trailing data: one document, nothing else.
        let _: Value = serde_json::from_str(&run.stdout)
            .unwrap_or_else(|error| panic!("{args:?}: {error}\n{}", run.stdout));
        assert_eq!(run.stderr, "", "{args:?}");
    }
    // The gateway's 404 (an id nobody has), and the CLI's own (a name nobody has).
    let failed = h.run(&[
        "agents",
        "get",
        "0190aaaa-0000-7000-8000-000000000000",
        "-o",
        "json",
    ]);
    failed.code(3);
    assert_eq!(failed.stdout, "");
    let error: Value = serde_json::from_str(&failed.stderr)
        .unwrap_or_else(|error| panic!("stderr is one JSON object: {error}\n{}", failed.stderr));
    assert_eq!(error["error"]["status"], 404);
    let failed = h.run(&["agents", "get", "nope", "-o", "json"]);
    failed.code(3);
    assert_eq!(failed.stdout, "");
    let error: Value = serde_json::from_str(&failed.stderr)
        .unwrap_or_else(|error| panic!("stderr is one JSON object: {error}\n{}", failed.stderr));
    assert_eq!(error["error"]["code"], "NOT_FOUND");
}
