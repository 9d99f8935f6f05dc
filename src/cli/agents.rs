//! `agenttrust agents create|list|get|revoke|mode|unlock|keys rotate`. An agent's key pair is
//! made here (`--generate-key`, `keys rotate`): only the public half is sent; the private half
//! is kept in the profile's agent-key folder (0600) or printed once.

use std::collections::HashMap;

use clap::{Args, Subcommand};

use super::Context;
use super::paging::{self, PageArgs};
use crate::agent_key::AgentPrivateKey;
use crate::api::agents::{
    Agent, AgentQuery, CreateAgentRequest, FRAMEWORKS, RevokeAgentRequest, RotateAgentKeyRequest,
    STATUSES, SetAgentModeRequest,
};
use crate::api::join_or_dash;
use crate::api::telemetry::MAX_PAGE_SIZE;
use crate::client;
use crate::output::{View, or_dash};

#[derive(Debug, Args)]
pub struct AgentsArgs {
    #[command(subcommand)]
    pub command: AgentsCommand,
}

#[derive(Debug, Subcommand)]
pub enum AgentsCommand {
    /// Register an agent
    Create(CreateArgs),
    /// List the org's agents, oldest first (`--all` follows every page)
    List(ListArgs),
    /// Show one agent
    Get {
        /// Agent id or name
        id: String,
    },
    /// Revoke an agent and every live token of it (asks first; --yes without a terminal)
    Revoke(RevokeArgs),
    /// Set the agent's own mode, binding it in every session: standard, read_only or locked
    Mode {
        /// Agent id or name
        id: String,
        /// standard, read_only (anything but a read needs approval) or locked (reads only)
        #[arg(value_parser = ["standard", "read_only", "locked"])]
        mode: String,
    },
    /// Unlock an agent locked by an admin or by the agent-level lockout
    Unlock {
        /// Agent id or name
        id: String,
    },
    /// The agent's Ed25519 key (proof of possession, DPoP)
    Keys(KeysArgs),
}

#[derive(Debug, Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    pub command: KeysCommand,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Make a new key pair here and register its public half; the previous key keeps working
    /// for the grace period
    Rotate(RotateKeyArgs),
}

#[derive(Debug, Args)]
pub struct RotateKeyArgs {
    /// Agent id or name
    pub id: String,
    /// How long the previous key keeps working (`0`, `300`, `15m`, `1h`) [default: 1h]
    #[arg(long, value_name = "DURATION", value_parser = crate::config::parse_duration)]
    pub grace: Option<std::time::Duration>,
    #[command(flatten)]
    pub private_key: PrivateKeyArgs,
}

#[derive(Debug, Args)]
pub struct PrivateKeyArgs {
    /// Print the private key (PKCS#8 PEM) once instead of keeping it in the profile's agent-key
    /// folder
    #[arg(long)]
    pub print_private_key: bool,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Agent name (unique in the org)
    #[arg(long)]
    pub name: String,
    /// Framework the agent runs on [default: custom]
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(FRAMEWORKS))]
    pub framework: Option<String>,
    /// Capabilities: comma-separated or repeated (files:read,web:fetch)
    #[arg(long, value_delimiter = ',', value_name = "CAPABILITY")]
    pub capabilities: Vec<String>,
    /// Free-form metadata as a JSON object
    #[arg(long, value_name = "JSON", value_parser = super::parse_json_object)]
    pub metadata: Option<serde_json::Value>,
    /// Make an Ed25519 key pair here and register its public half; the private half is kept in
    /// the profile's agent-key folder (0600), where `guard` and `actions check` find it
    #[arg(long)]
    pub generate_key: bool,
    #[command(flatten)]
    pub private_key: PrivateKeyArgs,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only agents with this status
    #[arg(long, value_name = "STATUS", value_parser = clap::builder::PossibleValuesParser::new(STATUSES))]
    pub status: Option<String>,
    /// Only agents whose name starts with this text
    #[arg(long, value_name = "PREFIX")]
    pub name_prefix: Option<String>,
    #[command(flatten)]
    pub page: PageArgs,
}

#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// Agent id or name
    pub id: String,
    /// Why (recorded in the audit log)
    #[arg(long, default_value = "manual_revocation")]
    pub reason: String,
    /// Do not ask for confirmation
    #[arg(long, short = 'y')]
    pub yes: bool,
}

pub async fn run(context: &Context, args: AgentsArgs) -> anyhow::Result<()> {
    match args.command {
        AgentsCommand::Create(args) => create(context, args).await,
        AgentsCommand::List(args) => list(context, args).await,
        AgentsCommand::Get { id } => get(context, &id).await,
        AgentsCommand::Revoke(args) => revoke(context, args).await,
        AgentsCommand::Mode { id, mode } => set_mode(context, &id, mode).await,
        AgentsCommand::Unlock { id } => unlock(context, &id).await,
        AgentsCommand::Keys(KeysArgs {
            command: KeysCommand::Rotate(args),
        }) => rotate_key(context, args).await,
    }
}

