//! `agenttrust man [COMMAND…]`: man pages generated from the clap definitions (clap_mangen),
//! one page per command (`agenttrust.1`, `agenttrust-agents-list.1`, …). The files in `man/`
//! are this command's output; regenerate them with `cargo run -- man --write-dir man` (a test
//! keeps them current).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Args, CommandFactory};

use super::Cli;
use crate::exit::Failure;

#[derive(Debug, Args)]
#[command(after_help = "\
Read one with `agenttrust man agents list | man -l -`, or install man/ into a MANPATH dir.")]
pub struct ManArgs {
    /// The command whose page to print, e.g. `agents list` [default: agenttrust itself]
    #[arg(value_name = "COMMAND")]
    pub command: Vec<String>,
    /// Write every page into this dir instead (used to refresh man/)
    #[arg(long, value_name = "DIR", conflicts_with = "command")]
    pub write_dir: Option<PathBuf>,
}

pub fn run(args: ManArgs) -> anyhow::Result<()> {
    if let Some(dir) = args.write_dir {
        return write_all(&dir);
    }
    let mut command = built();
    for name in &args.command {
        command = command
            .find_subcommand(name)
            .filter(|found| !found.is_hide_set())
            .cloned()
            .ok_or_else(|| Failure::Usage {
                message: format!("no command `{}`", args.command.join(" ")),
                hint: Some("see `agenttrust --help`".to_string()),
            })?;
    }
    let mut page = Vec::new();
    clap_mangen::Man::new(command).render(&mut page)?;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(&page)?;
    stdout.flush()?;
    Ok(())
}

/// The command tree with every subcommand's display name set (`agenttrust-agents-list`).
fn built() -> clap::Command {
    let mut command = Cli::command().disable_help_subcommand(true);
    command.build();
    command
}

/// Every page, file name → bytes (deterministic: same binary, same bytes).
pub fn pages() -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    fn collect(command: &clap::Command, pages: &mut Vec<(String, Vec<u8>)>) -> anyhow::Result<()> {
        let man = clap_mangen::Man::new(command.clone());
        let mut page = Vec::new();
        man.render(&mut page)?;
        pages.push((man.get_filename(), page));
        for sub in command.get_subcommands().filter(|sub| !sub.is_hide_set()) {
            collect(sub, pages)?;
        }
        Ok(())
    }
    let mut pages = Vec::new();
    collect(&built(), &mut pages)?;
    Ok(pages)
}

fn write_all(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for (name, page) in pages()? {
        let path = dir.join(name);
        std::fs::write(&path, page).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_visible_command_has_a_page() {
        let pages = pages().unwrap();
        let names: Vec<&str> = pages.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names[0], "agenttrust.1");
        assert!(names.contains(&"agenttrust-agents-list.1"), "{names:?}");
        assert!(names.contains(&"agenttrust-api.1"), "{names:?}");
        let top = String::from_utf8(pages[0].1.clone()).unwrap();
        assert!(top.contains(".TH agenttrust 1"), "{top}");
    }
}
