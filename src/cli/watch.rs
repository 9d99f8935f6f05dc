//! `--watch` for list verbs whose state changes under an operator's eyes (approvals, sessions):
//! poll every `--interval`, print the listing again whenever what the gateway returned changed,
//! and stop with exit 0 on Ctrl-C. On a terminal each new listing replaces the screen; off one
//! each is printed after the last (with `-o json`, one document per change).

use std::future::Future;
use std::time::Duration;

use clap::Args;
use serde_json::Value;

use super::Context;
use crate::config;

/// The shortest and longest poll interval: faster is load for nothing, slower is not watching.
const MIN_INTERVAL: Duration = Duration::from_secs(1);
const MAX_INTERVAL: Duration = Duration::from_secs(3600);

/// `--watch` and `--interval`: flattened into the list verbs that watch.
#[derive(Debug, Clone, Args)]
pub struct WatchArgs {
    /// Poll and print the list again whenever it changes; Ctrl-C stops (exit 0)
    #[arg(long, short = 'w')]
    pub watch: bool,
    /// With --watch: time between polls, 1s to 1h
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_interval, requires = "watch")]
    pub interval: Duration,
}

fn parse_interval(text: &str) -> Result<Duration, String> {
    let interval = config::parse_duration(text)?;
    if !(MIN_INTERVAL..=MAX_INTERVAL).contains(&interval) {
        return Err(format!("invalid interval {text:?}: between 1s and 1h"));
    }
    Ok(interval)
}

/// Runs `fetch` once, or with `--watch` until Ctrl-C, printing with `print` each listing whose
/// raw JSON (`raw`) differs from the last one printed.
pub async fn run<T, Fetch, Fut, Print>(
    context: &Context,
    args: &WatchArgs,
    mut fetch: Fetch,
    raw: impl Fn(&T) -> &Value,
    mut print: Print,
) -> anyhow::Result<()>
where
    Fetch: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
    Print: FnMut(&T) -> anyhow::Result<()>,
{
    if !args.watch {
        let listing = fetch().await?;
        return print(&listing);
    }
    let clear = context.printer.stdout_is_terminal();
    let mut last: Option<Value> = None;
    // One listener for the whole watch, so a Ctrl-C while printing is not lost.
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    loop {
        let listing = tokio::select! {
            listing = fetch() => listing?,
            _ = &mut interrupted => return Ok(()),
        };
        let current = raw(&listing);
        if last.as_ref() != Some(current) {
            if clear {
                // Clear the screen and go home, as `watch` does.
                context.printer.raw(b"\x1b[2J\x1b[H")?;
            }
            print(&listing)?;
            last = Some(current.clone());
        }
        tokio::select! {
            _ = tokio::time::sleep(args.interval) => {}
            _ = &mut interrupted => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_are_bounded() {
        assert_eq!(parse_interval("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_interval("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_interval("500ms").is_err());
        assert!(parse_interval("2h").is_err());
    }
}