pub async fn create(context: &Context, args: CreateArgs) -> anyhow::Result<()> {
    if args.private_key.print_private_key && !args.generate_key {
        anyhow::bail!("--print-private-key goes with --generate-key");
    }
    let client = context.client()?;
    let key = args.generate_key.then(AgentPrivateKey::generate);
    let request = CreateAgentRequest {
        name: args.name,
        framework: args.framework,
        capabilities: super::clean_list(args.capabilities),
        metadata: args.metadata,
        public_key: key.as_ref().map(|key| key.public().to_pem()),
        ..CreateAgentRequest::default()
    };
    let response = client::agents::create(&client, &request).await?;
    let mut raw = response.raw;
    let printed = match &key {
        Some(key) => keep_private_key(context, &response.value.id, key, &args.private_key)?,
        None => None,
    };
    if let (Some(pem), Some(object)) = (&printed, raw.as_object_mut()) {
        object.insert("private_key".to_string(), pem.as_str().into());
    }
    show_agent_with(context, &raw, &response.value, printed.as_deref())
}

/// `agents keys rotate ID`: a new key pair made here, its public half registered; the private
/// half replaces the profile's copy (or is printed once).
pub async fn rotate_key(context: &Context, args: RotateKeyArgs) -> anyhow::Result<()> {
    let client = context.client()?;
    let id = super::resolve_agent(&client, args.id).await?;
    let key = AgentPrivateKey::generate();
    let request = RotateAgentKeyRequest {
        public_key: key.public().to_pem(),
        grace_seconds: args
            .grace
            .map(|grace| i64::try_from(grace.as_secs()).unwrap_or(i64::MAX)),
    };
    let response = client::agents::rotate_key(&client, &id, &request).await?;
    let mut raw = response.raw;
    let printed = keep_private_key(context, &id, &key, &args.private_key)?;
    if let (Some(pem), Some(object)) = (&printed, raw.as_object_mut()) {
        object.insert("private_key".to_string(), pem.as_str().into());
    }
    show_agent_with(context, &raw, &response.value, printed.as_deref())
}

/// Keeps the private half in the profile's agent-key folder, or hands it back to be printed
/// once (`--print-private-key`).
fn keep_private_key(
    context: &Context,
    agent_id: &str,
    key: &AgentPrivateKey,
    args: &PrivateKeyArgs,
) -> anyhow::Result<Option<String>> {
    if args.print_private_key {
        let pem = key
            .to_pem()
            .map_err(|error| anyhow::anyhow!("cannot encode the private key: {error}"))?;
        crate::output::warn(
            "the private key is printed once and kept nowhere: store it safely, it is the \
             agent's identity",
        );
        return Ok(Some(pem.to_string()));
    }
    let path = super::agent_credentials::key_store(context).save_key(agent_id, key)?;
    crate::output::say(format!(
        "private key kept in {} (mode 0600); `guard` and `actions check` use it for agent {agent_id}",
        path.display()
    ));
    Ok(None)
}

pub async fn list(context: &Context, args: ListArgs) -> anyhow::Result<()> {
    let client = context.client()?;
    let query = AgentQuery {
        status: args.status,
        name_prefix: args.name_prefix.filter(|prefix| !prefix.is_empty()),
        limit: args.page.limit,
        ..AgentQuery::default()
    };
    let listing = paging::collect("agents", args.page.all, args.page.start(), |cursor| {
        let query = AgentQuery {
            cursor,
            ..query.clone()
        };
        let client = &client;
        async move {
            let response = client::agents::list(client, &query).await?;
            Ok(paging::Page {
                items: response.value.agents,
                raw: response.raw,
                next_cursor: response.value.next_cursor,
            })
        }
    })
    .await?;
    let agents = &listing.items;
    let rows = agents
        .iter()
        .map(|agent| {
            vec![
                agent.id.clone(),
                agent.name.clone(),
                agent.framework.clone(),
                agent.status.to_string(),
                join_or_dash(&agent.capabilities),
                context.printer.time(&or_dash(Some(&agent.created_at))),
            ]
        })
        .collect();
    let ids: Vec<String> = agents.iter().map(|agent| agent.id.clone()).collect();
    context.printer.show(
        &listing.raw,
        &ids,
        View::Rows {
            headers: vec![
                "ID",
                "NAME",
                "FRAMEWORK",
                "STATUS",
                "CAPABILITIES",
                "CREATED",
            ],
            rows,
        },
    )?;
    paging::note_more(
        context,
        "agents",
        &args.page,
        listing.next_cursor.as_deref(),
    );
    Ok(())
}

/// Agent names by id for a table a person reads; none (and no request) for scripts, and none
/// when the agents cannot be listed (ids stand in).
pub async fn names_for_table(
    context: &Context,
    client: &client::Client,
) -> HashMap<String, String> {
    if !context.printer.for_a_person() || context.printer.is_quiet() {
        return HashMap::new();
    }
    names(client).await.unwrap_or_default()
}

