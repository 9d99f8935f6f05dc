//! `agenttrust completions SHELL`: shell completion scripts, generated from the clap definitions.
//! The files in `completions/` are this command's output; regenerate them with
//! `cargo run -- completions --write-dir completions` (a test keeps them current).

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, CommandFactory};
use clap_complete::{Generator, Shell};

use super::Cli;
use crate::output;

/// The shells we ship completion files for, in a fixed order.
pub const SHELLS: [Shell; 5] = [
    Shell::Bash,
    Shell::Zsh,
    Shell::Fish,
    Shell::PowerShell,
    Shell::Elvish,
];

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// bash, zsh, fish, powershell or elvish
    #[arg(required_unless_present = "write_dir")]
    pub shell: Option<Shell>,
    /// Write every shell's file into this dir (used to refresh completions/)
    #[arg(long, hide = true, value_name = "DIR")]
    pub write_dir: Option<PathBuf>,
}

pub fn run(args: CompletionsArgs) -> anyhow::Result<()> {
    if let Some(dir) = args.write_dir {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        for shell in SHELLS {
            let path = dir.join(shell.file_name("agenttrust"));
            std::fs::write(&path, script(shell))
                .with_context(|| format!("cannot write {}", path.display()))?;
            output::say(format!("wrote {}", path.display()));
        }
        return Ok(());
    }
    if let Some(shell) = args.shell {
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(&script(shell))?;
        stdout.flush()?;
    }
    Ok(())
}

/// The completion script of one shell (deterministic: same binary, same bytes).
pub fn script(shell: Shell) -> Vec<u8> {
    let mut command = Cli::command();
    let mut buffer = Vec::new();
    clap_complete::generate(shell, &mut command, "agenttrust", &mut buffer);
    buffer
}
