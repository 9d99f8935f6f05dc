//! The official MCP Python SDK (`mcp`, pinned below, from PyPI into its own venv under
//! `target/sdk-venvs/`) on both sides of the gateway: a FastMCP upstream over Streamable HTTP,
//! stateful (it assigns sessions, the gateway maps them) and stateless, and the SDK's client
//! connecting with an agent token (`tests/sdk/python/mcp_client.py` says what it asserts).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

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
    let python = venv_python();
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

/// Serialises venv creation inside this test process; the rename makes it safe across
/// processes too.
static VENV_LOCK: Mutex<()> = Mutex::new(());

/// `target/sdk-venvs/mcp-VERSION/bin/python`, made once: built under a temporary name and
/// renamed into place when complete, so a half-made venv is never used.
fn venv_python() -> PathBuf {
    let _guard = VENV_LOCK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let root = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .join("sdk-venvs");
    let venv = root.join(format!("mcp-{MCP_VERSION}"));
    let python = venv.join("bin/python");
    if venv.join(".complete").exists() {
        return python;
    }
    std::fs::create_dir_all(&root).expect("create target/sdk-venvs");
    let building = root.join(format!(
        ".mcp-{MCP_VERSION}.{}",
        uuid::Uuid::new_v4().simple()
    ));
    let base = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_string());
    let made = Command::new(&base)
        .args(["-m", "venv"])
        .arg(&building)
        .output()
        .unwrap_or_else(|error| panic!("run `{base} -m venv`: {error}"));
    assert!(
        made.status.success(),
        "cannot make a venv: {}",
        String::from_utf8_lossy(&made.stderr)
    );
    let install = Command::new(building.join("bin/python"))
        .args([
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-input",
            "--quiet",
        ])
        .arg(format!("mcp=={MCP_VERSION}"))
        .output()
        .expect("run pip");
    assert!(
        install.status.success(),
        "pip install mcp=={MCP_VERSION} failed\n{}\n{}",
        String::from_utf8_lossy(&install.stdout),
        String::from_utf8_lossy(&install.stderr)
    );
    std::fs::write(building.join(".complete"), MCP_VERSION).expect("mark the venv complete");
    if std::fs::rename(&building, &venv).is_err() {
        let _ = std::fs::remove_dir_all(&building);
        assert!(
            venv.join(".complete").exists(),
            "no usable venv at {}",
            venv.display()
        );
    }
    python
}
