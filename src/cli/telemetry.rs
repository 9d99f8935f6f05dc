//! `agenttrust telemetry report|list`: what happened after a tool ran, and the stored events.

use clap::{Args, Subcommand};

use super::Context;
use super::paging::{self, PageArgs};
use crate::api::telemetry::{EventQuery, ReportRequest, ReportedEvent};
use crate::client;
use crate::output::{View, or_dash};

#[derive(Debug, Args)]
pub struct TelemetryArgs {
    #[command(subcommand)]
    pub command: TelemetryCommand,
}

#[derive(Debug, Subcommand)]
pub enum TelemetryCommand {
    /// Report one event (e.g. tool_end after a tool ran)
    Report(ReportArgs),
    /// List stored events, oldest first (`--all` follows every page)
    List(ListArgs),
}

/// The event types the official SDKs report (`reference/wire-api.md`): tools, and the CrewAI
/// wrapper's tasks and steps. The gateway stores any (a newer SDK may add some); the CLI, typed
/// by hand, takes only these.
const EVENT_TYPES: [&str; 7] = [
    "tool_start",
    "tool_end",
    "tool_error",
    "task_start",
    "task_end",
    "step_start",
    "step_end",
];

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Agent id or name [env: AGENTTRUST_AGENT_ID]
    #[arg(long, value_name = "AGENT")]
    pub agent: Option<String>,
    /// Session id [env: AGENTTRUST_SESSION_ID]
    #[arg(long, value_name = "ID")]
    pub session: Option<String>,
    /// Event type (the SDKs' names; a typo would be stored as an event nobody reads)
    #[arg(long, value_name = "TYPE", value_parser = clap::builder::PossibleValuesParser::new(EVENT_TYPES))]
    pub event_type: String,
    /// The tool's name
    #[arg(long, value_name = "NAME")]
    pub tool: String,
    /// The tool succeeded [default: inferred from the event type]
    #[arg(long, conflicts_with = "failure")]
    pub success: bool,
    /// The tool failed
    #[arg(long)]
    pub failure: bool,
    /// How long the tool ran, in milliseconds
    #[arg(long, value_name = "N")]
    pub duration_ms: Option<i64>,
    /// The kind of error on failure (e.g. TimeoutError)
    #[arg(long, value_name = "TYPE")]
    pub error_type: Option<String>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only this agent's events (id or name)
    #[arg(long, value_name = "AGENT")]
    pub agent: Option<String>,
    /// Only this session's events
    #[arg(long, value_name = "ID")]
    pub session: Option<String>,
    #[command(flatten)]
    pub page: PageArgs,
}

pub async fn run(context: &Context, args: TelemetryArgs) -> anyhow::Result<()> {
    match args.command {
        TelemetryCommand::Report(args) => report(context, args).await,
        TelemetryCommand::List(args) => list(context, args).await,
    }
}

pub async fn report(context: &Context, args: ReportArgs) -> anyhow::Result<()> {
    let agent = super::agent_or_env(args.agent)?;
    let client = context.client()?;
    let agent_id = super::resolve_agent(&client, agent).await?;
    let success = match (args.success, args.failure) {
        (true, _) => Some(true),
        (_, true) => Some(false),
        _ => None,
    };
    let request = ReportRequest {
        agent_id: Some(agent_id),
        session_id: super::session_or_env(args.session),
        events: vec![ReportedEvent {
            event_type: args.event_type,
            tool_name: Some(args.tool),
            duration_ms: args.duration_ms,
            success,
            error_type: args.error_type.filter(|error_type| !error_type.is_empty()),
            timestamp: Some(crate::api::time::format(crate::api::time::now())),
            event_id: None,
        }],
    };
    let response = client::telemetry::report(&client, &request).await?;
    let result = &response.value;
    context.printer.show(
        &response.raw,
        &[result.events_processed.to_string()],
        View::Record(vec![
            ("accepted", result.accepted.to_string()),
            ("events_processed", result.events_processed.to_string()),
        ]),
    )?;
    Ok(())
}

pub async fn list(context: &Context, args: ListArgs) -> anyhow::Result<()> {
    let client = context.client()?;
    let query = EventQuery {
        agent_id: super::resolve_agent_filter(&client, args.agent).await?,
        session_id: args.session.filter(|session| !session.is_empty()),
        cursor: None,
        limit: args.page.limit,
    };
    let listing = paging::collect("events", args.page.all, args.page.start(), |cursor| {
        let query = EventQuery {
            cursor,
            ..query.clone()
        };
        let client = &client;
        async move {
            let response = client::telemetry::list(client, &query).await?;
            Ok(paging::Page {
                items: response.value.events,
                raw: response.raw,
                next_cursor: response.value.next_cursor,
            })
        }
    })
    .await?;
    let (raw, next_cursor, events) = (listing.raw, listing.next_cursor, listing.items);
    let names = super::agents::names_for_table(context, &client).await;
    let rows = events
        .iter()
        .map(|event| {
            vec![
                context.printer.time(&event.timestamp),
                super::agents::label(context, &names, &event.agent_id),
                context
                    .printer
                    .reference(&or_dash(event.session_id.as_deref())),
                event.event_type.clone(),
                or_dash(event.tool_name.as_deref()),
                event.success.to_string(),
                event
                    .duration_ms
                    .map_or_else(|| "-".to_string(), |duration| duration.to_string()),
                or_dash(event.error_type.as_deref()),
            ]
        })
        .collect();
    let ids: Vec<String> = events.iter().map(|event| event.id.clone()).collect();
    context.printer.show(
        &raw,
        &ids,
        View::Rows {
            headers: vec![
                "TIMESTAMP",
                "AGENT",
                "SESSION",
                "EVENT",
                "TOOL",
                "SUCCESS",
                "DURATION_MS",
                "ERROR",
            ],
            rows,
        },
    )?;
    paging::note_more(context, "events", &args.page, next_cursor.as_deref());
    Ok(())
}
