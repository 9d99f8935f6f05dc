//! `agenttrust guard check|run|report|flush|session`: the runtime seatbelt for shell-scripted
//! agents. Exit codes are the API (design.md §4): 0 allowed, 77 denied, 75 elevation required,
//! 69 gateway unreachable or timed out (fail-closed), 4 authentication or permission failure
//! (never an allow, not even with `--fail-open`). `guard run` passes the wrapped command's own
//! status through (a signal death is 128 + N).
//!
//! Privacy (reference/wire-api.md §5): the tool name is sent; its input only with `--input` or
//! `guard run --log-inputs` (the command line, cut to 200 characters); its output never.
//! Telemetry goes through the spool (`guard::spool`) and never changes an exit status.

use std::time::Duration;

use clap::{Args, Subcommand};

use super::Context;
use super::actions::effect_parser;
use super::approvals::{self, DEFAULT_WAIT};
use crate::api::actions::{CheckDecision, CheckRequest, Effect};
use crate::api::telemetry::ReportedEvent;
use crate::api::time;
use crate::client::actions::{MAX_INPUT_SUMMARY_CHARS, truncate_summary};
use crate::client::{self, Client, Response};
use crate::config::env;
use crate::exit::{self, Failure, Report};
use crate::guard::child;
use crate::guard::spool::{self, Delivery, Spool, SpooledEvent};
use crate::output;

/// How long telemetry may hold up a `guard` exit: one short round trip on a healthy gateway.
pub const TELEMETRY_BUDGET: Duration = Duration::from_millis(500);
/// Time between polls of a pending approval under `--wait`.
const WAIT_INTERVAL: Duration = Duration::from_millis(500);

const EXIT_HELP: &str = "\
Exit status: 0 allowed, 77 denied, 75 elevation required (an approval is pending), 69 gateway \
unreachable or timed out (fail-closed), 4 authentication or permission failure (never an allow). \
With -o json the decision is printed on stdout and the exit status is the same. With --wait, \
--timeout is how long to wait for the human decision [default: 5m].";

#[derive(Debug, Args)]
pub struct GuardArgs {
    #[command(subcommand)]
    pub command: GuardCommand,
}

#[derive(Debug, Subcommand)]
pub enum GuardCommand {
    /// Check a tool call before making it (silent on allow; the exit status is the answer)
    #[command(after_help = EXIT_HELP)]
    Check(CheckArgs),
    /// Check a tool call and, when allowed, run the command and report what happened
    #[command(after_help = "\
Exit status: the command's own (128 + N when killed by signal N) when it ran; else 77 denied, 75 \
elevation required, 69 gateway unreachable (fail-closed), 4 authentication or permission \
failure. The command never starts unless the call is allowed. Telemetry (tool_end/tool_error, \
duration, exit status) is spooled and delivered without delaying the exit by more than one short \
round trip; it never changes the exit status.")]
    Run(RunArgs),
    /// Report what a tool call did (success or failure, duration)
    Report(ReportArgs),
    /// Deliver every spooled telemetry event (exit 69 when the gateway is unreachable)
    Flush,
    /// Start or end a shell session: `eval "$(agenttrust guard session start)"`
    Session(SessionArgs),
}

