//! `agenttrust streaming …`: the SIEM destinations the org's audit log streams to (`create`,
//! `list`, `get`, `update`, `delete`), their delivery logs (`logs`, `logs --follow`) and a test
//! delivery (`test`, exit 1 when it fails). A destination's auth token is read from stdin
//! (`--auth-token-stdin`), never from argv, and never shown again.

use std::collections::HashSet;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::Context;
use crate::api::join_or_dash;
use crate::api::streaming::{
    CreateDestinationRequest, DeliveryRecord, Destination, UpdateDestinationRequest,
};
use crate::client;
use crate::config;
use crate::exit::{Failure, Outcome};
use crate::output::{View, or_dash};

const TYPES: [&str; 5] = ["splunk", "splunk_hec", "datadog", "elastic", "webhook"];

#[derive(Debug, Args)]
pub struct StreamingArgs {
    #[command(subcommand)]
    pub command: StreamingCommand,
}

#[derive(Debug, Subcommand)]
pub enum StreamingCommand {
    /// Stream the audit log to a SIEM: Splunk HEC, Datadog, Elasticsearch or a signed webhook
    /// (`-q` prints the destination id)
    #[command(after_help = "\
Example (Splunk HTTP Event Collector; the token is read from stdin):
  printf %s \"$HEC_TOKEN\" | agenttrust streaming create --name splunk --type splunk \\
      --endpoint https://splunk.example.com:8088 --auth-token-stdin

A bare endpoint gets the product's path: /services/collector/event (Splunk), /api/v2/logs \
(Datadog), /agenttrust-audit/_bulk (Elasticsearch).")]
    Create(CreateArgs),
    /// List the org's destinations
    List,
    /// Show one destination (its token masked) and its delivery state
    Get {
        /// Destination id
        id: String,
    },
    /// Change a destination's name, endpoint, token, batching, filter or state
    Update(UpdateArgs),
    /// Stop streaming to a destination and forget its delivery log (asks first; --yes without a
    /// terminal)
    #[command(visible_alias = "remove")]
    Delete {
        /// Destination id
        id: String,
        /// Do not ask for confirmation
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// A destination's delivery attempts, newest first (--follow: print new ones as they come)
    Logs(LogsArgs),
    /// Send one test event to a destination now (exit 1 when it does not arrive)
    Test {
        /// Destination id
        id: String,
    },
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// A name to tell destinations apart
    #[arg(long)]
    pub name: String,
    /// splunk (alias splunk_hec), datadog, elastic or webhook
    #[arg(long = "type", value_name = "TYPE", value_parser = clap::builder::PossibleValuesParser::new(TYPES))]
    pub destination_type: String,
    /// Where events are POSTed (https; http only to a loopback address unless the gateway allows
    /// it)
    #[arg(long, visible_alias = "endpoint-url", value_name = "URL")]
    pub endpoint: String,
    /// Read the destination's token (HEC token, Datadog API key, Elasticsearch API key, webhook
    /// signing secret) from stdin
    #[arg(long)]
    pub auth_token_stdin: bool,
    /// Events per batch, 1 to 1000 [default: 100]
    #[arg(long, value_name = "N")]
    pub batch_size: Option<i64>,
    /// Longest an event waits for a full batch: 30, 30s, 5m (1s to 1h) [default: 30s]
    #[arg(long, value_name = "DURATION", value_parser = super::parse_seconds)]
    pub flush_interval: Option<i64>,
    /// Only these event kinds (check.decided) or prefixes (agent.*): comma-separated or
    /// repeated [default: every event]
    #[arg(long, value_delimiter = ',', value_name = "KIND")]
    pub filter: Vec<String>,
    /// Pass over a batch the destination rejects as malformed (400, 413, 422) instead of
    /// retrying it until fixed
    #[arg(long)]
    pub skip_rejected_batches: bool,
    /// Create it paused (nothing is sent until `update --active true`)
    #[arg(long)]
    pub inactive: bool,
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// Destination id
    pub id: String,
    #[arg(long)]
    pub name: Option<String>,
    #[arg(long, visible_alias = "endpoint-url", value_name = "URL")]
    pub endpoint: Option<String>,
    /// Read a new token from stdin
    #[arg(long)]
    pub auth_token_stdin: bool,
    /// true: stream; false: pause (the cursor waits)
    #[arg(long, value_name = "BOOL")]
    pub active: Option<bool>,
    #[arg(long, value_name = "N")]
    pub batch_size: Option<i64>,
    #[arg(long, value_name = "DURATION", value_parser = super::parse_seconds)]
    pub flush_interval: Option<i64>,
    /// Replace the filter: kinds or prefixes, comma-separated or repeated
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "KIND",
        conflicts_with = "clear_filter"
    )]
    pub filter: Vec<String>,
    /// Send every event again (remove the filter)
    #[arg(long)]
    pub clear_filter: bool,
    #[arg(long, value_name = "BOOL")]
    pub skip_rejected_batches: Option<bool>,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Destination id
    pub id: String,
    /// How many records, 1 to 1000 [default: 50]
    #[arg(long, value_name = "N")]
    pub limit: Option<u32>,
    /// Keep polling and print each new record once (oldest first); Ctrl-C stops (exit 0)
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// With --follow: time between polls [default: 2s]
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = config::parse_duration, requires = "follow")]
    pub interval: Duration,
}

