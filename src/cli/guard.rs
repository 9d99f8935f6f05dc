//! `agenttrust guard check|run|report|flush|session`: the runtime seatbelt for shell-scripted
//! agents. Exit codes are the API (design.md §4): 0 allowed, 77 denied, 75 elevation required,
//! 69 gateway unreachable or timed out (fail-closed), 4 authentication or permission failure
//! (never an allow, not even with `--fail-open`). `guard run` passes the wrapped command's own
//! status through (a signal death is 128 + N).
//!
//! What is sent (reference/wire-api.md §5): the tool name; for `guard check` its input only
//! with `--input`; for `guard run` always the whole command line (at most 2048 bytes), because a
//! check that does not see what runs binds nothing; the output never. Telemetry goes through
//! the spool (`guard::spool`) and never changes an exit status.
//!
//! Trust: `--fail-open` turns only an unreachable gateway or a timeout into an allow, never a
//! TLS or protocol failure (`client::Error::allows_fail_open`); the wrapped command does not
//! inherit the API key or the agent token; a shell agent may hold only an agent token
//! (`AGENTTRUST_AGENT_TOKEN`, `--agent-token-file`), which the gateway binds to its agent.
//!
//! The machinery lives beside the verbs: `child` runs the wrapped command, `spool` keeps the
//! telemetry until it is delivered.

pub mod child;
pub mod spool;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::actions::decision_outcome;
use super::approvals;
use super::common::ToolArgs;
use super::effect_parser;
use super::{Context, common};
use crate::api::actions::MAX_INPUT_SUMMARY_BYTES;
use crate::api::actions::{CheckDecision, CheckRequest, Effect};
use crate::api::sessions::OpenSessionRequest;
use crate::api::telemetry::ReportedEvent;
use crate::api::time;
use crate::client::actions::{MAX_INPUT_SUMMARY_CHARS, truncate_summary};
use crate::client::{self, Client, Response};
use crate::config::env;
use crate::exit::{self, Failure, Outcome, Retry};
use crate::output;
use spool::{Delivery, Spool, SpooledEvent};

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
    /// Read the agent token from FILE (`-` = stdin) [env: AGENTTRUST_AGENT_TOKEN]; with a
    /// token no API key is needed and --agent may be omitted (the gateway takes the agent from it)
    #[arg(long, global = true, value_name = "FILE")]
    pub agent_token_file: Option<PathBuf>,
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
    /// Agent id or name [env: AGENTTRUST_AGENT_ID] [default with an agent token: the token's
    /// agent]
    #[arg(long, value_name = "AGENT")]
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
    /// With --wait, how long to wait in all: 30s, 5m, 1h30m [default: 5m] (for compatibility,
    /// --timeout alone still sets it too)
    #[arg(long, value_name = "DURATION", value_parser = crate::config::parse_duration)]
    pub wait_timeout: Option<std::time::Duration>,
    /// Treat an unreachable or timed-out gateway as an allow, with a warning (never a denial,
    /// an elevation or a 4xx) [env: AGENTTRUST_FAIL_OPEN]
    #[arg(long)]
    pub fail_open: bool,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub tool: ToolArgs,
    /// A summary of the tool's input (cut to 200 characters)
    #[arg(long, value_name = "SUMMARY")]
    pub input: Option<String>,
    #[command(flatten)]
    pub decision: DecisionArgs,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The tool (action) name (also accepted positionally: `guard run NAME -- COMMAND…`)
    #[arg(
        long,
        value_name = "NAME",
        required_unless_present_any = ["tool_from_argv0", "tool_positional"],
        conflicts_with = "tool_positional"
    )]
    pub tool: Option<String>,
    #[arg(value_name = "TOOL", hide = true)]
    pub tool_positional: Option<String>,
    /// Name the tool after the command (argv[0]'s file name), so the checked tool is the one
    /// that runs; a --tool naming another is refused
    #[arg(long)]
    pub tool_from_argv0: bool,
    /// More context for the input summary, after the command line (which is always sent)
    #[arg(long, value_name = "SUMMARY")]
    pub input: Option<String>,
    /// Accepted for compatibility: the command line is always the input summary now
    #[arg(long, hide = true)]
    pub log_inputs: bool,
    /// Let the command inherit AGENTTRUST_API_KEY and AGENTTRUST_AGENT_TOKEN (scrubbed by
    /// default: the wrapped tool must not act with the agent's credentials)
    #[arg(long)]
    pub pass_credentials: bool,
    #[command(flatten)]
    pub decision: DecisionArgs,
    /// The command to run, after `--`
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub tool: ToolArgs,
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
    /// Agent id or name [env: AGENTTRUST_AGENT_ID]
    #[arg(long, value_name = "AGENT")]
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
    /// Open a session at the gateway and print `export AGENTTRUST_SESSION_ID=…` (and the agent)
    /// for `eval "$(…)"`; nothing is printed when the gateway cannot open one
    Start {
        /// The agent, by id or name [env: AGENTTRUST_AGENT_ID] [default: the agent token's];
        /// its id is exported
        #[arg(long, value_name = "AGENT")]
        agent: Option<String>,
        /// Make the session id up here instead of opening it at the gateway (works offline; a
        /// policy with `require_registered_session` refuses such a session's calls)
        #[arg(long)]
        local: bool,
    },
    /// Deliver the session's telemetry and print `unset AGENTTRUST_SESSION_ID`
    End,
}

