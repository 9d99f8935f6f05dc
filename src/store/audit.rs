//! The audit log: append-only, hash-chained per org. Each event's `hash` covers the previous
//! event's hash and the event itself, so rewriting or dropping a past event breaks every later
//! link. Events are appended inside the transaction of the change they describe. Secrets never
//! enter it: callers pass ids and digests only.

use std::collections::BTreeMap;

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::script::{self, Script};
use super::{Error, Result, Store, Tx, new_id, on_db, on_tx, to_json_text};

/// The chain's first `prev_hash`.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Who did it: `key:<id>`, `agent:<id>` or `operator` (the `agenttrust server` subcommands).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor(pub String);

impl Actor {
    pub fn operator() -> Actor {
        Actor("operator".to_string())
    }
}

/// One event to append.
#[derive(Debug, Clone)]
pub struct NewEvent<'a> {
    pub org_id: &'a str,
    /// `agent.created`, `token.revoked`, `check.decided`, …
    pub kind: &'a str,
    pub actor: &'a Actor,
    pub subject_type: &'a str,
    pub subject_id: &'a str,
    pub detail: Value,
    pub created_at: i64,
}

/// A stored event.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EventRow {
    pub org_id: String,
    pub seq: i64,
    pub id: String,
    pub kind: String,
    pub actor: String,
    pub subject_type: String,
    pub subject_id: String,
    pub detail: String,
    pub created_at: i64,
    pub prev_hash: String,
    pub hash: String,
}

/// The digest that links an event to its predecessor.
pub fn chain_hash(prev_hash: &str, event: &EventRow) -> String {
    let mut hasher = Sha256::new();
    for part in [
        prev_hash,
        &event.seq.to_string(),
        &event.id,
        &event.kind,
        &event.actor,
        &event.subject_type,
        &event.subject_id,
        &event.detail,
        &event.created_at.to_string(),
    ] {
        hasher.update(part.as_bytes());
        // A separator that cannot occur inside the parts' UTF-8 keeps field boundaries unambiguous.
        hasher.update([0xff]);
    }
    hex::encode(hasher.finalize())
}

/// Starts an org's chain; called once, when the org is created.
pub async fn start_chain(tx: &mut Tx, org_id: &str) -> Result<()> {
    const SQL: &str = "INSERT INTO audit_heads (org_id, last_seq, last_hash) VALUES ($1, 0, $2)";
    on_tx!(tx, |conn| {
        sqlx::query(SQL)
            .bind(org_id)
            .bind(GENESIS_HASH)
            .execute(&mut *conn)
            .await?;
    });
    Ok(())
}

/// Events appended in a transaction, in order, not yet chained (see [`crate::store::Tx`]).
#[derive(Debug, Default)]
pub struct Pending {
    events: Vec<EventRow>,
}

/// Appends `event` to its org's chain inside `tx`. The event gets its place in the chain (its
/// `seq`, `prev_hash` and `hash`) when the transaction commits, after every event appended
/// before it in the same transaction.
pub async fn append(tx: &mut Tx, event: NewEvent<'_>) -> Result<()> {
    tx.audit_pending().events.push(EventRow {
        org_id: event.org_id.to_string(),
        seq: 0,
        id: new_id(),
        kind: event.kind.to_string(),
        actor: event.actor.0.clone(),
        subject_type: event.subject_type.to_string(),
        subject_id: event.subject_id.to_string(),
        detail: to_json_text(&event.detail),
        created_at: event.created_at,
        prev_hash: String::new(),
        hash: String::new(),
    });
    Ok(())
}

/// Most events one INSERT carries (11 parameters each: far below either backend's limit).
const INSERT_CHUNK: usize = 256;