pub async fn run(context: &Context, args: StreamingArgs) -> anyhow::Result<Outcome> {
    let success = |result: anyhow::Result<()>| result.map(|()| Outcome::Success);
    match args.command {
        StreamingCommand::Create(args) => success(create(context, args).await),
        StreamingCommand::List => success(list(context).await),
        StreamingCommand::Get { id } => success(get(context, &id).await),
        StreamingCommand::Update(args) => success(update(context, args).await),
        StreamingCommand::Delete { id, yes } => success(delete(context, &id, yes).await),
        StreamingCommand::Logs(args) => success(logs(context, args).await),
        StreamingCommand::Test { id } => test(context, &id).await,
    }
}

fn token_from_stdin(wanted: bool) -> anyhow::Result<Option<String>> {
    if wanted {
        super::read_secret_argument("-", "auth token").map(Some)
    } else {
        Ok(None)
    }
}

pub async fn create(context: &Context, args: CreateArgs) -> anyhow::Result<()> {
    let auth_token = token_from_stdin(args.auth_token_stdin)?;
    let client = context.client()?;
    let request = CreateDestinationRequest {
        name: args.name,
        destination_type: args.destination_type,
        endpoint_url: args.endpoint,
        auth_token,
        batch_size: args.batch_size,
        flush_interval_seconds: args.flush_interval,
        filter_event_types: (!args.filter.is_empty()).then(|| super::clean_list(args.filter)),
        is_active: args.inactive.then_some(false),
        skip_rejected_batches: args.skip_rejected_batches.then_some(true),
    };
    let response = client::streaming::create(&client, &request).await?;
    show_destination(context, &response.raw, &response.value)
}

pub async fn list(context: &Context) -> anyhow::Result<()> {
    let client = context.client()?;
    let response = client::streaming::list(&client).await?;
    let destinations = &response.value.destinations;
    let rows = destinations
        .iter()
        .map(|destination| {
            vec![
                destination.id.clone(),
                or_dash(Some(&destination.name)),
                or_dash(Some(&destination.destination_type)),
                destination.endpoint_url.clone(),
                if destination.is_active {
                    "yes".to_string()
                } else {
                    "no".to_string()
                },
                destination.cursor_seq.to_string(),
                destination.consecutive_failures.to_string(),
                context
                    .printer
                    .time(&or_dash(destination.last_delivered_at.as_deref())),
            ]
        })
        .collect();
    let ids: Vec<String> = destinations.iter().map(|d| d.id.clone()).collect();
    context.printer.show(
        &response.raw,
        &ids,
        View::Rows {
            headers: vec![
                "ID",
                "NAME",
                "TYPE",
                "ENDPOINT",
                "ACTIVE",
                "CURSOR",
                "FAILURES",
                "LAST DELIVERED",
            ],
            rows,
        },
    )?;
    Ok(())
}