/// The flags of a decision, shared by `check` and `run`.
#[derive(Debug, Args)]
pub struct DecisionArgs {
    /// Agent id [env: AGENTTRUST_AGENT_ID]
    #[arg(long, value_name = "ID")]
    pub agent: Option<String>,
    /// Session id [env: AGENTTRUST_SESSION_ID] [default: a fresh one]
    #[arg(long, value_name = "ID")]
    pub session: Option<String>,
    /// What the call does [default: classified by the gateway]
    #[arg(long, value_name = "EFFECT", value_parser = effect_parser())]
    pub effect: Option<Effect>,
    /// On elevation, wait for the human decision (approved → go on, denied → 77, timeout → 75)
    #[arg(long)]
    pub wait: bool,
    /// Treat an unreachable or timed-out gateway as an allow, with a warning (never a denial,
    /// an elevation or a 4xx) [env: AGENTTRUST_FAIL_OPEN]
    #[arg(long)]
    pub fail_open: bool,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The tool (action) name
    #[arg(value_name = "TOOL")]
    pub tool: String,
    /// A summary of the tool's input (cut to 200 characters)
    #[arg(long, value_name = "SUMMARY")]
    pub input: Option<String>,
    #[command(flatten)]
    pub decision: DecisionArgs,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The tool (action) name
    #[arg(long, value_name = "NAME")]
    pub tool: String,
    /// A summary of the tool's input (cut to 200 characters)
    #[arg(long, value_name = "SUMMARY")]
    pub input: Option<String>,
    /// Send the command line (cut to 200 characters) as the input summary
    #[arg(long, conflicts_with = "input")]
    pub log_inputs: bool,
    #[command(flatten)]
    pub decision: DecisionArgs,
    /// The command to run, after `--`
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The tool (action) name
    #[arg(value_name = "TOOL")]
    pub tool: String,
    /// The call succeeded
    #[arg(long, conflicts_with = "failure", required_unless_present = "failure")]
    pub success: bool,
    /// The call failed
    #[arg(long)]
    pub failure: bool,
    /// How long the call took, in milliseconds
    #[arg(long, value_name = "N")]
    pub duration_ms: Option<u64>,
    /// What kind of failure (e.g. `exit:3`, `timeout`)
    #[arg(long, value_name = "TYPE", requires = "failure")]
    pub error_type: Option<String>,
    /// Agent id [env: AGENTTRUST_AGENT_ID]
    #[arg(long, value_name = "ID")]
    pub agent: Option<String>,
    /// Session id [env: AGENTTRUST_SESSION_ID]
    #[arg(long, value_name = "ID")]
    pub session: Option<String>,
}

#[derive(Debug, Args)]
pub struct SessionArgs {
    #[command(subcommand)]
    pub command: SessionCommand,
}

#[derive(Debug, Subcommand)]
pub enum SessionCommand {
    /// Print `export AGENTTRUST_SESSION_ID=…` (and the agent) for `eval "$(…)"`
    Start {
        /// Also export this agent id
        #[arg(long, value_name = "ID")]
        agent: Option<String>,
    },
    /// Deliver the session's telemetry and print `unset AGENTTRUST_SESSION_ID`
    End,
}

pub async fn run(context: &Context, args: GuardArgs) -> anyhow::Result<()> {
    match args.command {
        GuardCommand::Check(args) => check(context, args).await,
        GuardCommand::Run(args) => run_command(context, args).await,
        GuardCommand::Report(args) => report(context, args).await,
        GuardCommand::Flush => flush(context).await,
        GuardCommand::Session(args) => match args.command {
            SessionCommand::Start { agent } => session_start(agent),
            SessionCommand::End => {
                flush(context).await?;
                output::Printer::new(output::Format::Table, false)
                    .lines(&["unset AGENTTRUST_SESSION_ID".to_string()])?;
                Ok(())
            }
        },
    }
}

/// The agent and session of a call: flag, else env; a fresh session id when there is none.
struct Caller {
    agent_id: String,
    session_id: String,
    /// The session id was made up here: say so when the user needs it to retry.
    fresh_session: bool,
}

fn caller(agent: Option<String>, session: Option<String>) -> anyhow::Result<Caller> {
    let agent_id = super::agent_or_env(agent)?;
    let (session_id, fresh_session) = match super::session_or_env(session) {
        Some(session) => (session, false),
        None => (uuid::Uuid::new_v4().to_string(), true),
    };
    Ok(Caller {
        agent_id,
        session_id,
        fresh_session,
    })
}

/// How a decision came out when the call may go ahead.
enum Allowed {
    /// The gateway said yes.
    ByGateway,
    /// The gateway could not be reached and `--fail-open` allowed the call anyway.
    FailOpen,
}

pub async fn check(context: &Context, args: CheckArgs) -> anyhow::Result<()> {
    let caller = caller(args.decision.agent.clone(), args.decision.session.clone())?;
    let client = context.client()?;
    let summary = args.input.as_deref().map(summarize);
    let allowed = decide(
        context,
        &client,
        &caller,
        &args.tool,
        summary,
        &args.decision,
    )
    .await?;
    // Deliver what earlier invocations left in the spool, when a batch is due (a stat when the
    // spool is empty).
    if matches!(allowed, Allowed::ByGateway) {
        deliver_pending(&client).await;
    }
    Ok(())
}

