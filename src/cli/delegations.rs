//! `agenttrust delegations create|list|get|revoke|session|tree`: an agent hands part of its
//! capabilities to another agent, attenuated (never wider than what the delegator had), chained
//! (a delegate re-delegates with `--parent`) and revocable (revoking one revokes everything
//! built on it).

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{ArgGroup, Args, Subcommand};

use super::Context;
use super::paging::{self, PageArgs};
use crate::api::actions::Effect;
use crate::api::delegations::{CreateDelegationRequest, Delegation, DelegationQuery, Restrictions};
use crate::api::join_or_dash;
use crate::api::sessions::Session;
use crate::api::status::DelegationStatus;
use crate::client;
use crate::output::{View, or_dash};

mod tree;
use tree::{
    active_descendants, forest, nested_json, render_forest, restrictions_summary, tree_containing,
    walk,
};

#[derive(Debug, Args)]
pub struct DelegationsArgs {
    #[command(subcommand)]
    pub command: DelegationsCommand,
}

#[derive(Debug, Subcommand)]
pub enum DelegationsCommand {
    /// Delegate capabilities from one agent to another (`-q` prints the delegation id)
    #[command(after_help = "\
The scope must be a subset of what the delegator has (its capabilities, or the parent \
delegation's scope when re-delegating with --parent), and the expiry never goes beyond the \
parent's. --paths, --tools, --effects and --max-calls set those keys of the restrictions, over \
what --restrictions or --restrictions-file say; unknown keys are kept as given.

Example: agenttrust delegations create --from A --to B --scope files:read --paths '/tmp/*' --ttl 1h")]
    Create(Box<CreateArgs>),
    /// List the org's delegations
    List(ListArgs),
    /// Show one delegation: status, scope, restrictions, chain
    Get {
        /// Delegation id
        id: String,
    },
    /// Revoke a delegation and every delegation built on it (asks first; --yes without a terminal)
    Revoke(RevokeArgs),
    /// Open a session of the delegate bounded by the delegation (`-q` prints the session id)
    Session {
        /// Delegation id
        id: String,
    },
    /// Show delegations as an indented tree: every chain of the org, or the one containing ID
    Tree {
        /// Show only the tree containing this delegation (from its root down)
        id: Option<String>,
    },
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("restrictions_source").args(["restrictions", "restrictions_file"])))]
pub struct CreateArgs {
    /// The delegating agent, by id or name [default with --parent: the parent delegation's
    /// delegate]
    #[arg(long, value_name = "AGENT", required_unless_present = "parent")]
    pub from: Option<String>,
    /// The agent receiving the capabilities, by id or name
    #[arg(long, value_name = "AGENT")]
    pub to: String,
    /// Capabilities handed over: comma-separated or repeated (files:read,web:fetch)
    #[arg(
        long,
        alias = "scopes",
        value_delimiter = ',',
        value_name = "CAPABILITY",
        required = true
    )]
    pub scope: Vec<String>,
    /// Lifetime: 300, 300s, 5m, 1h [default: the gateway's, 1h]
    #[arg(long, value_name = "DURATION", value_parser = super::parse_seconds)]
    pub ttl: Option<i64>,
    /// Restrictions as a JSON object ({"paths":["/tmp/*"],"max_calls":10})
    #[arg(long, value_name = "JSON", value_parser = parse_restrictions)]
    pub restrictions: Option<Restrictions>,
    /// Restrictions from a JSON file (`-` reads stdin)
    #[arg(long, value_name = "FILE")]
    pub restrictions_file: Option<PathBuf>,
    /// Path glob every absolute path in a call's input must match (repeatable; no comma split)
    #[arg(long = "paths", value_name = "GLOB")]
    pub paths: Vec<String>,
    /// Tool-name globs the delegate may call: comma-separated or repeated
    #[arg(long, value_delimiter = ',', value_name = "GLOB")]
    pub tools: Vec<String>,
    /// Effects the delegate may cause, comma-separated: the names --effect takes
    #[arg(long, value_delimiter = ',', value_name = "EFFECT", value_parser = super::effect_parser())]
    pub effects: Vec<Effect>,
    /// Calls a session made from the delegation may make in all
    #[arg(long, value_name = "N")]
    pub max_calls: Option<u64>,
    /// Re-delegate: the delegation this one is built on
    #[arg(long, value_name = "DELEGATION_ID")]
    pub parent: Option<String>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only delegations from this agent (id or name)
    #[arg(long, value_name = "AGENT")]
    pub from: Option<String>,
    /// Only delegations to this agent (id or name)
    #[arg(long, value_name = "AGENT")]
    pub to: Option<String>,
    /// Only active delegations
    #[arg(long, conflicts_with = "inactive")]
    pub active: bool,
    /// Only revoked or expired delegations
    #[arg(long)]
    pub inactive: bool,
    #[command(flatten)]
    pub page: PageArgs,
}

