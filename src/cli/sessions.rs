//! `agenttrust sessions init|init-api|get|list|set-mode|unlock`: an agent's sessions, their mode
//! (`standard`, `read_only`, `elevated`, `locked`) and call counters.

use std::collections::HashMap;

use clap::{Args, Subcommand};

use super::Context;
use super::paging::{self, PageArgs};
use super::watch::{self, WatchArgs};
use crate::api::join_or_dash;
use crate::api::keys::KeyQuery;
use crate::api::sessions::{
    InitApiSessionRequest, InitSessionRequest, Session, SessionQuery, SetModeRequest,
};
use crate::client;
use crate::exit::Rehinted;
use crate::output::{View, or_dash};

/// The modes an admin may set.
const MODES: [&str; 4] = ["standard", "read_only", "elevated", "locked"];

#[derive(Debug, Args)]
pub struct SessionsArgs {
    #[command(subcommand)]
    pub command: SessionsCommand,
}

#[derive(Debug, Subcommand)]
pub enum SessionsCommand {
    /// Open an MCP session of an agent with a server (`-q` prints the session id)
    Init(InitArgs),
    /// Open a session from an agent token: its agent and scope ceiling come from the token
    InitApi(InitApiArgs),
    /// Show one session: mode, scope ceiling, call counters
    Get {
        /// Session id
        id: String,
    },
    /// List the org's sessions, oldest first (`--all` follows every page; --watch)
    List(ListArgs),
    /// Set a session's mode: standard, read_only, elevated or locked
    #[command(after_help = "\
read_only: anything but a read needs an approval. elevated: as after an approval. locked: only \
reads until unlocked (set automatically after too many denials). standard: back to normal.")]
    SetMode(SetModeArgs),
    /// Unlock a locked session (back to standard)
    Unlock {
        /// Session id
        id: String,
    },
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Agent id or name [env: AGENTTRUST_AGENT_ID]
    #[arg(long, value_name = "AGENT")]
    pub agent: Option<String>,
    /// The MCP server's id (a server registered with `agenttrust mcp servers add`)
    #[arg(long, value_name = "SERVER_ID")]
    pub server: String,
}

#[derive(Debug, Args)]
pub struct InitApiArgs {
    /// The agent token, `at_…` (`-` reads it from stdin)
    pub token: String,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only this agent's sessions (id or name)
    #[arg(long, value_name = "AGENT")]
    pub agent: Option<String>,
    /// Only sessions in this mode
    #[arg(long, value_name = "MODE", value_parser = clap::builder::PossibleValuesParser::new(MODES))]
    pub mode: Option<String>,
    /// Only sessions from this source: sdk, mcp, api, a2a, federation
    #[arg(long, value_name = "SOURCE")]
    pub source: Option<String>,
    #[command(flatten)]
    pub page: PageArgs,
    #[command(flatten)]
    pub watch: WatchArgs,
}

#[derive(Debug, Args)]
pub struct SetModeArgs {
    /// Session id
    pub id: String,
    /// The new mode
    #[arg(value_parser = clap::builder::PossibleValuesParser::new(MODES))]
    pub mode: String,
}

pub async fn run(context: &Context, args: SessionsArgs) -> anyhow::Result<()> {
    match args.command {
        SessionsCommand::Init(args) => init(context, args).await,
        SessionsCommand::InitApi(args) => init_api(context, args).await,
        SessionsCommand::Get { id } => get(context, &id).await,
        SessionsCommand::List(args) => list(context, args).await,
        SessionsCommand::SetMode(args) => set_mode(context, args).await,
        SessionsCommand::Unlock { id } => unlock(context, &id).await,
    }
}

pub async fn init(context: &Context, args: InitArgs) -> anyhow::Result<()> {
    let agent = super::agent_or_env(args.agent)?;
    let client = context.client()?;
    let agent_id = super::resolve_agent(&client, agent).await?;
    let request = InitSessionRequest {
        agent_id,
        server_id: Some(args.server).filter(|server| !server.is_empty()),
    };
    let response = client::sessions::init(&client, &request).await?;
    show_session(context, &response.raw, &response.value)
}

pub async fn init_api(context: &Context, args: InitApiArgs) -> anyhow::Result<()> {
    let token = super::read_secret_argument(&args.token, "token")?;
    let client = context.client()?;
    let response = match client::sessions::init_api(&client, &InitApiSessionRequest { token }).await
    {
        Ok(response) => response,
        Err(error) if error.status() == Some(401) && api_key_works(&client).await => {
            // The API key authenticated: what the gateway rejected is the agent token.
            return Err(Rehinted {
                error,
                hint: "the agent token is expired, revoked or not this org's: issue a new one \
                       with `agenttrust tokens issue --agent AGENT`"
                    .to_string(),
            }
            .into());
        }
        Err(error) => return Err(error.into()),
    };
    show_session(context, &response.raw, &response.value)
}

