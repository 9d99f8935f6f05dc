//! `agenttrust mcp …`: the org's MCP servers (`servers add|list|get|remove`), the tools an agent
//! may call on one (`tools`), and a tool call through the gateway's proxy (`call`), whose exit
//! status is a check's: 0 forwarded, 77 denied, 75 elevation required. An upstream credential
//! is read from stdin (`--auth-token-stdin`), never from argv.

use clap::{Args, Subcommand};

use super::Context;
use crate::api::join_or_dash;
use crate::api::mcp::{CODE_ELEVATION_REQUIRED, McpServer, RegisterServerRequest, RpcRequest};
use crate::client::{self, mcp::Called};
use crate::exit::{self, Outcome, Retry};
use crate::output::{View, or_dash};

#[derive(Debug, Args)]
pub struct McpArgs {
    #[command(subcommand)]
    pub command: McpCommand,
}

#[derive(Debug, Subcommand)]
pub enum McpCommand {
    /// MCP servers the org's agents reach through the gateway: add, list, get, remove
    #[command(subcommand)]
    Servers(ServersCommand),
    /// The tools an agent may call on a server (its tools/list, filtered by the org's policy;
    /// a tool needing a human's approval is listed)
    Tools(ToolsArgs),
    /// Call a tool on a server through the gateway, checked by the Guardian first
    #[command(after_help = "\
Exit status: 0 when the call was allowed and forwarded (the tool's result is printed), 77 denied \
by policy, 75 elevation required (an approval is pending; retry with the same --session once \
approved), 69 gateway unreachable, 1 when the upstream failed. With -o json the gateway's answer \
is printed on stdout and the exit status is the same.")]
    Call(CallArgs),
}

#[derive(Debug, Subcommand)]
pub enum ServersCommand {
    /// Register a server (`-q` prints its id)
    Add(AddServerArgs),
    /// List the org's servers
    List,
    /// Show one server
    Get {
        /// Server id
        id: String,
    },
    /// Remove a server (asks first; --yes without a terminal)
    #[command(visible_alias = "delete")]
    Remove {
        /// Server id
        id: String,
        /// Do not ask for confirmation
        #[arg(long, short = 'y')]
        yes: bool,
    },
}

#[derive(Debug, Args)]
pub struct AddServerArgs {
    /// A name for the server
    pub name: String,
    /// The upstream's MCP endpoint (Streamable HTTP): https, or http to a loopback address
    // Not named `url`: clap would take it for the global `--url` (the gateway's).
    #[arg(value_name = "URL")]
    pub endpoint: String,
    /// What the server offers (comma-separated or repeated)
    #[arg(long, value_delimiter = ',', value_name = "CAPABILITY")]
    pub capabilities: Vec<String>,
    /// Read a bearer token for the upstream from stdin; the gateway sends it when it forwards,
    /// and never shows it again
    #[arg(long)]
    pub auth_token_stdin: bool,
}

/// Who acts through the proxy.
#[derive(Debug, Args)]
pub struct ActingArgs {
    /// Agent id or name [env: AGENTTRUST_AGENT_ID] [default with an agent token: the token's
    /// agent]
    #[arg(long, value_name = "AGENT")]
    pub agent: Option<String>,
    /// Session id [env: AGENTTRUST_SESSION_ID]
    #[arg(long, value_name = "ID")]
    pub session: Option<String>,
    /// Read the agent token from FILE (`-` = stdin) [env: AGENTTRUST_AGENT_TOKEN]; with a
    /// token no API key is needed and --agent may be omitted
    #[arg(long, value_name = "FILE")]
    pub agent_token_file: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
pub struct ToolsArgs {
    /// Server id
    pub server: String,
    #[command(flatten)]
    pub acting: ActingArgs,
}

#[derive(Debug, Args)]
pub struct CallArgs {
    /// Server id
    pub server: String,
    /// Tool name
    pub tool: String,
    /// The tool's arguments, a JSON object
    #[arg(long, value_name = "JSON", value_parser = super::common::parse_json_object)]
    pub args: Option<serde_json::Value>,
    #[command(flatten)]
    pub acting: ActingArgs,
}

pub async fn run(context: &Context, args: McpArgs) -> anyhow::Result<Outcome> {
    let success = |result: anyhow::Result<()>| result.map(|()| Outcome::Success);
    match args.command {
        McpCommand::Servers(command) => success(match command {
            ServersCommand::Add(args) => add_server(context, args).await,
            ServersCommand::List => list_servers(context).await,
            ServersCommand::Get { id } => get_server(context, &id).await,
            ServersCommand::Remove { id, yes } => remove_server(context, &id, yes).await,
        }),
        McpCommand::Tools(args) => tools(context, args).await,
        McpCommand::Call(args) => call(context, args).await,
    }
}

pub async fn add_server(context: &Context, args: AddServerArgs) -> anyhow::Result<()> {
    let auth_token = if args.auth_token_stdin {
        Some(super::common::read_secret_argument("-", "auth token")?)
    } else {
        None
    };
    let client = context.client()?;
    let request = RegisterServerRequest {
        name: args.name,
        url: args.endpoint,
        capabilities: Some(super::common::clean_list(args.capabilities)),
        auth_token,
    };
    let response = client::mcp::register_server(&client, &request).await?;
    show_server(context, &response.raw, &response.value)
}

pub async fn list_servers(context: &Context) -> anyhow::Result<()> {
    let client = context.client()?;
    let response = client::mcp::list_servers(&client).await?;
    let servers = &response.value.servers;
    let rows = servers
        .iter()
        .map(|server| {
            vec![
                server.id.clone(),
                or_dash(Some(&server.name)),
                server.url.clone(),
                join_or_dash(&server.capabilities),
                context.printer.time(&or_dash(Some(&server.created_at))),
            ]
        })
        .collect();
    let ids: Vec<String> = servers.iter().map(|server| server.id.clone()).collect();
    context.printer.show(
        &response.raw,
        &ids,
        View::Rows {
            headers: vec!["ID", "NAME", "URL", "CAPABILITIES", "CREATED"],
            rows,
        },
    )?;
    Ok(())
}

pub async fn get_server(context: &Context, id: &str) -> anyhow::Result<()> {
    let client = context.client()?;
    let response = client::mcp::get_server(&client, id).await?;
    show_server(context, &response.raw, &response.value)
}

pub async fn remove_server(context: &Context, id: &str, yes: bool) -> anyhow::Result<()> {
    context.confirm(yes, &format!("remove MCP server {id}"))?;
    let client = context.client()?;
    let response = client::mcp::delete_server(&client, id).await?;
    super::common::show_deleted(context, id, response.raw)?;
    Ok(())
}

fn show_server(
    context: &Context,
    raw: &serde_json::Value,
    server: &McpServer,
) -> anyhow::Result<()> {
    context.printer.show(
        raw,
        std::slice::from_ref(&server.id),
        View::Record(vec![
            ("id", server.id.clone()),
            ("name", or_dash(Some(&server.name))),
            ("url", server.url.clone()),
            ("capabilities", join_or_dash(&server.capabilities)),
            ("auth_token", or_dash(server.auth_token.as_deref())),
            ("org_id", or_dash(Some(&server.org_id))),
            ("created_at", or_dash(Some(&server.created_at))),
        ]),
    )?;
    Ok(())
}

/// The client and the acting agent of a proxied call (`None`: the token's agent).
async fn acting(
    context: &Context,
    acting: ActingArgs,
) -> anyhow::Result<(client::Client, Option<String>, Option<String>)> {
    let agent_token = super::common::agent_token(acting.agent_token_file.as_deref())?;
    let agent = match agent_token {
        Some(_) => acting
            .agent
            .or_else(|| crate::config::env::var(crate::config::env::AGENT_ID)),
        None => Some(super::agent_or_env(acting.agent)?),
    };
    let client = context.runtime_client(agent_token)?;
    let agent_id = match agent {
        Some(agent) => Some(super::resolve_agent(&client, agent).await?),
        None => None,
    };
    Ok((client, agent_id, super::session_or_env(acting.session)))
}

fn request(method: &str, params: Option<serde_json::Value>) -> RpcRequest {
    RpcRequest {
        jsonrpc: "2.0".to_string(),
        id: Some(serde_json::json!(1)),
        method: method.to_string(),
        params,
    }
}

/// The `result` of a JSON-RPC response, or the error it carries.
fn result_of(raw: &serde_json::Value) -> anyhow::Result<&serde_json::Value> {
    if let Some(error) = raw.get("error") {
        let message = error
            .get("message")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("no message");
        anyhow::bail!("the MCP server answered an error: {message}");
    }
    raw.get("result")
        .ok_or_else(|| anyhow::anyhow!("the MCP server's answer has no result"))
}

pub async fn tools(context: &Context, args: ToolsArgs) -> anyhow::Result<Outcome> {
    let (client, agent_id, session_id) = acting(context, args.acting).await?;
    let called = client::mcp::call(
        &client,
        &args.server,
        agent_id.as_deref(),
        session_id.as_deref(),
        &request("tools/list", None),
    )
    .await?;
    let Called::Answered(response) = called else {
        anyhow::bail!("the gateway refused to list the tools");
    };
    let result = result_of(&response.raw)?;
    let tools = result
        .get("tools")
        .and_then(serde_json::Value::as_array)
        .cloned()
        .unwrap_or_default();
    let text = |tool: &serde_json::Value, name: &str| {
        tool.get(name)
            .and_then(serde_json::Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let hint = |tool: &serde_json::Value| {
        crate::api::mcp::hinted_effect(tool)
            .map_or("-", |effect| effect.as_str())
            .to_string()
    };
    let names: Vec<String> = tools.iter().map(|tool| text(tool, "name")).collect();
    let rows = tools
        .iter()
        .map(|tool| {
            vec![
                text(tool, "name"),
                hint(tool),
                or_dash(Some(&text(tool, "description"))),
            ]
        })
        .collect();
    exit::answer_printed(context.printer.show(
        result,
        &names,
        View::Rows {
            headers: vec!["TOOL", "HINT", "DESCRIPTION"],
            rows,
        },
    ))?;
    Ok(Outcome::Success)
}

pub async fn call(context: &Context, args: CallArgs) -> anyhow::Result<Outcome> {
    let (client, agent_id, session_id) = acting(context, args.acting).await?;
    let mut params = serde_json::json!({ "name": args.tool });
    if let Some(arguments) = args.args {
        params["arguments"] = arguments;
    }
    let called = client::mcp::call(
        &client,
        &args.server,
        agent_id.as_deref(),
        session_id.as_deref(),
        &request("tools/call", Some(params)),
    )
    .await?;
    match called {
        Called::Answered(response) => {
            let result = result_of(&response.raw)?;
            let text: Vec<String> = result
                .get("content")
                .and_then(serde_json::Value::as_array)
                .map(|content| {
                    content
                        .iter()
                        .filter_map(|part| part.get("text").and_then(serde_json::Value::as_str))
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            let is_error = result.get("isError").and_then(serde_json::Value::as_bool) == Some(true);
            exit::answer_printed(context.printer.show(
                &response.raw,
                &text,
                View::Record(vec![
                    ("content", text.join("\n")),
                    ("is_error", is_error.to_string()),
                ]),
            ))?;
            if is_error {
                anyhow::bail!("the tool {} reported an error", args.tool);
            }
            Ok(Outcome::Success)
        }
        Called::Refused { raw, refusal } => {
            if context.printer.prints_json() {
                exit::answer_printed(context.printer.json(&raw))?;
            }
            let reason = match &refusal.rule {
                Some(rule) => format!("{} (rule {rule})", refusal.reason),
                None => refusal.reason.clone(),
            };
            if refusal.code == CODE_ELEVATION_REQUIRED {
                Ok(Outcome::ElevationRequired {
                    tool: args.tool,
                    reason,
                    approval_id: refusal.approval_id,
                    retry: Retry::SameSession,
                })
            } else {
                Ok(Outcome::Denied {
                    tool: args.tool,
                    reason,
                })
            }
        }
    }
}