#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// Delegation id
    pub id: String,
    /// Do not ask for confirmation
    #[arg(long, short = 'y')]
    pub yes: bool,
}

fn parse_restrictions(text: &str) -> Result<Restrictions, String> {
    let value = super::parse_json_object(text)
        .map_err(|error| error.replace("{\"team\":\"search\"}", "{\"paths\":[\"/tmp/*\"]}"))?;
    serde_json::from_value(value).map_err(|error| format!("invalid restrictions: {error}"))
}

fn read_restrictions_file(path: &PathBuf) -> anyhow::Result<Restrictions> {
    let text = if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .context("cannot read the restrictions from stdin")?;
        text
    } else {
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?
    };
    parse_restrictions(&text).map_err(|error| anyhow::anyhow!("{}: {error}", path.display()))
}

/// `--restrictions`/`--restrictions-file`, with the shorthand flags over them; None when
/// nothing was given.
fn build_restrictions(
    base: Option<Restrictions>,
    paths: Vec<String>,
    tools: Vec<String>,
    effects: Vec<Effect>,
    max_calls: Option<u64>,
) -> Option<Restrictions> {
    let shorthand = !paths.is_empty() || !tools.is_empty() || !effects.is_empty();
    if base.is_none() && !shorthand && max_calls.is_none() {
        return None;
    }
    let mut restrictions = base.unwrap_or_default();
    let paths = super::clean_list(paths);
    if !paths.is_empty() {
        restrictions.paths = Some(paths);
    }
    let tools = super::clean_list(tools);
    if !tools.is_empty() {
        restrictions.tools = Some(tools);
    }
    if !effects.is_empty() {
        let mut unique = effects;
        unique.sort();
        unique.dedup();
        restrictions.effects = Some(unique);
    }
    if max_calls.is_some() {
        restrictions.max_calls = max_calls;
    }
    Some(restrictions)
}

pub async fn run(context: &Context, args: DelegationsArgs) -> anyhow::Result<()> {
    match args.command {
        DelegationsCommand::Create(args) => create(context, *args).await,
        DelegationsCommand::List(args) => list(context, args).await,
        DelegationsCommand::Get { id } => get(context, &id).await,
        DelegationsCommand::Revoke(args) => revoke(context, args).await,
        DelegationsCommand::Session { id } => session(context, &id).await,
        DelegationsCommand::Tree { id } => tree(context, id.as_deref()).await,
    }
}

pub async fn create(context: &Context, args: CreateArgs) -> anyhow::Result<()> {
    let base = match (&args.restrictions, &args.restrictions_file) {
        (Some(restrictions), _) => Some(restrictions.clone()),
        (None, Some(path)) => Some(read_restrictions_file(path)?),
        (None, None) => None,
    };
    let restrictions =
        build_restrictions(base, args.paths, args.tools, args.effects, args.max_calls);
    let client = context.client()?;
    let parent = args.parent.filter(|parent| !parent.is_empty());
    let from_agent_id = match (args.from.filter(|from| !from.is_empty()), &parent) {
        (Some(from), _) => super::resolve_agent(&client, from).await?,
        // A re-delegation is made by the parent's delegate.
        (None, Some(parent)) => {
            client::delegations::get(&client, parent)
                .await?
                .value
                .to_agent_id
        }
        (None, None) => anyhow::bail!("--from is required"),
    };
    let request = CreateDelegationRequest {
        from_agent_id,
        to_agent_id: super::resolve_agent(&client, args.to).await?,
        scope: super::clean_list(args.scope),
        ttl_seconds: args.ttl,
        restrictions,
        parent_delegation_id: parent,
    };
    let response = client::delegations::create(&client, &request).await?;
    show_delegation(context, &response.raw, &response.value)
}

