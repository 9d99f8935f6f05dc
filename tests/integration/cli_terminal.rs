//! What a person at a terminal sees (through a pseudo-terminal made by `script`): relative
//! times, agent names beside shortened ids of other objects, tables fitted to the width unless
//! `--wide`, and the
//! colour decision (`--color`, `NO_COLOR`, `CLICOLOR=0`, `CLICOLOR_FORCE`). Piped output and
//! JSON keep RFC 3339 times and whole ids.

use std::process::Command;

use serde_json::json;

use crate::harness::{Harness, Run, binary, run};

/// Runs the binary on a pseudo-terminal `columns` wide, with `extra` environment variables;
/// returns its output with `\r\n` made `\n`.
fn on_a_terminal(h: &Harness, columns: u16, extra: &[(&str, &str)], args: &[&str]) -> Run {
    let quote = |text: &str| format!("'{}'", text.replace('\'', r"'\''"));
    let mut line = format!(
        "stty cols {columns} rows 50; exec {}",
        quote(binary().to_str().unwrap())
    );
    for arg in args {
        line.push(' ');
        line.push_str(&quote(arg));
    }
    let mut command = Command::new("script");
    command
        .args(["-qec", &line, "/dev/null"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("TERM", "xterm")
        .env("HOME", h.scratch.path())
        .env("AGENTTRUST_CONFIG_DIR", h.config_dir.path())
        .env("AGENTTRUST_URL", &h.url)
        .env("AGENTTRUST_API_KEY", &h.admin_key)
        .stdin(std::process::Stdio::null());
    for (name, value) in extra {
        command.env(name, value);
    }
    let output = command.output().expect("script(1) from util-linux");
    let mut run = Run::from(output);
    run.stdout = run.stdout.replace("\r\n", "\n");
    run
}

fn agent(h: &Harness, name: &str, capabilities: &[&str]) -> String {
    h.create_agent(name, capabilities)["id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn terminals_get_relative_times_and_short_ids_scripts_get_them_whole() {
    let h = Harness::sqlite();
    let from = agent(&h, "boss", &["files:read"]);
    let to = agent(&h, "helper", &[]);
    let delegation = h.post(
        "/api/v1/delegations",
        json!({"from_agent_id": from, "to_agent_id": to, "scope": ["files:read"],
               "ttl_seconds": 3600}),
    );
    let id = delegation.body["delegation"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let expires_at = delegation.body["delegation"]["expires_at"]
        .as_str()
        .unwrap()
        .to_string();

    let terminal = on_a_terminal(&h, 200, &[("NO_COLOR", "1")], &["delegations", "list"]);
    terminal.success();
    let lines: Vec<&str> = terminal.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", terminal.stdout);
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        header,
        ["ID", "FROM", "TO", "SCOPE", "STATUS", "EXPIRES", "PARENT"]
    );
    let short = |id: &str| format!("{}…", &id[..9]);
    // Cells are two spaces apart at least; a cell narrower than its column by an odd number
    // leaves one more space before the next, hence the trim.
    let cells: Vec<&str> = lines[1]
        .split("  ")
        .map(str::trim)
        .filter(|cell| !cell.is_empty())
        .collect();
    // An hour from creation: `in 1h`, or `in 59m` when a second ticked in between.
    let expires = if cells.get(5) == Some(&"in 59m") {
        "in 59m"
    } else {
        "in 1h"
    };
    assert_eq!(
        cells,
        [
            id.as_str(),
            &format!("boss ({})", short(&from)),
            &format!("helper ({})", short(&to)),
            "files:read",
            "active",
            expires,
            "-"
        ],
        "{}",
        terminal.stdout
    );

    let wide = on_a_terminal(
        &h,
        200,
        &[("NO_COLOR", "1")],
        &["delegations", "list", "--wide"],
    );
    wide.success();
    assert!(
        wide.stdout.contains(&format!("boss ({from})"))
            && wide.stdout.contains(&format!("helper ({to})")),
        "{}",
        wide.stdout
    );
    let server = h.register_mcp_server("srv");
    h.post(
        "/mcp/sessions/init",
        json!({"agent_id": to, "server_id": server}),
    )
    .ok();
    let sessions = on_a_terminal(&h, 200, &[("NO_COLOR", "1")], &["sessions", "list"]);
    sessions.success();
    assert!(
        sessions
            .stdout
            .contains(&format!("helper ({})", short(&to))),
        "{}",
        sessions.stdout
    );
    let piped_sessions = h.run(&["sessions", "list"]);
    piped_sessions.success();
    assert!(
        !piped_sessions.stdout.contains("helper"),
        "scripts get ids: {}",
        piped_sessions.stdout
    );

    // Piped: tab-separated, whole ids, RFC 3339.
    let piped = h.run(&["delegations", "list"]);
    piped.success();
    assert_eq!(
        piped.stdout,
        format!("{id}\t{from}\t{to}\tfiles:read\tactive\t{expires_at}\t-\n")
    );
    // JSON on a terminal: as received.
    let json = on_a_terminal(
        &h,
        200,
        &[],
        &["delegations", "list", "--jq", ".delegations[0].expires_at"],
    );
    json.success();
    assert_eq!(json.stdout, format!("{expires_at}\n"));
}

#[test]
fn tables_fit_the_terminal_unless_wide() {
    let h = Harness::sqlite();
    let capabilities: Vec<String> = (0..12)
        .map(|index| format!("capability:number-{index}"))
        .collect();
    let capabilities: Vec<&str> = capabilities.iter().map(String::as_str).collect();
    agent(&h, "wide-agent", &capabilities);
    let fitted = on_a_terminal(&h, 100, &[("NO_COLOR", "1")], &["agents", "list"]);
    fitted.success();
    for line in fitted.stdout.lines() {
        assert!(
            line.chars().count() <= 100,
            "wider than 100: {line:?}\n{}",
            fitted.stdout
        );
    }
    assert!(fitted.stdout.contains("just now"), "{}", fitted.stdout);
    let wide = on_a_terminal(&h, 100, &[("NO_COLOR", "1")], &["agents", "list", "--wide"]);
    wide.success();
    assert!(
        wide.stdout.lines().any(|line| line.chars().count() > 100),
        "{}",
        wide.stdout
    );
    assert!(
        wide.stdout.contains(&capabilities.join(", ")),
        "{}",
        wide.stdout
    );
}

#[test]
fn colour_follows_the_flag_and_the_environment() {
    let h = Harness::sqlite();
    agent(&h, "colourful", &[]);
    const BOLD: &str = "\x1b[1m";
    let coloured = |extra: &[(&str, &str)], args: &[&str]| {
        let mut full = vec!["agents", "list"];
        full.extend_from_slice(args);
        let run = on_a_terminal(&h, 120, extra, &full);
        run.success();
        run.stdout.contains(BOLD)
    };
    assert!(coloured(&[], &[]), "a terminal gets a bold header");
    assert!(!coloured(&[("NO_COLOR", "1")], &[]));
    assert!(!coloured(&[("CLICOLOR", "0")], &[]));
    assert!(!coloured(&[], &["--color", "never"]));
    assert!(coloured(&[("NO_COLOR", "1")], &["--color", "always"]));

    // Errors on stderr, piped: plain unless forced.
    let unknown = uuid::Uuid::new_v4().to_string();
    let red = "\x1b[1;31merror:\x1b[0m";
    let plain = run(h
        .cli()
        .env_remove("NO_COLOR")
        .args(["agents", "get", &unknown]));
    plain.code(3);
    assert!(plain.stderr.starts_with("error: "), "{}", plain.stderr);
    let forced = run(h
        .cli()
        .env_remove("NO_COLOR")
        .env("CLICOLOR_FORCE", "1")
        .args(["agents", "get", &unknown]));
    forced.code(3);
    assert!(forced.stderr.starts_with(red), "{:?}", forced.stderr);
    let always = run(h
        .cli()
        .args(["agents", "get", &unknown, "--color", "always"]));
    assert!(always.stderr.starts_with(red), "{:?}", always.stderr);
    h.run(&["agents", "list", "--color", "sometimes"]).code(2);
}
