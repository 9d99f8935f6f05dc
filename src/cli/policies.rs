//! `agenttrust policies get|set|validate|test`: the org's policy document (an ordered list of
//! rules, the first match wins, then the defaults per effect).
//!
//! `set` validates the file locally, shows what changes against the stored document, confirms,
//! and sends the fetched `version` so a concurrent change is refused (409) instead of lost.
//! `validate` is offline: no gateway and no API key, the same `guardian::compile` the gateway runs.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Args, Subcommand};

mod diff;

use super::Context;
use crate::api::actions::Effect;
use crate::api::policies::{PolicyDocument, PolicyRule, PolicyTestRequest};
use crate::client;
use crate::client::actions::{MAX_INPUT_SUMMARY_CHARS, truncate_summary};
use crate::exit::{self, Outcome, Retry};
use crate::guardian;
use crate::output::{View, or_dash};
use diff::PolicyChanges;

#[derive(Debug, Args)]
pub struct PoliciesArgs {
    #[command(subcommand)]
    pub command: PoliciesCommand,
}

#[derive(Debug, Subcommand)]
pub enum PoliciesCommand {
    /// Print the stored policy document (JSON, whatever -o says)
    Get,
    /// Replace the policy with a JSON file: validates it, shows what changes, confirms
    #[command(after_help = "\
The file is validated locally first. What changes (rules added, removed, changed or moved, by \
id; defaults and settings) is shown on stderr, then confirmed on a terminal; without one, pass \
--yes. The stored version is sent along, so a change made by someone else in the meantime is \
refused (exit 1) instead of overwritten. A `version` in the file must equal the stored one.")]
    Set(SetArgs),
    /// Check a policy file offline (no gateway, no API key): exit 0 valid, 1 invalid
    Validate(ValidateArgs),
    /// Evaluate a hypothetical check against the stored policy (or --file); records nothing
    #[command(after_help = "\
Exit status, as `actions check`: 0 allowed, 77 denied, 75 elevation required (nothing is \
created: no approval, no session). With -o json the answer is printed on stdout and the exit \
status is the same.")]
    Test(TestArgs),
}

#[derive(Debug, Args)]
pub struct SetArgs {
    /// The policy document, JSON (`-` reads stdin)
    pub file: PathBuf,
    /// Do not ask for confirmation
    #[arg(long, short = 'y')]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The policy document, JSON (`-` reads stdin)
    pub file: PathBuf,
}

#[derive(Debug, Args)]
pub struct TestArgs {
    /// Agent id or name [env: AGENTTRUST_AGENT_ID]
    #[arg(long, value_name = "AGENT")]
    pub agent: Option<String>,
    /// The tool (action) name
    #[arg(long, value_name = "NAME")]
    pub tool: String,
    /// A summary of the tool's input (cut to 200 characters)
    #[arg(long, value_name = "SUMMARY")]
    pub input: Option<String>,
    /// What the call does [default: classified by the gateway]
    #[arg(long, value_name = "EFFECT", value_parser = super::effect_parser())]
    pub effect: Option<Effect>,
    /// Session id (its mode counts) [env: AGENTTRUST_SESSION_ID]
    #[arg(long, value_name = "ID")]
    pub session: Option<String>,
    /// Evaluate this policy file (JSON, `-` = stdin) instead of the stored policy
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
}

pub async fn run(context: &Context, args: PoliciesArgs) -> anyhow::Result<Outcome> {
    match args.command {
        PoliciesCommand::Get => get(context).await.map(|()| Outcome::Success),
        PoliciesCommand::Set(args) => set(context, args).await.map(|()| Outcome::Success),
        PoliciesCommand::Validate(args) => validate(context, args).map(|()| Outcome::Success),
        PoliciesCommand::Test(args) => test(context, args).await,
    }
}

pub async fn get(context: &Context) -> anyhow::Result<()> {
    let client = context.client()?;
    let response = client::policies::get(&client).await?;
    context.printer.json(&response.raw)?;
    Ok(())
}

