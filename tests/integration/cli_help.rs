//! `--help` lists a command's own flags first and the global flags in their own section.

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
