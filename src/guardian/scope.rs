//! Delegated scope and restrictions: what a session made from a delegation may do, as pure
//! functions over the action name, its effect and its input summary. [`super::decide`] applies
//! them after the identity checks and before the org's policy (which still has the last word: a
//! delegation never allows more than the policy does).
//!
//! # Scope coverage
//!
//! A call is within a delegation's scope when at least one scope entry covers it:
//! - `resource:verb` (split at the first `:`) covers a call when
//!   - the resource is `*`, or the words of the resource appear, in order and next to each
//!     other, among the words of the action name (split as the classifier does: `files_read`,
//!     `readFile`, `files.read` and `read-file` all hold the word `file`/`files`), a word
//!     matching its singular or plural form (`file` ↔ `files`, `process` ↔ `processes`,
//!     `policy` ↔ `policies`), case-insensitively; and
//!   - the call's effect is at most the verb's: `read`, `get`, `list`, `search`, `view` →
//!     read; `write`, `create`, `update`, `send`, `post`, `edit`, `exec`, `run`, `execute` →
//!     mutating; `delete`, `remove`, `destroy` → destructive; `admin`, `*` → admin. Any other
//!     verb (`deploy:prod`) grants reads only: least privilege.
//! - an entry without `:` covers exactly that action name (case-insensitively), for any effect
//!   up to mutating. A bare `*` is such an entry too: it names the action `*`, not everything
//!   (write `*:*` for that).
//! - an entry with an empty resource (`:read`) covers nothing.
//!
//! # Restrictions
//!
//! Every restriction object of the chain (the delegation's own and each ancestor's) applies,
//! key by key; a key that is absent restricts nothing, an empty list allows nothing:
//! - `tools`: globs over the action name, case-insensitive (`*` matches any characters);
//! - `effects`: the effects the call may have;
//! - `max_calls`: the calls the session may make in all (this one included);
//! - `paths`: every absolute path in the input summary must match one of the globs
//!   (case-sensitive; `*` and `?` stop at `/`, `**` crosses directories: `/tmp/*` matches
//!   `/tmp/a` but not `/tmp/a/b`, `/tmp/**` matches both). A path is a token of the summary —
//!   tokens are separated by whitespace, quotes, `=`, `,`, `;`, `:`, `|`, `&`, `<`, `>` and
//!   brackets — that starts with `/`; trailing dots (`/tmp/x.` at the end of a sentence), `!`
//!   and `?` are dropped, and `.`/`..` components are resolved before matching, so
//!   `/tmp/../etc/passwd` is `/etc/passwd`. A summary without an absolute path passes
//!   (relative paths are not seen).
//!
//! A restriction that cannot be compiled (a glob stored before validation) matches nothing:
//! the check fails closed.

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use crate::api::actions::Effect;
use crate::api::delegations::Restrictions;

use super::classify::split_words;

/// The effect a scope verb grants, at most.
pub fn verb_effect(verb: &str) -> Effect {
    match verb.trim().to_lowercase().as_str() {
        "read" | "get" | "list" | "search" | "view" => Effect::Read,
        "write" | "create" | "update" | "send" | "post" | "edit" | "exec" | "run" | "execute" => {
            Effect::Mutating
        }
        "delete" | "remove" | "destroy" => Effect::Destructive,
        "admin" | "*" => Effect::Admin,
        _ => Effect::Read,
    }
}

/// Whether one scope entry covers a call (see the module docs).
pub fn entry_covers(entry: &str, action_name: &str, effect: Effect) -> bool {
    let Some((resource, verb)) = entry.split_once(':') else {
        return effect <= Effect::Mutating
            && entry.trim().to_lowercase() == action_name.trim().to_lowercase();
    };
    if effect > verb_effect(verb) {
        return false;
    }
    if resource.trim() == "*" {
        return true;
    }
    let resource_words = split_words(resource);
    if resource_words.is_empty() {
        return false;
    }
    let action_words = split_words(action_name);
    action_words.windows(resource_words.len()).any(|window| {
        window
            .iter()
            .zip(&resource_words)
            .all(|(word, resource_word)| same_noun(word, resource_word))
    })
}

/// The first scope entry that covers a call, if any.
pub fn covering_entry<'s>(
    scope: &'s [String],
    action_name: &str,
    effect: Effect,
) -> Option<&'s str> {
    scope
        .iter()
        .map(String::as_str)
        .find(|entry| entry_covers(entry, action_name, effect))
}

