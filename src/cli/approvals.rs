//! `agenttrust approvals list|get|approve|deny|wait`: the human side of elevation. A check that
//! needs a human answers `elevation_required` with an approval id; an operator approves or denies
//! it here, and a script can `wait` for the answer (exit 0 approved, 77 denied, 75 still pending).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};

use super::Context;
use super::paging::{self, PageArgs};
use super::watch::{self, WatchArgs};
use crate::api::approvals::{Approval, ApprovalQuery, DecideRequest};
use crate::api::status::ApprovalStatus;
use crate::client;
use crate::config;
use crate::exit::{self, Outcome};
use crate::output::{View, or_dash};

/// The statuses an approval can have, plus `all` (no filter).
const STATUSES: [&str; 5] = ["pending", "approved", "denied", "expired", "all"];

/// How long `wait` waits without `--timeout`.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(5 * 60);
/// The shortest poll interval `wait` accepts.
const MIN_INTERVAL: Duration = Duration::from_millis(100);

#[derive(Debug, Args)]
pub struct ApprovalsArgs {
    #[command(subcommand)]
    pub command: ApprovalsCommand,
}

#[derive(Debug, Subcommand)]
pub enum ApprovalsCommand {
    /// List approvals, newest first (pending ones unless --status says otherwise; --watch)
    List(ListArgs),
    /// Show one approval
    Get {
        /// Approval id
        id: String,
    },
    /// Approve a pending approval: the same action in the same session is then allowed
    Approve(DecideArgs),
    /// Deny a pending approval: the same action in the same session is then denied
    Deny(DecideArgs),
    /// Wait until an approval is decided (exit 0 approved, 77 denied, 75 still pending)
    #[command(after_help = "\
--wait-timeout is how long to wait in all [default: 5m]; each poll is one request, bounded by \
--timeout (for compatibility, --timeout alone still sets the wait too). Exit status: 0 approved, 77 denied, 75 still pending at the timeout, 1 expired (nobody decided in time), 3 \
unknown approval. The final status is printed on stdout.")]
    Wait(WaitArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only approvals with this status
    #[arg(long, value_name = "STATUS", default_value = "pending",
          value_parser = clap::builder::PossibleValuesParser::new(STATUSES))]
    pub status: String,
    /// Only this agent's approvals (id or name)
    #[arg(long, value_name = "AGENT")]
    pub agent: Option<String>,
    /// Only this session's approvals
    #[arg(long, value_name = "ID")]
    pub session: Option<String>,
    #[command(flatten)]
    pub page: PageArgs,
    #[command(flatten)]
    pub watch: WatchArgs,
}

#[derive(Debug, Args)]
pub struct DecideArgs {
    /// Approval id
    pub id: String,
    /// Who decides (recorded) [default: $USER, else `cli`]
    #[arg(long, value_name = "NAME")]
    pub decided_by: Option<String>,
    /// Do not ask for confirmation
    #[arg(long, short = 'y')]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct WaitArgs {
    /// Approval id
    pub id: String,
    /// Time between polls: 500ms, 2s, 1m
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_interval)]
    pub interval: Duration,
    /// How long to wait in all: 30s, 5m, 1h30m [default: 5m]
    #[arg(long, value_name = "DURATION", value_parser = crate::config::parse_duration)]
    pub wait_timeout: Option<Duration>,
}

/// How long a wait for a human lasts: `--wait-timeout`, else (its meaning before
/// `--wait-timeout` existed) a `--timeout` given as a flag, else [`DEFAULT_WAIT`]. An env or
/// profile timeout is only ever the per-request timeout.
pub fn wait_timeout(context: &Context, wait_timeout: Option<Duration>) -> Duration {
    wait_timeout
        .or(context.globals.timeout)
        .unwrap_or(DEFAULT_WAIT)
}

fn parse_interval(text: &str) -> Result<Duration, String> {
    let interval = config::parse_duration(text)?;
    if interval < MIN_INTERVAL {
        return Err(format!("invalid interval {text:?}: at least 100ms"));
    }
    Ok(interval)
}

