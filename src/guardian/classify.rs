//! Effect classification: what a tool call does to the world, from its name and input summary,
//! when the caller does not say. The most dangerous signal wins; an unknown verb counts as
//! mutating (it may change something) with low confidence.

use crate::api::actions::Effect;

/// A classified effect and how sure we are of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Classification {
    pub effect: Effect,
    pub confidence: f64,
    /// Why, in words (`"delete" in the action name`).
    pub evidence: String,
}

/// Confidence of an effect the caller stated.
pub const EXPLICIT_CONFIDENCE: f64 = 1.0;
const NAME_CONFIDENCE: f64 = 0.9;
const SUMMARY_CONFIDENCE: f64 = 0.85;
const UNKNOWN_CONFIDENCE: f64 = 0.5;

/// Words in an action name, by the effect they signal.
const ADMIN_WORDS: &[&str] = &[
    "admin",
    "grant",
    "sudo",
    "chmod",
    "chown",
    "privilege",
    "privileges",
    "escalate",
    "elevate",
    "impersonate",
    "permission",
    "permissions",
    "role",
    "roles",
    "superuser",
    "root",
    "passwd",
    "useradd",
    "usermod",
    "setuid",
    "policy",
    "iam",
];
const DESTRUCTIVE_WORDS: &[&str] = &[
    "delete",
    "remove",
    "rm",
    "rmdir",
    "drop",
    "destroy",
    "truncate",
    "wipe",
    "purge",
    "erase",
    "kill",
    "terminate",
    "shred",
    "mkfs",
    "uninstall",
    "revoke",
    "reset",
    "overwrite",
    "unlink",
    "nuke",
];
const MUTATING_WORDS: &[&str] = &[
    "write", "create", "update", "send", "post", "put", "patch", "edit", "modify", "insert",
    "upload", "commit", "push", "deploy", "execute", "exec", "run", "set", "add", "move", "mv",
    "rename", "copy", "cp", "email", "mail", "message", "pay", "transfer", "publish", "save",
    "store", "append", "install", "submit", "book", "order", "invite", "merge", "apply", "start",
    "stop", "restart", "schedule", "reply", "comment", "tweet", "sms", "call", "shell", "bash",
];
const READ_WORDS: &[&str] = &[
    "read",
    "get",
    "list",
    "search",
    "fetch",
    "query",
    "find",
    "view",
    "show",
    "lookup",
    "look",
    "describe",
    "browse",
    "download",
    "cat",
    "ls",
    "head",
    "tail",
    "grep",
    "status",
    "check",
    "inspect",
    "retrieve",
    "load",
    "open",
    "scan",
    "count",
    "stat",
    "info",
    "summarize",
    "summarise",
    "analyze",
    "analyse",
    "explain",
    "translate",
    "calculate",
    "weather",
    "news",
    "wiki",
    "web",
];

/// Phrases in an input summary that make a call more dangerous than its name says.
const DESTRUCTIVE_PHRASES: &[&str] = &[
    "rm -rf",
    "rm -fr",
    "rm -r ",
    "drop table",
    "drop database",
    "drop schema",
    "truncate table",
    "delete from",
    "delete everything",
    "delete all",
    "remove everything",
    "remove all",
    "wipe",
    "mkfs",
    "dd if=",
    "format c:",
    ":(){",
    "> /dev/sd",
    "git push --force",
    "git push -f",
    "--no-preserve-root",
];
const ADMIN_PHRASES: &[&str] = &[
    "sudo ",
    "chmod ",
    "chown ",
    "grant ",
    "setfacl",
    "usermod",
    "visudo",
    "/etc/sudoers",
    "alter role",
    "create role",
    "superuser",
];

