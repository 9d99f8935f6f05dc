//! The policy diff engine: what replacing the stored policy document with a new one changes,
//! rule by rule (matched by id, moves named), defaults and settings field by field, rendered for
//! a human to confirm before `policies set` applies it.

use std::collections::BTreeSet;

use crate::api::actions::Effect;
use crate::api::policies::{EffectDefaults, PolicyDocument, PolicyRule};

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
    use crate::cli::policies::parse_document;

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
}