pub async fn run(context: &Context, args: ApprovalsArgs) -> anyhow::Result<Outcome> {
    match args.command {
        ApprovalsCommand::List(args) => list(context, args).await.map(|()| Outcome::Success),
        ApprovalsCommand::Get { id } => get(context, &id).await.map(|()| Outcome::Success),
        ApprovalsCommand::Approve(args) => decide(context, args, Decision::Approve)
            .await
            .map(|()| Outcome::Success),
        ApprovalsCommand::Deny(args) => decide(context, args, Decision::Deny)
            .await
            .map(|()| Outcome::Success),
        ApprovalsCommand::Wait(args) => wait(context, args).await,
    }
}

pub async fn list(context: &Context, args: ListArgs) -> anyhow::Result<()> {
    let client = context.client()?;
    let query = ApprovalQuery {
        status: Some(args.status).filter(|status| status != "all"),
        agent_id: super::resolve_agent_filter(&client, args.agent).await?,
        session_id: args.session.filter(|session| !session.is_empty()),
        cursor: None,
        limit: args.page.limit,
    };
    let page = &args.page;
    let names = super::agents::names_for_table(context, &client).await;
    watch::run(
        context,
        &args.watch,
        || {
            paging::collect("approvals", page.all, page.start(), |cursor| {
                let query = ApprovalQuery {
                    cursor,
                    ..query.clone()
                };
                let client = &client;
                async move {
                    let response = client::approvals::list(client, &query).await?;
                    Ok(paging::Page {
                        items: response.value.approvals,
                        raw: response.raw,
                        next_cursor: response.value.next_cursor,
                    })
                }
            })
        },
        |listing| &listing.raw,
        |listing| print_list(context, page, &names, listing),
    )
    .await
}

fn print_list(
    context: &Context,
    page: &PageArgs,
    names: &HashMap<String, String>,
    listing: &paging::Listing<Approval>,
) -> anyhow::Result<()> {
    let approvals = &listing.items;
    let rows = approvals
        .iter()
        .map(|approval| {
            vec![
                approval.id.clone(),
                approval.status.to_string(),
                approval.action_name.clone(),
                or_dash(Some(&approval.action_effect)),
                super::agents::label(context, names, &approval.agent_id),
                context
                    .printer
                    .reference(&or_dash(Some(&approval.session_id))),
                context.printer.time(&or_dash(Some(&approval.expires_at))),
                or_dash(approval.decided_by.as_deref()),
            ]
        })
        .collect();
    let ids: Vec<String> = approvals
        .iter()
        .map(|approval| approval.id.clone())
        .collect();
    context.printer.show(
        &listing.raw,
        &ids,
        View::Rows {
            headers: vec![
                "ID",
                "STATUS",
                "ACTION",
                "EFFECT",
                "AGENT",
                "SESSION",
                "EXPIRES",
                "DECIDED_BY",
            ],
            rows,
        },
    )?;
    paging::note_more(context, "approvals", page, listing.next_cursor.as_deref());
    Ok(())
}

pub async fn get(context: &Context, id: &str) -> anyhow::Result<()> {
    let client = context.client()?;
    let response = client::approvals::get(&client, id).await?;
    show_approval(context, &response.raw, &response.value)?;
    Ok(())
}

/// Approve or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Approve,
    Deny,
}

impl Decision {
    fn verb(self) -> &'static str {
        match self {
            Decision::Approve => "approve",
            Decision::Deny => "deny",
        }
    }
}

pub async fn decide(context: &Context, args: DecideArgs, decision: Decision) -> anyhow::Result<()> {
    let client = context.client()?;
    let decided_by = args
        .decided_by
        .filter(|name| !name.trim().is_empty())
        .unwrap_or_else(|| default_decider(std::env::var("USER").ok()));
    let approval = client::approvals::get(&client, &args.id).await?.value;
    // An approval decided already: nothing to show or confirm; the gateway refuses (409) and
    // its error is the one message.
    if !matches!(
        wait_outcome(&approval.status),
        WaitOutcome::Approved | WaitOutcome::Denied | WaitOutcome::Expired
    ) {
        // Show what is being decided before asking (and before deciding without asking).
        context.printer.note(describe(&approval));
        context.confirm(
            args.yes,
            &format!("{} approval {} as {decided_by}", decision.verb(), args.id),
        )?;
    }
    let request = DecideRequest {
        decided_by: Some(decided_by),
    };
    let response = match decision {
        Decision::Approve => client::approvals::approve(&client, &args.id, &request).await?,
        Decision::Deny => client::approvals::deny(&client, &args.id, &request).await?,
    };
    let result = &response.value;
    let mut fields = vec![("status", result.status.to_string())];
    if let Some(approval) = &result.approval {
        fields.push(("id", approval.id.clone()));
        fields.push(("decided_by", or_dash(approval.decided_by.as_deref())));
        fields.push(("decided_at", or_dash(approval.decided_at.as_deref())));
        if let Some(until) = &approval.grant_expires_at {
            fields.push(("grant_expires_at", until.clone()));
        }
    }
    context.printer.show(
        &response.raw,
        &[result.status.to_string()],
        View::Record(fields),
    )?;
    if decision == Decision::Approve {
        context.printer.note(format!(
            "Approved: `{}` in session {} may now be retried.",
            approval.action_name,
            or_dash(Some(&approval.session_id))
        ));
    }
    Ok(())
}

