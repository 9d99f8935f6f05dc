//! Helpers every verb group shares: where the agent and session of a call come from (flag,
//! else environment), secrets given as `-` (stdin), confirmations of destructive verbs, and the
//! value parsers of the common flag vocabulary (`--ttl`, `--metadata`, `--effect`, lists), and
//! the one place an agent named on the command line (by id or by name) becomes an id.

use std::io::Read;
use std::path::Path;

use anyhow::Context as _;

use crate::api::actions::Effect;
use crate::api::agents::AgentQuery;
use crate::api::telemetry::MAX_PAGE_SIZE;
use crate::client::{self, Client};
use crate::config::{self, env};
use crate::exit::Failure;

/// A positional secret given as `-` is read from stdin (keeps it out of `ps` and shell history).
pub fn read_secret_argument(value: &str, what: &str) -> anyhow::Result<String> {
    if value != "-" {
        return Ok(value.to_string());
    }
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .with_context(|| format!("cannot read the {what} from stdin"))?;
    let text = text.trim().to_string();
    if text.is_empty() {
        anyhow::bail!("no {what} on stdin");
    }
    Ok(text)
}

/// `--agent`, else `AGENTTRUST_AGENT_ID` (shell-scripted agents export it once).
pub fn agent_or_env(agent: Option<String>) -> anyhow::Result<String> {
    agent.or_else(|| env::var(env::AGENT_ID)).ok_or_else(|| {
        Failure::Usage {
            message: format!("--agent is required (or set {})", env::AGENT_ID),
            hint: None,
        }
        .into()
    })
}

/// The id of an agent named on the command line by id or by name (names are unique per org).
/// A UUID is taken as an id as is, without a request: the hot paths (`guard check`,
/// `actions check`) stay one request long when scripts pass ids. Anything else is looked up by
/// exact name; no such agent is exit 3.
pub async fn resolve_agent(client: &Client, reference: String) -> anyhow::Result<String> {
    if uuid::Uuid::try_parse(&reference).is_ok() {
        return Ok(reference);
    }
    // The list endpoint filters by prefix; the exact name is among the agents it returns (a
    // few at most in practice: `demo`, `demo-2`…), so follow pages until it shows up.
    let mut cursor = None;
    loop {
        let query = AgentQuery {
            name_prefix: Some(reference.clone()),
            cursor: cursor.take(),
            limit: Some(MAX_PAGE_SIZE),
            ..AgentQuery::default()
        };
        let page = client::agents::list(client, &query)
            .await
            .with_context(|| format!("cannot look up agent `{reference}` by name"))?
            .value;
        if let Some(agent) = page
            .agents
            .into_iter()
            .find(|agent| agent.name == reference)
        {
            return Ok(agent.id);
        }
        match page.next_cursor.filter(|next| !next.is_empty()) {
            Some(next) => cursor = Some(next),
            None => {
                return Err(Failure::NotFound {
                    message: format!("no agent with the id or name `{reference}`"),
                    hint: Some("see `agenttrust agents list`".to_string()),
                }
                .into());
            }
        }
    }
}

/// [`resolve_agent`] for an optional filter (`--agent` of a list): empty means none.
pub async fn resolve_agent_filter(
    client: &Client,
    reference: Option<String>,
) -> anyhow::Result<Option<String>> {
    match reference.filter(|reference| !reference.is_empty()) {
        Some(reference) => Ok(Some(resolve_agent(client, reference).await?)),
        None => Ok(None),
    }
}

/// The tool a decision is about: `--tool NAME` (the documented spelling, as in every group), or
/// positionally (`guard check web_search`), which scripts written either way keep working with.
#[derive(Debug, Clone, clap::Args)]
#[group(required = true, multiple = false)]
pub struct ToolArgs {
    /// The tool (action) name (may also be given positionally, without --tool)
    #[arg(long = "tool", value_name = "NAME")]
    tool: Option<String>,
    #[arg(value_name = "TOOL", hide = true)]
    tool_positional: Option<String>,
}

impl ToolArgs {
    /// The tool named either way (clap makes exactly one present).
    pub fn name(&self) -> &str {
        self.tool
            .as_deref()
            .or(self.tool_positional.as_deref())
            .unwrap_or_default()
    }
}

/// A profile named on the command line (or in `AGENTTRUST_PROFILE`) that does not exist: exit 3
/// ("not found") wherever it is named — `--profile`, `profile show|use|delete`.
pub fn profile_not_found(name: &str, known: &str) -> anyhow::Error {
    Failure::NotFound {
        message: format!("profile `{name}` not found (known: {known})"),
        hint: Some(format!(
            "create it with `agenttrust login --profile {name}`, or see `agenttrust profile list`"
        )),
    }
    .into()
}

/// `--session`, else `AGENTTRUST_SESSION_ID`.
pub fn session_or_env(session: Option<String>) -> Option<String> {
    session
        .filter(|session| !session.is_empty())
        .or_else(|| env::var(env::SESSION_ID))
}