pub async fn list(context: &Context, args: ListArgs) -> anyhow::Result<()> {
    let client = context.client()?;
    let query = DelegationQuery {
        from: super::resolve_agent_filter(&client, args.from).await?,
        to: super::resolve_agent_filter(&client, args.to).await?,
        active: match (args.active, args.inactive) {
            (true, _) => Some(true),
            (false, true) => Some(false),
            (false, false) => None,
        },
        limit: args.page.limit,
        cursor: None,
    };
    let listing = collect(&client, &query, args.page.all, args.page.start()).await?;
    let names = super::agents::names_for_table(context, &client).await;
    let delegations = &listing.items;
    let rows = delegations
        .iter()
        .map(|delegation| {
            vec![
                delegation.id.clone(),
                super::agents::label(context, &names, &delegation.from_agent_id),
                super::agents::label(context, &names, &delegation.to_agent_id),
                join_or_dash(&delegation.scope),
                delegation.status.to_string(),
                context.printer.time(&or_dash(Some(&delegation.expires_at))),
                context
                    .printer
                    .reference(&or_dash(delegation.parent_delegation_id.as_deref())),
            ]
        })
        .collect();
    let ids: Vec<String> = delegations
        .iter()
        .map(|delegation| delegation.id.clone())
        .collect();
    context.printer.show(
        &listing.raw,
        &ids,
        View::Rows {
            headers: vec!["ID", "FROM", "TO", "SCOPE", "STATUS", "EXPIRES", "PARENT"],
            rows,
        },
    )?;
    paging::note_more(
        context,
        "delegations",
        &args.page,
        listing.next_cursor.as_deref(),
    );
    Ok(())
}

/// The delegations matching `query` from `cursor` on: one page, or every page when `all`.
async fn collect(
    client: &client::Client,
    query: &DelegationQuery,
    all: bool,
    cursor: Option<String>,
) -> anyhow::Result<paging::Listing<Delegation>> {
    paging::collect("delegations", all, cursor, |cursor| {
        let query = DelegationQuery {
            cursor,
            ..query.clone()
        };
        async move {
            let response = client::delegations::list(client, &query).await?;
            Ok(paging::Page {
                items: response.value.delegations,
                raw: response.raw,
                next_cursor: response.value.next_cursor,
            })
        }
    })
    .await
}

pub async fn get(context: &Context, id: &str) -> anyhow::Result<()> {
    let client = context.client()?;
    let response = client::delegations::get(&client, id).await?;
    show_delegation(context, &response.raw, &response.value)
}

pub async fn revoke(context: &Context, args: RevokeArgs) -> anyhow::Result<()> {
    let client = context.client()?;
    // Show what goes before asking (and before revoking without asking).
    let delegation = client::delegations::get(&client, &args.id).await?.value;
    // Best effort: how many active delegations hang below it.
    let below = collect(&client, &DelegationQuery::default(), true, None)
        .await
        .ok()
        .map(|listing| active_descendants(&listing.items, &delegation.id));
    context.printer.note(describe(&delegation, below));
    if delegation.status == DelegationStatus::Revoked {
        // Nothing left to cut off: revoking again is harmless and revokes nothing more.
        context
            .printer
            .note(format!("Delegation {} is already revoked.", delegation.id));
    } else {
        let action = match below {
            Some(0) | None => format!("revoke delegation {}", delegation.id),
            Some(1) => format!(
                "revoke delegation {} and the 1 active delegation built on it",
                delegation.id
            ),
            Some(count) => format!(
                "revoke delegation {} and the {count} active delegations built on it",
                delegation.id
            ),
        };
        context.confirm(args.yes, &action)?;
    }
    let response = client::delegations::revoke(&client, &args.id).await?;
    let result = &response.value;
    let id = if result.id.is_empty() {
        args.id.clone()
    } else {
        result.id.clone()
    };
    context.printer.show(
        &response.raw,
        std::slice::from_ref(&id),
        View::Record(vec![
            ("id", id.clone()),
            ("status", result.status.to_string()),
            (
                "descendants_revoked",
                result.descendants_revoked.to_string(),
            ),
        ]),
    )?;
    let already = delegation.status == DelegationStatus::Revoked;
    context.printer.note(match result.descendants_revoked {
        0 if already => format!("Nothing more to revoke: delegation {id} was already revoked."),
        0 => format!("Revoked delegation {id}; no delegation depended on it."),
        1 => format!("Revoked delegation {id} and 1 delegation built on it."),
        count => format!("Revoked delegation {id} and {count} delegations built on it."),
    });
    Ok(())
}

pub async fn session(context: &Context, id: &str) -> anyhow::Result<()> {
    let client = context.client()?;
    let response = client::delegations::session(&client, id).await?;
    show_session(context, &response.raw, &response.value)
}

