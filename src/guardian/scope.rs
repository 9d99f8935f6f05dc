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
//! - `max_calls`: the calls allowed under the delegation in all, across every session made
//!   from it or from its descendants (this one included), counted in the delegation's row;
//! - `paths`: fails closed. Every path-like fragment of the input summary must match one of
//!   the globs (case-sensitive; `*` and `?` stop at `/`, `**` crosses directories: `/tmp/*`
//!   matches `/tmp/a` but not `/tmp/a/b`, `/tmp/**` matches both). The summary is split into
//!   tokens at whitespace, quotes, `=`, `,`, `;`, `:`, `|`, `&`, `<`, `>` and brackets; a token
//!   holding a `/` is a path: from its first `/` when what comes before is an option or a sigil
//!   (`-cf/etc/x`, `--file/etc/x`, `@/etc/passwd`), else it is a relative path. Trailing dots
//!   (`/tmp/x.` at the end of a sentence), `!` and `?` are dropped, and `.`/`..` components are
//!   resolved before matching, so `/tmp/../etc/passwd` is `/etc/passwd`. A summary that cannot
//!   be read safely is refused whole: a relative path (`a/b`, `./x`, `../etc`, a lone `..`), a
//!   home or variable reference (`~/…`, `$HOME/…`, `${X}`), a backslash, a percent-encoded
//!   byte or a control character. A summary with no path-like fragment passes (a bare file
//!   name is not seen: the tool's own working directory decides what it means).
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
/// `calls_made[i]` counts the calls already allowed under the delegation whose restrictions are
/// `restrictions[i]` (a missing entry counts as none).
pub fn check_restrictions(
    restrictions: &[Restrictions],
    calls_made: &[i64],
    action_name: &str,
    effect: Effect,
    input_summary: &str,
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
    for (index, max_calls) in restrictions
        .iter()
        .enumerate()
        .filter_map(|(index, r)| Some((index, r.max_calls?)))
    {
        let made = calls_made.get(index).copied().unwrap_or(0).max(0);
        if u64::try_from(made).unwrap_or(u64::MAX) >= max_calls {
            return Err(RestrictionDenial {
                rule: MAX_CALLS_RULE,
                reason: max_calls_reason(max_calls, made),
            });
        }
    }
    let path_globs: Vec<(&[String], GlobSet)> = restrictions
        .iter()
        .filter_map(|r| r.paths.as_deref())
        .map(|globs| (globs, glob_set(globs, false, true)))
        .collect();
    if !path_globs.is_empty() {
        let paths = paths_in(input_summary).map_err(|why| RestrictionDenial {
            rule: "delegation:restriction:paths",
            reason: format!(
                "the delegation allows only the paths {}, and the input cannot be read safely: \
                 {why}",
                list(path_globs[0].0)
            ),
        })?;
        for path in paths {
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

/// The rule of a call refused because a delegation's `max_calls` is used up.
pub const MAX_CALLS_RULE: &str = "delegation:restriction:max_calls";

/// Why a call is refused when a delegation allowing `max_calls` calls has had `made`.
pub fn max_calls_reason(max_calls: u64, made: i64) -> String {
    format!(
        "the delegation allows {max_calls} calls in all, across its sessions, and {made} have \
         been made"
    )
}

/// The paths of an input summary, normalized, or why the summary cannot be read safely (see
/// the module docs).
pub fn paths_in(input_summary: &str) -> Result<Vec<String>, String> {
    const SEPARATORS: &[char] = &[
        '"', '\'', '`', '=', ',', ';', ':', '|', '&', '<', '>', '(', ')', '[', ']', '{', '}',
    ];
    if let Some(character) = input_summary.chars().find(|c| c.is_control()) {
        return Err(format!(
            "it contains the control character U+{:04X}",
            u32::from(character)
        ));
    }
    if input_summary.contains('\\') {
        return Err("it contains a backslash".to_string());
    }
    if let Some(encoded) = percent_encoded(input_summary) {
        return Err(format!("it contains the percent-encoded byte {encoded}"));
    }
    let mut paths = Vec::new();
    for token in input_summary
        .split(|c: char| c.is_whitespace() || SEPARATORS.contains(&c))
        .filter(|token| !token.is_empty())
    {
        if token.starts_with('~') {
            return Err(format!("{token} is relative to a home directory"));
        }
        if token.contains('$') {
            return Err(format!("{token} refers to a variable"));
        }
        if token == ".." {
            return Err("it refers to a parent directory (..)".to_string());
        }
        let Some(slash) = token.find('/') else {
            continue;
        };
        let prefix = &token[..slash];
        if !(prefix.is_empty() || is_option_or_sigil(prefix)) {
            return Err(format!("{token} is a relative path"));
        }
        let token = token[slash..].trim_end_matches(['!', '?']);
        // `/tmp/x.` ends a sentence; `/tmp/..` is a directory.
        let trimmed = token.trim_end_matches('.');
        let token = if trimmed.ends_with('/') || trimmed.is_empty() {
            token
        } else {
            trimmed
        };
        paths.push(normalize(token));
    }
    Ok(paths)
}

/// `-cf`, `--file`, `@` or `+`: what may stand before an absolute path in one token.
fn is_option_or_sigil(prefix: &str) -> bool {
    match prefix {
        "@" | "+" => true,
        _ => prefix.strip_prefix('-').is_some_and(|rest| {
            rest.trim_start_matches('-')
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        }),
    }
}

/// The first `%XX` (two hex digits) of the text, if any.
fn percent_encoded(text: &str) -> Option<&str> {
    text.match_indices('%').find_map(|(index, _)| {
        let encoded = text.get(index..index + 3)?;
        encoded[1..]
            .chars()
            .all(|c| c.is_ascii_hexdigit())
            .then_some(encoded)
    })
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
    fn paths_are_found_anywhere_in_a_token_and_resolved() {
        assert_eq!(
            paths_in(
                "cat /tmp/a, then 'x=/etc/passwd'; (/var/log/x) >/dev/null file:///srv/a \
                 see /tmp/b. and /tmp/../etc/shadow or /tmp/x/./y//z and /tmp/.. ok \
                 -d @/etc/hosts -cf/etc/cron.d/x --file/srv/b"
            )
            .unwrap(),
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
                "/etc/hosts",
                "/etc/cron.d/x",
                "/srv/b",
            ]
        );
        assert_eq!(
            paths_in("list the files please").unwrap(),
            Vec::<String>::new()
        );
    }

    #[test]
    fn what_cannot_be_read_safely_is_refused() {
        for summary in [
            "cat relative/path",
            "cat ./x",
            "cat ../etc/passwd",
            "cd .. && cat passwd",
            "cat ~/.ssh/id_rsa",
            "cat ~root/.ssh/id_rsa",
            "cat $HOME/.ssh/id_rsa",
            "cat ${HOME}/x",
            "cat $(pwd)/x",
            "type C:\\Windows\\win.ini",
            "cat /tmp/%2e%2e/etc/passwd",
            "cat /tmp/a\u{7}",
        ] {
            assert!(paths_in(summary).is_err(), "{summary:?} must be refused");
        }
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
        // The child's calls count in the parent too: the parent's budget covers its subtree.
        let check = |action, effect, summary, calls: i64| {
            check_restrictions(&chain, &[calls, calls], action, effect, summary)
                .map_err(|denial| denial.rule)
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
        // The parent's budget binds even when the child's own is not used up.
        assert_eq!(
            check_restrictions(&chain, &[10, 0], "files_read", Effect::Read, "/tmp/x")
                .map_err(|denial| denial.rule),
            Err("delegation:restriction:max_calls")
        );
        let empty = [Restrictions {
            tools: Some(Vec::new()),
            ..Restrictions::default()
        }];
        assert!(check_restrictions(&empty, &[], "files_read", Effect::Read, "").is_err());
        assert_eq!(
            check_restrictions(&[], &[], "x", Effect::Admin, "/etc"),
            Ok(())
        );
    }
}
