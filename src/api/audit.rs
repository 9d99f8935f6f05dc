//! The audit log (our extension): `GET /api/v1/audit/events` pages through an org's hash-chained
//! events in chain order (filtered by kind, agent, subject and time), `…/events/{id}` reads one,
//! `GET /api/v1/audit/stream` follows the chain live (Server-Sent Events), `GET
//! /api/v1/audit/verify` walks the chain (or a range of it) and says whether it is intact and,
//! when not, where it breaks, and `…/checkpoints` are the chain heads the gateway signed. Also
//! the hash every event carries ([`chain_hash`]) and the export file's lines
//! ([`ExportLine`]): both are contracts a verifier without the gateway relies on.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Extra, empty_as_none};

/// The chain's first `prev_hash`.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The `typ` header of a signed checkpoint: a checkpoint cannot pass for an ID token the same
/// key signs, nor the other way round.
pub const CHECKPOINT_TYPE: &str = "agenttrust-audit-checkpoint+jwt";

/// The fields an event's hash covers, as stored: `detail` is the event's detail as compact JSON
/// text with object keys sorted (what `serde_json` writes for a parsed value), `created_at`
/// unix seconds.
#[derive(Debug, Clone, Copy)]
pub struct HashedFields<'a> {
    pub seq: i64,
    pub id: &'a str,
    pub kind: &'a str,
    pub actor: &'a str,
    pub subject_type: &'a str,
    pub subject_id: &'a str,
    pub detail: &'a str,
    pub created_at: i64,
}

/// The digest that links an event to its predecessor: SHA-256, in lowercase hex, over
/// `prev_hash`, then each field of [`HashedFields`] in its order (integers in decimal), each part
/// followed by the byte 0xFF (which no UTF-8 text contains, so field boundaries are unambiguous).
pub fn chain_hash(prev_hash: &str, fields: &HashedFields<'_>) -> String {
    let mut hasher = Sha256::new();
    for part in [
        prev_hash,
        &fields.seq.to_string(),
        fields.id,
        fields.kind,
        fields.actor,
        fields.subject_type,
        fields.subject_id,
        fields.detail,
        &fields.created_at.to_string(),
    ] {
        hasher.update(part.as_bytes());
        hasher.update([0xff]);
    }
    hex::encode(hasher.finalize())
}

/// The agent an event concerns, from its hashed fields: the subject when it is an agent, else
/// the detail's `agent_id`, else the acting agent. The store keeps it beside the event (the
/// index of `?agent_id=`), and verification recomputes it, so editing it is caught too.
pub fn event_agent(subject_type: &str, subject_id: &str, actor: &str, detail: &str) -> String {
    let parsed = (subject_type != "agent")
        .then(|| serde_json::from_str(detail).ok())
        .flatten();
    event_agent_of(subject_type, subject_id, actor, parsed.as_ref())
}

/// [`event_agent`] with the detail already parsed (an append has the value in hand: parsing its
/// text again would cost every check a JSON parse).
pub fn event_agent_of(
    subject_type: &str,
    subject_id: &str,
    actor: &str,
    detail: Option<&serde_json::Value>,
) -> String {
    if subject_type == "agent" {
        return subject_id.to_string();
    }
    if let Some(serde_json::Value::String(agent)) = detail.and_then(|detail| detail.get("agent_id"))
    {
        return agent.clone();
    }
    actor.strip_prefix("agent:").unwrap_or_default().to_string()
}

/// An event's detail as the text its hash covers (see [`HashedFields`]).
pub fn detail_text(detail: &serde_json::Value) -> String {
    serde_json::to_string(detail).unwrap_or_else(|_| "null".to_string())
}

/// Page size of the event listing when the caller names none, and the most it may ask for.
pub const DEFAULT_PAGE_SIZE: u32 = 100;
pub const MAX_PAGE_SIZE: u32 = 1000;

/// One event of the chain. `hash` covers `prev_hash` and every other field, so a change to any
/// of them is detectable.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditEvent {
    pub id: String,
    #[serde(default)]
    pub org_id: String,
    /// Position in the org's chain, from 1.
    pub seq: i64,
    /// `agent.created`, `token.revoked`, `check.decided`, …
    pub kind: String,
    /// `key:<id>`, `agent:<id>` or `operator`.
    pub actor: String,
    pub subject_type: String,
    pub subject_id: String,
    /// What changed (ids and digests only: secrets never enter the log).
    #[serde(default)]
    pub detail: serde_json::Value,
    pub created_at: String,
    pub prev_hash: String,
    pub hash: String,
    #[serde(flatten, default, skip_serializing_if = "Extra::is_empty")]
    pub extra: Extra,
}

impl AuditEvent {
    /// The fields this event's hash covers, with `detail` as its hashed text and `created_at` in
    /// unix seconds; `None` when `created_at` is not a timestamp.
    pub fn hashed_text(&self) -> Option<(String, i64)> {
        let created_at = super::time::parse(&self.created_at)?;
        Some((detail_text(&self.detail), created_at))
    }

    /// Whether `hash` is what this event's fields and `prev_hash` hash to.
    pub fn hash_matches(&self) -> bool {
        let Some((detail, created_at)) = self.hashed_text() else {
            return false;
        };
        let fields = HashedFields {
            seq: self.seq,
            id: &self.id,
            kind: &self.kind,
            actor: &self.actor,
            subject_type: &self.subject_type,
            subject_id: &self.subject_id,
            detail: &detail,
            created_at,
        };
        chain_hash(&self.prev_hash, &fields) == self.hash
    }
}