pub async fn tree(context: &Context, id: Option<&str>) -> anyhow::Result<()> {
    let client = context.client()?;
    let listing = collect(&client, &DelegationQuery::default(), true, None).await?;
    let raw_items: Vec<serde_json::Value> = listing
        .raw
        .get("delegations")
        .and_then(serde_json::Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut delegations: Vec<(Delegation, serde_json::Value)> = listing
        .items
        .into_iter()
        .enumerate()
        .map(|(index, delegation)| {
            let raw = raw_items
                .get(index)
                .cloned()
                .unwrap_or_else(|| serde_json::to_value(&delegation).unwrap_or_default());
            (delegation, raw)
        })
        .collect();
    let forest = match id {
        None => forest(delegations.iter().map(|(delegation, _)| delegation)),
        Some(id) => {
            // The target (a 404 here is exit 3), and its root when the listing lacks them.
            let target = client::delegations::get(&client, id).await?;
            let target_id = target.value.id.clone();
            let root_id = target
                .value
                .delegation_chain
                .first()
                .cloned()
                .unwrap_or_else(|| target_id.clone());
            if !delegations.iter().any(|(known, _)| known.id == target_id) {
                delegations.push((target.value, target.raw));
            }
            if !delegations.iter().any(|(known, _)| known.id == root_id)
                && let Ok(root) = client::delegations::get(&client, &root_id).await
            {
                delegations.push((root.value, root.raw));
            }
            let items: Vec<&Delegation> = delegations
                .iter()
                .map(|(delegation, _)| delegation)
                .collect();
            tree_containing(forest(items.iter().copied()), &items, &root_id, &target_id)
                .into_iter()
                .collect()
        }
    };
    let items: Vec<&Delegation> = delegations
        .iter()
        .map(|(delegation, _)| delegation)
        .collect();
    if context.printer.is_quiet() {
        let mut ids = Vec::new();
        walk(&forest, &mut |node| ids.push(items[node.index].id.clone()));
        context.printer.lines(&ids)?;
    } else if context.printer.is_json() {
        let raws: Vec<&serde_json::Value> = delegations.iter().map(|(_, raw)| raw).collect();
        context
            .printer
            .json(&serde_json::json!({ "delegations": nested_json(&forest, &raws) }))?;
    } else {
        // Names make the tree readable; ids stand in when the agents cannot be listed.
        let names: HashMap<String, String> =
            super::agents::names(&client).await.unwrap_or_default();
        let text = render_forest(&forest, &items, &names);
        if text.is_empty() {
            context.printer.note("No delegations.");
        } else {
            let lines: Vec<String> = text.lines().map(str::to_string).collect();
            context.printer.lines(&lines)?;
        }
    }
    Ok(())
}

/// What an operator needs to see before revoking, one `field: value` a line.
fn describe(delegation: &Delegation, below: Option<usize>) -> String {
    let mut text = format!("Delegation {} ({}):\n", delegation.id, delegation.status);
    let mut line = |name: &str, value: String| text.push_str(&format!("  {name:<12} {value}\n"));
    line("from", or_dash(Some(&delegation.from_agent_id)));
    line("to", or_dash(Some(&delegation.to_agent_id)));
    line("scope", join_or_dash(&delegation.scope));
    let restrictions = restrictions_summary(&delegation.restrictions);
    if !restrictions.is_empty() {
        line("restrictions", restrictions);
    }
    line("expires", or_dash(Some(&delegation.expires_at)));
    if let Some(count) = below {
        line("built on it", format!("{count} active delegation(s)"));
    }
    text
}

fn show_delegation(
    context: &Context,
    raw: &serde_json::Value,
    delegation: &Delegation,
) -> anyhow::Result<()> {
    let restrictions = restrictions_summary(&delegation.restrictions);
    let mut fields = vec![
        ("id", delegation.id.clone()),
        ("status", delegation.status.to_string()),
        ("from_agent_id", or_dash(Some(&delegation.from_agent_id))),
        ("to_agent_id", or_dash(Some(&delegation.to_agent_id))),
        ("org_id", or_dash(Some(&delegation.org_id))),
        ("scope", join_or_dash(&delegation.scope)),
        ("restrictions", or_dash(Some(&restrictions))),
        (
            "parent_delegation_id",
            or_dash(delegation.parent_delegation_id.as_deref()),
        ),
        (
            "delegation_chain",
            if delegation.delegation_chain.is_empty() {
                "-".to_string()
            } else {
                delegation.delegation_chain.join(" → ")
            },
        ),
        ("created_at", or_dash(Some(&delegation.created_at))),
        ("expires_at", or_dash(Some(&delegation.expires_at))),
    ];
    if let Some(revoked_at) = &delegation.revoked_at {
        fields.push(("revoked_at", revoked_at.clone()));
    }
    if let Some(reason) = &delegation.revoke_reason {
        fields.push(("revoke_reason", reason.clone()));
    }
    context.printer.show(
        raw,
        std::slice::from_ref(&delegation.id),
        View::Record(fields),
    )?;
    Ok(())
}

fn show_session(
    context: &Context,
    raw: &serde_json::Value,
    session: &Session,
) -> anyhow::Result<()> {
    let delegation_id = session.delegation_id.clone().or_else(|| {
        session
            .extra
            .get("delegation_id")
            .and_then(serde_json::Value::as_str)
            .map(str::to_string)
    });
    context.printer.show(
        raw,
        std::slice::from_ref(&session.session_id),
        View::Record(vec![
            ("session_id", session.session_id.clone()),
            ("agent_id", session.agent_id.clone()),
            ("org_id", session.org_id.clone()),
            ("source", or_dash(Some(&session.source))),
            ("delegation_id", or_dash(delegation_id.as_deref())),
            ("mode", or_dash(Some(&session.mode))),
            ("scope_ceiling", join_or_dash(&session.scope_ceiling)),
            ("total_calls", session.total_calls.to_string()),
            ("created_at", or_dash(Some(&session.created_at))),
        ]),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn shorthand_flags_override_the_json_restrictions() {
        let base = parse_restrictions(r#"{"paths":["/etc/*"],"max_calls":5,"ip":"x"}"#).unwrap();
        let restrictions = build_restrictions(
            Some(base),
            vec!["/tmp/*".to_string()],
            vec![],
            vec![Effect::Mutating, Effect::Read, Effect::Read],
            None,
        )
        .unwrap();
        assert_eq!(
            serde_json::to_value(&restrictions).unwrap(),
            serde_json::json!({"paths": ["/tmp/*"], "effects": ["read", "mutating"],
                               "max_calls": 5, "ip": "x"})
        );
        assert!(build_restrictions(None, vec![], vec![], vec![], None).is_none());
        assert!(parse_restrictions("[1]").is_err());
        assert!(parse_restrictions(r#"{"max_calls":"many"}"#).is_err());
    }

    #[test]
    fn create_parses_the_documented_flags() {
        let cli = crate::cli::Cli::try_parse_from([
            "agenttrust",
            "delegations",
            "create",
            "--from",
            "A",
            "--to",
            "B",
            "--scope",
            "files:read,web:fetch",
            "--ttl",
            "1h",
            "--paths",
            "/tmp/*",
            "--paths",
            "/var/{a,b}",
            "--effects",
            "read,mutating",
            "--max-calls",
            "3",
            "--parent",
            "P",
        ])
        .unwrap();
        let crate::cli::Command::Delegations(DelegationsArgs {
            command: DelegationsCommand::Create(args),
        }) = cli.command
        else {
            panic!("not a create");
        };
        assert_eq!(args.scope, ["files:read", "web:fetch"]);
        assert_eq!(args.ttl, Some(3600));
        assert_eq!(args.paths, ["/tmp/*", "/var/{a,b}"]);
        assert_eq!(args.effects, [Effect::Read, Effect::Mutating]);
        assert_eq!(args.parent.as_deref(), Some("P"));
        // --from may be left to the parent; without a parent it is required.
        assert!(
            crate::cli::Cli::try_parse_from([
                "agenttrust",
                "delegations",
                "create",
                "--to",
                "B",
                "--scope",
                "x",
                "--parent",
                "P",
            ])
            .is_ok()
        );
        assert!(
            crate::cli::Cli::try_parse_from([
                "agenttrust",
                "delegations",
                "create",
                "--to",
                "B",
                "--scope",
                "x",
            ])
            .is_err()
        );
        // One source of JSON restrictions at a time; --active and --inactive exclude each other.
        assert!(
            crate::cli::Cli::try_parse_from([
                "agenttrust",
                "delegations",
                "create",
                "--from",
                "A",
                "--to",
                "B",
                "--scope",
                "x",
                "--restrictions",
                "{}",
                "--restrictions-file",
                "f.json",
            ])
            .is_err()
        );
        assert!(
            crate::cli::Cli::try_parse_from([
                "agenttrust",
                "delegations",
                "list",
                "--active",
                "--inactive",
            ])
            .is_err()
        );
    }
}