/// Chains `pending` inside `tx`, org by org in the order of their ids (one lock order for every
/// transaction), and adds its writes to `writes`, which the caller runs next. Per org: one
/// statement, run here, takes the head and reserves the sequence numbers — on PostgreSQL the
/// `UPDATE` holds the org's head row until commit, so two replicas never link to the same
/// predecessor — then, in `writes`, one INSERT per [`INSERT_CHUNK`] events and the new head
/// hash.
pub(crate) async fn flush(tx: &mut Tx, pending: Pending, writes: &mut Script) -> Result<()> {
    const RESERVE: &str = "UPDATE audit_heads SET last_seq = last_seq + $2 WHERE org_id = $1 \
                           RETURNING last_seq, last_hash";
    const SET_HASH: &str = "UPDATE audit_heads SET last_hash = $2 WHERE org_id = $1";
    if pending.events.is_empty() {
        return Ok(());
    }
    let mut by_org: BTreeMap<String, Vec<EventRow>> = BTreeMap::new();
    for event in pending.events {
        by_org.entry(event.org_id.clone()).or_default().push(event);
    }
    for (org_id, mut events) in by_org {
        let count = i64::try_from(events.len()).unwrap_or(i64::MAX);
        let (last_seq, mut prev_hash): (i64, String) = on_tx!(tx, |conn| sqlx::query_as(RESERVE)
            .bind(&org_id)
            .bind(count)
            .fetch_optional(&mut *conn)
            .await?)
        .ok_or_else(|| Error::Corrupt(format!("org {org_id} has no audit chain")))?;
        let first_seq = last_seq - count + 1;
        for (offset, event) in events.iter_mut().enumerate() {
            event.seq = first_seq + i64::try_from(offset).unwrap_or(i64::MAX);
            event.prev_hash = prev_hash;
            event.hash = chain_hash(&event.prev_hash, event);
            prev_hash = event.hash.clone();
        }
        while !events.is_empty() {
            let rest = events.split_off(events.len().min(INSERT_CHUNK));
            let chunk = std::mem::replace(&mut events, rest);
            writes.push(
                format!(
                    "INSERT INTO audit_events ({EVENT_COLUMNS}) VALUES {}",
                    super::values_placeholders(chunk.len(), 11)
                ),
                chunk.into_iter().flat_map(event_values).collect(),
            );
        }
        writes.push(
            SET_HASH,
            vec![script::Value::Text(org_id), script::Value::Text(prev_hash)],
        );
    }
    Ok(())
}

/// A chained event's values, in the order of [`EVENT_COLUMNS`].
fn event_values(event: EventRow) -> [script::Value; 11] {
    [
        script::Value::Text(event.org_id),
        script::Value::Integer(event.seq),
        script::Value::Text(event.id),
        script::Value::Text(event.kind),
        script::Value::Text(event.actor),
        script::Value::Text(event.subject_type),
        script::Value::Text(event.subject_id),
        script::Value::Text(event.detail),
        script::Value::Integer(event.created_at),
        script::Value::Text(event.prev_hash),
        script::Value::Text(event.hash),
    ]
}

pub(crate) const EVENT_COLUMNS: &str = "org_id, seq, id, kind, actor, subject_type, subject_id, detail, \
                             created_at, prev_hash, hash";

/// An org's events in chain order, oldest first (the whole chain: for tests and small orgs;
/// [`page`] is the bounded read).
pub async fn list(store: &Store, org_id: &str) -> Result<Vec<EventRow>> {
    let sql = format!("SELECT {EVENT_COLUMNS} FROM audit_events WHERE org_id = $1 ORDER BY seq");
    Ok(on_db!(store, |pool| sqlx::query_as::<_, EventRow>(&sql)
        .bind(org_id)
        .fetch_all(pool)
        .await?))
}

/// Up to `limit` events of the org with `after_seq < seq <= until_seq`, in chain order: one
/// range scan of the primary key `(org_id, seq)`.
pub async fn page(
    store: &Store,
    org_id: &str,
    after_seq: i64,
    until_seq: i64,
    limit: u32,
) -> Result<Vec<EventRow>> {
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM audit_events \
         WHERE org_id = $1 AND seq > $2 AND seq <= $3 ORDER BY seq LIMIT $4"
    );
    Ok(on_db!(store, |pool| sqlx::query_as::<_, EventRow>(&sql)
        .bind(org_id)
        .bind(after_seq)
        .bind(until_seq)
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?))
}

/// The head of an org's chain: the last sequence number and hash appended. `None` when the org
/// has no chain (no such org).
pub async fn head(store: &Store, org_id: &str) -> Result<Option<(i64, String)>> {
    const SQL: &str = "SELECT last_seq, last_hash FROM audit_heads WHERE org_id = $1";
    Ok(on_db!(store, |pool| sqlx::query_as(SQL)
        .bind(org_id)
        .fetch_optional(pool)
        .await?))
}