pub async fn set(context: &Context, args: SetArgs) -> anyhow::Result<()> {
    let mut document = read_document(&args.file)?;
    check_document(&document, &args.file)?;
    let client = context.client()?;
    let stored = client::policies::get(&client).await?.value;
    let stored_version = stored.version.unwrap_or(0);
    if let Some(version) = document.version
        && version != stored_version
    {
        anyhow::bail!(
            "{} was written for policy version {version}, but the stored policy is at version \
             {stored_version}: it changed since; fetch it again (`agenttrust policies get`) or \
             remove `version` from the file to replace whatever is stored",
            display_path(&args.file)
        );
    }
    let changes = PolicyChanges::between(&stored, &document);
    if changes.is_empty() {
        context.printer.note(format!(
            "The policy is unchanged (version {stored_version}); nothing to do."
        ));
        return show_stored(context, &serde_json::to_value(&stored)?, &stored);
    }
    context.printer.note(format!(
        "Changes to the policy (version {stored_version}):\n{}",
        changes.render()
    ));
    context.confirm(
        args.yes,
        &format!("replace the policy (version {stored_version})"),
    )?;
    document.version = Some(stored_version);
    let response = client::policies::set(&client, &document)
        .await
        .map_err(|error| {
            let conflict = error.status() == Some(409);
            let error = anyhow::Error::from(error);
            if conflict {
                error.context("the policy was changed meanwhile; nothing was saved")
            } else {
                error
            }
        })?;
    context.printer.note(format!(
        "Policy saved: version {}.",
        response.value.version.unwrap_or(0)
    ));
    show_stored(context, &response.raw, &response.value)
}

fn show_stored(
    context: &Context,
    raw: &serde_json::Value,
    document: &PolicyDocument,
) -> anyhow::Result<()> {
    let version = document.version.unwrap_or(0).to_string();
    context.printer.show(
        raw,
        std::slice::from_ref(&version),
        View::Record(vec![
            ("version", version.clone()),
            ("rules", document.rules.len().to_string()),
            ("updated_at", or_dash(document.updated_at.as_deref())),
            ("updated_by", or_dash(document.updated_by.as_deref())),
        ]),
    )?;
    Ok(())
}

pub fn validate(context: &Context, args: ValidateArgs) -> anyhow::Result<()> {
    let document = read_document(&args.file)?;
    check_document(&document, &args.file)?;
    for (index, rule) in document.rules.iter().enumerate() {
        if matches_everything(rule) {
            crate::output::warn(format!(
                "rules[{index}] {:?} has no matchers (tools, effects, agents, session_modes, \
                 input, require_capabilities): it matches every call, so no rule after it and no \
                 default is ever reached",
                rule.id
            ));
        }
    }
    let rules = document.rules.len();
    if context.printer.prints_json() {
        context
            .printer
            .json(&serde_json::json!({ "valid": true, "rules": rules }))?;
    } else if !context.printer.is_quiet() {
        context
            .printer
            .lines(&[format!("valid: {rules} rule{}", plural(rules))])?;
    }
    Ok(())
}

pub async fn test(context: &Context, args: TestArgs) -> anyhow::Result<Outcome> {
    let agent_id = super::agent_or_env(args.agent)?;
    let policy = match &args.file {
        Some(path) => {
            let document = read_document(path)?;
            check_document(&document, path)?;
            Some(document)
        }
        None => None,
    };
    let client = context.client()?;
    let agent_id = super::resolve_agent(&client, agent_id).await?;
    let request = PolicyTestRequest {
        agent_id,
        action_name: args.tool.clone(),
        action_input_summary: args
            .input
            .as_deref()
            .map(|input| truncate_summary(input, MAX_INPUT_SUMMARY_CHARS).to_string())
            .filter(|summary| !summary.is_empty()),
        action_effect: args.effect.map(|effect| effect.as_str().to_string()),
        session_id: super::session_or_env(args.session),
        policy,
    };
    let response = client::policies::test(&client, &request).await?;
    let result = &response.value;
    let decision = &result.decision;
    let verdict = if decision.elevation_required {
        "require_approval"
    } else if decision.allowed {
        "allow"
    } else {
        "deny"
    };
    let matched_rule = or_dash(result.matched_rule.as_deref());
    exit::answer_printed(context.printer.show(
        &response.raw,
        &[verdict.to_string()],
        View::Record(vec![
            ("decision", verdict.to_string()),
            ("allowed", decision.allowed.to_string()),
            ("matched_rule", matched_rule.clone()),
            ("decided_by", or_dash(decision.rule.as_deref())),
            ("reason", or_dash(Some(&decision.reason))),
            ("effect", or_dash(decision.effect.map(Effect::as_str))),
            (
                "elevation_required",
                decision.elevation_required.to_string(),
            ),
        ]),
    ))?;
    Ok(super::actions::decision_outcome(
        &args.tool,
        decision,
        Retry::Hypothetical,
    ))
}

