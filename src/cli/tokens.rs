//! `agenttrust tokens issue|introspect|list|revoke`: short-lived opaque agent tokens (`at_…`).
//! A token is revoked by the secret (its holder) or by its id (`--id`, an admin who has only
//! the id, e.g. from `tokens list` or an incident report).

use clap::{Args, Subcommand};

use super::{Context, paging};
use crate::api::join_or_dash;
use crate::api::tokens::{
    IntrospectRequest, IssueTokenRequest, MAX_PAGE_SIZE, RevokeTokenByIdRequest,
    RevokeTokenRequest, TokenQuery,
};
use crate::client;
use crate::exit::{self, Failure, Outcome};
use crate::output::{self, View, mask_secret, or_dash};

#[derive(Debug, Args)]
pub struct TokensArgs {
    #[command(subcommand)]
    pub command: TokensCommand,
}

#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Issue a token for an agent (`-q` prints only the token)
    Issue(IssueArgs),
    /// Ask the gateway whether a token is active
    #[command(after_help = "\
Exit status: 0 when the token is active; 1 when it is inactive, with `error: token inactive: \
<reasoning>` on stderr (with -o json the gateway's answer is printed on stdout instead, and the \
exit status is still 1).")]
    Introspect(IntrospectArgs),
    /// List tokens (active ones unless --include-inactive; never the secrets, which the gateway
    /// does not keep)
    List(ListArgs),
    /// Revoke a token by the token itself or by its --id (asks first; --yes without a terminal)
    Revoke(RevokeArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only this agent's tokens (id or name)
    #[arg(long, value_name = "AGENT")]
    pub agent: Option<String>,
    /// Also revoked and expired tokens, and those of inactive agents
    #[arg(long)]
    pub include_inactive: bool,
    /// Tokens per page (1-1000) [default: the gateway's, 100]
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
pub struct IssueArgs {
    /// Agent id or name [env: AGENTTRUST_AGENT_ID]
    #[arg(long, value_name = "AGENT")]
    pub agent: Option<String>,
    /// Scopes: comma-separated or repeated
    #[arg(long, value_delimiter = ',', value_name = "SCOPE")]
    pub scopes: Vec<String>,
    /// Lifetime: 300, 300s, 5m, 1h [default: the gateway's, 5m]
    #[arg(long, value_name = "DURATION", value_parser = super::parse_seconds)]
    pub ttl: Option<i64>,
    /// Bind the token to a session [env: AGENTTRUST_SESSION_ID]
    #[arg(long, value_name = "ID")]
    pub session: Option<String>,
}

#[derive(Debug, Args)]
pub struct IntrospectArgs {
    /// The token (`-` reads it from stdin)
    pub token: String,
    /// Where the token is being presented (e.g. mcp://filesystem)
    #[arg(long)]
    pub target: Option<String>,
    /// Scopes the token must carry: comma-separated or repeated
    #[arg(long, value_delimiter = ',', value_name = "SCOPE")]
    pub required_scopes: Vec<String>,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["token", "id"])))]
pub struct RevokeArgs {
    /// The token (`-` reads it from stdin)
    pub token: Option<String>,
    /// Revoke the token with this id instead (admin key)
    #[arg(long, value_name = "TOKEN_ID")]
    pub id: Option<String>,
    /// Why (recorded in the audit log)
    #[arg(long, default_value = "manual_revocation")]
    pub reason: String,
    /// Do not ask for confirmation
    #[arg(long, short = 'y')]
    pub yes: bool,
}

pub async fn run(context: &Context, args: TokensArgs) -> anyhow::Result<Outcome> {
    match args.command {
        TokensCommand::Issue(args) => issue(context, args).await.map(|()| Outcome::Success),
        TokensCommand::Introspect(args) => introspect(context, args).await,
        TokensCommand::List(args) => list(context, args).await.map(|()| Outcome::Success),
        TokensCommand::Revoke(args) => revoke(context, args).await.map(|()| Outcome::Success),
    }
}

pub async fn issue(context: &Context, args: IssueArgs) -> anyhow::Result<()> {
    let agent = super::agent_or_env(args.agent)?;
    let client = context.client()?;
    let agent_id = super::resolve_agent(&client, agent).await?;
    let request = IssueTokenRequest {
        agent_id,
        scopes: super::clean_list(args.scopes),
        ttl: args.ttl,
        session_id: super::session_or_env(args.session),
    };
    let response = client::tokens::issue(&client, &request).await?;
    let token = &response.value;
    // The gateway changed something we asked for (a capped TTL): never in silence.
    for warning in &token.warnings {
        output::warn(warning);
    }
    context.printer.show(
        &response.raw,
        std::slice::from_ref(&token.token),
        View::Record(vec![
            ("token", token.token.clone()),
            ("token_id", or_dash(Some(&token.token_id))),
            ("agent_id", token.agent_id.clone()),
            ("scopes", join_or_dash(&token.scopes)),
            ("expires_at", or_dash(Some(&token.expires_at))),
            ("session_id", or_dash(token.session_id.as_deref())),
        ]),
    )?;
    Ok(())
}