/// Where and why a chain stops linking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Break {
    /// The sequence number where the chain breaks (the first missing one, for a gap).
    pub seq: i64,
    /// The event found there, when there is one (a missing event has none).
    pub event_id: Option<String>,
    pub kind: Option<String>,
    pub reason: String,
}

/// The outcome of walking a chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    /// Events read and found linked before the walk stopped.
    pub events_checked: u64,
    /// `None` when the whole chain, up to the head read at the start, is intact.
    pub broken: Option<Break>,
}

/// Events read per query while verifying: memory stays bounded whatever the chain's length.
pub const VERIFY_PAGE_SIZE: u32 = 500;

/// Walks an org's chain from the genesis to the head read at the start, `page_size` events at a
/// time, and stops at the first event that does not link: a missing sequence number, a
/// `prev_hash` that is not its predecessor's hash, content that does not hash to its `hash`, or
/// a head that names a sequence number or hash the events do not end with (a dropped tail).
/// Events appended during the walk are beyond the head read first, so they are not judged.
pub async fn verify_chain(store: &Store, org_id: &str, page_size: u32) -> Result<Verification> {
    let Some((head_seq, head_hash)) = head(store, org_id).await? else {
        return Err(Error::Corrupt(format!("org {org_id} has no audit chain")));
    };
    let page_size = page_size.max(1);
    let mut prev_hash = GENESIS_HASH.to_string();
    let mut last_seq = 0;
    let mut checked: u64 = 0;
    let broken = |seq: i64, event: Option<&EventRow>, reason: String| Break {
        seq,
        event_id: event.map(|event| event.id.clone()),
        kind: event.map(|event| event.kind.clone()),
        reason,
    };
    loop {
        let events = page(store, org_id, last_seq, head_seq, page_size).await?;
        let Some(last) = events.last() else {
            break;
        };
        let next_after = last.seq;
        for event in &events {
            let expected_seq = last_seq + 1;
            let problem = if event.seq != expected_seq {
                Some(broken(
                    expected_seq,
                    None,
                    format!(
                        "event {expected_seq} is missing: the chain goes from event {last_seq} \
                         to event {} ({})",
                        event.seq, event.id
                    ),
                ))
            } else if event.prev_hash != prev_hash {
                Some(broken(
                    event.seq,
                    Some(event),
                    format!(
                        "event {} ({}) does not link to its predecessor: its prev_hash is not \
                         the hash of event {last_seq}",
                        event.seq, event.id
                    ),
                ))
            } else if chain_hash(&prev_hash, event) != event.hash {
                Some(broken(
                    event.seq,
                    Some(event),
                    format!(
                        "event {} ({}) was modified: its content does not match its hash",
                        event.seq, event.id
                    ),
                ))
            } else {
                None
            };
            if let Some(problem) = problem {
                return Ok(Verification {
                    events_checked: checked,
                    broken: Some(problem),
                });
            }
            checked += 1;
            last_seq = event.seq;
            prev_hash = event.hash.clone();
        }
        if next_after >= head_seq {
            break;
        }
    }
    let tail_problem = if last_seq != head_seq {
        Some(broken(
            last_seq + 1,
            None,
            format!(
                "the chain ends at event {last_seq} but its head says {head_seq} events were \
                 appended: event {} onwards is missing",
                last_seq + 1
            ),
        ))
    } else if prev_hash != head_hash {
        Some(broken(
            last_seq,
            None,
            format!("event {last_seq}'s hash is not the hash the chain's head recorded"),
        ))
    } else {
        None
    };
    Ok(Verification {
        events_checked: checked,
        broken: tail_problem,
    })
}

/// Walks an org's chain and returns the sequence number of the first event that does not link,
/// or `None` when the whole chain is intact.
pub async fn verify(store: &Store, org_id: &str) -> Result<Option<i64>> {
    let verification = verify_chain(store, org_id, VERIFY_PAGE_SIZE).await?;
    Ok(verification.broken.map(|broken| broken.seq))
}
