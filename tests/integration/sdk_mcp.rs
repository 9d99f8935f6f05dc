//! The official MCP Python SDK (`mcp`, pinned below, from PyPI into its own venv under
//! `target/sdk-venvs/`) on both sides of the gateway, and the SDK's client connecting with an
//! agent token:
//! - 1.x: a FastMCP upstream over Streamable HTTP, stateful (it assigns sessions, the gateway
//!   maps them) and stateless (`tests/sdk/python/mcp_client.py` says what it asserts);
//! - 2.x: an `MCPServer` upstream, and the client in its default mode, which adopts the
//!   stateless 2026-07-28 revision, and in its legacy `initialize` mode
//!   (`tests/sdk/python/mcp2_client.py`).

use std::path::Path;
use std::process::Command;

use crate::harness::Harness;
use crate::on_both_backends;

/// The `mcp` 1.x release the tests run: the newest with FastMCP (2.x renamed it).
const MCP_VERSION: &str = "1.30.0";
/// The `mcp` 2.x release the tests run (its newest revision is 2026-07-28).
const MCP2_VERSION: &str = "2.3.0";

on_both_backends!(
    official_mcp_sdk_stateful_upstream,
    official_mcp_sdk_stateless_upstream,
    official_mcp_sdk_2_in_the_stateless_revision,
    official_mcp_sdk_2_in_the_handshake_revision,
);

fn official_mcp_sdk_stateful_upstream(h: &Harness) {
    run_script(h, MCP_VERSION, "mcp_client", "stateful");
}

fn official_mcp_sdk_stateless_upstream(h: &Harness) {
    run_script(h, MCP_VERSION, "mcp_client", "stateless");
}

fn official_mcp_sdk_2_in_the_stateless_revision(h: &Harness) {
    run_script(h, MCP2_VERSION, "mcp2_client", "modern");
}

fn official_mcp_sdk_2_in_the_handshake_revision(h: &Harness) {
    run_script(h, MCP2_VERSION, "mcp2_client", "legacy");
}

/// Runs `tests/sdk/python/<script>.py <mode>` with `mcp==<version>` against the gateway.
fn run_script(h: &Harness, version: &str, script: &str, mode: &str) {
    let python =
        crate::python_venv::python(&format!("mcp-{version}"), &[&format!("mcp=={version}")]);
    let script_path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/sdk/python/{script}.py"));
    let mut command = Command::new(&python);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("AGENTTRUST_") {
            command.env_remove(name);
        }
    }
    // -P: the script's folder holds `mcp.py` (the AgentTrust SDK test), which must not shadow
    // the `mcp` package.
    let output = command
        .arg("-P")
        .arg(&script_path)
        .arg(mode)
        .env("AGENTTRUST_URL", &h.url)
        .env("AGENTTRUST_API_KEY", &h.admin_key)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap_or_else(|error| panic!("run {script}.py: {error}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{script}.py {mode} with mcp {version} failed ({})\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status
    );
    assert!(
        stdout.contains(&format!("{script} {mode} passed")),
        "{stdout}"
    );
}
