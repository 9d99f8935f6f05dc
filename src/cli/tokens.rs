//! `agenttrust tokens issue|introspect|revoke`: short-lived opaque agent tokens (`at_…`).

use clap::{Args, Subcommand};

use super::Context;
use crate::api::join_or_dash;
use crate::api::tokens::{IntrospectRequest, IssueTokenRequest, RevokeTokenRequest};
use crate::client;
use crate::exit::Failure;
use crate::output::{View, mask_secret, or_dash};

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
    /// Revoke a token (asks first; --yes without a terminal)
    Revoke(RevokeArgs),
}

#[derive(Debug, Args)]
pub struct IssueArgs {
    /// Agent id [env: AGENTTRUST_AGENT_ID]
    #[arg(long, value_name = "ID")]
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
pub struct RevokeArgs {
    /// The token (`-` reads it from stdin)
    pub token: String,
    /// Why (recorded in the audit log)
    #[arg(long, default_value = "manual_revocation")]
    pub reason: String,
    /// Do not ask for confirmation
    #[arg(long, short = 'y')]
    pub yes: bool,
}

pub async fn run(context: &Context, args: TokensArgs) -> anyhow::Result<()> {
    match args.command {
        TokensCommand::Issue(args) => issue(context, args).await,
        TokensCommand::Introspect(args) => introspect(context, args).await,
        TokensCommand::Revoke(args) => revoke(context, args).await,
    }
}

pub async fn issue(context: &Context, args: IssueArgs) -> anyhow::Result<()> {
    let agent_id = super::agent_or_env(args.agent)?;
    let client = context.client()?;
    let request = IssueTokenRequest {
        agent_id,
        scopes: super::agents::clean_list(args.scopes),
        ttl: args.ttl,
        session_id: super::session_or_env(args.session),
    };
    let response = client::tokens::issue(&client, &request).await?;
    let token = &response.value;
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

pub async fn introspect(context: &Context, args: IntrospectArgs) -> anyhow::Result<()> {
    let token = super::read_secret_argument(&args.token, "token")?;
    let client = context.client()?;
    let request = IntrospectRequest {
        token,
        target: args.target.filter(|target| !target.is_empty()),
        required_scopes: super::agents::clean_list(args.required_scopes),
    };
    let response = client::tokens::introspect(&client, &request).await?;
    let introspection = &response.value;
    if !introspection.active {
        if context.printer.is_json() && !context.printer.is_quiet() {
            context.printer.json(&response.raw)?;
            return Err(Failure::Silent(crate::exit::FAILURE).into());
        }
        let reasoning = if introspection.reasoning.is_empty() {
            "no reason given".to_string()
        } else {
            introspection.reasoning.clone()
        };
        return Err(Failure::TokenInactive { reasoning }.into());
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
    Ok(())
}

pub async fn revoke(context: &Context, args: RevokeArgs) -> anyhow::Result<()> {
    let token = super::read_secret_argument(&args.token, "token")?;
    let client = context.client()?;
    context.confirm(args.yes, &format!("revoke token {}", mask_secret(&token)))?;
    let request = RevokeTokenRequest {
        token,
        reason: Some(args.reason),
    };
    let response = client::tokens::revoke(&client, &request).await?;
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