/// An agent in a table: `name (01a2144d-…)` when its name is known, else its id (shortened on a
/// terminal unless `--wide`).
pub fn label(context: &Context, names: &HashMap<String, String>, id: &str) -> String {
    let reference = context.printer.reference(id);
    match names.get(id) {
        Some(name) => format!("{name} ({reference})"),
        None => reference,
    }
}

/// Every agent's name by id (all pages), to show names beside ids.
pub async fn names(client: &client::Client) -> anyhow::Result<HashMap<String, String>> {
    let listing = paging::collect("agents", true, None, |cursor| async move {
        let query = AgentQuery {
            cursor,
            limit: Some(MAX_PAGE_SIZE),
            ..AgentQuery::default()
        };
        let response = client::agents::list(client, &query).await?;
        Ok(paging::Page {
            items: response.value.agents,
            raw: serde_json::Value::Null,
            next_cursor: response.value.next_cursor,
        })
    })
    .await?;
    Ok(listing
        .items
        .into_iter()
        .filter(|agent| !agent.name.is_empty())
        .map(|agent| (agent.id, agent.name))
        .collect())
}

pub async fn get(context: &Context, id: &str) -> anyhow::Result<()> {
    let client = context.client()?;
    let id = super::resolve_agent(&client, id.to_string()).await?;
    let response = client::agents::get(&client, &id).await?;
    show_agent(context, &response.raw, &response.value)
}

pub async fn set_mode(context: &Context, id: &str, mode: String) -> anyhow::Result<()> {
    let client = context.client()?;
    let id = super::resolve_agent(&client, id.to_string()).await?;
    let response = client::agents::set_mode(&client, &id, &SetAgentModeRequest { mode }).await?;
    show_agent(context, &response.raw, &response.value)
}

pub async fn unlock(context: &Context, id: &str) -> anyhow::Result<()> {
    let client = context.client()?;
    let id = super::resolve_agent(&client, id.to_string()).await?;
    let response = client::agents::unlock(&client, &id).await?;
    show_agent(context, &response.raw, &response.value)
}

pub async fn revoke(context: &Context, mut args: RevokeArgs) -> anyhow::Result<()> {
    let client = context.client()?;
    let named = args.id.clone();
    args.id = super::resolve_agent(&client, args.id).await?;
    let action = if named == args.id {
        format!("revoke agent {} and all its tokens", args.id)
    } else {
        format!("revoke agent {named} ({}) and all its tokens", args.id)
    };
    context.confirm(args.yes, &action)?;
    let request = RevokeAgentRequest {
        reason: Some(args.reason),
    };
    let response = client::agents::revoke(&client, &args.id, &request).await?;
    let result = &response.value;
    let agent_id = if result.agent_id.is_empty() {
        args.id.clone()
    } else {
        result.agent_id.clone()
    };
    context.printer.show(
        &response.raw,
        std::slice::from_ref(&agent_id),
        View::Record(vec![
            ("agent_id", agent_id.clone()),
            ("revoked", result.success.to_string()),
            ("tokens_revoked", result.tokens_revoked.to_string()),
        ]),
    )?;
    Ok(())
}

fn show_agent(context: &Context, raw: &serde_json::Value, agent: &Agent) -> anyhow::Result<()> {
    show_agent_with(context, raw, agent, None)
}

fn show_agent_with(
    context: &Context,
    raw: &serde_json::Value,
    agent: &Agent,
    private_key: Option<&str>,
) -> anyhow::Result<()> {
    let metadata = if agent.metadata.is_empty() {
        "-".to_string()
    } else {
        serde_json::Value::Object(agent.metadata.clone()).to_string()
    };
    let mut fields = vec![
        ("id", agent.id.clone()),
        ("name", agent.name.clone()),
        ("org_id", agent.org_id.clone()),
        ("framework", agent.framework.clone()),
        ("status", agent.status.to_string()),
        ("mode", or_dash(agent.mode.as_deref())),
        ("capabilities", join_or_dash(&agent.capabilities)),
        ("metadata", metadata),
        ("created_at", or_dash(Some(&agent.created_at))),
    ];
    if let Some(revoked_at) = &agent.revoked_at {
        fields.push(("revoked_at", revoked_at.clone()));
    }
    if let Some(reason) = &agent.revoke_reason {
        fields.push(("revoke_reason", reason.clone()));
    }
    if agent.public_key.is_some() {
        fields.push(("public_key", "present".to_string()));
    }
    if let Some(thumbprint) = &agent.key_thumbprint {
        fields.push(("key_thumbprint", thumbprint.clone()));
    }
    if let Some(until) = &agent.previous_key_valid_until {
        fields.push(("previous_key_valid_until", until.clone()));
    }
    if let Some(pem) = private_key {
        fields.push(("private_key", pem.to_string()));
    }
    context
        .printer
        .show(raw, std::slice::from_ref(&agent.id), View::Record(fields))?;
    Ok(())
}