pub async fn run_command(context: &Context, args: RunArgs) -> anyhow::Result<()> {
    let caller = caller(args.decision.agent.clone(), args.decision.session.clone())?;
    let client = context.client()?;
    let summary = if args.log_inputs {
        Some(summarize(&args.command.join(" ")))
    } else {
        args.input.as_deref().map(summarize)
    };
    let allowed = decide(
        context,
        &client,
        &caller,
        &args.tool,
        summary,
        &args.decision,
    )
    .await?;
    let (exit_code, event) = match child::run(&args.command).await {
        Ok(finished) => {
            let event = tool_event(
                &args.tool,
                finished.error_type.clone(),
                finished.duration.as_millis(),
            );
            (finished.exit_code, event)
        }
        Err(error) => {
            output::print_error(
                &Report {
                    exit_code: error.exit_code(),
                    code: "SPAWN_FAILED".to_string(),
                    message: error.to_string(),
                    status: None,
                    hint: None,
                    silent: false,
                },
                false,
            );
            let event = tool_event(&args.tool, Some(error.error_type()), 0);
            (error.exit_code(), event)
        }
    };
    let reachable = matches!(allowed, Allowed::ByGateway);
    record(&client, &caller, event, reachable).await;
    if exit_code == exit::SUCCESS {
        Ok(())
    } else {
        Err(Failure::Silent(exit_code).into())
    }
}

pub async fn report(context: &Context, args: ReportArgs) -> anyhow::Result<()> {
    let agent_id = super::agent_or_env(args.agent)?;
    let session_id = super::session_or_env(args.session);
    let client = context.client()?;
    let error_type = if args.success {
        None
    } else {
        Some(args.error_type.unwrap_or_else(|| "failure".to_string()))
    };
    let mut event = tool_event(&args.tool, error_type, 0);
    event.duration_ms = args
        .duration_ms
        .map(|millis| i64::try_from(millis).unwrap_or(i64::MAX));
    let caller = Caller {
        agent_id,
        session_id: session_id.unwrap_or_default(),
        fresh_session: false,
    };
    record(&client, &caller, event, true).await;
    Ok(())
}

/// Delivers everything spooled; exit 69 (or 4) when the gateway refuses or cannot be reached
/// and events remain.
pub async fn flush(context: &Context) -> anyhow::Result<()> {
    let client = context.client()?;
    let spool = spool_for(&client)?;
    let delivery = spool.deliver(&client, None).await?;
    if context.printer.is_json() && !context.printer.is_quiet() {
        context.printer.json(&serde_json::json!({
            "delivered": delivery.sent,
            "rejected": delivery.rejected,
            "remaining": delivery.remaining,
        }))?;
    } else if delivery.sent > 0 || delivery.remaining > 0 {
        context.printer.note(format!(
            "Delivered {} telemetry event(s); {} remain spooled.",
            delivery.sent, delivery.remaining
        ));
    }
    if let Some(error) = delivery.error {
        return Err(anyhow::Error::from(error).context(format!(
            "{} telemetry event(s) remain in {}",
            delivery.remaining,
            spool.path().display()
        )));
    }
    Ok(())
}

fn session_start(agent: Option<String>) -> anyhow::Result<()> {
    let mut lines = vec![format!(
        "export {}={}",
        env::SESSION_ID,
        shell_quote(&uuid::Uuid::new_v4().to_string())
    )];
    if let Some(agent) = agent.filter(|agent| !agent.is_empty()) {
        lines.push(format!("export {}={}", env::AGENT_ID, shell_quote(&agent)));
    }
    output::Printer::new(output::Format::Table, false).lines(&lines)?;
    Ok(())
}

/// Single-quotes a value for a POSIX shell unless it is plainly safe.
fn shell_quote(value: &str) -> String {
    let safe = !value.is_empty()
        && value
            .chars()
            .all(|character| character.is_ascii_alphanumeric() || "-_.:/@+".contains(character));
    if safe {
        value.to_string()
    } else {
        format!("'{}'", value.replace('\'', r"'\''"))
    }
}

fn summarize(text: &str) -> String {
    truncate_summary(text, MAX_INPUT_SUMMARY_CHARS).to_string()
}

fn fail_open(args: &DecisionArgs) -> bool {
    args.fail_open || env::flag(env::FAIL_OPEN)
}