/// `file` and `files`, `process` and `processes`, `policy` and `policies` (lowercase words).
fn same_noun(a: &str, b: &str) -> bool {
    let plural_of = |plural: &str, singular: &str| {
        plural.strip_suffix('s') == Some(singular)
            || plural.strip_suffix("es") == Some(singular)
            || (plural
                .strip_suffix("ies")
                .is_some_and(|stem| !stem.is_empty() && singular.strip_suffix('y') == Some(stem)))
    };
    a == b || plural_of(a, b) || plural_of(b, a)
}

/// A call refused by a restriction: the rule (`delegation:restriction:<key>`) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestrictionDenial {
    pub rule: &'static str,
    pub reason: String,
}

/// Checks a call against every restriction object of a delegation chain, key by key (`tools`,
/// `effects`, `max_calls`, `paths`); the first key that refuses names the denial.
/// `total_calls` counts the session's calls before this one.
pub fn check_restrictions(
    restrictions: &[Restrictions],
    action_name: &str,
    effect: Effect,
    input_summary: &str,
    total_calls: i64,
) -> Result<(), RestrictionDenial> {
    for tools in restrictions.iter().filter_map(|r| r.tools.as_deref()) {
        if !glob_set(tools, true, false).is_match(action_name) {
            return Err(RestrictionDenial {
                rule: "delegation:restriction:tools",
                reason: format!(
                    "the delegation allows only the tools {}: {action_name:?} is not one of them",
                    list(tools)
                ),
            });
        }
    }
    for effects in restrictions.iter().filter_map(|r| r.effects.as_deref()) {
        if !effects.contains(&effect) {
            let allowed: Vec<&str> = effects.iter().map(|effect| effect.as_str()).collect();
            return Err(RestrictionDenial {
                rule: "delegation:restriction:effects",
                reason: format!(
                    "the delegation allows only {} calls: {action_name} is {effect}",
                    if allowed.is_empty() {
                        "no".to_string()
                    } else {
                        allowed.join(", ")
                    }
                ),
            });
        }
    }
    let this_call = u64::try_from(total_calls.max(0))
        .unwrap_or(0)
        .saturating_add(1);
    if let Some(max_calls) = restrictions.iter().filter_map(|r| r.max_calls).min()
        && this_call > max_calls
    {
        return Err(RestrictionDenial {
            rule: "delegation:restriction:max_calls",
            reason: format!(
                "the delegation allows {max_calls} calls per session, and this session has made \
                 {}",
                total_calls.max(0)
            ),
        });
    }
    let path_globs: Vec<(&[String], GlobSet)> = restrictions
        .iter()
        .filter_map(|r| r.paths.as_deref())
        .map(|globs| (globs, glob_set(globs, false, true)))
        .collect();
    if !path_globs.is_empty() {
        for path in absolute_paths(input_summary) {
            if let Some((globs, _)) = path_globs.iter().find(|(_, set)| !set.is_match(&path)) {
                return Err(RestrictionDenial {
                    rule: "delegation:restriction:paths",
                    reason: format!(
                        "the delegation allows only the paths {}: {path} is outside them",
                        list(globs)
                    ),
                });
            }
        }
    }
    Ok(())
}

/// `["a", "b"]`, or `[]`.
fn list(items: &[String]) -> String {
    format!("{items:?}")
}

/// The globs that compile (a broken one matches nothing).
fn glob_set(patterns: &[String], case_insensitive: bool, literal_separator: bool) -> GlobSet {
    let mut builder = GlobSetBuilder::new();
    for pattern in patterns {
        if let Ok(glob) = GlobBuilder::new(pattern)
            .case_insensitive(case_insensitive)
            .literal_separator(literal_separator)
            .backslash_escape(true)
            .build()
        {
            builder.add(glob);
        }
    }
    builder.build().unwrap_or_else(|_| GlobSet::empty())
}

/// The absolute paths of an input summary, normalized (see the module docs).
pub fn absolute_paths(input_summary: &str) -> Vec<String> {
    const SEPARATORS: &[char] = &[
        '"', '\'', '`', '=', ',', ';', ':', '|', '&', '<', '>', '(', ')', '[', ']', '{', '}',
    ];
    input_summary
        .split(|c: char| c.is_whitespace() || SEPARATORS.contains(&c))
        .filter(|token| token.starts_with('/'))
        .map(|token| {
            let token = token.trim_end_matches(['!', '?']);
            // `/tmp/x.` ends a sentence; `/tmp/..` is a directory.
            let trimmed = token.trim_end_matches('.');
            let token = if trimmed.ends_with('/') || trimmed.is_empty() {
                token
            } else {
                trimmed
            };
            normalize(token)
        })
        .collect()
}

