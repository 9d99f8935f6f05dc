//! `agenttrust audit list|verify`: read the org's hash-chained audit log page by page, and
//! verify that no event was changed, dropped or inserted (exit 0 intact, 1 broken).

use clap::{Args, Subcommand};

use super::{Context, paging};
use crate::api::audit::{AuditEventQuery, MAX_PAGE_SIZE};
use crate::client;
use crate::output::View;

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub command: AuditCommand,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// List audit events in chain order, oldest first (`--all` follows every page)
    List(ListArgs),
    /// Verify the org's audit chain (exit 0 intact, 1 broken, naming the first broken event)
    #[command(after_help = "\
Exit status: 0 when every event links to its predecessor and the chain ends at its recorded \
head; 1 when it does not, with `error: the audit chain is broken at event N …` on stderr. The \
gateway's answer is printed on stdout either way (as JSON with -o json).")]
    Verify,
}

#[derive(Debug, Args)]
pub struct ListArgs {
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

pub async fn run(context: &Context, args: AuditArgs) -> anyhow::Result<()> {
    match args.command {
        AuditCommand::List(args) => list(context, args).await,
        AuditCommand::Verify => verify(context).await,
    }
}

pub async fn list(context: &Context, args: ListArgs) -> anyhow::Result<()> {
    let client = context.client()?;
    let limit = args.limit;
    let cursor = args.cursor.filter(|cursor| !cursor.is_empty());
    let listing = paging::collect("events", args.all, cursor, |cursor| {
        let query = AuditEventQuery { cursor, limit };
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
    let rows = listing
        .items
        .iter()
        .map(|event| {
            vec![
                event.seq.to_string(),
                event.created_at.clone(),
                event.kind.clone(),
                event.actor.clone(),
                format!("{}:{}", event.subject_type, event.subject_id),
            ]
        })
        .collect();
    let ids: Vec<String> = listing.items.iter().map(|event| event.id.clone()).collect();
    context.printer.show(
        &listing.raw,
        &ids,
        View::Rows {
            headers: vec!["SEQ", "CREATED", "KIND", "ACTOR", "SUBJECT"],
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

pub async fn verify(context: &Context) -> anyhow::Result<()> {
    let client = context.client()?;
    let response = client::audit::verify(&client).await?;
    let verification = &response.value;
    let mut record = vec![
        ("valid", verification.valid.to_string()),
        ("events_checked", verification.events_checked.to_string()),
    ];
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