/// Asks the gateway (and, with `--wait`, the human behind an elevation). `Ok` means the call
/// may go ahead; every other answer is an error carrying its exit status.
async fn decide(
    context: &Context,
    client: &Client,
    caller: &Caller,
    tool: &str,
    summary: Option<String>,
    args: &DecisionArgs,
) -> anyhow::Result<Allowed> {
    let request = CheckRequest {
        agent_id: Some(caller.agent_id.clone()),
        action_name: Some(tool.to_string()),
        action_source: Some("api".to_string()),
        action_input_summary: summary.filter(|summary| !summary.is_empty()),
        session_id: Some(caller.session_id.clone()),
        action_effect: args.effect.map(|effect| effect.as_str().to_string()),
        ..CheckRequest::default()
    };
    let mut response = match client::actions::check(client, &request).await {
        Ok(response) => response,
        Err(error) if error.is_unreachable() && fail_open(args) => {
            output::warn(format!("{error}; allowing `{tool}` anyway (--fail-open)"));
            if context.printer.is_json() && !context.printer.is_quiet() {
                context.printer.json(&serde_json::json!({
                    "allowed": true,
                    "fail_open": true,
                    "reason": error.to_string(),
                }))?;
            }
            return Ok(Allowed::FailOpen);
        }
        Err(error) => return Err(error.into()),
    };
    if args.wait
        && response.value.elevation_required
        && let Some(approval_id) = response.value.approval_id.clone()
    {
        match wait_for_approval(context, client, &approval_id).await? {
            ApprovalOutcome::Approved => {
                // The documented flow: retry the same call in the same session.
                response = client::actions::check(client, &request).await?;
            }
            ApprovalOutcome::Denied(decided_by) => {
                show_decision(context, &response)?;
                return Err(silent_or(
                    context,
                    exit::DENIED,
                    format!("approval {approval_id} was denied by {decided_by}"),
                    None,
                ));
            }
            ApprovalOutcome::Pending(status) => {
                show_decision(context, &response)?;
                return Err(silent_or(
                    context,
                    exit::ELEVATION_REQUIRED,
                    format!("approval {approval_id} is still {status}"),
                    Some(approve_hint(&approval_id, caller)),
                ));
            }
        }
    }
    show_decision(context, &response)?;
    let decision = &response.value;
    let reason = if decision.reason.is_empty() {
        "no reason given".to_string()
    } else {
        decision.reason.clone()
    };
    // Elevation first (as the Rust SDK does): it is always paired with allowed: false anyway.
    if decision.elevation_required {
        let hint = match &decision.approval_id {
            Some(id) => approve_hint(id, caller),
            None => "an operator must allow this call".to_string(),
        };
        return Err(silent_or(
            context,
            exit::ELEVATION_REQUIRED,
            format!("elevation required for `{tool}`: {reason}"),
            Some(hint),
        ));
    }
    if !decision.allowed {
        return Err(silent_or(
            context,
            exit::DENIED,
            format!("denied: `{tool}`: {reason}"),
            None,
        ));
    }
    Ok(Allowed::ByGateway)
}

fn approve_hint(approval_id: &str, caller: &Caller) -> String {
    let retry = if caller.fresh_session {
        format!(
            "then retry with --session {} (or pass --wait)",
            caller.session_id
        )
    } else {
        "then retry in the same session (or pass --wait)".to_string()
    };
    format!(
        "approval {approval_id} is pending; approve it with `agenttrust approvals approve {approval_id}`, {retry}"
    )
}

/// With `-o json` the decision on stdout says it all; else one `error:` line (+ hint).
fn silent_or(context: &Context, code: u8, message: String, hint: Option<String>) -> anyhow::Error {
    if !context.printer.is_json() || context.printer.is_quiet() {
        let machine = match code {
            exit::DENIED => "ACTION_DENIED",
            _ => "ELEVATION_REQUIRED",
        };
        output::print_error(
            &Report {
                exit_code: code,
                code: machine.to_string(),
                message,
                status: None,
                hint,
                silent: false,
            },
            false,
        );
    }
    Failure::Silent(code).into()
}

/// `-o json` prints the decision as received; the table view stays silent (the exit status is
/// the answer).
fn show_decision(context: &Context, response: &Response<CheckDecision>) -> anyhow::Result<()> {
    if context.printer.is_json() && !context.printer.is_quiet() {
        context.printer.json(&response.raw)?;
    }
    Ok(())
}

enum ApprovalOutcome {
    Approved,
    /// Who denied it.
    Denied(String),
    /// Still pending at the timeout, or expired: the status.
    Pending(String),
}