pub async fn get(context: &Context, id: &str) -> anyhow::Result<()> {
    let client = context.client()?;
    let response = client::streaming::get(&client, id).await?;
    show_destination(context, &response.raw, &response.value)
}

pub async fn update(context: &Context, args: UpdateArgs) -> anyhow::Result<()> {
    let filter = if args.clear_filter {
        Some(Vec::new())
    } else if args.filter.is_empty() {
        None
    } else {
        Some(super::clean_list(args.filter))
    };
    let request = UpdateDestinationRequest {
        name: args.name,
        endpoint_url: args.endpoint,
        auth_token: None,
        is_active: args.active,
        batch_size: args.batch_size,
        flush_interval_seconds: args.flush_interval,
        filter_event_types: filter,
        skip_rejected_batches: args.skip_rejected_batches,
        destination_type: None,
    };
    if request.is_empty() && !args.auth_token_stdin {
        return Err(Failure::Usage {
            message: "nothing to update: give at least one of --name, --endpoint, \
                      --auth-token-stdin, --active, --batch-size, --flush-interval, --filter, \
                      --clear-filter, --skip-rejected-batches"
                .to_string(),
            hint: None,
        }
        .into());
    }
    let request = UpdateDestinationRequest {
        auth_token: token_from_stdin(args.auth_token_stdin)?,
        ..request
    };
    let client = context.client()?;
    let response = client::streaming::update(&client, &args.id, &request).await?;
    show_destination(context, &response.raw, &response.value)
}

pub async fn delete(context: &Context, id: &str, yes: bool) -> anyhow::Result<()> {
    context.confirm(
        yes,
        &format!("delete SIEM destination {id} and its delivery log (streaming to it stops)"),
    )?;
    let client = context.client()?;
    let response = client::streaming::delete(&client, id).await?;
    super::common::show_deleted(context, id, response.raw)?;
    Ok(())
}

fn record_row(context: &Context, record: &DeliveryRecord) -> Vec<String> {
    let range = match (record.first_seq, record.last_seq) {
        (Some(first), Some(last)) => format!("{first}-{last}"),
        _ => "-".to_string(),
    };
    vec![
        context.printer.time(&record.delivered_at),
        record.status.clone(),
        record
            .status_code
            .map_or_else(|| "-".to_string(), |code| code.to_string()),
        record.batch_size.to_string(),
        if record.purpose.is_empty() {
            "-".to_string()
        } else {
            record.purpose.clone()
        },
        range,
        or_dash(record.error_message.as_deref()),
    ]
}

const LOG_HEADERS: [&str; 7] = [
    "DELIVERED",
    "STATUS",
    "CODE",
    "EVENTS",
    "PURPOSE",
    "SEQ",
    "ERROR",
];

pub async fn logs(context: &Context, args: LogsArgs) -> anyhow::Result<()> {
    let client = context.client()?;
    if !args.follow {
        let response = client::streaming::logs(&client, &args.id, args.limit).await?;
        let records = &response.value.logs;
        let ids: Vec<String> = records.iter().map(|record| record.id.clone()).collect();
        context.printer.show(
            &response.raw,
            &ids,
            View::Rows {
                headers: LOG_HEADERS.to_vec(),
                rows: records
                    .iter()
                    .map(|record| record_row(context, record))
                    .collect(),
            },
        )?;
        return Ok(());
    }
    follow(context, &client, &args).await
}

