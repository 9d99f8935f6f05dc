//! `agenttrust policies get|set|validate|test`: the org's policy document (an ordered list of
//! rules, the first match wins, then the defaults per effect).
//!
//! `set` validates the file locally, shows what changes against the stored document, confirms,
//! and sends the fetched `version` so a concurrent change is refused (409) instead of lost.
//! `validate` is offline: no gateway and no API key, the same `guardian::compile` the gateway runs.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Args, Subcommand};

use super::Context;
use crate::api::actions::Effect;
use crate::api::policies::{EffectDefaults, PolicyDocument, PolicyRule, PolicyTestRequest};
use crate::client;
use crate::client::actions::{MAX_INPUT_SUMMARY_CHARS, truncate_summary};
use crate::guardian;
use crate::output::{View, or_dash};

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
    /// Agent id [env: AGENTTRUST_AGENT_ID]
    #[arg(long, value_name = "ID")]
    pub agent: Option<String>,
    /// The tool (action) name
    #[arg(long, value_name = "NAME")]
    pub tool: String,
    /// A summary of the tool's input (cut to 200 characters)
    #[arg(long, value_name = "SUMMARY")]
    pub input: Option<String>,
    /// What the call does [default: classified by the gateway]
    #[arg(long, value_name = "EFFECT", value_parser = super::actions::effect_parser())]
    pub effect: Option<Effect>,
    /// Session id (its mode counts) [env: AGENTTRUST_SESSION_ID]
    #[arg(long, value_name = "ID")]
    pub session: Option<String>,
    /// Evaluate this policy file (JSON, `-` = stdin) instead of the stored policy
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
}

