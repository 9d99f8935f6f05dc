//! The product README's quick start, the elevation loop (guard → approval → retry), delegations
//! (create, list, session, re-delegate, revoke), federation (providers, verify, sessions), SIEM
//! streaming (destinations, test delivery, delivery log) and MCP (register, list, call a tool
//! through the proxy, remove) through the official Python SDK `agenttrustid` 0.3.0 and 0.4.0
//! (from PyPI, each in its own venv under `target/sdk-venvs/`), against a real gateway.
//! Agent cards and A2A too: generate, publish, the public card; send, get, cancel a task; a
//! denied send; `send_message` as an agent holding its token.

use std::path::Path;
use std::process::Command;

use crate::harness::Harness;
use crate::on_both_backends;

on_both_backends!(
    quickstart_with_0_3_0,
    quickstart_with_0_4_0,
    elevation_with_0_3_0,
    elevation_with_0_4_0,
    delegations_with_0_3_0,
    delegations_with_0_4_0,
    federation_with_0_3_0,
    federation_with_0_4_0,
    streaming_with_0_3_0,
    streaming_with_0_4_0,
    mcp_with_0_3_0,
    mcp_with_0_4_0,
    a2a_with_0_3_0,
    a2a_with_0_4_0,
);

fn quickstart_with_0_3_0(h: &Harness) {
    run_script(h, "0.3.0", "quickstart");
}

fn quickstart_with_0_4_0(h: &Harness) {
    run_script(h, "0.4.0", "quickstart");
}

fn elevation_with_0_3_0(h: &Harness) {
    run_script(h, "0.3.0", "elevation");
}

fn elevation_with_0_4_0(h: &Harness) {
    run_script(h, "0.4.0", "elevation");
}

fn delegations_with_0_3_0(h: &Harness) {
    run_script(h, "0.3.0", "delegations");
}

fn delegations_with_0_4_0(h: &Harness) {
    run_script(h, "0.4.0", "delegations");
}

fn federation_with_0_3_0(h: &Harness) {
    run_script(h, "0.3.0", "federation");
}

fn federation_with_0_4_0(h: &Harness) {
    run_script(h, "0.4.0", "federation");
}

fn streaming_with_0_3_0(h: &Harness) {
    run_script(h, "0.3.0", "streaming");
}

fn streaming_with_0_4_0(h: &Harness) {
    run_script(h, "0.4.0", "streaming");
}

fn mcp_with_0_3_0(h: &Harness) {
    run_script(h, "0.3.0", "mcp");
}

fn mcp_with_0_4_0(h: &Harness) {
    run_script(h, "0.4.0", "mcp");
}

fn a2a_with_0_3_0(h: &Harness) {
    run_script(h, "0.3.0", "cards_a2a");
}

fn a2a_with_0_4_0(h: &Harness) {
    run_script(h, "0.4.0", "cards_a2a");
}

/// Runs `tests/sdk/python/NAME.py` with the SDK VERSION; the script prints `NAME passed`.
fn run_script(h: &Harness, version: &str, name: &str) {
    let python = crate::python_venv::python(
        &format!("agenttrustid-{version}"),
        &[&format!("agenttrustid=={version}")],
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/sdk/python/{name}.py"));
    let mut command = Command::new(&python);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("AGENTTRUST_") {
            command.env_remove(name);
        }
    }
    let output = command
        .arg(&script)
        .env("AGENTTRUST_URL", &h.url)
        .env("AGENTTRUST_API_KEY", &h.admin_key)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap_or_else(|error| panic!("run {name}.py: {error}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{name}.py with agenttrustid {version} failed ({})\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status
    );
    assert!(stdout.contains(&format!("{name} passed")), "{stdout}");
    assert!(
        stdout.contains(&format!("agenttrustid-{version}")),
        "ran the SDK from its own venv: {stdout}"
    );
}
