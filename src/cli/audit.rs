//! `agenttrust audit …`: read the org's hash-chained audit log (`list` with filters, `get`,
//! `tail [-f]`), prove it was not edited (`verify` online, or `verify --offline FILE --key
//! JWKS` with no gateway at all), take it away (`export`), and the signed checkpoints and keys
//! that make the offline proof possible (`checkpoints`, `keys`).

mod export;
mod offline;
mod tail;

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{Context, paging};
use crate::api::audit::{
    AuditCheckpointQuery, AuditEvent, AuditEventQuery, AuditVerifyQuery, MAX_PAGE_SIZE,
};
use crate::api::time;
use crate::client;
use crate::config;
use crate::output::View;

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub command: AuditCommand,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// List audit events in chain order, oldest first, filtered (`--all` follows every page)
    List(ListArgs),
    /// Show one audit event, with its detail and hashes
    Get(GetArgs),
    /// Print the latest events; with -f, follow new ones as they are appended (reconnecting)
    Tail(tail::TailArgs),
    /// Verify the org's audit chain online, or an export file offline (exit 0 intact, 1 not)
    #[command(after_help = "\
Online (the default), the gateway walks its chain (or --from-seq..--to-seq) and checks every \
link, every event's hash and every signed checkpoint in the range.

Offline (--offline FILE --key JWKS), nothing is asked of a gateway: the file written by \
`agenttrust audit export` is walked link by link, and its signed checkpoints are checked against \
the public keys in JWKS (from `agenttrust audit keys`, kept where the database's admins cannot \
change it). Every event must lead to a signed checkpoint.

Exit status: 0 when intact; 1 when not, with `error: … broken at event N …` on stderr. The \
result is printed on stdout either way (as JSON with -o json).")]
    Verify(VerifyArgs),
    /// Write the audit log, from --since or --from-seq, as JSON Lines that `verify --offline` checks
    Export(export::ExportArgs),
    /// List the signed checkpoints of the chain's head, or sign the head now
    Checkpoints(CheckpointsArgs),
    /// Print every public key the gateway signed checkpoints with (a JWK Set for `verify --offline --key`)
    Keys,
}

/// The filters `list`, `tail` and `export` share.
#[derive(Debug, Clone, Default, Args)]
pub struct FilterArgs {
    /// Only these kinds: exact (check.decided) or a prefix (federation.*); repeat or separate with commas
    #[arg(long, value_name = "KIND", value_delimiter = ',')]
    pub kind: Vec<String>,
    /// Only events concerning this agent (its subject, its agent_id, or its actor)
    #[arg(long, value_name = "AGENT_ID")]
    pub agent: Option<String>,
    /// Only events about this subject: TYPE or TYPE:ID (agent:agt_…, policy)
    #[arg(long, value_name = "SUBJECT")]
    pub subject: Option<String>,
    /// Only events at or after this time: RFC 3339, or a duration ago (30m, 24h)
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub since: Option<String>,
    /// Only events at or before this time: RFC 3339, or a duration ago
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub until: Option<String>,
}

impl FilterArgs {
    fn query(&self) -> AuditEventQuery {
        AuditEventQuery {
            kind: (!self.kind.is_empty()).then(|| self.kind.join(",")),
            agent_id: self.agent.clone(),
            subject: self.subject.clone(),
            since: self.since.clone(),
            until: self.until.clone(),
            ..AuditEventQuery::default()
        }
    }
}

