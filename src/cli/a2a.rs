//! `agenttrust a2a …`: send a message from one agent to another through the gateway (`send`:
//! checked by the Guardian; exit 77 when the policy refuses it), and the tasks that wait in the
//! gateway for their target (`tasks list|get|complete|cancel`). As an agent, pass its token
//! (`--agent-token-file`, `AGENTTRUST_AGENT_TOKEN`): it then sees only its own tasks.

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::Context;
use crate::api::a2a::{Task, TaskList, message_text};
use crate::client::{self, a2a::Called};
use crate::exit::{Failure, Outcome};
use crate::output::{View, or_dash};

#[derive(Debug, Args)]
pub struct A2aArgs {
    #[command(subcommand)]
    pub command: A2aCommand,
}

#[derive(Debug, Subcommand)]
pub enum A2aCommand {
    /// Send TEXT from agent --from to agent --to (`-q` prints the task id); forwarded to the
    /// target's own A2A endpoint when its card names one, else it waits in the gateway
    #[command(after_help = "\
Exit status: 0 when the message was accepted (the task is printed, with the target's answer when \
it was forwarded), 77 when the org's policy does not let --from message --to, 3 when --to is \
not an agent of the org.")]
    Send(SendArgs),
    /// The tasks waiting in the gateway: list, get, complete, cancel
    #[command(subcommand)]
    Tasks(TasksCommand),
}

/// Who acts.
#[derive(Debug, Args)]
pub struct ActingArgs {
    /// Read the agent token from FILE (`-` = stdin) [env: AGENTTRUST_AGENT_TOKEN]; with a token
    /// no API key is needed and the token's agent acts
    #[arg(long, value_name = "FILE")]
    pub agent_token_file: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
pub struct SendArgs {
    /// The sending agent (id or name) [default with an agent token: the token's agent]
    #[arg(long, value_name = "AGENT")]
    pub from: Option<String>,
    /// The receiving agent (id or name)
    #[arg(long, value_name = "AGENT")]
    pub to: String,
    /// The message
    pub text: String,
    #[command(flatten)]
    pub acting: ActingArgs,
}

#[derive(Debug, Subcommand)]
pub enum TasksCommand {
    /// List tasks, newest first
    List(ListArgs),
    /// Show one task
    Get {
        /// Task id
        id: String,
        #[command(flatten)]
        acting: ActingArgs,
    },
    /// Answer a task as its target: completed (default) or --failed, with a text reply
    Complete(CompleteArgs),
    /// Cancel a task that has not ended
    Cancel {
        /// Task id
        id: String,
        #[command(flatten)]
        acting: ActingArgs,
    },
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only tasks this agent sent or received (id or name)
    #[arg(long, value_name = "AGENT")]
    pub agent: Option<String>,
    /// Only tasks in this status
    #[arg(long, value_parser = ["pending", "running", "completed", "failed", "cancelled"])]
    pub status: Option<String>,
    /// How many tasks at most (1-200)
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=200))]
    pub limit: u32,
    #[command(flatten)]
    pub acting: ActingArgs,
}

#[derive(Debug, Args)]
pub struct CompleteArgs {
    /// Task id
    pub id: String,
    /// The answer (also kept as the task's artifact)
    #[arg(long)]
    pub text: Option<String>,
    /// The task failed (the text says why)
    #[arg(long)]
    pub failed: bool,
    #[command(flatten)]
    pub acting: ActingArgs,
}

pub async fn run(context: &Context, args: A2aArgs) -> anyhow::Result<Outcome> {
    match args.command {
        A2aCommand::Send(args) => send(context, args).await,
        A2aCommand::Tasks(command) => match command {
            TasksCommand::List(args) => list(context, args).await,
            TasksCommand::Get { id, acting } => {
                let params = json!({ "id": id });
                task_call(context, acting, "tasks/get", params).await
            }
            TasksCommand::Complete(args) => {
                let mut params = json!({
                    "id": args.id,
                    "status": if args.failed { "failed" } else { "completed" },
                });
                if let Some(text) = args.text {
                    params["text"] = text.into();
                }
                task_call(context, args.acting, "tasks/complete", params).await
            }
            TasksCommand::Cancel { id, acting } => {
                let params = json!({ "id": id });
                task_call(context, acting, "tasks/cancel", params).await
            }
        }
        .map(|()| Outcome::Success),
    }
}

fn client_for(context: &Context, acting: &ActingArgs) -> anyhow::Result<(client::Client, bool)> {
    let token = super::common::agent_token(acting.agent_token_file.as_deref())?;
    let as_agent = token.is_some();
    Ok((context.runtime_client(token)?, as_agent))
}