/// Classifies a call from its action name and input summary.
pub fn classify(action_name: &str, input_summary: &str) -> Classification {
    let words = split_words(action_name);
    let from_name = [
        (Effect::Admin, ADMIN_WORDS),
        (Effect::Destructive, DESTRUCTIVE_WORDS),
        (Effect::Mutating, MUTATING_WORDS),
        (Effect::Read, READ_WORDS),
    ]
    .into_iter()
    .find_map(|(effect, vocabulary)| {
        words
            .iter()
            .find(|word| vocabulary.contains(&word.as_str()))
            .map(|word| (effect, format!("{word:?} in the action name")))
    });

    let summary = input_summary.to_lowercase();
    let from_summary = [
        (Effect::Admin, ADMIN_PHRASES),
        (Effect::Destructive, DESTRUCTIVE_PHRASES),
    ]
    .into_iter()
    .find_map(|(effect, phrases)| {
        phrases
            .iter()
            .find(|phrase| summary.contains(*phrase))
            .map(|phrase| (effect, format!("{:?} in the input", phrase.trim())))
    });

    match (from_name, from_summary) {
        (Some((name_effect, name_evidence)), Some((summary_effect, summary_evidence))) => {
            if summary_effect > name_effect {
                Classification {
                    effect: summary_effect,
                    confidence: SUMMARY_CONFIDENCE,
                    evidence: summary_evidence,
                }
            } else {
                Classification {
                    effect: name_effect,
                    confidence: NAME_CONFIDENCE,
                    evidence: name_evidence,
                }
            }
        }
        (Some((effect, evidence)), None) => Classification {
            effect,
            confidence: NAME_CONFIDENCE,
            evidence,
        },
        (None, Some((effect, evidence))) => Classification {
            effect,
            confidence: SUMMARY_CONFIDENCE,
            evidence,
        },
        (None, None) => Classification {
            effect: Effect::Mutating,
            confidence: UNKNOWN_CONFIDENCE,
            evidence: "no known verb in the action name; treated as mutating".to_string(),
        },
    }
}

/// Splits `web_search`, `deleteAll`, `files.read` or `send-email` into lowercase words.
pub(crate) fn split_words(name: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut previous_lower = false;
    for character in name.chars() {
        if !character.is_alphanumeric() {
            if !current.is_empty() {
                words.push(std::mem::take(&mut current));
            }
            previous_lower = false;
            continue;
        }
        if character.is_uppercase() && previous_lower && !current.is_empty() {
            words.push(std::mem::take(&mut current));
        }
        previous_lower = character.is_lowercase() || character.is_numeric();
        current.extend(character.to_lowercase());
    }
    if !current.is_empty() {
        words.push(current);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_every_naming_style() {
        assert_eq!(split_words("web_search"), ["web", "search"]);
        assert_eq!(split_words("deleteAll"), ["delete", "all"]);
        assert_eq!(split_words("files.read"), ["files", "read"]);
        assert_eq!(split_words("send-email"), ["send", "email"]);
        assert_eq!(split_words("HTTPGet"), ["httpget"]);
    }

    #[test]
    fn classifies_the_documented_examples() {
        let cases = [
            ("web_search", "AI news", Effect::Read),
            ("send_email", "to bob", Effect::Mutating),
            ("delete_all", "delete everything", Effect::Destructive),
            ("shell", "rm -rf /", Effect::Destructive),
            ("sql", "DROP TABLE users", Effect::Destructive),
            ("grant_access", "", Effect::Admin),
            ("shell", "sudo reboot", Effect::Admin),
            ("chmod", "777 /etc", Effect::Admin),
            ("frobnicate", "", Effect::Mutating),
            ("read_file", "cat notes.txt", Effect::Read),
        ];
        for (name, summary, effect) in cases {
            assert_eq!(classify(name, summary).effect, effect, "{name} {summary:?}");
        }
    }

    #[test]
    fn the_input_can_only_raise_the_effect() {
        let classification = classify("delete_file", "ls /tmp");
        assert_eq!(classification.effect, Effect::Destructive);
        assert_eq!(classification.confidence, NAME_CONFIDENCE);
        let escalated = classify("web_search", "delete everything");
        assert_eq!(escalated.effect, Effect::Destructive);
        assert_eq!(escalated.confidence, SUMMARY_CONFIDENCE);
    }

    #[test]
    fn unknown_verbs_are_mutating_with_low_confidence() {
        let classification = classify("frobnicate", "");
        assert_eq!(classification.effect, Effect::Mutating);
        assert!(classification.confidence < NAME_CONFIDENCE);
    }
}