/// `$USER`, else `cli`.
fn default_decider(user: Option<String>) -> String {
    user.map(|user| user.trim().to_string())
        .filter(|user| !user.is_empty())
        .unwrap_or_else(|| "cli".to_string())
}

/// What an operator needs to see before deciding, one `field: value` a line.
fn describe(approval: &Approval) -> String {
    let mut text = format!("Approval {} ({}):\n", approval.id, approval.status);
    let mut line = |name: &str, value: String| text.push_str(&format!("  {name:<8} {value}\n"));
    line("action", or_dash(Some(&approval.action_name)));
    line("agent", or_dash(Some(&approval.agent_id)));
    line("session", or_dash(Some(&approval.session_id)));
    line("effect", or_dash(Some(&approval.action_effect)));
    if !approval.input_summary.is_empty() {
        line("input", approval.input_summary.clone());
    }
    line("reason", or_dash(Some(&approval.reason)));
    line("expires", or_dash(Some(&approval.expires_at)));
    text
}

/// What a poll of `wait` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WaitOutcome {
    Approved,
    Denied,
    Expired,
    Pending,
}

fn wait_outcome(status: &ApprovalStatus) -> WaitOutcome {
    match status {
        ApprovalStatus::Approved => WaitOutcome::Approved,
        ApprovalStatus::Denied => WaitOutcome::Denied,
        ApprovalStatus::Expired => WaitOutcome::Expired,
        // `pending`, or a status a newer gateway invented: keep waiting.
        ApprovalStatus::Pending | ApprovalStatus::Other(_) => WaitOutcome::Pending,
    }
}

/// Polls an approval every `interval` until someone decides it, it expires, or `timeout`
/// passes; returns the last answer. Shared by `approvals wait` and `guard … --wait`.
pub async fn poll_until_decided(
    context: &Context,
    client: &client::Client,
    id: &str,
    timeout: Duration,
    interval: Duration,
) -> anyhow::Result<client::Response<Approval>> {
    let deadline = Instant::now() + timeout;
    let mut announced = false;
    loop {
        let response = client::approvals::get(client, id).await?;
        let now = Instant::now();
        if wait_outcome(&response.value.status) != WaitOutcome::Pending || now >= deadline {
            return Ok(response);
        }
        if !announced {
            context.printer.note(format!(
                "Waiting up to {} for approval {id} ({} by {}); approve it with \
                 `agenttrust approvals approve {id}`…",
                humanize(timeout),
                response.value.action_name,
                response.value.agent_id
            ));
            announced = true;
        }
        tokio::time::sleep(interval.min(deadline - now)).await;
    }
}

pub async fn wait(context: &Context, args: WaitArgs) -> anyhow::Result<Outcome> {
    let client = context.client()?;
    let timeout = wait_timeout(context, args.wait_timeout);
    let response = poll_until_decided(context, &client, &args.id, timeout, args.interval).await?;
    let approval = response.value;
    exit::answer_printed(show_approval(context, &response.raw, &approval))?;
    Ok(approval_outcome(approval, timeout))
}