/// Parses `--metadata` as a JSON object.
pub fn parse_json_object(text: &str) -> Result<serde_json::Value, String> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|error| format!("not JSON: {error}"))?;
    if value.is_object() {
        Ok(value)
    } else {
        Err("expected a JSON object, e.g. '{\"team\":\"search\"}'".to_string())
    }
}

/// Parses a duration into whole seconds (`--ttl 5m` → 300), at least one second.
pub fn parse_seconds(text: &str) -> Result<i64, String> {
    let duration = config::parse_duration(text)?;
    if duration.as_millis() % 1000 != 0 || duration.is_zero() {
        return Err(format!(
            "invalid duration {text:?}: expected whole seconds, at least 1s"
        ));
    }
    i64::try_from(duration.as_secs()).map_err(|_| format!("invalid duration {text:?}: too large"))
}

/// The agent token of a runtime call: `--agent-token-file FILE` (`-` = stdin), else
/// `AGENTTRUST_AGENT_TOKEN`. Never a command-line argument: argv is visible to every user.
pub fn agent_token(file: Option<&Path>) -> anyhow::Result<Option<String>> {
    let token = match file {
        Some(path) if path == Path::new("-") => Some(read_secret_argument("-", "agent token")?),
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the agent token from {}", path.display()))?
                .trim()
                .to_string(),
        ),
        None => env::var(env::AGENT_TOKEN),
    };
    match token {
        Some(token) if !token.starts_with("at_") => Err(Failure::Usage {
            message: "that is not an agent token: agent tokens start with `at_`".to_string(),
            hint: Some(format!(
                "pass one with {} or --agent-token-file; issue one with `agenttrust tokens issue`",
                env::AGENT_TOKEN
            )),
        }
        .into()),
        token => Ok(token),
    }
}

/// `--effect`: the four effects, and `write` as the SDKs' name for `mutating`.
pub fn effect_parser() -> impl clap::builder::TypedValueParser<Value = Effect> {
    use clap::builder::TypedValueParser as _;
    clap::builder::PossibleValuesParser::new(["read", "mutating", "write", "destructive", "admin"])
        .try_map(|text: String| text.parse::<Effect>())
}

/// Drops empty items (`--capabilities a,,b` or a trailing comma) and surrounding blanks.
pub fn clean_list(items: Vec<String>) -> Vec<String> {
    items
        .into_iter()
        .map(|item| item.trim().to_string())
        .filter(|item| !item.is_empty())
        .collect()
}

/// Confirms a destructive action: `yes` (`--yes`) skips the question; without a terminal
/// (`interactive` false) the question cannot be asked, so `--yes` is required (exit 2).
pub fn confirm(interactive: bool, yes: bool, action: &str) -> anyhow::Result<()> {
    if yes {
        return Ok(());
    }
    if !interactive {
        return Err(Failure::Usage {
            message: format!("refusing to {action} without confirmation: pass --yes"),
            hint: Some(
                "confirmation needs a terminal on stdin and stderr, and no --no-input".to_string(),
            ),
        }
        .into());
    }
    let confirmed = dialoguer::Confirm::new()
        .with_prompt(format!("{}?", capitalize(action)))
        .default(false)
        .interact()
        .context("cannot read the confirmation")?;
    if confirmed {
        Ok(())
    } else {
        Err(Failure::Aborted.into())
    }
}

fn capitalize(text: &str) -> String {
    let mut characters = text.chars();
    match characters.next() {
        Some(first) => first.to_uppercase().chain(characters).collect(),
        None => String::new(),
    }
}

/// Prints what a delete answered: the gateway's body as it came (`-o json`), or, when it sent
/// none, `{"status":"deleted","id":…}`; as a record on a terminal.
pub fn show_deleted(
    context: &super::Context,
    id: &str,
    raw: serde_json::Value,
) -> anyhow::Result<()> {
    let raw = if raw.is_null() {
        serde_json::json!({ "status": "deleted", "id": id })
    } else {
        raw
    };
    context.printer.show(
        &raw,
        &[id.to_string()],
        crate::output::View::Record(vec![
            ("id", id.to_string()),
            ("status", "deleted".to_string()),
        ]),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds() {
        assert_eq!(parse_seconds("5m"), Ok(300));
        assert_eq!(parse_seconds("300"), Ok(300));
        assert!(parse_seconds("0").is_err());
        assert!(parse_seconds("1500ms").is_err());
    }

    #[test]
    fn metadata_must_be_an_object() {
        assert!(parse_json_object(r#"{"a":1}"#).is_ok());
        assert!(parse_json_object("[1]").is_err());
        assert!(parse_json_object("nope").is_err());
    }

    #[test]
    fn lists_drop_blanks() {
        assert_eq!(
            clean_list(vec![" a ".to_string(), String::new(), "b".to_string()]),
            ["a", "b"]
        );
    }
}
