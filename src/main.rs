//! The `agenttrust` binary: parse → run → map the error to an exit code (see `exit`).

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
    let json = result.is_err() && cli::json_errors(&globals);
    ExitCode::from(exit::finish(result, json))
}
