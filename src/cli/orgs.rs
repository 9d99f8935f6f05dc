//! `agenttrust orgs security-settings get|set`: what the org enforces about agent credentials.

use clap::{Args, Subcommand};

use super::Context;
use crate::api::orgs::{SecuritySettings, UpdateSecuritySettingsRequest};
use crate::client;
use crate::output::View;

#[derive(Debug, Args)]
pub struct OrgsArgs {
    #[command(subcommand)]
    pub command: OrgsCommand,
}

#[derive(Debug, Subcommand)]
pub enum OrgsCommand {
    /// Proof of possession and sender-constrained tokens
    SecuritySettings(SecuritySettingsArgs),
}

#[derive(Debug, Args)]
pub struct SecuritySettingsArgs {
    #[command(subcommand)]
    pub command: SecuritySettingsCommand,
}

#[derive(Debug, Subcommand)]
pub enum SecuritySettingsCommand {
    /// Show the org's security settings
    Get,
    /// Change them (a setting left out keeps its value)
    #[command(after_help = "\
With --require-sender-constrained-tokens true, an agent token or WIMSE token counts only with a \
DPoP proof signed by the agent's key, and a check (or an MCP tool call) made with an API key \
alone is refused: give each agent a key (`agents create --generate-key`) first.")]
    Set(SetArgs),
}

#[derive(Debug, Args)]
pub struct SetArgs {
    /// Issue WIMSE tokens only against a proof of possession of the agent's key
    #[arg(long, value_name = "BOOL", action = clap::ArgAction::Set)]
    pub require_proof_of_possession: Option<bool>,
    /// Accept agent credentials only with a DPoP proof of the agent's key
    #[arg(long, value_name = "BOOL", action = clap::ArgAction::Set)]
    pub require_sender_constrained_tokens: Option<bool>,
}

pub async fn run(context: &Context, args: OrgsArgs) -> anyhow::Result<()> {
    match args.command {
        OrgsCommand::SecuritySettings(SecuritySettingsArgs { command }) => match command {
            SecuritySettingsCommand::Get => get_security_settings(context).await,
            SecuritySettingsCommand::Set(args) => set_security_settings(context, args).await,
        },
    }
}

pub async fn get_security_settings(context: &Context) -> anyhow::Result<()> {
    let client = context.client()?;
    let response = client::orgs::get_security_settings(&client).await?;
    show(context, &response.raw, &response.value)
}

pub async fn set_security_settings(context: &Context, args: SetArgs) -> anyhow::Result<()> {
    if args.require_proof_of_possession.is_none()
        && args.require_sender_constrained_tokens.is_none()
    {
        anyhow::bail!(
            "nothing to set: give --require-proof-of-possession and/or \
             --require-sender-constrained-tokens"
        );
    }
    let client = context.client()?;
    let request = UpdateSecuritySettingsRequest {
        require_proof_of_possession: args.require_proof_of_possession,
        require_sender_constrained_tokens: args.require_sender_constrained_tokens,
    };
    let response = client::orgs::set_security_settings(&client, &request).await?;
    show(context, &response.raw, &response.value)
}

fn show(
    context: &Context,
    raw: &serde_json::Value,
    settings: &SecuritySettings,
) -> anyhow::Result<()> {
    context.printer.show(
        raw,
        &[],
        View::Record(vec![
            (
                "require_proof_of_possession",
                settings.require_proof_of_possession.to_string(),
            ),
            (
                "require_sender_constrained_tokens",
                settings.require_sender_constrained_tokens.to_string(),
            ),
        ]),
    )?;
    Ok(())
}