/// Query of `GET /api/v1/audit/events` and `GET /api/v1/audit/stream`. Filters combine with
/// "and"; `kind` is a comma-separated list of kinds, each exact (`check.decided`) or a prefix
/// (`federation.*`).
#[serde_with::apply(
    Option<String> => #[serde(default, deserialize_with = "empty_as_none", skip_serializing_if = "Option::is_none")],
)]
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AuditEventQuery {
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    pub kind: Option<String>,
    /// Events concerning this agent (its subject, its `agent_id`, or its actor).
    pub agent_id: Option<String>,
    /// `TYPE` or `TYPE:ID` (`agent:agt_…`, `check`).
    pub subject: Option<String>,
    /// Events created at or after this RFC 3339 time.
    pub since: Option<String>,
    /// Events created at or before this RFC 3339 time.
    pub until: Option<String>,
    /// Events after this sequence number (the stream's start when no `Last-Event-ID` is sent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_seq: Option<i64>,
    /// `asc` (the default: oldest first, the cursor is the last event seen) or `desc` (newest
    /// first, the cursor is the last, oldest, event seen).
    pub order: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditEventPage {
    pub events: Vec<AuditEvent>,
    /// Present when more events follow; pass it back as `cursor`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
    #[serde(flatten, default, skip_serializing_if = "Extra::is_empty")]
    pub extra: Extra,
}

/// Query of `GET /api/v1/audit/verify`: the whole chain by default, or the events from
/// `from_seq` (linked to the stored hash of the event before it) to `to_seq`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AuditVerifyQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_seq: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_seq: Option<i64>,
}

/// The answer of `GET /api/v1/audit/verify`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditVerification {
    /// True when every event links to its predecessor, every signed checkpoint in the range
    /// matches its event and its signature, and (for a range reaching the head) the chain ends
    /// at its recorded head.
    pub valid: bool,
    /// Events found intact before the walk stopped (all of them when `valid`).
    #[serde(default)]
    pub events_checked: u64,
    /// Signed checkpoints found matching before the walk stopped.
    #[serde(default)]
    pub checkpoints_checked: u64,
    /// The range walked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_seq: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_seq: Option<i64>,
    /// The id of the first event that does not link (absent for a missing event).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_broken_event: Option<String>,
    /// The sequence number where the chain breaks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_broken_seq: Option<i64>,
    /// Why the chain breaks there, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(flatten, default, skip_serializing_if = "Extra::is_empty")]
    pub extra: Extra,
}

/// A signed chain head: at `created_at`, the org's chain had `seq` events and the last one's
/// hash was `hash`. `signature` is a compact JWS (ES256, `typ` [`CHECKPOINT_TYPE`], `kid` one of
/// the gateway's signing keys) over [`CheckpointClaims`]: whoever holds the gateway's public key
/// can check that no event up to `seq` was changed since, even by someone who can write the
/// database (but not read the key-encryption key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditCheckpoint {
    pub org_id: String,
    pub seq: i64,
    pub hash: String,
    pub created_at: String,
    pub key_id: String,
    pub signature: String,
}

/// What a checkpoint's signature covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointClaims {
    /// The gateway's URL (its issuer name).
    pub iss: String,
    pub org_id: String,
    pub seq: i64,
    pub hash: String,
    /// Unix seconds.
    pub iat: i64,
}

/// Query of `GET /api/v1/audit/checkpoints`: oldest first, from `after_seq`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AuditCheckpointQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_seq: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditCheckpointPage {
    pub checkpoints: Vec<AuditCheckpoint>,
    /// Present when more follow: pass it back as `after_seq`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_after_seq: Option<i64>,
    #[serde(flatten, default, skip_serializing_if = "Extra::is_empty")]
    pub extra: Extra,
}

/// One line of an export file (`agenttrust audit export`, JSON Lines): a header first, then the
/// events in chain order, then the signed checkpoints that fall in their range; the last event
/// is always a checkpointed one, so the whole file can be verified offline.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExportLine {
    Header(ExportHeader),
    Event(AuditEvent),
    Checkpoint(AuditCheckpoint),
}

/// The first line of an export file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExportHeader {
    /// [`EXPORT_FORMAT`].
    pub format: String,
    pub org_id: String,
    /// The gateway the events came from.
    pub gateway: String,
    pub exported_at: String,
}

/// The `format` of an export file's header.
pub const EXPORT_FORMAT: &str = "agenttrust-audit-export/v1";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_parsed_detail_writes_back_to_the_text_that_was_hashed() {
        // The hash covers the stored text; an export carries the parsed object. The two agree
        // only while serde_json writes object keys sorted (no `preserve_order` feature): this
        // test fails the day a dependency turns it on.
        let stored =
            detail_text(&serde_json::json!({"zeta": 1, "alpha": [1.5, "x\u{e9}"], "m": null}));
        let parsed: serde_json::Value = serde_json::from_str(&stored).unwrap();
        assert_eq!(detail_text(&parsed), stored);
        assert!(stored.starts_with("{\"alpha\""), "{stored}");
    }

    #[test]
    fn the_agent_of_an_event_comes_from_its_hashed_fields() {
        assert_eq!(event_agent("agent", "a1", "key:k", "{}"), "a1");
        assert_eq!(
            event_agent("check", "c1", "key:k", r#"{"agent_id":"a2"}"#),
            "a2"
        );
        assert_eq!(event_agent("check", "c1", "agent:a3", "{}"), "a3");
        assert_eq!(event_agent("policy", "p", "key:k", "{}"), "");
    }
}
