//! The Python venvs the compatibility tests run in (`target/sdk-venvs/`): one per package set,
//! made on first use and reused by later runs and by every test process.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// Serialises venv creation inside this test process; the rename below makes it safe across
/// processes too (a runner that starts one process per test).
static VENV_LOCK: Mutex<()> = Mutex::new(());

/// `target/sdk-venvs/NAME/bin/python` with `requirements` installed, made once: the venv is
/// built under a temporary name and renamed into place when complete, so a half-made venv is
/// never used. `PYTHON` names the interpreter to build it with (default `python3`).
pub fn python(name: &str, requirements: &[&str]) -> PathBuf {
    let _guard = VENV_LOCK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let root = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .join("sdk-venvs");
    let venv = root.join(name);
    let python = venv.join("bin/python");
    if venv.join(".complete").exists() {
        return python;
    }
    std::fs::create_dir_all(&root).expect("create target/sdk-venvs");
    let building = root.join(format!(".{name}.{}", uuid::Uuid::new_v4().simple()));
    let base = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_string());
    let with_pip = Command::new(&base)
        .args(["-m", "venv"])
        .arg(&building)
        .output()
        .unwrap_or_else(|error| panic!("run `{base} -m venv`: {error}"));
    let building_python = building.join("bin/python");
    let install = if with_pip.status.success() {
        Command::new(&building_python)
            .args([
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--no-input",
                "--quiet",
            ])
            .args(requirements)
            .output()
    } else {
        // A Python without ensurepip: make the venv bare and install into it with the base pip.
        let _ = std::fs::remove_dir_all(&building);
        let bare = Command::new(&base)
            .args(["-m", "venv", "--without-pip"])
            .arg(&building)
            .output()
            .expect("python -m venv --without-pip");
        assert!(
            bare.status.success(),
            "cannot make a venv: {}\n{}",
            String::from_utf8_lossy(&with_pip.stderr),
            String::from_utf8_lossy(&bare.stderr)
        );
        Command::new(&base)
            .args(["-m", "pip", "--python"])
            .arg(&building_python)
            .args([
                "install",
                "--disable-pip-version-check",
                "--no-input",
                "--quiet",
            ])
            .args(requirements)
            .output()
    }
    .expect("run pip");
    assert!(
        install.status.success(),
        "pip install {requirements:?} failed\n{}\n{}",
        String::from_utf8_lossy(&install.stdout),
        String::from_utf8_lossy(&install.stderr)
    );
    std::fs::write(building.join(".complete"), name).expect("mark the venv complete");
    if std::fs::rename(&building, &venv).is_err() {
        // Another process finished first: use its venv.
        let _ = std::fs::remove_dir_all(&building);
        assert!(
            venv.join(".complete").exists(),
            "no usable venv at {}",
            venv.display()
        );
    }
    python
}
