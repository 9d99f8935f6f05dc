//! `agenttrust federation …`: the external OIDC issuers the org trusts (`providers`), which of
//! their subjects act as which agent (`subjects`), verifying an ID token (`verify`), the
//! gateway's own ID tokens (`tokens issue|revoke`) and sessions opened from one (`session
//! init`). A token is read from stdin unless given as an argument, so it need never be in argv.

use clap::{Args, Subcommand};

use super::Context;
use crate::api::federation::{
    IssueIdTokenRequest, LinkSubjectRequest, Provider, ProviderStatus, RegisterProviderRequest,
    RevokeIdTokenRequest, TrustLevel, UpdateProviderRequest, VerifyTokenRequest,
};
use crate::api::join_or_dash;
use crate::client;
use crate::exit::Outcome;
use crate::output::{self, View, or_dash};

#[derive(Debug, Args)]
pub struct FederationArgs {
    #[command(subcommand)]
    pub command: FederationCommand,
}

#[derive(Debug, Subcommand)]
pub enum FederationCommand {
    /// External OIDC issuers the org trusts: add (by discovery), list, get, update, delete
    #[command(subcommand)]
    Providers(ProvidersCommand),
    /// Which subject of a provider acts as which agent of the org: link, list, unlink
    #[command(subcommand)]
    Subjects(SubjectsCommand),
    /// Verify an ID token (a provider's or this gateway's) for this org
    #[command(after_help = "\
Exit status: 0 when the token is valid; 1 when it is not, with `error: token inactive: <why>` on \
stderr (expired, wrong audience, unknown issuer, unknown key, bad signature, algorithm not \
allowed, …; with -o json the gateway's answer is printed on stdout too).")]
    Verify(VerifyArgs),
    /// ID tokens signed by this gateway for its agents: issue, revoke
    #[command(subcommand)]
    Tokens(TokensCommand),
    /// Open a session from an ID token, bounded by its provider's trust level
    #[command(subcommand, visible_alias = "sessions")]
    Session(SessionCommand),
}

#[derive(Debug, Subcommand)]
pub enum ProvidersCommand {
    /// Register an issuer: its discovery document is fetched and its `issuer` must match
    /// (`-q` prints the provider id)
    Add(AddProviderArgs),
    /// List the org's providers
    List,
    /// Show one provider
    Get {
        /// Provider id
        id: String,
    },
    /// Change a provider's name, trust level, status, audience, subject claim or JWKS URL;
    /// `--status disabled` stops its tokens and its sessions at once
    Update(UpdateProviderArgs),
    /// Stop trusting a provider: its tokens are refused and its sessions end at once
    Disable {
        /// Provider id
        id: String,
    },
    /// Trust a disabled provider again
    Enable {
        /// Provider id
        id: String,
    },
    /// Remove a provider and its subject links; its sessions end (asks first; --yes without a
    /// terminal)
    #[command(visible_alias = "delete")]
    Remove {
        /// Provider id
        id: String,
        /// Do not ask for confirmation
        #[arg(long, short = 'y')]
        yes: bool,
    },
}

#[derive(Debug, Args)]
pub struct AddProviderArgs {
    /// The issuer URL, exactly as its tokens' `iss` names it
    pub issuer: String,
    /// A name to tell providers apart [default: the issuer]
    #[arg(long)]
    pub name: Option<String>,
    /// How far its sessions may go: low (reads), standard (up to mutating), high (policy)
    #[arg(long, value_name = "LEVEL", value_parser = trust_level_parser())]
    pub trust_level: Option<TrustLevel>,
    /// The issuer's JWKS URL, for an issuer without a discovery document (skips discovery)
    #[arg(long, value_name = "URL")]
    pub jwks_uri: Option<String>,
    /// The `aud` its tokens must carry [default: <gateway public URL>/orgs/<org id>]
    #[arg(long)]
    pub audience: Option<String>,
    /// The claim naming the external subject [default: sub]
    #[arg(long, value_name = "CLAIM")]
    pub subject_claim: Option<String>,
    /// Register it disabled
    #[arg(long)]
    pub disabled: bool,
}

#[derive(Debug, Args)]
pub struct UpdateProviderArgs {
    /// Provider id
    pub id: String,
    #[arg(long)]
    pub name: Option<String>,
    /// low, standard or high
    #[arg(long, value_name = "LEVEL", value_parser = trust_level_parser())]
    pub trust_level: Option<TrustLevel>,
    /// active or disabled
    #[arg(long, value_name = "STATUS", value_parser = status_parser())]
    pub status: Option<ProviderStatus>,
    #[arg(long)]
    pub audience: Option<String>,
    #[arg(long, value_name = "CLAIM")]
    pub subject_claim: Option<String>,
    #[arg(long, value_name = "URL")]
    pub jwks_uri: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum SubjectsCommand {
    /// Let SUBJECT of the provider act as an agent of the org
    Link {
        /// Provider id
        provider: String,
        /// The value of the provider's subject claim
        subject: String,
        /// Agent id or name
        #[arg(long, value_name = "AGENT")]
        agent: String,
    },
    /// List the provider's linked subjects
    List {
        /// Provider id
        provider: String,
    },
    /// Remove a link (asks first; --yes without a terminal)
    Unlink {
        /// Provider id
        provider: String,
        subject: String,
        /// Do not ask for confirmation
        #[arg(long, short = 'y')]
        yes: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Issue an ID token signed by this gateway for an agent (`-q` prints only the token)
    Issue(IssueArgs),
    /// Revoke an ID token this gateway issued: it fails verification here from then on
    Revoke {
        /// The token [default: read from stdin]
        token: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The token [default: read from stdin, which keeps it out of argv]
    pub token: Option<String>,
    /// The issuer it must come from
    #[arg(long, value_name = "ISSUER")]
    pub issuer: Option<String>,
}

#[derive(Debug, Args)]
pub struct IssueArgs {
    /// Agent id or name [env: AGENTTRUST_AGENT_ID]
    #[arg(long, value_name = "AGENT")]
    pub agent: Option<String>,
    /// Who the token is for: the relying party's expected audience [default: this gateway]
    #[arg(long)]
    pub audience: Option<String>,
    /// Scopes (from the agent's capabilities): comma-separated or repeated
    #[arg(long, value_delimiter = ',', value_name = "SCOPE")]
    pub scopes: Vec<String>,
    /// Lifetime: 300, 300s, 5m, 1h [default: 5m]
    #[arg(long, value_name = "DURATION", value_parser = super::parse_seconds)]
    pub ttl: Option<i64>,
}

#[derive(Debug, Subcommand)]
pub enum SessionCommand {
    /// Open a federation session from an ID token (`-q` prints the session id)
    Init(VerifyArgs),
}

/// The token argument, or stdin when there is none (or it is `-`).
fn token_argument(token: Option<&str>) -> anyhow::Result<String> {
    super::read_secret_argument(token.unwrap_or("-"), "token")
}

fn trust_level_parser() -> impl clap::builder::TypedValueParser<Value = TrustLevel> {
    use clap::builder::TypedValueParser as _;
    clap::builder::PossibleValuesParser::new(["low", "standard", "high"])
        .try_map(|text: String| text.parse::<TrustLevel>())
}

fn status_parser() -> impl clap::builder::TypedValueParser<Value = ProviderStatus> {
    use clap::builder::TypedValueParser as _;
    clap::builder::PossibleValuesParser::new(["active", "disabled"])
        .try_map(|text: String| text.parse::<ProviderStatus>())
}

pub async fn run(context: &Context, args: FederationArgs) -> anyhow::Result<Outcome> {
    let success = |result: anyhow::Result<()>| result.map(|()| Outcome::Success);
    match args.command {
        FederationCommand::Providers(command) => success(match command {
            ProvidersCommand::Add(args) => add_provider(context, args).await,
            ProvidersCommand::List => list_providers(context).await,
            ProvidersCommand::Get { id } => get_provider(context, &id).await,
            ProvidersCommand::Update(args) => update_provider(context, args).await,
            ProvidersCommand::Disable { id } => {
                set_status(context, id, ProviderStatus::Disabled).await
            }
            ProvidersCommand::Enable { id } => {
                set_status(context, id, ProviderStatus::Active).await
            }
            ProvidersCommand::Remove { id, yes } => delete_provider(context, &id, yes).await,
        }),
        FederationCommand::Subjects(command) => success(match command {
            SubjectsCommand::Link {
                provider,
                subject,
                agent,
            } => link_subject(context, &provider, subject, agent).await,
            SubjectsCommand::List { provider } => list_subjects(context, &provider).await,
            SubjectsCommand::Unlink {
                provider,
                subject,
                yes,
            } => unlink_subject(context, &provider, &subject, yes).await,
        }),
        FederationCommand::Verify(args) => verify_token(context, args).await,
        FederationCommand::Tokens(TokensCommand::Issue(args)) => {
            success(issue_token(context, args).await)
        }
        FederationCommand::Tokens(TokensCommand::Revoke { token }) => {
            success(revoke_token(context, token.as_deref()).await)
        }
        FederationCommand::Session(SessionCommand::Init(args)) => {
            success(init_session(context, args).await)
        }
    }
}

pub async fn add_provider(context: &Context, args: AddProviderArgs) -> anyhow::Result<()> {
    let client = context.client()?;
    let request = RegisterProviderRequest {
        issuer: args.issuer,
        name: args.name.unwrap_or_default(),
        trust_level: args.trust_level.map(|level| level.as_str().to_string()),
        jwks_uri: args.jwks_uri,
        audience: args.audience,
        subject_claim: args.subject_claim,
        status: args
            .disabled
            .then(|| ProviderStatus::Disabled.as_str().to_string()),
    };
    let response = client::federation::register_provider(&client, &request).await?;
    show_provider(context, &response.raw, &response.value.provider)
}

pub async fn list_providers(context: &Context) -> anyhow::Result<()> {
    let client = context.client()?;
    let response = client::federation::list_providers(&client).await?;
    let providers = &response.value.providers;
    let rows = providers
        .iter()
        .map(|provider| {
            vec![
                provider.id.clone(),
                or_dash(Some(&provider.name)),
                provider.issuer.clone(),
                or_dash(Some(&provider.trust_level)),
                or_dash(Some(&provider.status)),
                context.printer.time(&or_dash(Some(&provider.created_at))),
            ]
        })
        .collect();
    let ids: Vec<String> = providers
        .iter()
        .map(|provider| provider.id.clone())
        .collect();
    context.printer.show(
        &response.raw,
        &ids,
        View::Rows {
            headers: vec!["ID", "NAME", "ISSUER", "TRUST", "STATUS", "CREATED"],
            rows,
        },
    )?;
    Ok(())
}

pub async fn get_provider(context: &Context, id: &str) -> anyhow::Result<()> {
    let client = context.client()?;
    let response = client::federation::get_provider(&client, id).await?;
    show_provider(context, &response.raw, &response.value.provider)
}

pub async fn update_provider(context: &Context, args: UpdateProviderArgs) -> anyhow::Result<()> {
    let request = UpdateProviderRequest {
        name: args.name,
        trust_level: args.trust_level.map(|level| level.as_str().to_string()),
        status: args.status.map(|status| status.as_str().to_string()),
        audience: args.audience,
        subject_claim: args.subject_claim,
        jwks_uri: args.jwks_uri,
    };
    if request.name.is_none()
        && request.trust_level.is_none()
        && request.status.is_none()
        && request.audience.is_none()
        && request.subject_claim.is_none()
        && request.jwks_uri.is_none()
    {
        return Err(crate::exit::Failure::Usage {
            message: "nothing to update: give at least one of --name, --trust-level, --status, \
                      --audience, --subject-claim, --jwks-uri"
                .to_string(),
            hint: None,
        }
        .into());
    }
    let client = context.client()?;
    let response = client::federation::update_provider(&client, &args.id, &request).await?;
    show_provider(context, &response.raw, &response.value.provider)
}

/// `providers disable|enable`: the status alone.
pub async fn set_status(
    context: &Context,
    id: String,
    status: ProviderStatus,
) -> anyhow::Result<()> {
    let args = UpdateProviderArgs {
        id,
        name: None,
        trust_level: None,
        status: Some(status),
        audience: None,
        subject_claim: None,
        jwks_uri: None,
    };
    update_provider(context, args).await
}

pub async fn delete_provider(context: &Context, id: &str, yes: bool) -> anyhow::Result<()> {
    context.confirm(
        yes,
        &format!("delete federation provider {id}, its subject links, and end its sessions"),
    )?;
    let client = context.client()?;
    let response = client::federation::delete_provider(&client, id).await?;
    super::common::show_deleted(context, id, response.raw)?;
    Ok(())
}

fn show_provider(
    context: &Context,
    raw: &serde_json::Value,
    provider: &Provider,
) -> anyhow::Result<()> {
    // The raw answer may be wrapped (`{"provider": …}`): -o json prints it as the gateway said.
    context.printer.show(
        raw,
        std::slice::from_ref(&provider.id),
        View::Record(vec![
            ("id", provider.id.clone()),
            ("name", or_dash(Some(&provider.name))),
            ("issuer", provider.issuer.clone()),
            ("jwks_uri", or_dash(Some(&provider.jwks_uri))),
            ("trust_level", or_dash(Some(&provider.trust_level))),
            ("status", or_dash(Some(&provider.status))),
            ("audience", or_dash(provider.audience.as_deref())),
            ("subject_claim", or_dash(provider.subject_claim.as_deref())),
            (
                "authorization_endpoint",
                or_dash(provider.authorization_endpoint.as_deref()),
            ),
            (
                "token_endpoint",
                or_dash(provider.token_endpoint.as_deref()),
            ),
            ("created_at", or_dash(Some(&provider.created_at))),
            ("updated_at", or_dash(Some(&provider.updated_at))),
        ]),
    )?;
    Ok(())
}

pub async fn link_subject(
    context: &Context,
    provider: &str,
    subject: String,
    agent: String,
) -> anyhow::Result<()> {
    let client = context.client()?;
    let agent_id = super::resolve_agent(&client, agent).await?;
    let response = client::federation::link_subject(
        &client,
        provider,
        &LinkSubjectRequest { subject, agent_id },
    )
    .await?;
    let link = &response.value;
    context.printer.show(
        &response.raw,
        std::slice::from_ref(&link.subject),
        View::Record(vec![
            ("provider_id", link.provider_id.clone()),
            ("subject", link.subject.clone()),
            ("agent_id", link.agent_id.clone()),
            ("created_at", or_dash(Some(&link.created_at))),
        ]),
    )?;
    Ok(())
}

pub async fn list_subjects(context: &Context, provider: &str) -> anyhow::Result<()> {
    let client = context.client()?;
    let response = client::federation::list_subjects(&client, provider).await?;
    let links = &response.value.subjects;
    let rows = links
        .iter()
        .map(|link| {
            vec![
                link.subject.clone(),
                link.agent_id.clone(),
                context.printer.time(&or_dash(Some(&link.created_at))),
            ]
        })
        .collect();
    let subjects: Vec<String> = links.iter().map(|link| link.subject.clone()).collect();
    context.printer.show(
        &response.raw,
        &subjects,
        View::Rows {
            headers: vec!["SUBJECT", "AGENT", "LINKED"],
            rows,
        },
    )?;
    Ok(())
}

pub async fn unlink_subject(
    context: &Context,
    provider: &str,
    subject: &str,
    yes: bool,
) -> anyhow::Result<()> {
    context.confirm(
        yes,
        &format!("unlink subject {subject:?} of federation provider {provider}"),
    )?;
    let client = context.client()?;
    let response = client::federation::unlink_subject(&client, provider, subject).await?;
    let raw = if response.raw.is_null() {
        serde_json::json!({ "status": "unlinked", "subject": subject })
    } else {
        response.raw
    };
    context.printer.show(
        &raw,
        &[subject.to_string()],
        View::Record(vec![
            ("subject", subject.to_string()),
            ("status", "unlinked".to_string()),
        ]),
    )?;
    Ok(())
}

/// Exit 0 when valid; an invalid token is the outcome `TokenInactive` (1) with its reason.
pub async fn verify_token(context: &Context, args: VerifyArgs) -> anyhow::Result<Outcome> {
    let token = token_argument(args.token.as_deref())?;
    let client = context.client()?;
    let request = VerifyTokenRequest {
        token,
        issuer_hint: args.issuer,
    };
    let response = client::federation::verify_token(&client, &request).await?;
    let verification = &response.value;
    if !(verification.valid || verification.active) {
        if context.printer.prints_json() {
            crate::exit::answer_printed(context.printer.json(&response.raw))?;
        }
        return Ok(Outcome::TokenInactive {
            reasoning: verification
                .error
                .clone()
                .unwrap_or_else(|| "the gateway gave no reason".to_string()),
        });
    }
    let agent_id = verification.agent_id.clone().unwrap_or_default();
    context.printer.show(
        &response.raw,
        std::slice::from_ref(&agent_id),
        View::Record(vec![
            ("valid", "true".to_string()),
            ("issuer", or_dash(verification.issuer.as_deref())),
            ("subject", or_dash(verification.subject.as_deref())),
            ("agent_id", or_dash(verification.agent_id.as_deref())),
            ("provider_id", or_dash(verification.provider_id.as_deref())),
            ("trust_level", or_dash(verification.trust_level.as_deref())),
            ("expires_at", or_dash(verification.expires_at.as_deref())),
        ]),
    )?;
    Ok(Outcome::Success)
}

pub async fn issue_token(context: &Context, args: IssueArgs) -> anyhow::Result<()> {
    let agent = super::agent_or_env(args.agent)?;
    let client = context.client()?;
    let agent_id = super::resolve_agent(&client, agent).await?;
    let request = IssueIdTokenRequest {
        agent_id,
        audience: args.audience,
        scopes: super::clean_list(args.scopes),
        ttl: args.ttl,
        nonce: None,
    };
    let response = client::federation::issue_token(&client, &request).await?;
    let token = &response.value;
    for warning in &token.warnings {
        output::warn(warning);
    }
    context.printer.show(
        &response.raw,
        std::slice::from_ref(&token.token),
        View::Record(vec![
            ("token", token.token.clone()),
            ("token_id", or_dash(Some(&token.token_id))),
            ("agent_id", or_dash(Some(&token.agent_id))),
            ("issuer", or_dash(Some(&token.issuer))),
            ("audience", or_dash(Some(&token.audience))),
            ("scopes", join_or_dash(&token.scopes)),
            ("expires_at", or_dash(Some(&token.expires_at))),
        ]),
    )?;
    Ok(())
}

pub async fn revoke_token(context: &Context, token: Option<&str>) -> anyhow::Result<()> {
    let token = token_argument(token)?;
    let client = context.client()?;
    let response =
        client::federation::revoke_token(&client, &RevokeIdTokenRequest { token }).await?;
    let revoked = &response.value;
    context.printer.show(
        &response.raw,
        std::slice::from_ref(&revoked.token_id),
        View::Record(vec![
            ("token_id", or_dash(Some(&revoked.token_id))),
            ("revoked", revoked.revoked.to_string()),
        ]),
    )?;
    Ok(())
}

pub async fn init_session(context: &Context, args: VerifyArgs) -> anyhow::Result<()> {
    let token = token_argument(args.token.as_deref())?;
    let client = context.client()?;
    let request = VerifyTokenRequest {
        token,
        issuer_hint: args.issuer,
    };
    let response = client::federation::init_session(&client, &request).await?;
    super::sessions::show_session(context, &response.raw, &response.value)
}