pub async fn run(context: &Context, args: PoliciesArgs) -> anyhow::Result<()> {
    match args.command {
        PoliciesCommand::Get => get(context).await,
        PoliciesCommand::Set(args) => set(context, args).await,
        PoliciesCommand::Validate(args) => validate(context, args),
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
    if !context.printer.is_quiet() {
        eprintln!("Changes to the policy (version {stored_version}):");
        eprint!("{}", changes.render());
    }
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
    let rules = document.rules.len();
    if context.printer.is_json() && !context.printer.is_quiet() {
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

pub async fn test(context: &Context, args: TestArgs) -> anyhow::Result<()> {
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
    let request = PolicyTestRequest {
        agent_id,
        action_name: args.tool,
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
    context.printer.show(
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
    )?;
    super::actions::decision_outcome(context, decision)
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
    Ok(serde_json::from_value(value)?)
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

/// What replacing one policy document with another changes, for a human to confirm. Rules are
/// matched by id; `version`, `updated_at` and `updated_by` are bookkeeping and not compared.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyChanges {
    /// Ids of rules only in the new document, in its order.
    pub added: Vec<String>,
    /// Ids of rules only in the old document, in its order.
    pub removed: Vec<String>,
    /// Rules in both whose content differs: the id and one line per changed field.
    pub changed: Vec<(String, Vec<String>)>,
    /// Rules in both whose order relative to the other kept rules changed (first match wins,
    /// so order matters): `id: position a → b` (positions count from 0, as `rules[i]`).
    pub moved: Vec<String>,
    /// Defaults and settings: `defaults.destructive: require_approval → deny`.
    pub settings: Vec<String>,
}

impl PolicyChanges {
    pub fn between(old: &PolicyDocument, new: &PolicyDocument) -> PolicyChanges {
        let old_ids: BTreeSet<&str> = old.rules.iter().map(|rule| rule.id.as_str()).collect();
        let new_ids: BTreeSet<&str> = new.rules.iter().map(|rule| rule.id.as_str()).collect();
        let added = new
            .rules
            .iter()
            .filter(|rule| !old_ids.contains(rule.id.as_str()))
            .map(|rule| rule.id.clone())
            .collect();
        let removed = old
            .rules
            .iter()
            .filter(|rule| !new_ids.contains(rule.id.as_str()))
            .map(|rule| rule.id.clone())
            .collect();

        let mut changed = Vec::new();
        for new_rule in &new.rules {
            if let Some(old_rule) = old.rules.iter().find(|rule| rule.id == new_rule.id) {
                let fields = rule_changes(old_rule, new_rule);
                if !fields.is_empty() {
                    changed.push((new_rule.id.clone(), fields));
                }
            }
        }

        // Kept rules in old order vs new order. The longest run of them that kept its relative
        // order stayed in place; the others moved (adding or removing rules moves nothing).
        let kept_old: Vec<&str> = old
            .rules
            .iter()
            .map(|rule| rule.id.as_str())
            .filter(|id| new_ids.contains(id))
            .collect();
        let kept_new: Vec<&str> = new
            .rules
            .iter()
            .map(|rule| rule.id.as_str())
            .filter(|id| old_ids.contains(id))
            .collect();
        let in_place = longest_common_subsequence(&kept_old, &kept_new);
        let moved = kept_new
            .iter()
            .filter(|id| !in_place.contains(*id))
            .filter_map(|id| {
                let position = |document: &PolicyDocument| {
                    document.rules.iter().position(|rule| rule.id == *id)
                };
                Some(format!(
                    "{id}: position {} → {}",
                    position(old)?,
                    position(new)?
                ))
            })
            .collect();

        let mut settings = Vec::new();
        defaults_changes(&old.defaults, &new.defaults, &mut settings);
        if old.approval_ttl_seconds != new.approval_ttl_seconds {
            settings.push(format!(
                "approval_ttl_seconds: {} → {}",
                old.approval_ttl_seconds, new.approval_ttl_seconds
            ));
        }
        if old.lockout_after_denials != new.lockout_after_denials {
            settings.push(format!(
                "lockout_after_denials: {} → {}",
                old.lockout_after_denials, new.lockout_after_denials
            ));
        }
        if old.max_delegation_depth != new.max_delegation_depth {
            settings.push(format!(
                "max_delegation_depth: {} → {}",
                old.max_delegation_depth, new.max_delegation_depth
            ));
        }
        let extra_keys: BTreeSet<&String> = old.extra.keys().chain(new.extra.keys()).collect();
        for key in extra_keys {
            if let Some(line) = field_change(key, old.extra.get(key), new.extra.get(key)) {
                settings.push(line);
            }
        }

        PolicyChanges {
            added,
            removed,
            changed,
            moved,
            settings,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.changed.is_empty()
            && self.moved.is_empty()
            && self.settings.is_empty()
    }

    /// The summary, one change a line, indented under a heading per kind.
    pub fn render(&self) -> String {
        let mut text = String::new();
        if self.is_empty() {
            text.push_str("  no changes\n");
            return text;
        }
        for id in &self.added {
            text.push_str(&format!("  + rule {id}\n"));
        }
        for id in &self.removed {
            text.push_str(&format!("  - rule {id}\n"));
        }
        for (id, fields) in &self.changed {
            text.push_str(&format!("  ~ rule {id}\n"));
            for field in fields {
                text.push_str(&format!("      {field}\n"));
            }
        }
        for line in &self.moved {
            text.push_str(&format!("  ↕ rule {line}\n"));
        }
        for line in &self.settings {
            text.push_str(&format!("  ~ {line}\n"));
        }
        text
    }
}

/// The ids of a longest common subsequence of `old` and `new` (the rules that kept their
/// relative order). Quadratic, fine for policies of hundreds of rules.
fn longest_common_subsequence<'a>(old: &[&'a str], new: &[&'a str]) -> BTreeSet<&'a str> {
    let (n, m) = (old.len(), new.len());
    // lengths[i][j]: the LCS length of old[i..] and new[j..].
    let mut lengths = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lengths[i][j] = if old[i] == new[j] {
                lengths[i + 1][j + 1] + 1
            } else {
                lengths[i + 1][j].max(lengths[i][j + 1])
            };
        }
    }
    let mut common = BTreeSet::new();
    let (mut i, mut j) = (0, 0);
    while i < n && j < m {
        if old[i] == new[j] {
            common.insert(old[i]);
            i += 1;
            j += 1;
        } else if lengths[i + 1][j] >= lengths[i][j + 1] {
            i += 1;
        } else {
            j += 1;
        }
    }
    common
}

/// One line per field of a rule that differs, compared as JSON so new rule fields are covered.
fn rule_changes(old: &PolicyRule, new: &PolicyRule) -> Vec<String> {
    let as_map = |rule: &PolicyRule| match serde_json::to_value(rule) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    };
    let (old, new) = (as_map(old), as_map(new));
    let keys: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    let mut lines: Vec<String> = keys
        .into_iter()
        .filter_map(|key| field_change(key, old.get(key), new.get(key)))
        .collect();
    // The decision first: it is what an operator looks for.
    lines.sort_by_key(|line| !line.starts_with("decision:"));
    lines
}

fn defaults_changes(old: &EffectDefaults, new: &EffectDefaults, lines: &mut Vec<String>) {
    for effect in Effect::ALL {
        let (before, after) = (old.for_effect(effect), new.for_effect(effect));
        if before != after {
            lines.push(format!(
                "defaults.{effect}: {} → {}",
                before.as_str(),
                after.as_str()
            ));
        }
    }
}

/// `field: old → new` with compact JSON values (strings bare), `(none)` when absent, long
/// values shortened; `None` when equal.
fn field_change(
    field: &str,
    old: Option<&serde_json::Value>,
    new: Option<&serde_json::Value>,
) -> Option<String> {
    if old == new {
        return None;
    }
    Some(format!(
        "{field}: {} → {}",
        short_value(old),
        short_value(new)
    ))
}

const MAX_VALUE_CHARS: usize = 60;

fn short_value(value: Option<&serde_json::Value>) -> String {
    let text = match value {
        None | Some(serde_json::Value::Null) => return "(none)".to_string(),
        Some(serde_json::Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
    };
    if text.chars().count() > MAX_VALUE_CHARS {
        let cut: String = text.chars().take(MAX_VALUE_CHARS - 1).collect();
        format!("{cut}…")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::policies::Verdict;

    fn document(json: &str) -> PolicyDocument {
        parse_document(json).unwrap()
    }

    #[test]
    fn identical_documents_have_no_changes() {
        let text = r#"{"rules":[{"id":"a","tools":["rm*"],"decision":"deny"}]}"#;
        let mut stored = document(text);
        stored.version = Some(4);
        stored.updated_at = Some("2025-01-01T00:00:00Z".to_string());
        stored.updated_by = Some("admin".to_string());
        let changes = PolicyChanges::between(&stored, &document(text));
        assert!(changes.is_empty(), "{changes:?}");
        assert_eq!(changes.render(), "  no changes\n");
    }

    #[test]
    fn rules_are_matched_by_id() {
        let old = document(
            r#"{"rules":[
                {"id":"keep","tools":["read_*"],"decision":"allow"},
                {"id":"gone","tools":["x"],"decision":"deny"},
                {"id":"edit","tools":["rm"],"decision":"require_approval","reason":"careful"}
            ]}"#,
        );
        let new = document(
            r#"{"rules":[
                {"id":"keep","tools":["read_*"],"decision":"allow"},
                {"id":"edit","tools":["rm","rmdir"],"decision":"deny","reason":"careful"},
                {"id":"new","effects":["admin"],"decision":"deny"}
            ]}"#,
        );
        let changes = PolicyChanges::between(&old, &new);
        assert_eq!(changes.added, ["new"]);
        assert_eq!(changes.removed, ["gone"]);
        assert_eq!(
            changes.changed,
            [(
                "edit".to_string(),
                vec![
                    "decision: require_approval → deny".to_string(),
                    r#"tools: ["rm"] → ["rm","rmdir"]"#.to_string(),
                ]
            )]
        );
        // Removing `gone` shifts `edit` from 2 to 1, but its order among kept rules is the same.
        assert!(changes.moved.is_empty(), "{:?}", changes.moved);
        assert!(changes.settings.is_empty());
        assert_eq!(
            changes.render(),
            "  + rule new\n  - rule gone\n  ~ rule edit\n      decision: require_approval → deny\n      tools: [\"rm\"] → [\"rm\",\"rmdir\"]\n"
        );
    }

    #[test]
    fn reordering_is_a_change() {
        let old =
            document(r#"{"rules":[{"id":"a","decision":"allow"},{"id":"b","decision":"deny"}]}"#);
        let new =
            document(r#"{"rules":[{"id":"b","decision":"deny"},{"id":"a","decision":"allow"}]}"#);
        let changes = PolicyChanges::between(&old, &new);
        assert_eq!(changes.moved, ["a: position 0 → 1"]);
        assert!(changes.changed.is_empty());
        assert!(!changes.is_empty());
    }

    #[test]
    fn only_the_rule_that_moved_is_named() {
        let old = document(
            r#"{"rules":[{"id":"a","decision":"allow"},{"id":"b","decision":"allow"},
                         {"id":"c","decision":"deny"},{"id":"d","decision":"deny"}]}"#,
        );
        let new = document(
            r#"{"rules":[{"id":"d","decision":"deny"},{"id":"a","decision":"allow"},
                         {"id":"b","decision":"allow"},{"id":"c","decision":"deny"}]}"#,
        );
        let changes = PolicyChanges::between(&old, &new);
        assert_eq!(changes.moved, ["d: position 3 → 0"]);
        assert!(changes.render().contains("  ↕ rule d: position 3 → 0\n"));
    }

    #[test]
    fn defaults_and_settings_changes_are_named() {
        let old = PolicyDocument::default();
        let new = document(
            r#"{"defaults":{"destructive":"deny","read":"allow"},
                "approval_ttl_seconds":60,"lockout_after_denials":5}"#,
        );
        assert_eq!(new.defaults.destructive, Verdict::Deny);
        let changes = PolicyChanges::between(&old, &new);
        assert_eq!(
            changes.settings,
            [
                "defaults.destructive: require_approval → deny",
                "approval_ttl_seconds: 900 → 60",
            ]
        );
        assert!(changes.render().contains("  ~ defaults.destructive"));
    }

    #[test]
    fn a_new_delegation_depth_is_named() {
        let old = PolicyDocument::default();
        let new = document(r#"{"max_delegation_depth":2}"#);
        let changes = PolicyChanges::between(&old, &new);
        assert_eq!(changes.settings, ["max_delegation_depth: 5 → 2"]);
    }

    #[test]
    fn added_and_removed_fields_show_none() {
        let old = document(r#"{"rules":[{"id":"a","decision":"deny"}]}"#);
        let new = document(r#"{"rules":[{"id":"a","decision":"deny","reason":"no shell"}]}"#);
        let changes = PolicyChanges::between(&old, &new);
        assert_eq!(
            changes.changed,
            [(
                "a".to_string(),
                vec!["reason: (none) → no shell".to_string()]
            )]
        );
    }

    #[test]
    fn long_values_are_shortened() {
        let long = serde_json::Value::String("x".repeat(200));
        let text = short_value(Some(&long));
        assert_eq!(text.chars().count(), MAX_VALUE_CHARS);
        assert!(text.ends_with('…'));
        assert_eq!(short_value(None), "(none)");
    }

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
