//! `agenttrust keys create|list|revoke`: the org's API keys (admin or runtime role).

use clap::{Args, Subcommand};

use super::Context;
use super::paging::{self, PageArgs};
use crate::api::keys::{CreateKeyRequest, KeyQuery, Role};
use crate::client;
use crate::config::Source;
use crate::output::{self, View, or_dash};

#[derive(Debug, Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    pub command: KeysCommand,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key; the secret is shown once (`-q` prints only the key)
    Create(CreateArgs),
    /// List keys, oldest first (never the secrets, only their prefixes)
    List(ListArgs),
    /// Revoke a key (asks first, warning when it is the key in use; --yes without a terminal).
    /// The org's last active admin key cannot be revoked: create another admin key first
    Revoke(RevokeArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// admin manages the org; runtime may only check, report telemetry and handle tokens
    #[arg(long, value_parser = role_parser())]
    pub role: Role,
    /// A name to tell keys apart
    #[arg(long)]
    pub name: Option<String>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub page: PageArgs,
}

#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// Key id
    pub id: String,
    /// Do not ask for confirmation
    #[arg(long, short = 'y')]
    pub yes: bool,
}

fn role_parser() -> impl clap::builder::TypedValueParser<Value = Role> {
    use clap::builder::TypedValueParser as _;
    clap::builder::PossibleValuesParser::new(["admin", "runtime"])
        .try_map(|text: String| text.parse::<Role>())
}

pub async fn run(context: &Context, args: KeysArgs) -> anyhow::Result<()> {
    match args.command {
        KeysCommand::Create(args) => create(context, args).await,
        KeysCommand::List(args) => list(context, args).await,
        KeysCommand::Revoke(args) => revoke(context, args).await,
    }
}

pub async fn create(context: &Context, args: CreateArgs) -> anyhow::Result<()> {
    let client = context.client()?;
    let request = CreateKeyRequest {
        role: args.role,
        name: args.name.filter(|name| !name.is_empty()),
    };
    let response = client::keys::create(&client, &request).await?;
    let created = &response.value;
    context.printer.show(
        &response.raw,
        std::slice::from_ref(&created.key),
        View::Record(vec![
            ("key", created.key.clone()),
            ("id", created.api_key.id.clone()),
            ("name", or_dash(Some(&created.api_key.name))),
            ("role", created.api_key.role.to_string()),
            ("prefix", or_dash(Some(&created.api_key.prefix))),
            ("created_at", or_dash(Some(&created.api_key.created_at))),
        ]),
    )?;
    context
        .printer
        .note("Store the key now: it is not shown again.");
    Ok(())
}

pub async fn list(context: &Context, args: ListArgs) -> anyhow::Result<()> {
    let client = context.client()?;
    let limit = args.page.limit;
    let listing = paging::collect("keys", args.page.all, args.page.start(), |cursor| {
        let client = &client;
        async move {
            let response = client::keys::list(client, &KeyQuery { cursor, limit }).await?;
            Ok(paging::Page {
                items: response.value.keys,
                raw: response.raw,
                next_cursor: response.value.next_cursor,
            })
        }
    })
    .await?;
    let keys = &listing.items;
    let rows = keys
        .iter()
        .map(|key| {
            vec![
                key.id.clone(),
                or_dash(Some(&key.name)),
                key.role.to_string(),
                or_dash(Some(&key.prefix)),
                context.printer.time(&or_dash(Some(&key.created_at))),
                context.printer.time(&or_dash(key.revoked_at.as_deref())),
            ]
        })
        .collect();
    let ids: Vec<String> = keys.iter().map(|key| key.id.clone()).collect();
    context.printer.show(
        &listing.raw,
        &ids,
        View::Rows {
            headers: vec!["ID", "NAME", "ROLE", "PREFIX", "CREATED", "REVOKED"],
            rows,
        },
    )?;
    paging::note_more(context, "keys", &args.page, listing.next_cursor.as_deref());
    Ok(())
}

pub async fn revoke(context: &Context, args: RevokeArgs) -> anyhow::Result<()> {
    let client = context.client()?;
    // Revoking the key this very command runs with locks this profile out: say so first, and
    // name the key in the question. A gateway without `GET /api/v1/keys/{id}` (or a key it
    // does not know: the revoke itself will say so) gets the plain question.
    let own_key = client::keys::get(&client, &args.id)
        .await
        .ok()
        .filter(|key| key.value.current)
        .map(|key| key.value);
    let action = match &own_key {
        Some(key) => {
            let source = match context.settings.api_key_source {
                Source::Env(_) => "the API key in AGENTTRUST_API_KEY".to_string(),
                _ => format!("the API key of profile `{}`", context.settings.profile),
            };
            output::warn(format!(
                "API key {} ({}{}) is {source}, the key this command uses: once it is revoked, \
                 every request made with it fails (401)",
                key.id,
                key.prefix,
                if key.name.is_empty() {
                    String::new()
                } else {
                    format!(", {:?}", key.name)
                },
            ));
            format!("revoke API key {}, the key you are using now", key.id)
        }
        None => format!("revoke API key {}", args.id),
    };
    context.confirm(args.yes, &action)?;
    let response = client::keys::revoke(&client, &args.id).await?;
    let success = response.value.as_ref().is_none_or(|result| result.success);
    if response.raw.is_null() {
        // 204 No Content: nothing to print as JSON but the fact.
        context.printer.show(
            &serde_json::json!({ "success": success, "id": args.id }),
            std::slice::from_ref(&args.id),
            View::Record(vec![
                ("id", args.id.clone()),
                ("revoked", success.to_string()),
            ]),
        )?;
    } else {
        context.printer.show(
            &response.raw,
            std::slice::from_ref(&args.id),
            View::Record(vec![
                ("id", args.id.clone()),
                ("revoked", success.to_string()),
            ]),
        )?;
    }
    Ok(())
}