pub async fn run(context: &Context, args: GuardArgs) -> anyhow::Result<Outcome> {
    let token = || common::agent_token(args.agent_token_file.as_deref());
    match args.command {
        GuardCommand::Check(check_args) => check(context, check_args, token()?).await,
        GuardCommand::Run(run_args) => run_command(context, run_args, token()?).await,
        GuardCommand::Report(report_args) => report(context, report_args, token()?).await,
        GuardCommand::Flush => flush(context, token()?).await,
        GuardCommand::Session(session_args) => match session_args.command {
            SessionCommand::Start { agent, local } => {
                session_start(context, agent, local, token()?).await
            }
            SessionCommand::End => session_end(context, token()?).await,
        },
    }
}

/// The agent and session of a call: flag, else env; a fresh session id when there is none.
struct Caller {
    /// `None` with an agent token and no `--agent`: the gateway takes the agent from the token
    /// (and the decision names it).
    agent_id: Option<String>,
    session_id: String,
    /// The session id was made up here: say so when the user needs it to retry.
    fresh_session: bool,
}

fn caller(
    agent: Option<String>,
    session: Option<String>,
    agent_token: Option<&str>,
) -> anyhow::Result<Caller> {
    let agent_id = match agent_token {
        Some(_) => agent.or_else(|| env::var(env::AGENT_ID)),
        None => Some(super::agent_or_env(agent)?),
    };
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

/// How a decision came out.
enum Verdict {
    /// The gateway said yes.
    Allowed,
    /// The gateway could not be reached and `--fail-open` allowed the call anyway.
    FailOpen,
    /// The call may not go ahead: denied, or waiting for a human.
    Stop(Outcome),
}

pub async fn check(
    context: &Context,
    args: CheckArgs,
    agent_token: Option<String>,
) -> anyhow::Result<Outcome> {
    let mut caller = caller(
        args.decision.agent.clone(),
        args.decision.session.clone(),
        agent_token.as_deref(),
    )?;
    let client = context.runtime_client(agent_token)?;
    let client =
        super::agent_credentials::with_stored_key(context, client, caller.agent_id.as_deref());
    let summary = args.input.as_deref().map(summarize);
    let question = Question {
        tool: args.tool.name(),
        summary,
        // `-o json`: the decision is the one document on stdout.
        show: context.printer.prints_json(),
    };
    match decide(context, &client, &mut caller, question, &args.decision).await? {
        Verdict::Allowed => {
            // Deliver what earlier invocations left in the spool, when a batch is due (a stat
            // when the spool is empty).
            deliver_pending(&client).await;
            Ok(Outcome::Success)
        }
        Verdict::FailOpen => Ok(Outcome::Success),
        Verdict::Stop(outcome) => Ok(outcome),
    }
}

pub async fn run_command(
    context: &Context,
    args: RunArgs,
    agent_token: Option<String>,
) -> anyhow::Result<Outcome> {
    let named = args.tool.as_deref().or(args.tool_positional.as_deref());
    let tool = run_tool(named, args.tool_from_argv0, &args.command)?;
    let mut caller = caller(
        args.decision.agent.clone(),
        args.decision.session.clone(),
        agent_token.as_deref(),
    )?;
    let client = context.runtime_client(agent_token)?;
    let client =
        super::agent_credentials::with_stored_key(context, client, caller.agent_id.as_deref());
    let question = Question {
        tool: &tool,
        summary: Some(run_summary(&args.command, args.input.as_deref())?),
        // stdout belongs to the wrapped command, whatever the output format.
        show: false,
    };
    let reachable = match decide(context, &client, &mut caller, question, &args.decision).await? {
        Verdict::Allowed => true,
        Verdict::FailOpen => false,
        Verdict::Stop(outcome) => return Ok(outcome),
    };
    let scrubbed: &[&str] = if args.pass_credentials {
        &[]
    } else {
        &[env::API_KEY, env::AGENT_TOKEN]
    };
    match child::run(&args.command, scrubbed).await {
        Ok(finished) => {
            let event = tool_event(
                &tool,
                finished.error_type.clone(),
                finished.duration.as_millis(),
            );
            record(&client, &caller, event, reachable).await;
            Ok(Outcome::CommandStatus(finished.exit_code))
        }
        Err(error) => {
            let event = tool_event(&tool, Some(error.error_type()), 0);
            record(&client, &caller, event, reachable).await;
            Err(error.into())
        }
    }
}

/// The tool `guard run` checks: `--tool`, or with `--tool-from-argv0` the command's file name
/// (and a `--tool` that names another tool is refused: the check must be about what runs).
fn run_tool(tool: Option<&str>, from_argv0: bool, command: &[String]) -> anyhow::Result<String> {
    if !from_argv0 {
        return tool
            .map(str::to_string)
            .ok_or_else(|| usage("--tool or --tool-from-argv0 is required"));
    }
    let program = command.first().map(String::as_str).unwrap_or_default();
    let derived = std::path::Path::new(program)
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .filter(|name| !name.is_empty())
        .ok_or_else(|| usage(&format!("cannot name a tool after {program:?}")))?;
    match tool {
        Some(named) if named != derived => Err(usage(&format!(
            "--tool {named} disagrees with the command it guards ({derived}, from argv[0])"
        ))),
        _ => Ok(derived),
    }
}

fn usage(message: &str) -> anyhow::Error {
    crate::exit::Failure::Usage {
        message: message.to_string(),
        hint: None,
    }
    .into()
}

/// `guard run`'s input summary: the whole command line, always (so a policy on the input sees
/// what really runs), then `--input` when given, cut to fit. Never a cut of the command line:
/// the agent writes it, and a long first argument would push what matters (`; cat /etc/shadow`)
/// out of the check while it still runs. One longer than the gateway accepts is refused and
/// nothing runs.
fn run_summary(command: &[String], input: Option<&str>) -> anyhow::Result<String> {
    let command_line = command.join(" ");
    if command_line.len() > MAX_INPUT_SUMMARY_BYTES {
        return Err(usage(&format!(
            "the command line is {} bytes; guard run checks it whole, at most \
             {MAX_INPUT_SUMMARY_BYTES} bytes, and runs nothing it has not checked (nothing was run)",
            command_line.len()
        )));
    }
    Ok(
        match input.map(str::trim).filter(|input| !input.is_empty()) {
            Some(input) => {
                let mut summary = format!("{command_line} # {input}");
                let mut end = summary.len().min(MAX_INPUT_SUMMARY_BYTES);
                while !summary.is_char_boundary(end) {
                    end -= 1;
                }
                summary.truncate(end);
                summary
            }
            None => command_line,
        },
    )
}

pub async fn report(
    context: &Context,
    args: ReportArgs,
    agent_token: Option<String>,
) -> anyhow::Result<Outcome> {
    let agent_id = match agent_token {
        // Empty: the gateway takes the agent from the token when the event is delivered.
        Some(_) => args.agent.or_else(|| env::var(env::AGENT_ID)),
        None => Some(super::agent_or_env(args.agent)?),
    };
    let session_id = super::session_or_env(args.session);
    let client = context.runtime_client(agent_token)?;
    let agent_id = match agent_id {
        Some(agent) => Some(super::resolve_agent(&client, agent).await?),
        None => None,
    };
    let client = super::agent_credentials::with_stored_key(context, client, agent_id.as_deref());
    let error_type = if args.success {
        None
    } else {
        Some(args.error_type.unwrap_or_else(|| "failure".to_string()))
    };
    let mut event = tool_event(args.tool.name(), error_type, 0);
    event.duration_ms = args
        .duration_ms
        .map(|millis| i64::try_from(millis).unwrap_or(i64::MAX));
    let caller = Caller {
        agent_id,
        session_id: session_id.unwrap_or_default(),
        fresh_session: false,
    };
    let spooled = record(&client, &caller, event, true).await;
    if context.printer.prints_json() {
        // The one document: the event as it is (or will be) delivered, named by its id.
        if let Some(spooled) = spooled {
            context.printer.json(&spooled_document(&spooled)?)?;
        }
    }
    Ok(Outcome::Success)
}

/// `guard report -o json`: the event as the gateway gets it, with who it belongs to.
fn spooled_document(spooled: &SpooledEvent) -> anyhow::Result<serde_json::Value> {
    let event = ReportedEvent {
        event_id: Some(spooled.id.clone()),
        ..spooled.event.clone()
    };
    let mut document = serde_json::to_value(&event)?;
    if let Some(object) = document.as_object_mut() {
        if !spooled.agent_id.is_empty() {
            object.insert("agent_id".to_string(), spooled.agent_id.clone().into());
        }
        if let Some(session_id) = &spooled.session_id {
            object.insert("session_id".to_string(), session_id.clone().into());
        }
    }
    Ok(output::without_nulls(document))
}

/// Delivers everything spooled; exit 69 (or 4) when the gateway refuses or cannot be reached
/// and events remain.
pub async fn flush(context: &Context, agent_token: Option<String>) -> anyhow::Result<Outcome> {
    let (spool, delivery) = deliver_all(context, agent_token).await?;
    if context.printer.prints_json() {
        context.printer.json(&serde_json::json!({
            "delivered": delivery.sent,
            "rejected": delivery.rejected,
            "remaining": delivery.remaining,
        }))?;
    }
    delivery_result(&spool, delivery)
}

/// `guard session end`: unsets the session variable whatever happens to the telemetry (the
/// spool keeps what could not be delivered), so `eval "$(agenttrust guard session end)"`
/// always ends the session; the exit status still says whether delivery failed (69, 4).
async fn session_end(context: &Context, agent_token: Option<String>) -> anyhow::Result<Outcome> {
    let delivered = deliver_all(context, agent_token).await;
    // Shell code on stdout, whatever the output format: it is meant for `eval`.
    context
        .printer
        .lines(&[format!("unset {}", env::SESSION_ID)])?;
    let (spool, delivery) = delivered?;
    delivery_result(&spool, delivery)
}

/// Delivers everything spooled (no time budget) and says so on stderr.
async fn deliver_all(
    context: &Context,
    agent_token: Option<String>,
) -> anyhow::Result<(Spool, Delivery)> {
    let client = context.runtime_client(agent_token)?;
    // A token acts only for its own agent: the exported agent's stored key signs for it.
    let client = super::agent_credentials::with_stored_key(
        context,
        client,
        env::var(env::AGENT_ID).as_deref(),
    );
    let spool = spool_for(&client)?;
    let delivery = spool.deliver(&client, None).await?;
    if !context.printer.prints_json() && (delivery.sent > 0 || delivery.remaining > 0) {
        context.printer.note(format!(
            "Delivered {} telemetry event(s); {} remain spooled.",
            delivery.sent, delivery.remaining
        ));
    }
    Ok((spool, delivery))
}

/// A delivery that stopped early is the error that stopped it, naming where the events wait.
fn delivery_result(spool: &Spool, delivery: Delivery) -> anyhow::Result<Outcome> {
    match delivery.error {
        Some(error) => Err(anyhow::Error::from(error).context(format!(
            "{} telemetry event(s) remain in {}",
            delivery.remaining,
            spool.path().display()
        ))),
        None => Ok(Outcome::Success),
    }
}

/// Opens a registered session (`POST /api/v1/sessions`: an org key for the named agent, or an
/// agent token for its own agent, the session then bounded by the token), or with `--local`
/// makes an id up. Prints shell code only once the session exists.
async fn session_start(
    context: &Context,
    agent: Option<String>,
    local: bool,
    agent_token: Option<String>,
) -> anyhow::Result<Outcome> {
    let agent = agent
        .filter(|agent| !agent.is_empty())
        .or_else(|| env::var(env::AGENT_ID));
    let (session_id, agent) = if local {
        (uuid::Uuid::new_v4().to_string(), agent)
    } else {
        if agent.is_none() && agent_token.is_none() {
            return Err(Failure::Usage {
                message: "name the session's agent: --agent ID or AGENTTRUST_AGENT_ID (or hold \
                          an agent token)"
                    .to_string(),
                hint: Some("`--local` makes a session id up without the gateway".to_string()),
            }
            .into());
        }
        let client = context.runtime_client(agent_token)?;
        let agent = match agent {
            Some(agent) => Some(super::resolve_agent(&client, agent).await?),
            None => None,
        };
        let request = OpenSessionRequest { agent_id: agent };
        let session = client::sessions::open(&client, &request).await?.value;
        (session.session_id, Some(session.agent_id))
    };
    let mut lines = vec![format!(
        "export {}={}",
        env::SESSION_ID,
        shell_quote(&session_id)
    )];
    if let Some(agent) = agent {
        lines.push(format!("export {}={}", env::AGENT_ID, shell_quote(&agent)));
    }
    // Shell code on stdout, whatever the output format: it is meant for `eval`.
    context.printer.lines(&lines)?;
    Ok(Outcome::Success)
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

/// What `decide` asks: the tool, its input summary, and whether the decision may be printed
/// on stdout (`guard check -o json`; never under `guard run`).
struct Question<'a> {
    tool: &'a str,
    summary: Option<String>,
    show: bool,
}

/// Asks the gateway (and, with `--wait`, the human behind an elevation) whether the call may go
/// ahead. Errors are failures to get an answer (with `--fail-open`, only transport failures
/// become an allow).
async fn decide(
    context: &Context,
    client: &Client,
    caller: &mut Caller,
    question: Question<'_>,
    args: &DecisionArgs,
) -> anyhow::Result<Verdict> {
    let tool = question.tool;
    let fail_open_on = |error: &client::Error| -> anyhow::Result<Option<Verdict>> {
        if !(error.allows_fail_open() && fail_open(args)) {
            return Ok(None);
        }
        output::warn(format!("{error}; allowing `{tool}` anyway (--fail-open)"));
        if question.show {
            context.printer.json(&serde_json::json!({
                "allowed": true,
                "fail_open": true,
                "reason": error.to_string(),
            }))?;
        }
        Ok(Some(Verdict::FailOpen))
    };
    // An agent named by name costs one lookup (an id none); a gateway that cannot be reached
    // for it is the same unreachable gateway as for the check itself.
    if let Some(reference) = caller.agent_id.clone() {
        match super::resolve_agent(client, reference).await {
            Ok(id) => caller.agent_id = Some(id),
            Err(error) => {
                if let Some(transport) = error.downcast_ref::<client::Error>()
                    && let Some(verdict) = fail_open_on(transport)?
                {
                    return Ok(verdict);
                }
                return Err(error);
            }
        }
    }
    let request = CheckRequest {
        agent_id: caller.agent_id.clone(),
        action_name: Some(tool.to_string()),
        action_source: Some("api".to_string()),
        action_input_summary: question.summary.filter(|summary| !summary.is_empty()),
        session_id: Some(caller.session_id.clone()),
        action_effect: args.effect.map(|effect| effect.as_str().to_string()),
        ..CheckRequest::default()
    };
    let show = |response: &Response<CheckDecision>| -> anyhow::Result<()> {
        if question.show {
            exit::answer_printed(context.printer.json(&response.raw))?;
        }
        Ok(())
    };
    let mut response = match super::agent_credentials::check(context, client, &request).await {
        Ok(response) => response,
        Err(error) => match fail_open_on(&error)? {
            Some(verdict) => return Ok(verdict),
            None => return Err(error.into()),
        },
    };
    if args.wait
        && response.value.elevation_required
        && let Some(approval_id) = response.value.approval_id.clone()
    {
        let timeout = approvals::wait_timeout(context, args.wait_timeout);
        let approval =
            approvals::poll_until_decided(context, client, &approval_id, timeout, WAIT_INTERVAL)
                .await?
                .value;
        match approvals::approval_outcome(approval, timeout) {
            // The documented flow: retry the same call in the same session.
            Outcome::Success => {
                response = super::agent_credentials::check(context, client, &request).await?
            }
            // An expired approval still needs a human: for `guard`, that is an elevation (75).
            Outcome::ApprovalExpired { approval_id } => {
                show(&response)?;
                return Ok(Verdict::Stop(Outcome::ApprovalPending {
                    approval_id,
                    status: "expired".to_string(),
                    waited: approvals::humanize(timeout),
                }));
            }
            stopped => {
                show(&response)?;
                return Ok(Verdict::Stop(stopped));
            }
        }
    }
    show(&response)?;
    // With an agent token and no --agent, the decision names the token's agent: telemetry
    // is then spooled under it.
    if caller.agent_id.is_none() {
        caller.agent_id = response.value.agent_id.clone();
    }
    let retry = Retry::Guard {
        fresh_session: caller.fresh_session.then(|| caller.session_id.clone()),
        waited: args.wait,
    };
    Ok(match decision_outcome(tool, &response.value, retry) {
        Outcome::Success => Verdict::Allowed,
        stopped => Verdict::Stop(stopped),
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
/// spool within [`TELEMETRY_BUDGET`]. Never fails: telemetry problems are warnings. Returns
/// the spooled event (`None` when it could not be spooled).
async fn record(
    client: &Client,
    caller: &Caller,
    event: ReportedEvent,
    deliver: bool,
) -> Option<SpooledEvent> {
    let spooled = SpooledEvent::new(
        caller.agent_id.clone().unwrap_or_default(),
        Some(caller.session_id.clone()).filter(|session| !session.is_empty()),
        event,
    );
    let spool = match spool_for(client) {
        Ok(spool) => spool,
        Err(error) => {
            output::warn(format!("telemetry not recorded: {error:#}"));
            return None;
        }
    };
    if let Err(error) = spool.append(&spooled) {
        output::warn(format!("telemetry not recorded: {error:#}"));
        return None;
    }
    if deliver {
        deliver_pending(client).await;
    } else {
        output::warn(format!(
            "telemetry kept in {} (the gateway is unreachable); `agenttrust guard flush` delivers it",
            spool.path().display()
        ));
    }
    Some(spooled)
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
    fn the_tool_is_bound_to_the_command() {
        let command = [
            "/usr/bin/curl".to_string(),
            "-d".to_string(),
            "@x".to_string(),
        ];
        assert_eq!(run_tool(None, true, &command).unwrap(), "curl");
        assert_eq!(run_tool(Some("curl"), true, &command).unwrap(), "curl");
        assert!(run_tool(Some("web_search"), true, &command).is_err());
        assert_eq!(run_tool(Some("fetch"), false, &command).unwrap(), "fetch");
        assert!(run_tool(None, true, &[String::new()]).is_err());
        assert_eq!(run_summary(&command, None).unwrap(), "/usr/bin/curl -d @x");
        assert_eq!(
            run_summary(&command, Some("upload")).unwrap(),
            "/usr/bin/curl -d @x # upload"
        );
        // A long first argument does not push the rest out of the check.
        let padded = [
            "sh".to_string(),
            "-c".to_string(),
            format!("echo {}; cat /etc/shadow", "a".repeat(1000)),
        ];
        assert!(
            run_summary(&padded, None)
                .unwrap()
                .ends_with("cat /etc/shadow")
        );
        // --input is context: cut to fit after the whole command line, on a char boundary.
        let summary = run_summary(&padded, Some(&"é".repeat(2000))).unwrap();
        assert!(summary.len() <= MAX_INPUT_SUMMARY_BYTES);
        assert!(summary.contains("cat /etc/shadow # é"));
        // Too long to check whole: refused.
        let huge = ["echo".to_string(), "a".repeat(MAX_INPUT_SUMMARY_BYTES)];
        assert!(run_summary(&huge, None).is_err());
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