async fn wait_for_approval(
    context: &Context,
    client: &Client,
    approval_id: &str,
) -> anyhow::Result<ApprovalOutcome> {
    let timeout = context.globals.timeout.unwrap_or(DEFAULT_WAIT);
    let approval =
        approvals::poll_until_decided(context, client, approval_id, timeout, WAIT_INTERVAL)
            .await?
            .value;
    Ok(match approval.status.as_str() {
        "approved" => ApprovalOutcome::Approved,
        "denied" => ApprovalOutcome::Denied(approval.decided_by.unwrap_or_else(|| "-".to_string())),
        // Still pending at the timeout, or expired: the call still needs a human.
        _ => ApprovalOutcome::Pending(approval.status),
    })
}

fn tool_event(tool: &str, error_type: Option<String>, duration_ms: u128) -> ReportedEvent {
    let success = error_type.is_none();
    ReportedEvent {
        event_type: if success { "tool_end" } else { "tool_error" }.to_string(),
        tool_name: Some(tool.to_string()),
        duration_ms: Some(i64::try_from(duration_ms).unwrap_or(i64::MAX)),
        success: Some(success),
        error_type,
        timestamp: Some(time::format(time::now())),
        // The spool names the event when it sends it (see `Spool::deliver`).
        event_id: None,
    }
}

fn spool_for(client: &Client) -> anyhow::Result<Spool> {
    Ok(Spool::new(
        spool::default_dir()?,
        client.audit_url().as_str(),
    ))
}

/// Spools one event; when the gateway answered a moment ago and a batch is due, delivers the
/// spool within [`TELEMETRY_BUDGET`]. Never fails: telemetry problems are warnings.
async fn record(client: &Client, caller: &Caller, event: ReportedEvent, deliver: bool) {
    let spooled = SpooledEvent::new(
        caller.agent_id.clone(),
        Some(caller.session_id.clone()).filter(|session| !session.is_empty()),
        event,
    );
    let spool = match spool_for(client) {
        Ok(spool) => spool,
        Err(error) => {
            output::warn(format!("telemetry not recorded: {error:#}"));
            return;
        }
    };
    if let Err(error) = spool.append(&spooled) {
        output::warn(format!("telemetry not recorded: {error:#}"));
        return;
    }
    if deliver {
        deliver_pending(client).await;
    } else {
        output::warn(format!(
            "telemetry kept in {} (the gateway is unreachable); `agenttrust guard flush` delivers it",
            spool.path().display()
        ));
    }
}

/// Delivers what is spooled, within the budget, when a batch is due (a full batch, or an event
/// that has waited long enough); warns about what stays.
async fn deliver_pending(client: &Client) {
    let Ok(spool) = spool_for(client) else {
        return;
    };
    match spool.is_due() {
        Ok(true) => {}
        Ok(false) => return,
        Err(error) => {
            output::warn(format!("telemetry spool unreadable: {error:#}"));
            return;
        }
    }
    match spool.deliver(client, Some(TELEMETRY_BUDGET)).await {
        Ok(Delivery {
            error: Some(error),
            remaining,
            ..
        }) => output::warn(format!(
            "telemetry not delivered ({error}); {remaining} event(s) kept in {}; `agenttrust guard flush` delivers them",
            spool.path().display()
        )),
        Ok(delivery) => {
            tracing::debug!(
                sent = delivery.sent,
                remaining = delivery.remaining,
                out_of_time = delivery.out_of_time,
                busy = delivery.busy,
                "telemetry delivery"
            );
        }
        Err(error) => output::warn(format!("telemetry not delivered: {error:#}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quoting() {
        assert_eq!(shell_quote("abc-123"), "abc-123");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn events_say_what_happened() {
        let ok = tool_event("ls", None, 12);
        assert_eq!(ok.event_type, "tool_end");
        assert_eq!(ok.success, Some(true));
        let failed = tool_event("ls", Some("exit:3".to_string()), 5);
        assert_eq!(failed.event_type, "tool_error");
        assert_eq!(failed.success, Some(false));
        assert_eq!(failed.error_type.as_deref(), Some("exit:3"));
        let stamp = failed.timestamp.unwrap();
        assert!(stamp.ends_with('Z') && !stamp.contains('.'), "{stamp}");
    }
}
