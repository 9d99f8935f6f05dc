//! The `agenttrust` binary: parse → run → hand the outcome or the error to `exit::finish`,
//! which prints its report and picks the exit code.

use std::process::ExitCode;

use clap::Parser;

use agenttrust::cli::{self, Cli};
use agenttrust::exit;

fn main() -> ExitCode {
    let cli = Cli::parse();
    cli::init_logging(&cli);
    let globals = cli.globals.clone();
    let result = cli
        .runtime()
        .and_then(|runtime| runtime.block_on(cli::run(cli)));
    // Only a run that did not simply succeed has a report to print (and the profile's format is
    // read again only then).
    let json = !matches!(result, Ok(exit::Outcome::Success)) && cli::json_errors(&globals);
    ExitCode::from(exit::finish(result, json))
}
