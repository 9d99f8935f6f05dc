//! `agenttrust actions check`: ask the Guardian whether a tool call may run. Exit codes are the
//! answer: 0 allowed, 77 denied, 75 elevation required (checked first, as the Rust SDK does), so
//! `agenttrust actions check … && tool` fails closed.

use clap::{Args, Subcommand};

use super::common::ToolArgs;
use super::{Context, effect_parser};
use crate::api::actions::{CheckDecision, CheckRequest, Effect};
use crate::client::actions::{MAX_INPUT_SUMMARY_CHARS, truncate_summary};
use crate::config::env;
use crate::exit::{self, Outcome, Retry};
use crate::output::{View, or_dash};

#[derive(Debug, Args)]
pub struct ActionsArgs {
    #[command(subcommand)]
    pub command: ActionsCommand,
}

#[derive(Debug, Subcommand)]
pub enum ActionsCommand {
    /// Check a tool call against policy
    #[command(after_help = "\
Exit status: 0 allowed, 77 denied, 75 elevation required (an approval is pending; retry with the \
same --session once approved), 69 gateway unreachable. A denial never exits 0. With -o json the \
decision is printed on stdout and the exit status is the same.

With -q only one value is printed: the approval id on an elevation (for `agenttrust approvals \
wait`), else the check id.")]
    Check(CheckArgs),
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Agent id or name [env: AGENTTRUST_AGENT_ID] [default with an agent token: the token's
    /// agent]
    #[arg(long, value_name = "AGENT")]
    pub agent: Option<String>,
    #[command(flatten)]
    pub tool: ToolArgs,
    /// A summary of the tool's input (cut to 200 characters)
    #[arg(long, value_name = "SUMMARY")]
    pub input: Option<String>,
    /// What the call does [default: classified by the gateway]
    #[arg(long, value_name = "EFFECT", value_parser = effect_parser())]
    pub effect: Option<Effect>,
    /// Session id [env: AGENTTRUST_SESSION_ID]
    #[arg(long, value_name = "ID")]
    pub session: Option<String>,
    /// Read the agent token from FILE (`-` = stdin) [env: AGENTTRUST_AGENT_TOKEN]; with a
    /// token no API key is needed and --agent may be omitted (the gateway takes the agent from it)
    #[arg(long, value_name = "FILE")]
    pub agent_token_file: Option<std::path::PathBuf>,
}

pub async fn run(context: &Context, args: ActionsArgs) -> anyhow::Result<Outcome> {
    match args.command {
        ActionsCommand::Check(args) => check(context, args).await,
    }
}

pub async fn check(context: &Context, args: CheckArgs) -> anyhow::Result<Outcome> {
    let agent_token = super::common::agent_token(args.agent_token_file.as_deref())?;
    let agent_id = match agent_token {
        Some(_) => args.agent.or_else(|| env::var(env::AGENT_ID)),
        None => Some(super::agent_or_env(args.agent)?),
    };
    let client = context.runtime_client(agent_token)?;
    let agent_id = match agent_id {
        Some(agent) => Some(super::resolve_agent(&client, agent).await?),
        None => None,
    };
    let summary = args
        .input
        .as_deref()
        .map(|input| truncate_summary(input, MAX_INPUT_SUMMARY_CHARS).to_string())
        .filter(|summary| !summary.is_empty());
    let request = CheckRequest {
        agent_id,
        action_name: Some(args.tool.name().to_string()),
        action_source: Some("api".to_string()),
        action_input_summary: summary,
        session_id: super::session_or_env(args.session),
        action_effect: args.effect.map(|effect| effect.as_str().to_string()),
        ..CheckRequest::default()
    };
    let response = super::agent_credentials::check(context, &client, &request).await?;
    let decision = &response.value;
    // `-q`: the value a script acts on next — the approval to wait for on an elevation, else
    // the check id.
    let primary = match (&decision.elevation_required, &decision.approval_id) {
        (true, Some(approval_id)) => approval_id.clone(),
        _ => decision.check_id.clone(),
    };
    exit::answer_printed(context.printer.show(
        &response.raw,
        std::slice::from_ref(&primary),
        View::Record(vec![
            ("allowed", decision.allowed.to_string()),
            ("reason", or_dash(Some(&decision.reason))),
            ("effect", or_dash(decision.effect.map(Effect::as_str))),
            ("rule", or_dash(decision.rule.as_deref())),
            (
                "elevation_required",
                decision.elevation_required.to_string(),
            ),
            ("approval_id", or_dash(decision.approval_id.as_deref())),
            ("check_id", or_dash(Some(&decision.check_id))),
            ("guard_tier", or_dash(Some(&decision.guard_tier))),
            ("latency_ms", decision.latency_ms.to_string()),
        ]),
    ))?;
    Ok(decision_outcome(
        args.tool.name(),
        decision,
        Retry::SameSession,
    ))
}

/// What a decision comes to: allowed, denied (77) or elevation required (75, checked first as
/// the Rust SDK does: it is always paired with `allowed: false` anyway).
pub fn decision_outcome(tool: &str, decision: &CheckDecision, retry: Retry) -> Outcome {
    if decision.elevation_required {
        Outcome::ElevationRequired {
            tool: tool.to_string(),
            reason: decision.reason.clone(),
            approval_id: decision.approval_id.clone(),
            retry,
        }
    } else if !decision.allowed {
        Outcome::Denied {
            tool: tool.to_string(),
            reason: decision.reason.clone(),
        }
    } else {
        Outcome::Success
    }
}