/// Reads a policy document from a JSON file (`-` = stdin). Unknown keys are kept here and
/// refused by validation, with a message naming them.
pub fn read_document(path: &Path) -> anyhow::Result<PolicyDocument> {
    let text = if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read the policy from stdin")?;
        text
    } else {
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?
    };
    parse_document(&text)
        .with_context(|| format!("{} is not a policy document", display_path(path)))
}

/// Parses the JSON text of a policy document.
pub fn parse_document(text: &str) -> anyhow::Result<PolicyDocument> {
    let value: serde_json::Value = serde_json::from_str(text).context("not JSON")?;
    if !value.is_object() {
        anyhow::bail!("expected a JSON object with `rules`, `defaults`, …");
    }
    serde_json::from_value(value.clone()).map_err(|error| match rule_error(&value) {
        Some(rule_error) => rule_error,
        None => error.into(),
    })
}

/// A rule without a single matcher: valid, but it decides every call, which is rarely meant.
fn matches_everything(rule: &PolicyRule) -> bool {
    rule.tools.is_empty()
        && rule.effects.is_empty()
        && rule.agents.is_empty()
        && rule.session_modes.is_empty()
        && rule.input.is_none()
        && rule.require_capabilities.is_empty()
}

/// The first rule that does not parse, named by its index and id (`rules[3] "deploys": unknown
/// variant `alow`…`): a policy has dozens of rules and serde's error names neither.
fn rule_error(document: &serde_json::Value) -> Option<anyhow::Error> {
    let rules = document.get("rules")?.as_array()?;
    rules.iter().enumerate().find_map(|(index, rule)| {
        let error = serde_json::from_value::<PolicyRule>(rule.clone()).err()?;
        let name = match rule.get("id").and_then(serde_json::Value::as_str) {
            Some(id) => format!("rules[{index}] {id:?}"),
            None => format!("rules[{index}]"),
        };
        Some(anyhow::anyhow!("{name}: {error}"))
    })
}

/// Runs the gateway's own validation (`guardian::compile`); the error names the file and the
/// first invalid rule.
fn check_document(document: &PolicyDocument, path: &Path) -> anyhow::Result<()> {
    guardian::compile(document)
        .map(drop)
        .map_err(|error| anyhow::anyhow!("{}: invalid policy: {error}", display_path(path)))
}

fn display_path(path: &Path) -> String {
    if path == Path::new("-") {
        "stdin".to_string()
    } else {
        path.display().to_string()
    }
}

fn plural(count: usize) -> &'static str {
    if count == 1 { "" } else { "s" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsing_rejects_non_objects_and_keeps_unknown_keys_for_validation() {
        assert!(parse_document("[]").is_err());
        assert!(parse_document("nope").is_err());
        let typo = parse_document(r#"{"rule":[]}"#).unwrap();
        let error = guardian::compile(&typo).unwrap_err();
        assert!(error.to_string().contains("\"rule\""), "{error}");
    }

    #[test]
    fn validation_names_the_first_invalid_rule() {
        let document = parse_document(
            r#"{"rules":[{"id":"ok","decision":"allow"},{"id":"bad","tools":["[x"],"decision":"deny"}]}"#,
        )
        .unwrap();
        let error = check_document(&document, Path::new("p.json")).unwrap_err();
        let text = error.to_string();
        assert!(
            text.starts_with("p.json: invalid policy: rules[1] (id \"bad\")"),
            "{text}"
        );
    }
}
