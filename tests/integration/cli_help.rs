//! One shape per kind of flag: `--help` lists a command's own flags first and the global flags
//! in their own section; `-y` is `--yes` on every verb that confirms.

use crate::harness::Harness;

#[test]
fn help_lists_the_commands_own_flags_before_the_global_ones() {
    let h = Harness::sqlite();
    for (args, own) in [
        (&["agents", "list", "--help"][..], "--name-prefix"),
        (&["approvals", "list", "--help"][..], "--watch"),
        (&["api", "--help"][..], "--data"),
    ] {
        let help = h.run(args);
        help.success();
        let text = &help.stdout;
        let own_at = text.find(own).unwrap_or_else(|| panic!("{args:?}: {text}"));
        let section = text
            .find("\nGlobal options:\n")
            .unwrap_or_else(|| panic!("{args:?}: no global section: {text}"));
        let profile = text.find("--profile <NAME>").unwrap();
        assert!(own_at < section && section < profile, "{args:?}: {text}");
    }
}

#[test]
fn dash_y_is_yes_everywhere() {
    let h = Harness::sqlite();
    let agent = h.create_agent("short-lived", &[]);
    let id = agent["id"].as_str().unwrap();
    h.run(&["agents", "revoke", id]).code(2);
    h.run(&["agents", "revoke", id, "-y"]).success();
    assert_eq!(
        h.get(&format!("/api/v1/agents/{id}")).ok()["status"],
        "revoked"
    );
    for verb in [
        &["agents", "revoke", "x", "-y", "--help"][..],
        &["tokens", "revoke", "-y", "--help"],
        &["keys", "revoke", "x", "-y", "--help"],
        &["delegations", "revoke", "x", "-y", "--help"],
        &["approvals", "approve", "x", "-y", "--help"],
        &["approvals", "deny", "x", "-y", "--help"],
        &["policies", "set", "-y", "--help"],
        &["profile", "delete", "-y", "--help"],
    ] {
        let help = h.run(verb);
        help.success();
        assert!(
            help.stdout.contains("-y, --yes"),
            "{verb:?}: {}",
            help.stdout
        );
    }
}