/// What the last answer of a wait comes to: approved 0, denied 77, expired 1, else still
/// pending 75. Shared by `approvals wait` and `guard … --wait`.
pub fn approval_outcome(approval: Approval, waited: Duration) -> Outcome {
    match wait_outcome(&approval.status) {
        WaitOutcome::Approved => Outcome::Success,
        WaitOutcome::Denied => Outcome::ApprovalDenied {
            decided_by: or_dash(approval.decided_by.as_deref()),
            approval_id: approval.id,
        },
        WaitOutcome::Expired => Outcome::ApprovalExpired {
            approval_id: approval.id,
        },
        WaitOutcome::Pending => Outcome::ApprovalPending {
            approval_id: approval.id,
            status: approval.status.to_string(),
            waited: humanize(waited),
        },
    }
}

/// `300s` → `5m`, `90s` → `90s`, `1500ms` → `1.5s`.
pub fn humanize(duration: Duration) -> String {
    let seconds = duration.as_secs();
    if duration.subsec_millis() != 0 {
        format!("{}s", duration.as_secs_f64())
    } else if seconds >= 3600 && seconds.is_multiple_of(3600) {
        format!("{}h", seconds / 3600)
    } else if seconds >= 60 && seconds.is_multiple_of(60) {
        format!("{}m", seconds / 60)
    } else {
        format!("{seconds}s")
    }
}

fn show_approval(
    context: &Context,
    raw: &serde_json::Value,
    approval: &Approval,
) -> std::io::Result<()> {
    let mut fields = vec![
        ("id", approval.id.clone()),
        ("status", approval.status.to_string()),
        ("action_name", or_dash(Some(&approval.action_name))),
        ("action_effect", or_dash(Some(&approval.action_effect))),
        ("agent_id", or_dash(Some(&approval.agent_id))),
        ("session_id", or_dash(Some(&approval.session_id))),
        ("input_summary", or_dash(Some(&approval.input_summary))),
        ("reason", or_dash(Some(&approval.reason))),
        ("created_at", or_dash(Some(&approval.created_at))),
        ("expires_at", or_dash(Some(&approval.expires_at))),
        ("decided_by", or_dash(approval.decided_by.as_deref())),
        ("decided_at", or_dash(approval.decided_at.as_deref())),
    ];
    if let Some(until) = &approval.grant_expires_at {
        fields.push(("grant_expires_at", until.clone()));
    }
    context
        .printer
        .show(raw, &[approval.status.to_string()], View::Record(fields))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_decider_defaults_to_the_user_then_cli() {
        assert_eq!(default_decider(Some("alice".to_string())), "alice");
        assert_eq!(default_decider(Some("  ".to_string())), "cli");
        assert_eq!(default_decider(None), "cli");
    }

    #[test]
    fn wait_outcomes() {
        assert_eq!(
            wait_outcome(&ApprovalStatus::from("approved")),
            WaitOutcome::Approved
        );
        assert_eq!(
            wait_outcome(&ApprovalStatus::from("denied")),
            WaitOutcome::Denied
        );
        assert_eq!(
            wait_outcome(&ApprovalStatus::from("expired")),
            WaitOutcome::Expired
        );
        assert_eq!(
            wait_outcome(&ApprovalStatus::from("pending")),
            WaitOutcome::Pending
        );
        assert_eq!(
            wait_outcome(&ApprovalStatus::from("escalated")),
            WaitOutcome::Pending
        );
    }

    #[test]
    fn durations_read_back_as_written() {
        assert_eq!(humanize(Duration::from_secs(300)), "5m");
        assert_eq!(humanize(Duration::from_secs(90)), "90s");
        assert_eq!(humanize(Duration::from_secs(7200)), "2h");
        assert_eq!(humanize(Duration::from_millis(1500)), "1.5s");
    }

    #[test]
    fn intervals_have_a_floor() {
        assert_eq!(parse_interval("2s"), Ok(Duration::from_secs(2)));
        assert!(parse_interval("10ms").is_err());
    }

    #[test]
    fn the_description_names_what_is_decided() {
        let approval: Approval = serde_json::from_value(serde_json::json!({
            "id": "ap1", "status": "pending", "action_name": "rm_rf", "agent_id": "a1",
            "session_id": "s1", "action_effect": "destructive", "reason": "destructive by default"
        }))
        .unwrap();
        let text = describe(&approval);
        assert!(text.starts_with("Approval ap1 (pending):\n"), "{text}");
        for expected in ["rm_rf", "a1", "s1", "destructive", "destructive by default"] {
            assert!(text.contains(expected), "{expected} missing in {text}");
        }
        assert!(!text.contains("input"));
    }
}
