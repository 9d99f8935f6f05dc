//! The official MCP Python SDK (`mcp`, pinned below, from PyPI into its own venv under
//! `target/sdk-venvs/`) on both sides of the gateway: a FastMCP upstream over Streamable HTTP,
//! stateful (it assigns sessions, the gateway maps them) and stateless, and the SDK's client
//! connecting with an agent token (`tests/sdk/python/mcp_client.py` says what it asserts).

use std::path::Path;
use std::process::Command;

use crate::harness::Harness;
use crate::on_both_backends;

/// The `mcp` release the tests run: the newest with FastMCP (2.x renamed it).
const MCP_VERSION: &str = "1.30.0";

on_both_backends!(
    official_mcp_sdk_stateful_upstream,
    official_mcp_sdk_stateless_upstream,
);

fn official_mcp_sdk_stateful_upstream(h: &Harness) {
    run_script(h, "stateful");
}

fn official_mcp_sdk_stateless_upstream(h: &Harness) {
    run_script(h, "stateless");
}

fn run_script(h: &Harness, mode: &str) {
    let python = crate::python_venv::python(
        &format!("mcp-{MCP_VERSION}"),
        &[&format!("mcp=={MCP_VERSION}")],
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/python/mcp_client.py");
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
        .arg(&script)
        .arg(mode)
        .env("AGENTTRUST_URL", &h.url)
        .env("AGENTTRUST_API_KEY", &h.admin_key)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap_or_else(|error| panic!("run mcp_client.py: {error}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "mcp_client.py {mode} with mcp {MCP_VERSION} failed ({})\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status
    );
    assert!(
        stdout.contains(&format!("mcp_client {mode} passed")),
        "{stdout}"
    );
}
