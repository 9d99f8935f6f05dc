//! Hints that are true (issue 16 items 9–11): each error names its real cause and the one next
//! step — the agent token rather than the API key, the variable that overrides every profile,
//! the transport failure as it is (refused here, a name that does not resolve, `https://`
//! against plain HTTP), a URL without its scheme or with the API path, a server that answers but
//! is not a gateway — and `login` saves the profile every other command uses.

use std::io::{Read, Write};
use std::net::TcpListener;

use agenttrust::api::keys::Role;
use serde_json::Value;

use crate::harness::{self, Harness};
use crate::on_both_backends;

on_both_backends!(
    a_rejected_agent_token_is_not_a_login_problem,
    a_rejected_key_names_where_it_came_from,
    a_rejected_login_does_not_suggest_login,
    a_finished_wait_does_not_suggest_waiting,
    urls_that_cannot_be_right_are_named,
    a_server_that_is_not_a_gateway_is_named,
    login_saves_the_default_profile,
    transport_failures_say_what_failed,
);

fn a_rejected_agent_token_is_not_a_login_problem(h: &Harness) {
    let agent = h.create_agent("holder", &[]);
    let token = h.issue_token(agent["id"].as_str().unwrap(), &[], 600)["token"]
        .as_str()
        .unwrap()
        .to_string();
    h.run(&["tokens", "revoke", &token, "--yes"]).success();
    for token in [token.as_str(), "at_not_a_token"] {
        let refused = h.run(&["sessions", "init-api", token]);
        refused.code(4);
        assert_eq!(refused.stdout, "");
        let (error, hint) = refused.stderr.split_once("\nhint: ").unwrap();
        assert!(error.starts_with("error: the token is "), "{error}");
        assert_eq!(
            hint,
            "the agent token is expired, revoked or not this org's: issue a new one with \
             `agenttrust tokens issue --agent AGENT`\n"
        );
    }
}

fn a_rejected_key_names_where_it_came_from(h: &Harness) {
    let from_env = harness::run(
        h.cli()
            .env("AGENTTRUST_API_KEY", "sk_live_wrong")
            .args(["agents", "list"]),
    );
    from_env.code(4);
    assert_eq!(
        from_env.stderr,
        "error: invalid or revoked API key\n\
         hint: the key comes from AGENTTRUST_API_KEY (which overrides any profile's key): \
         correct or unset it\n"
    );

    // A profile's key that was revoked since: log in again.
    let (key, key_id) = h.new_key(Role::Admin);
    harness::run(
        h.cli_bare()
            .args([
                "login",
                "--profile",
                "ops",
                "--url",
                &h.url,
                "--api-key-stdin",
            ])
            .write_stdin(format!("{key}\n")),
    )
    .success();
    h.run(&["keys", "revoke", &key_id, "--yes"]).success();
    let from_profile = h.run_bare(&["--profile", "ops", "agents", "list"]);
    from_profile.code(4);
    assert_eq!(
        from_profile.stderr,
        "error: invalid or revoked API key\n\
         hint: log in again: `agenttrust login --profile ops`\n"
    );
}

fn a_rejected_login_does_not_suggest_login(h: &Harness) {
    let rejected = harness::run(
        h.cli_bare()
            .args(["login", "--url", &h.url, "--api-key-stdin"])
            .write_stdin("sk_live_wrong\n"),
    );
    rejected.code(4);
    assert_eq!(
        rejected.stderr,
        format!(
            "error: the gateway at {} rejected the API key; nothing was saved: invalid or \
             revoked API key\n\
             hint: the key is not valid there; an admin makes one with `agenttrust keys create` \
             (or `agenttrust server key create` on the gateway's host)\n",
            h.url
        )
    );
}

fn a_finished_wait_does_not_suggest_waiting(h: &Harness) {
    h.put_policy(serde_json::json!({
        "rules": [{"id": "deploys", "tools": ["deploy_*"], "decision": "require_approval",
                   "reason": "deploys need a human"}]
    }));
    let agent = h.create_agent("waiter", &[]);
    let agent_id = agent["id"].as_str().unwrap();
    // `--wait-timeout` bounds the wait; the old spelling, `--timeout` alone, still does.
    for wait in [&["--wait-timeout", "1s"][..], &["--timeout", "1s"]] {
        let mut args = vec![
            "guard",
            "check",
            "deploy_prod",
            "--agent",
            agent_id,
            "--session",
            "s-wait",
            "--wait",
        ];
        args.extend_from_slice(wait);
        let waited = h.run(&args);
        waited.code(75);
        let (error, hint) = waited.stderr.split_once("\nhint: ").unwrap();
        assert!(error.ends_with("is pending after waiting 1s"), "{error}");
        assert!(
            hint.ends_with(", or wait longer with --wait-timeout\n"),
            "{hint}"
        );
        assert!(!hint.contains("--wait "), "{hint}");
    }
    // `1h30m` is a duration.
    h.run(&["health", "--timeout", "1h30m"]).success();
}