/// A time flag: RFC 3339 as given, or a duration before now, as RFC 3339.
fn parse_time(text: &str) -> Result<String, String> {
    if time::parse(text).is_some() {
        return Ok(text.trim().to_string());
    }
    let ago = config::parse_duration(text).map_err(|_| {
        format!("invalid time {text:?}: expected RFC 3339 (2026-03-01T10:00:00Z) or a duration ago (30m, 24h)")
    })?;
    let seconds = i64::try_from(ago.as_secs()).map_err(|_| format!("{text:?} is too long ago"))?;
    Ok(time::format(time::now().saturating_sub(seconds)))
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub filters: FilterArgs,
    /// Newest first
    #[arg(long)]
    pub reverse: bool,
    /// Events per page (1-1000) [default: the gateway's, 100]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=MAX_PAGE_SIZE as i64))]
    pub limit: Option<u32>,
    /// Start at this cursor (the `next_cursor` of a previous page)
    #[arg(long, value_name = "CURSOR")]
    pub cursor: Option<String>,
    /// Follow `next_cursor` until the last page
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct GetArgs {
    /// The event's id
    pub event_id: String,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Start at this event (its link to the event before is checked against the stored hash)
    #[arg(long, value_name = "SEQ", conflicts_with = "offline", value_parser = clap::value_parser!(i64).range(1..))]
    pub from_seq: Option<i64>,
    /// Stop at this event
    #[arg(long, value_name = "SEQ", conflicts_with = "offline", value_parser = clap::value_parser!(i64).range(1..))]
    pub to_seq: Option<i64>,
    /// Verify this export file (`-` for stdin) without a gateway
    #[arg(long, value_name = "FILE", requires = "key")]
    pub offline: Option<PathBuf>,
    /// With --offline: the gateway's public keys, a JWK Set file (from `agenttrust audit keys`)
    #[arg(long, value_name = "JWKS", requires = "offline")]
    pub key: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CheckpointsArgs {
    #[command(subcommand)]
    pub command: CheckpointsCommand,
}

#[derive(Debug, Subcommand)]
pub enum CheckpointsCommand {
    /// List signed checkpoints, oldest first
    List(CheckpointListArgs),
    /// Sign the chain's head now
    Create,
}

#[derive(Debug, Args)]
pub struct CheckpointListArgs {
    /// Checkpoints after this event
    #[arg(long, value_name = "SEQ")]
    pub after_seq: Option<i64>,
    /// Checkpoints per page (1-1000) [default: the gateway's, 100]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=MAX_PAGE_SIZE as i64))]
    pub limit: Option<u32>,
    /// Follow every page
    #[arg(long)]
    pub all: bool,
}

pub async fn run(context: &Context, args: AuditArgs) -> anyhow::Result<()> {
    match args.command {
        AuditCommand::List(args) => list(context, args).await,
        AuditCommand::Get(args) => get(context, args).await,
        AuditCommand::Tail(args) => tail::run(context, args).await,
        AuditCommand::Verify(args) => match (&args.offline, &args.key) {
            (Some(file), Some(key)) => offline::run(context, file, key),
            _ => verify(context, args).await,
        },
        AuditCommand::Export(args) => export::run(context, args).await,
        AuditCommand::Checkpoints(args) => match args.command {
            CheckpointsCommand::List(args) => checkpoints(context, args).await,
            CheckpointsCommand::Create => create_checkpoint(context).await,
        },
        AuditCommand::Keys => keys(context).await,
    }
}

/// One row of the event table.
fn event_row(event: &AuditEvent) -> Vec<String> {
    vec![
        event.seq.to_string(),
        event.created_at.clone(),
        event.kind.clone(),
        event.actor.clone(),
        format!("{}:{}", event.subject_type, event.subject_id),
    ]
}

const EVENT_HEADERS: [&str; 5] = ["SEQ", "CREATED", "KIND", "ACTOR", "SUBJECT"];

pub async fn list(context: &Context, args: ListArgs) -> anyhow::Result<()> {
    let client = context.client()?;
    let limit = args.limit;
    let cursor = args.cursor.filter(|cursor| !cursor.is_empty());
    let base = AuditEventQuery {
        limit,
        order: args.reverse.then(|| "desc".to_string()),
        ..args.filters.query()
    };
    let listing = paging::collect("events", args.all, cursor, |cursor| {
        let query = AuditEventQuery {
            cursor,
            ..base.clone()
        };
        let client = &client;
        async move {
            let response = client::audit::events(client, &query).await?;
            Ok(paging::Page {
                items: response.value.events,
                raw: response.raw,
                next_cursor: response.value.next_cursor,
            })
        }
    })
    .await?;
    let rows = listing.items.iter().map(event_row).collect();
    let ids: Vec<String> = listing.items.iter().map(|event| event.id.clone()).collect();
    context.printer.show(
        &listing.raw,
        &ids,
        View::Rows {
            headers: EVENT_HEADERS.to_vec(),
            rows,
        },
    )?;
    if let (Some(cursor), false) = (listing.next_cursor, args.all) {
        context
            .printer
            .note(format!("More events: --cursor {cursor} (or --all)"));
    }
    Ok(())
}

pub async fn get(context: &Context, args: GetArgs) -> anyhow::Result<()> {
    let client = context.client()?;
    let response = client::audit::event(&client, &args.event_id).await?;
    let event = &response.value;
    let record = vec![
        ("id", event.id.clone()),
        ("seq", event.seq.to_string()),
        ("kind", event.kind.clone()),
        ("created_at", event.created_at.clone()),
        ("actor", event.actor.clone()),
        (
            "subject",
            format!("{}:{}", event.subject_type, event.subject_id),
        ),
        ("detail", crate::api::audit::detail_text(&event.detail)),
        ("prev_hash", event.prev_hash.clone()),
        ("hash", event.hash.clone()),
    ];
    context.printer.show(
        &response.raw,
        std::slice::from_ref(&event.id),
        View::Record(record),
    )?;
    Ok(())
}

pub async fn verify(context: &Context, args: VerifyArgs) -> anyhow::Result<()> {
    let client = context.client()?;
    let query = AuditVerifyQuery {
        from_seq: args.from_seq,
        to_seq: args.to_seq,
    };
    let response = client::audit::verify(&client, &query).await?;
    let verification = &response.value;
    let mut record = vec![
        ("valid", verification.valid.to_string()),
        ("events_checked", verification.events_checked.to_string()),
        (
            "checkpoints_checked",
            verification.checkpoints_checked.to_string(),
        ),
    ];
    if let (Some(from), Some(to)) = (verification.from_seq, verification.to_seq) {
        record.push(("range", format!("{from}-{to}")));
    }
    if let Some(seq) = verification.first_broken_seq {
        record.push(("first_broken_seq", seq.to_string()));
    }
    if let Some(event) = &verification.first_broken_event {
        record.push(("first_broken_event", event.clone()));
    }
    if let Some(reason) = &verification.reason {
        record.push(("reason", reason.clone()));
    }
    if verification.valid {
        context.printer.show(
            &response.raw,
            &[verification.events_checked.to_string()],
            View::Record(record),
        )?;
        return Ok(());
    }
    let place = match (
        verification.first_broken_seq,
        &verification.first_broken_event,
    ) {
        (Some(seq), Some(id)) => format!(" at event {seq} ({id})"),
        (Some(seq), None) => format!(" at event {seq}"),
        _ => String::new(),
    };
    let reason = verification
        .reason
        .clone()
        .unwrap_or_else(|| "the gateway gave no reason".to_string());
    // The answer is data (stdout); the break is the error (stderr, exit 1).
    if !context.printer.is_quiet() {
        context
            .printer
            .show(&response.raw, &[], View::Record(record))?;
    }
    anyhow::bail!("the audit chain is broken{place}: {reason}")
}

pub async fn checkpoints(context: &Context, args: CheckpointListArgs) -> anyhow::Result<()> {
    let client = context.client()?;
    let start = args.after_seq.map(|seq| seq.to_string());
    let listing = paging::collect("checkpoints", args.all, start, |cursor| {
        let query = AuditCheckpointQuery {
            after_seq: cursor.and_then(|cursor| cursor.parse().ok()),
            limit: args.limit,
        };
        let client = &client;
        async move {
            let response = client::audit::checkpoints(client, &query).await?;
            Ok(paging::Page {
                items: response.value.checkpoints,
                raw: response.raw,
                next_cursor: response.value.next_after_seq.map(|seq| seq.to_string()),
            })
        }
    })
    .await?;
    let rows = listing
        .items
        .iter()
        .map(|checkpoint| {
            vec![
                checkpoint.seq.to_string(),
                checkpoint.created_at.clone(),
                checkpoint.key_id.clone(),
                checkpoint.hash.clone(),
            ]
        })
        .collect();
    let ids: Vec<String> = listing
        .items
        .iter()
        .map(|checkpoint| checkpoint.seq.to_string())
        .collect();
    context.printer.show(
        &listing.raw,
        &ids,
        View::Rows {
            headers: vec!["SEQ", "SIGNED", "KEY", "HASH"],
            rows,
        },
    )?;
    if let (Some(cursor), false) = (listing.next_cursor, args.all) {
        context
            .printer
            .note(format!("More checkpoints: --after-seq {cursor} (or --all)"));
    }
    Ok(())
}

pub async fn create_checkpoint(context: &Context) -> anyhow::Result<()> {
    let client = context.client()?;
    let response = client::audit::create_checkpoint(&client).await?;
    let checkpoint = &response.value;
    let record = vec![
        ("seq", checkpoint.seq.to_string()),
        ("hash", checkpoint.hash.clone()),
        ("signed", checkpoint.created_at.clone()),
        ("key_id", checkpoint.key_id.clone()),
    ];
    context.printer.show(
        &response.raw,
        &[checkpoint.seq.to_string()],
        View::Record(record),
    )?;
    Ok(())
}

/// The key set is a document: printed as JSON whatever the output format, so it can be saved
/// as it is (`agenttrust audit keys > gateway-keys.json`).
pub async fn keys(context: &Context) -> anyhow::Result<()> {
    let client = context.client()?;
    let response = client::audit::keys(&client).await?;
    context.printer.json(&response.raw)?;
    Ok(())
}