pub async fn send(context: &Context, args: SendArgs) -> anyhow::Result<Outcome> {
    let (client, as_agent) = client_for(context, &args.acting)?;
    let from = match args.from {
        Some(from) => Some(super::resolve_agent(&client, from).await?),
        None if as_agent => None,
        None => {
            return Err(Failure::Usage {
                message: "--from is required: the sending agent (or pass its agent token)"
                    .to_string(),
                hint: None,
            }
            .into());
        }
    };
    let to = super::resolve_agent(&client, args.to).await?;
    let mut params = json!({ "target_agent_id": to, "message": args.text });
    if let Some(from) = &from {
        params["source_agent_id"] = from.clone().into();
    }
    match client::a2a::call(&client, None, None, "tasks/send", params).await? {
        Called::Answered(response) => {
            show_task(context, &response.value)?;
            Ok(Outcome::Success)
        }
        Called::Denied { message, raw } => {
            if context.printer.prints_json() {
                crate::exit::answer_printed(context.printer.json(&raw))?;
            }
            Ok(Outcome::Denied {
                tool: format!("a2a:send:{to}"),
                reason: message,
            })
        }
    }
}

async fn task_call(
    context: &Context,
    acting: ActingArgs,
    method: &str,
    params: Value,
) -> anyhow::Result<()> {
    let (client, _) = client_for(context, &acting)?;
    match client::a2a::call(&client, None, None, method, params).await? {
        Called::Answered(response) => show_task(context, &response.value),
        Called::Denied { message, .. } => anyhow::bail!("{message}"),
    }
}

pub async fn list(context: &Context, args: ListArgs) -> anyhow::Result<()> {
    let (client, _) = client_for(context, &args.acting)?;
    let mut params = json!({ "limit": args.limit });
    if let Some(agent) = args.agent {
        params["agent_id"] = super::resolve_agent(&client, agent).await?.into();
    }
    if let Some(status) = args.status {
        params["status"] = status.into();
    }
    let response = match client::a2a::call(&client, None, None, "tasks/list", params).await? {
        Called::Answered(response) => response,
        Called::Denied { message, .. } => anyhow::bail!("{message}"),
    };
    let list: TaskList = serde_json::from_value(response.value.clone())
        .map_err(|error| anyhow::anyhow!("the gateway's task list is malformed: {error}"))?;
    let ids: Vec<String> = list.tasks.iter().map(|task| task.id.clone()).collect();
    let rows = list
        .tasks
        .iter()
        .map(|task| {
            vec![
                task.id.clone(),
                task.status.to_string(),
                task.source_agent_id.clone(),
                task.target_agent_id.clone(),
                or_dash(Some(&message_text(&task.message))),
                context.printer.time(&or_dash(Some(&task.created_at))),
            ]
        })
        .collect();
    context.printer.show(
        &response.value,
        &ids,
        View::Rows {
            headers: vec!["ID", "STATUS", "FROM", "TO", "MESSAGE", "CREATED"],
            rows,
        },
    )?;
    Ok(())
}

/// The text of the target's answer: its reply message, else its artifacts' text parts.
fn answer_text(task: &Task) -> String {
    if let Some(reply) = task.extra.get("reply") {
        let text = message_text(reply);
        if !text.is_empty() {
            return text;
        }
    }
    task.artifacts
        .iter()
        .map(message_text)
        .filter(|text| !text.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

fn show_task(context: &Context, result: &Value) -> anyhow::Result<()> {
    let task: Task = serde_json::from_value(result.clone())
        .map_err(|error| anyhow::anyhow!("the gateway's task is malformed: {error}"))?;
    let text = |name: &str| {
        task.extra
            .get(name)
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    context.printer.show(
        result,
        std::slice::from_ref(&task.id),
        View::Record(vec![
            ("id", task.id.clone()),
            ("status", task.status.to_string()),
            ("from", task.source_agent_id.clone()),
            ("to", task.target_agent_id.clone()),
            ("message", or_dash(Some(&message_text(&task.message)))),
            ("answer", or_dash(Some(&answer_text(&task)))),
            ("forwarded_to", or_dash(text("forwarded_to").as_deref())),
            ("check_id", or_dash(text("check_id").as_deref())),
            ("created_at", or_dash(Some(&task.created_at))),
            ("updated_at", or_dash(Some(&task.updated_at))),
        ]),
    )?;
    Ok(())
}
