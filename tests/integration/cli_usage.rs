//! Usage (exit 2), help and version, and the shell completions in `completions/`, which must
//! equal what `agenttrust completions SHELL` prints (a stale file fails here).

use std::path::Path;

use crate::harness::Harness;

#[test]
fn usage_errors_exit_2() {
    let h = Harness::sqlite();
    for args in [
        &["agents", "frobnicate"][..],
        &["--no-such-flag"][..],
        &["agents", "get"][..],
        &["tokens", "issue"][..],
        &["-o", "yaml", "health"][..],
        &["tokens", "issue", "--agent", "a", "--ttl", "soon"][..],
        &["completions", "tcsh"][..],
    ] {
        let run = h.run(args);
        run.code(2);
        assert!(
            run.stdout.is_empty(),
            "{args:?}: usage goes to stderr: {}",
            run.stdout
        );
        assert!(!run.stderr.is_empty(), "{args:?}");
    }
    // The key is never a positional argument or a flag value.
    h.run(&["login", "sk_live_abc"]).code(2);
}

#[test]
fn help_and_version() {
    let h = Harness::sqlite();
    let help = h.run(&["--help"]);
    help.success();
    for group in [
        "agents",
        "tokens",
        "actions",
        "telemetry",
        "keys",
        "login",
        "profile",
        "status",
        "health",
        "completions",
        "server",
    ] {
        assert!(
            help.stdout.contains(group),
            "`{group}` missing from --help:\n{}",
            help.stdout
        );
    }
    let version = h.run(&["--version"]);
    version.success();
    assert!(
        version.stdout.contains(env!("CARGO_PKG_VERSION")),
        "{}",
        version.stdout
    );
}

#[test]
fn completions_are_current() {
    let h = Harness::sqlite();
    let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join("completions");
    for (shell, file) in [
        ("bash", "agenttrust.bash"),
        ("zsh", "_agenttrust"),
        ("fish", "agenttrust.fish"),
        ("powershell", "_agenttrust.ps1"),
        ("elvish", "agenttrust.elv"),
    ] {
        let generated = h.run(&["completions", shell]);
        generated.success();
        assert!(generated.stdout.contains("agenttrust"), "{shell}");
        let committed = std::fs::read_to_string(directory.join(file))
            .unwrap_or_else(|error| panic!("completions/{file}: {error}"));
        assert!(
            committed == generated.stdout,
            "completions/{file} is stale: regenerate it with `agenttrust completions {shell} > completions/{file}`"
        );
    }
}