fn urls_that_cannot_be_right_are_named(h: &Harness) {
    let address = h.url.trim_start_matches("http://").trim_end_matches('/');
    let schemeless = h.run(&["--url", address, "agents", "list"]);
    schemeless.code(1);
    assert_eq!(
        schemeless.stderr,
        format!(
            "error: invalid gateway URL {address:?}: it has no scheme\n\
             hint: write it with its scheme: http://{address} (or https://…)\n"
        )
    );

    let with_api_path = format!("http://{address}/api/v1");
    let api_path = h.run(&["--url", &with_api_path, "agents", "list"]);
    api_path.code(1);
    assert_eq!(
        api_path.stderr,
        format!(
            "error: invalid gateway URL {with_api_path:?}: it must be the gateway's base URL, \
             without the API path\n\
             hint: use http://{address}\n"
        )
    );

    // Another path may be a proxy's prefix: it is tried, and the gateway's 404 says why.
    let prefixed = format!("http://{address}/agenttrust");
    let unknown_route = h.run(&["--url", &prefixed, "agents", "list"]);
    unknown_route.code(3);
    assert_eq!(
        unknown_route.stderr,
        "error: no such endpoint: GET /agenttrust/api/v1/agents\n\
         hint: the URL must be the gateway's base (http://host:port): check --url (or \
         AGENTTRUST_URL, or the profile's url)\n"
    );
}

/// A server that answers every request with a web page, `count` times.
fn web_server(count: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().take(count) {
            let Ok(mut stream) = stream else { continue };
            let mut buffer = [0u8; 4096];
            let _ = stream.read(&mut buffer);
            let body = "<html>hello</html>";
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\n\
                 connection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

fn a_server_that_is_not_a_gateway_is_named(h: &Harness) {
    let url = web_server(1);
    let status = h.run(&["--url", &url, "status"]);
    status.code(1);
    assert!(
        status
            .stdout
            .contains("gateway\tnot an AgentTrust gateway (unexpected answer from "),
        "{}",
        status.stdout
    );
    assert!(!status.stdout.contains("unreachable"), "{}", status.stdout);
    let (error, hint) = status.stderr.split_once("\nhint: ").unwrap();
    assert!(
        error.starts_with(&format!(
            "error: the server at {url} answered, but it is not an AgentTrust gateway: "
        )),
        "{error}"
    );
    assert_eq!(
        hint,
        "check --url (or AGENTTRUST_URL, or the profile's url): it must be the base URL of an \
         AgentTrust gateway\n"
    );
}

fn login_saves_the_default_profile(h: &Harness) {
    let login = |profile: Option<&str>| {
        let mut command = h.cli_bare();
        command.arg("login");
        if let Some(profile) = profile {
            command.args(["--profile", profile]);
        }
        command
            .args(["--url", &h.url, "--api-key-stdin"])
            .write_stdin(format!("{}\n", h.admin_key));
        harness::run(&mut command)
    };
    login(Some("local")).success();
    let again = login(None);
    again.success();
    assert_eq!(
        again.stderr,
        format!(
            "Logged in to {} as profile `local` (saved in {})\n",
            h.url,
            h.config_path("")
                .display()
                .to_string()
                .trim_end_matches('/')
        )
    );
    let profiles = h.run_bare(&["profile", "list", "-o", "json"]);
    profiles.success();
    let names: Vec<Value> = profiles.json()["profiles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|profile| profile["name"].clone())
        .collect();
    assert_eq!(names, ["local"]);
}

fn transport_failures_say_what_failed(h: &Harness) {
    // Refused on this machine: start a gateway.
    let free = TcpListener::bind("127.0.0.1:0").unwrap();
    let refused_url = format!("http://{}", free.local_addr().unwrap());
    drop(free);
    let refused = h.run(&["--url", &refused_url, "agents", "list"]);
    refused.code(69);
    assert!(
        refused.stderr.ends_with(
            "\nhint: is the gateway running? start one with `agenttrust server --dev`\n"
        ),
        "{}",
        refused.stderr
    );

    // A host name that does not resolve: not a gateway to start.
    let unknown = h.run(&[
        "--url",
        "http://no-such-host.invalid:8080",
        "agents",
        "list",
    ]);
    unknown.code(69);
    assert!(
        unknown.stderr.ends_with(
            "\nhint: the host name `no-such-host.invalid` does not resolve: check --url (or \
             AGENTTRUST_URL, or the profile's url)\n"
        ),
        "{}",
        unknown.stderr
    );

    // `https://` against the plain-HTTP gateway.
    let address = h.url.trim_start_matches("http://").trim_end_matches('/');
    let tls = h.run(&["--url", &format!("https://{address}"), "agents", "list"]);
    tls.code(69);
    assert!(
        tls.stderr.ends_with(&format!(
            "\nhint: the server speaks plain HTTP: use http://{address}\n"
        )),
        "{}",
        tls.stderr
    );
}
