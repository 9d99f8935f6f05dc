//! `agenttrust audit tail [-n N] [-f]`: the latest events, and with `-f` every event appended
//! after them, read from the gateway's live stream. A dropped stream is reopened with the id of
//! the last event printed (`Last-Event-ID`), so nothing is missed or printed twice; Ctrl-C
//! stops (exit 0). Each event is one line: a table row, or with `-o json` one JSON object (JSON
//! Lines).

use std::time::Duration;

use clap::Args;
use eventsource_stream::Eventsource;
use futures_util::StreamExt;

use super::{EVENT_HEADERS, FilterArgs, event_row};
use crate::api::audit::{AuditEvent, AuditEventQuery};
use crate::cli::Context;
use crate::client;

/// The longest wait between two reconnections.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(10);

#[derive(Debug, Args)]
pub struct TailArgs {
    #[command(flatten)]
    pub filters: FilterArgs,
    /// How many of the latest events to print first (0-1000)
    #[arg(long, short = 'n', value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(u32).range(0..=1000))]
    pub lines: u32,
    /// Keep following: print each new event as it is appended; Ctrl-C stops (exit 0)
    #[arg(long, short = 'f')]
    pub follow: bool,
}

pub async fn run(context: &Context, args: TailArgs) -> anyhow::Result<()> {
    let client = context.client()?;
    let filters = args.filters.query();
    // The head first, then the latest events before it: the stream resumes after the head, so
    // an event appended in between is printed once, by the stream.
    let head = client::audit::events(
        &client,
        &AuditEventQuery {
            limit: Some(1),
            order: Some("desc".to_string()),
            ..AuditEventQuery::default()
        },
    )
    .await?
    .value
    .events
    .first()
    .map_or(0, |event| event.seq);
    let mut latest = if args.lines == 0 {
        Vec::new()
    } else {
        client::audit::events(
            &client,
            &AuditEventQuery {
                limit: Some(args.lines),
                order: Some("desc".to_string()),
                cursor: Some((head + 1).to_string()),
                ..filters.clone()
            },
        )
        .await?
        .value
        .events
    };
    latest.reverse();
    let mut printer = Lines::new(context);
    printer.print(&latest)?;
    if !args.follow {
        return Ok(());
    }
    let mut last_seq = head;
    let mut delay = Duration::from_secs(1);
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    loop {
        let follow = follow(&client, &filters, &mut last_seq, &mut printer, &mut delay);
        tokio::select! {
            _ = &mut interrupted => return Ok(()),
            ended = follow => {
                let reason = match ended {
                    Ok(()) => "the gateway closed the stream".to_string(),
                    Err(error) => format!("{error:#}"),
                };
                context.printer.note(format!(
                    "{reason}; reconnecting in {}s (after event {last_seq})",
                    delay.as_secs()
                ));
            }
        }
        tokio::select! {
            _ = &mut interrupted => return Ok(()),
            () = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(MAX_RECONNECT_DELAY);
    }
}

/// Reads one connection of the stream to its end, printing each event and moving `last_seq`.
async fn follow(
    client: &client::Client,
    filters: &AuditEventQuery,
    last_seq: &mut i64,
    printer: &mut Lines<'_>,
    delay: &mut Duration,
) -> anyhow::Result<()> {
    let response = client::audit::stream(client, filters, Some(&last_seq.to_string())).await?;
    // Connected: the next drop waits the shortest delay again.
    *delay = Duration::from_secs(1);
    let mut events = response.bytes_stream().eventsource();
    while let Some(event) = events.next().await {
        let event = event.map_err(|error| anyhow::anyhow!("the stream broke: {error}"))?;
        if event.event != "audit" {
            continue;
        }
        let parsed: AuditEvent = serde_json::from_str(&event.data).map_err(|error| {
            anyhow::anyhow!("the stream sent an event that is not one: {error}")
        })?;
        if parsed.seq <= *last_seq {
            continue;
        }
        *last_seq = parsed.seq;
        printer.print(std::slice::from_ref(&parsed))?;
    }
    Ok(())
}

/// Prints events one line each, the table's header once.
struct Lines<'a> {
    context: &'a Context,
    header_printed: bool,
}

impl<'a> Lines<'a> {
    fn new(context: &'a Context) -> Lines<'a> {
        Lines {
            context,
            header_printed: false,
        }
    }

    fn print(&mut self, events: &[AuditEvent]) -> anyhow::Result<()> {
        let printer = &self.context.printer;
        if printer.prints_json() {
            let lines: Vec<String> = events
                .iter()
                .map(|event| serde_json::to_string(event).unwrap_or_default())
                .collect();
            printer.lines(&lines)?;
            return Ok(());
        }
        if events.is_empty() {
            return Ok(());
        }
        let rows: Vec<Vec<String>> = events.iter().map(event_row).collect();
        if printer.is_quiet() {
            let ids: Vec<String> = events.iter().map(|event| event.id.clone()).collect();
            printer.lines(&ids)?;
            return Ok(());
        }
        // Tab-separated, so the columns of lines printed apart still line up in `column -t`
        // and parse with `cut -f`; the header once, first.
        let mut lines = Vec::new();
        if !self.header_printed {
            lines.push(EVENT_HEADERS.join("\t"));
            self.header_printed = true;
        }
        lines.extend(rows.iter().map(|row| row.join("\t")));
        printer.lines(&lines)?;
        Ok(())
    }
}