/// Whether the gateway accepts the API key (a 403 is a valid key without the admin role): tells
/// a rejected agent token from a rejected key, whatever words the gateway uses.
async fn api_key_works(client: &client::Client) -> bool {
    let query = KeyQuery {
        cursor: None,
        limit: Some(1),
    };
    match client::keys::list(client, &query).await {
        Ok(_) => true,
        Err(error) => error.status() == Some(403),
    }
}

pub async fn get(context: &Context, id: &str) -> anyhow::Result<()> {
    let client = context.client()?;
    let response = client::sessions::get(&client, id).await?;
    show_session(context, &response.raw, &response.value)
}

pub async fn list(context: &Context, args: ListArgs) -> anyhow::Result<()> {
    let client = context.client()?;
    let query = SessionQuery {
        agent_id: super::resolve_agent_filter(&client, args.agent).await?,
        mode: args.mode,
        source: args.source.filter(|source| !source.is_empty()),
        cursor: None,
        limit: args.page.limit,
    };
    let page = &args.page;
    let names = super::agents::names_for_table(context, &client).await;
    watch::run(
        context,
        &args.watch,
        || {
            paging::collect("sessions", page.all, page.start(), |cursor| {
                let query = SessionQuery {
                    cursor,
                    ..query.clone()
                };
                let client = &client;
                async move {
                    let response = client::sessions::list(client, &query).await?;
                    Ok(paging::Page {
                        items: response.value.sessions,
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
    listing: &paging::Listing<Session>,
) -> anyhow::Result<()> {
    let (raw, next_cursor, sessions) = (&listing.raw, &listing.next_cursor, &listing.items);
    let rows = sessions
        .iter()
        .map(|session| {
            vec![
                session.session_id.clone(),
                super::agents::label(context, names, &session.agent_id),
                or_dash(Some(&session.source)),
                or_dash(Some(&session.mode)),
                session.total_calls.to_string(),
                session.denied_calls.to_string(),
                context
                    .printer
                    .time(&or_dash(Some(&session.last_activity_at))),
            ]
        })
        .collect();
    let ids: Vec<String> = sessions
        .iter()
        .map(|session| session.session_id.clone())
        .collect();
    context.printer.show(
        raw,
        &ids,
        View::Rows {
            headers: vec![
                "ID",
                "AGENT",
                "SOURCE",
                "MODE",
                "CALLS",
                "DENIED",
                "LAST_ACTIVITY",
            ],
            rows,
        },
    )?;
    paging::note_more(context, "sessions", page, next_cursor.as_deref());
    Ok(())
}

pub async fn set_mode(context: &Context, args: SetModeArgs) -> anyhow::Result<()> {
    let client = context.client()?;
    let request = SetModeRequest { mode: args.mode };
    let response = client::sessions::set_mode(&client, &args.id, &request).await?;
    show_session(context, &response.raw, &response.value)
}

pub async fn unlock(context: &Context, id: &str) -> anyhow::Result<()> {
    let client = context.client()?;
    let response = client::sessions::unlock(&client, id).await?;
    show_session(context, &response.raw, &response.value)
}

/// One session as a record (federation sessions also show their provider, issuer, trust
/// level and end).
pub fn show_session(
    context: &Context,
    raw: &serde_json::Value,
    session: &Session,
) -> anyhow::Result<()> {
    context.printer.show(
        raw,
        std::slice::from_ref(&session.session_id),
        View::Record(vec![
            ("session_id", session.session_id.clone()),
            ("agent_id", session.agent_id.clone()),
            ("org_id", session.org_id.clone()),
            ("source", or_dash(Some(&session.source))),
            ("server_id", or_dash(session.server_id.as_deref())),
            ("delegation_id", or_dash(session.delegation_id.as_deref())),
            ("provider_id", or_dash(session.provider_id.as_deref())),
            ("issuer", or_dash(session.issuer.as_deref())),
            ("trust_level", or_dash(session.trust_level.as_deref())),
            ("expires_at", or_dash(session.expires_at.as_deref())),
            ("mode", or_dash(Some(&session.mode))),
            ("scope_ceiling", join_or_dash(&session.scope_ceiling)),
            ("allowed_actions", join_or_dash(&session.allowed_actions)),
            ("total_calls", session.total_calls.to_string()),
            ("read_calls", session.read_calls.to_string()),
            ("write_calls", session.write_calls.to_string()),
            ("denied_calls", session.denied_calls.to_string()),
            ("created_at", or_dash(Some(&session.created_at))),
            ("last_activity_at", or_dash(Some(&session.last_activity_at))),
        ]),
    )?;
    Ok(())
}
