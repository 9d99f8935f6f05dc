//! `agenttrust api METHOD PATH`: the raw escape hatch with the profile's URL and key. The body
//! is printed as received (or through `--jq`), error statuses exit as every verb does, and the
//! API key appears in no output and goes to no other host.

use agenttrust::api::keys::Role;
use serde_json::{Value, json};

use crate::harness::{Harness, run};
use crate::on_both_backends;

on_both_backends!(
    api_prints_the_body_as_received,
    api_sends_data_from_text_file_and_stdin,
    api_error_statuses_exit_like_every_verb,
    api_include_shows_the_head_and_never_the_key,
    api_refuses_urls_that_leave_the_gateway,
    api_headers_replace_the_defaults,
);

fn api_prints_the_body_as_received(h: &Harness) {
    h.create_agent("alpha", &[]);
    h.create_agent("beta", &[]);
    let direct = h.get("/api/v1/agents");
    let run = h.run(&["api", "GET", "/api/v1/agents"]);
    run.success();
    assert_eq!(
        run.stdout, direct.text,
        "off a terminal: the bytes as received"
    );
    assert_eq!(run.stderr, "");

    let names = h.run(&["api", "get", "api/v1/agents", "--jq", ".agents[].name"]);
    names.success();
    assert_eq!(names.stdout, "alpha\nbeta\n");

    // No key needed where the gateway needs none.
    let health = run_bare_with_url(h, &["api", "GET", "/health", "--jq", ".status"]);
    health.success();
    assert_eq!(health.stdout, "healthy\n");
}

fn run_bare_with_url(h: &Harness, args: &[&str]) -> crate::harness::Run {
    run(h.cli_bare().env("AGENTTRUST_URL", &h.url).args(args))
}

fn api_sends_data_from_text_file_and_stdin(h: &Harness) {
    let created = h.run(&[
        "api",
        "POST",
        "/api/v1/agents",
        "--data",
        r#"{"name":"from-text","capabilities":["web:search"]}"#,
        "--jq",
        ".id",
    ]);
    created.success();
    let id = created.value().to_string();
    let stored = h.get(&format!("/api/v1/agents/{id}")).agent();
    assert_eq!(stored["name"], "from-text");
    assert_eq!(stored["capabilities"], json!(["web:search"]));

    let file = h.scratch.path().join("agent.json");
    std::fs::write(&file, r#"{"name":"from-file"}"#).unwrap();
    let data = format!("@{}", file.display());
    h.run(&["api", "POST", "/api/v1/agents", "-d", &data])
        .success();

    let from_stdin = run(h
        .cli()
        .args(["api", "POST", "/api/v1/agents", "--data", "-"])
        .write_stdin(r#"{"name":"from-stdin"}"#));
    from_stdin.success();
    let body: Value = serde_json::from_str(&from_stdin.stdout).unwrap();
    assert_eq!(body["name"], "from-stdin");

    let names: Vec<String> = h.get("/api/v1/agents").ok()["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|agent| agent["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["from-text", "from-file", "from-stdin"]);

    let missing = h.run(&[
        "api",
        "POST",
        "/api/v1/agents",
        "--data",
        "@/nonexistent/x.json",
    ]);
    missing.code(1);
    assert!(
        missing.stderr.contains("cannot read the request body"),
        "{}",
        missing.stderr
    );
}

fn api_error_statuses_exit_like_every_verb(h: &Harness) {
    let unknown = uuid::Uuid::new_v4().to_string();
    let not_found = h.run(&["api", "GET", &format!("/api/v1/agents/{unknown}")]);
    not_found.code(3);
    // The error body is still the answer: on stdout; the report on stderr.
    let body: Value = serde_json::from_str(&not_found.stdout).unwrap();
    assert_eq!(
        body["code"].as_str().map(|code| code.contains("NOT_FOUND")),
        Some(true)
    );
    assert!(
        not_found.stderr.starts_with("error: "),
        "{}",
        not_found.stderr
    );

    let json_error = h.run(&[
        "api",
        "GET",
        &format!("/api/v1/agents/{unknown}"),
        "-o",
        "json",
    ]);
    json_error.code(3);
    let report: Value = serde_json::from_str(&json_error.stderr).unwrap();
    assert_eq!(report["error"]["status"], 404);

    let bad_key = run(h.cli().env("AGENTTRUST_API_KEY", "sk_live_wrong").args([
        "api",
        "GET",
        "/api/v1/agents",
    ]));
    bad_key.code(4);

    let (runtime_key, _) = h.new_key(Role::Runtime);
    let forbidden =
        run(h
            .cli()
            .env("AGENTTRUST_API_KEY", &runtime_key)
            .args(["api", "GET", "/api/v1/keys"]));
    forbidden.code(4);

    let invalid = h.run(&["api", "POST", "/api/v1/agents", "--data", "{}"]);
    invalid.code(1);

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let unreachable = run(h
        .cli()
        .env("AGENTTRUST_URL", &closed)
        .args(["api", "GET", "/health"]));
    unreachable.code(69);
    assert_eq!(unreachable.stdout, "");
}

fn api_include_shows_the_head_and_never_the_key(h: &Harness) {
    let run = run(h
        .cli()
        .args(["api", "GET", "/api/v1/agents", "--include", "-vv"]));
    run.success();
    assert!(run.stderr.contains("HTTP/1.1 200 OK\n"), "{}", run.stderr);
    assert!(
        run.stderr
            .to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{}",
        run.stderr
    );
    assert_eq!(run.stdout, h.get("/api/v1/agents").text);
    for stream in [&run.stdout, &run.stderr] {
        assert!(!stream.contains(&h.admin_key), "the key leaked: {stream}");
    }
}

fn api_refuses_urls_that_leave_the_gateway(h: &Harness) {
    let before = h.row_counts();
    for path in [
        "https://evil.example/api/v1/agents",
        "//evil.example/api/v1/agents",
    ] {
        let run = h.run(&["api", "POST", path, "--data", r#"{"name":"x"}"#]);
        run.code(2);
        assert_eq!(run.stdout, "");
        assert!(!run.stderr.contains(&h.admin_key));
    }
    h.run(&["api", "FETCH", "/health"]).code(2);
    assert_eq!(h.row_counts(), before);
}

fn api_headers_replace_the_defaults(h: &Harness) {
    // A key given with -H replaces the profile's: here a wrong one, so the gateway refuses.
    let run = h.run(&[
        "api",
        "GET",
        "/api/v1/agents",
        "-H",
        "X-API-Key: sk_live_not_a_key",
    ]);
    run.code(4);
    let (runtime_key, _) = h.new_key(Role::Runtime);
    let header = format!("x-api-key: {runtime_key}");
    h.run(&["api", "GET", "/api/v1/keys", "-H", &header])
        .code(4);
    h.run(&["api", "GET", "/api/v1/keys", "-H", "no-colon"])
        .code(2);
}