/// Resolves `.`, `..` and repeated slashes, lexically (`..` at the root stays there).
fn normalize(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|item| item.to_string()).collect()
    }

    #[test]
    fn coverage_by_resource_verb_and_name() {
        let cases = [
            ("files:read", "files_read", Effect::Read, true),
            ("files:read", "readFile", Effect::Read, true),
            ("file:read", "files.read", Effect::Read, true),
            ("files:read", "files_write", Effect::Mutating, false),
            ("files:write", "files_write", Effect::Mutating, true),
            ("files:write", "files_delete", Effect::Destructive, false),
            ("files:delete", "files_delete", Effect::Destructive, true),
            ("files:admin", "files_chmod", Effect::Admin, true),
            ("files:read", "profile_read", Effect::Read, false),
            ("*:read", "web_search", Effect::Read, true),
            ("*:read", "send_email", Effect::Mutating, false),
            ("*:*", "grant_role", Effect::Admin, true),
            ("deploy:prod", "deploy_prod", Effect::Mutating, false),
            ("deploy:prod", "deploy_status", Effect::Read, true),
            ("policies:list", "policy_list", Effect::Read, true),
            ("process:run", "list_processes", Effect::Read, true),
            ("web_search:read", "web_search", Effect::Read, true),
            ("web_search:read", "search_web", Effect::Read, false),
            (":read", "files_read", Effect::Read, false),
            ("send_email", "send_email", Effect::Mutating, true),
            ("send_email", "SEND_EMAIL", Effect::Mutating, true),
            ("send_email", "send_email_all", Effect::Mutating, false),
            ("drop_db", "drop_db", Effect::Destructive, false),
            ("*", "anything", Effect::Read, false),
        ];
        for (entry, action, effect, covered) in cases {
            assert_eq!(
                entry_covers(entry, action, effect),
                covered,
                "{entry} covers {action} ({effect})"
            );
        }
    }

    #[test]
    fn paths_are_tokens_starting_with_a_slash_resolved() {
        assert_eq!(
            absolute_paths(
                "cat /tmp/a, then 'x=/etc/passwd'; (/var/log/x) >/dev/null file:///srv/a \
                 see /tmp/b. and /tmp/../etc/shadow or /tmp/x/./y//z and /tmp/.. ok"
            ),
            [
                "/tmp/a",
                "/etc/passwd",
                "/var/log/x",
                "/dev/null",
                "/srv/a",
                "/tmp/b",
                "/etc/shadow",
                "/tmp/x/y/z",
                "/",
            ]
        );
        assert!(absolute_paths("relative/path ~/x ../etc").is_empty());
    }

    #[test]
    fn restrictions_apply_key_by_key_across_the_chain() {
        let parent = Restrictions {
            paths: Some(strings(&["/tmp/**"])),
            max_calls: Some(10),
            ..Restrictions::default()
        };
        let child = Restrictions {
            paths: Some(strings(&["/tmp/*"])),
            tools: Some(strings(&["FILES_*"])),
            effects: Some(vec![Effect::Read]),
            max_calls: Some(3),
            ..Restrictions::default()
        };
        let chain = [parent, child];
        let check = |action, effect, summary, calls| {
            check_restrictions(&chain, action, effect, summary, calls).map_err(|denial| denial.rule)
        };
        assert_eq!(check("files_read", Effect::Read, "/tmp/x", 0), Ok(()));
        assert_eq!(check("files_read", Effect::Read, "no path", 2), Ok(()));
        assert_eq!(
            check("files_read", Effect::Read, "/tmp/a/b", 0),
            Err("delegation:restriction:paths")
        );
        assert_eq!(
            check("files_read", Effect::Read, "/tmp/x /etc/passwd", 0),
            Err("delegation:restriction:paths")
        );
        assert_eq!(
            check("shell", Effect::Read, "/tmp/x", 0),
            Err("delegation:restriction:tools")
        );
        assert_eq!(
            check("files_write", Effect::Mutating, "/tmp/x", 0),
            Err("delegation:restriction:effects")
        );
        assert_eq!(
            check("files_read", Effect::Read, "/tmp/x", 3),
            Err("delegation:restriction:max_calls")
        );
        let empty = [Restrictions {
            tools: Some(Vec::new()),
            ..Restrictions::default()
        }];
        assert!(check_restrictions(&empty, "files_read", Effect::Read, "", 0).is_err());
        assert_eq!(
            check_restrictions(&[], "x", Effect::Admin, "/etc", 99),
            Ok(())
        );
    }
}