/// Polls the log and prints each record once, oldest first: one JSON object per line with
/// `-o json`, one row per line otherwise (the header once, on a terminal).
async fn follow(context: &Context, client: &client::Client, args: &LogsArgs) -> anyhow::Result<()> {
    let interval = args.interval.max(Duration::from_millis(200));
    let mut seen: HashSet<String> = HashSet::new();
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    let mut first = true;
    loop {
        let response = tokio::select! {
            response = client::streaming::logs(client, &args.id, args.limit.or(Some(100))) => response?,
            _ = &mut interrupted => return Ok(()),
        };
        let raw_logs = response
            .raw
            .get("logs")
            .and_then(serde_json::Value::as_array)
            .cloned()
            .unwrap_or_default();
        // Newest first on the wire: printed oldest first.
        for (record, raw) in response.value.logs.iter().zip(raw_logs).rev() {
            if !seen.insert(record.id.clone()) {
                continue;
            }
            if context.printer.is_quiet() {
                context.printer.lines(std::slice::from_ref(&record.id))?;
            } else if context.printer.is_json() {
                context.printer.raw(format!("{raw}\n").as_bytes())?;
            } else {
                if first && context.printer.stdout_is_terminal() {
                    context.printer.lines(&[LOG_HEADERS.join("\t")])?;
                }
                first = false;
                context
                    .printer
                    .lines(&[record_row(context, record).join("\t")])?;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = &mut interrupted => return Ok(()),
        }
    }
}

/// Exit 0 when the test event arrived; otherwise the outcome `DeliveryFailed` (1), with the
/// answer printed on stdout under `-o json`.
pub async fn test(context: &Context, id: &str) -> anyhow::Result<Outcome> {
    let client = context.client()?;
    let response = client::streaming::test(&client, id).await?;
    let result = &response.value;
    if !result.success {
        if context.printer.prints_json() {
            crate::exit::answer_printed(context.printer.json(&response.raw))?;
        }
        let status = result
            .status_code
            .map(|code| format!("HTTP {code}: "))
            .unwrap_or_default();
        return Ok(Outcome::DeliveryFailed {
            destination_id: id.to_string(),
            reason: format!(
                "{status}{}",
                result.error_message.as_deref().unwrap_or("no answer")
            ),
        });
    }
    context.printer.show(
        &response.raw,
        std::slice::from_ref(&result.delivery_id),
        View::Record(vec![
            ("success", "true".to_string()),
            (
                "status_code",
                result
                    .status_code
                    .map_or_else(|| "-".to_string(), |code| code.to_string()),
            ),
            ("delivery_id", or_dash(Some(&result.delivery_id))),
        ]),
    )?;
    Ok(Outcome::Success)
}

fn show_destination(
    context: &Context,
    raw: &serde_json::Value,
    destination: &Destination,
) -> anyhow::Result<()> {
    context.printer.show(
        raw,
        std::slice::from_ref(&destination.id),
        View::Record(vec![
            ("id", destination.id.clone()),
            ("name", or_dash(Some(&destination.name))),
            (
                "destination_type",
                or_dash(Some(&destination.destination_type)),
            ),
            ("endpoint_url", destination.endpoint_url.clone()),
            ("auth_token", or_dash(destination.auth_token.as_deref())),
            ("is_active", destination.is_active.to_string()),
            ("batch_size", destination.batch_size.to_string()),
            (
                "flush_interval_seconds",
                destination.flush_interval_seconds.to_string(),
            ),
            (
                "filter_event_types",
                join_or_dash(&destination.filter_event_types),
            ),
            (
                "skip_rejected_batches",
                destination.skip_rejected_batches.to_string(),
            ),
            ("cursor_seq", destination.cursor_seq.to_string()),
            (
                "last_delivered_at",
                or_dash(destination.last_delivered_at.as_deref()),
            ),
            (
                "consecutive_failures",
                destination.consecutive_failures.to_string(),
            ),
            (
                "next_attempt_at",
                or_dash(destination.next_attempt_at.as_deref()),
            ),
            ("last_error", or_dash(destination.last_error.as_deref())),
            ("created_at", or_dash(Some(&destination.created_at))),
            ("updated_at", or_dash(Some(&destination.updated_at))),
        ]),
    )?;
    Ok(())
}