pub async fn introspect(context: &Context, args: IntrospectArgs) -> anyhow::Result<Outcome> {
    let token = super::read_secret_argument(&args.token, "token")?;
    let client = context.client()?;
    let request = IntrospectRequest {
        token,
        target: args.target.filter(|target| !target.is_empty()),
        required_scopes: super::clean_list(args.required_scopes),
    };
    let response = client::tokens::introspect(&client, &request).await?;
    let introspection = &response.value;
    if !introspection.active {
        // The answer is the exit status (1) and its reason; `-o json` also prints the document.
        if context.printer.prints_json() {
            exit::answer_printed(context.printer.json(&response.raw))?;
        }
        return Ok(Outcome::TokenInactive {
            reasoning: introspection.reasoning.clone(),
        });
    }
    let agent_id = introspection.agent_id.clone().unwrap_or_default();
    context.printer.show(
        &response.raw,
        std::slice::from_ref(&agent_id),
        View::Record(vec![
            ("active", introspection.active.to_string()),
            ("agent_id", or_dash(introspection.agent_id.as_deref())),
            ("token_id", or_dash(introspection.token_id.as_deref())),
            ("scopes", join_or_dash(&introspection.scopes)),
            ("session_id", or_dash(introspection.session_id.as_deref())),
            ("expires_at", or_dash(introspection.expires_at.as_deref())),
            ("reasoning", or_dash(Some(&introspection.reasoning))),
        ]),
    )?;
    Ok(Outcome::Success)
}

pub async fn list(context: &Context, args: ListArgs) -> anyhow::Result<()> {
    let client = context.client()?;
    let query = TokenQuery {
        agent_id: super::resolve_agent_filter(&client, args.agent).await?,
        include_inactive: args.include_inactive.then_some(true),
        cursor: None,
        limit: args.limit,
    };
    let cursor = args.cursor.filter(|cursor| !cursor.is_empty());
    let listing = paging::collect("tokens", args.all, cursor, |cursor| {
        let query = TokenQuery {
            cursor,
            ..query.clone()
        };
        let client = &client;
        async move {
            let response = client::tokens::list(client, &query).await?;
            Ok(paging::Page {
                items: response.value.tokens,
                raw: response.raw,
                next_cursor: response.value.next_cursor,
            })
        }
    })
    .await?;
    let rows = listing
        .items
        .iter()
        .map(|token| {
            vec![
                token.token_id.clone(),
                token.agent_id.clone(),
                join_or_dash(&token.scopes),
                token.status.clone(),
                or_dash(Some(&token.expires_at)),
                or_dash(token.session_id.as_deref()),
            ]
        })
        .collect();
    let ids: Vec<String> = listing
        .items
        .iter()
        .map(|token| token.token_id.clone())
        .collect();
    context.printer.show(
        &listing.raw,
        &ids,
        View::Rows {
            headers: vec![
                "TOKEN_ID", "AGENT", "SCOPES", "STATUS", "EXPIRES", "SESSION",
            ],
            rows,
        },
    )?;
    if let (Some(cursor), false) = (listing.next_cursor, args.all) {
        context
            .printer
            .note(format!("More tokens: --cursor {cursor} (or --all)"));
    }
    Ok(())
}

pub async fn revoke(context: &Context, args: RevokeArgs) -> anyhow::Result<()> {
    let client = context.client()?;
    let response = match (&args.token, &args.id) {
        (None, None) => {
            return Err(Failure::Usage {
                message: "name the token, or its id with --id".to_string(),
                hint: None,
            }
            .into());
        }
        (_, Some(id)) => {
            context.confirm(args.yes, &format!("revoke token {id}"))?;
            let request = RevokeTokenByIdRequest {
                reason: Some(args.reason),
            };
            client::tokens::revoke_by_id(&client, id, &request).await?
        }
        (Some(token), None) => {
            let token = super::read_secret_argument(token, "token")?;
            context.confirm(args.yes, &format!("revoke token {}", mask_secret(&token)))?;
            let request = RevokeTokenRequest {
                token,
                reason: Some(args.reason),
            };
            client::tokens::revoke(&client, &request).await?
        }
    };
    let result = &response.value;
    if result.success && !result.revoked {
        context.printer.note("The token was already revoked.");
    }
    context.printer.show(
        &response.raw,
        &[],
        View::Record(vec![
            ("success", result.success.to_string()),
            ("revoked", result.revoked.to_string()),
        ]),
    )?;
    Ok(())
}
