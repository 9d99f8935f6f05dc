//! The audit log: append-only, hash-chained per org. Each event's `hash` covers the previous
//! event's hash and the event itself, so rewriting or dropping a past event breaks every later
//! link. Events are appended inside the transaction of the change they describe. Secrets never
//! enter it: callers pass ids and digests only.

use std::collections::BTreeMap;

use serde_json::Value;

use super::script::{self, Script};
use super::{Error, Result, Store, Tx, new_id, on_db, on_tx, to_json_text};
pub use crate::api::audit::GENESIS_HASH;
use crate::api::audit::{HashedFields, event_agent, event_agent_of};

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
    /// The agent the event concerns ([`event_agent`]; `""` for none): not hashed, derived from
    /// what is, and checked by [`verify_chain`].
    pub agent_id: Option<String>,
}

impl EventRow {
    fn hashed(&self) -> HashedFields<'_> {
        HashedFields {
            seq: self.seq,
            id: &self.id,
            kind: &self.kind,
            actor: &self.actor,
            subject_type: &self.subject_type,
            subject_id: &self.subject_id,
            detail: &self.detail,
            created_at: self.created_at,
        }
    }

    /// The agent this event concerns, from its hashed fields.
    fn derived_agent(&self) -> String {
        event_agent(
            &self.subject_type,
            &self.subject_id,
            &self.actor,
            &self.detail,
        )
    }
}

/// The digest that links an event to its predecessor ([`crate::api::audit::chain_hash`]).
pub fn chain_hash(prev_hash: &str, event: &EventRow) -> String {
    crate::api::audit::chain_hash(prev_hash, &event.hashed())
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

impl Pending {
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

/// Appends `event` to its org's chain inside `tx`. The event gets its place in the chain (its
/// `seq`, `prev_hash` and `hash`) when the transaction commits, after every event appended
/// before it in the same transaction.
pub async fn append(tx: &mut Tx, event: NewEvent<'_>) -> Result<()> {
    let mut row = EventRow {
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
        agent_id: None,
    };
    row.agent_id = Some(event_agent_of(
        &row.subject_type,
        &row.subject_id,
        &row.actor,
        Some(&event.detail),
    ));
    tx.audit_pending().events.push(row);
    Ok(())
}

/// Most events one INSERT carries (12 parameters each: far below either backend's limit).
const INSERT_CHUNK: usize = 256;

/// Chains `pending` inside `tx`, org by org in the order of their ids (one lock order for every
/// transaction), and adds its writes to `writes`, which the caller runs next. Per org: one
/// statement, run here, takes the head and reserves the sequence numbers — on PostgreSQL the
/// `UPDATE` holds the org's head row until commit, so two replicas never link to the same
/// predecessor — then, in `writes`, one INSERT per [`INSERT_CHUNK`] events and the new head
/// hash.
pub(crate) async fn flush(tx: &mut Tx, pending: Pending, writes: &mut Script) -> Result<()> {
    for (org_id, events) in pending.by_org() {
        let count = i64::try_from(events.len()).unwrap_or(i64::MAX);
        let (last_seq, prev_hash): (i64, String) = on_tx!(tx, |conn| sqlx::query_as(RESERVE)
            .bind(&org_id)
            .bind(count)
            .fetch_optional(&mut *conn)
            .await?)
        .ok_or_else(|| no_chain(&org_id))?;
        chain(org_id, events, last_seq, prev_hash, writes, INSERT_CHUNK);
    }
    Ok(())
}

/// Takes an org's chain head and reserves `$2` sequence numbers: the last one reserved and the
/// hash the first event links to.
pub(crate) const RESERVE: &str = "UPDATE audit_heads SET last_seq = last_seq + $2 WHERE org_id = $1 \
                                  RETURNING last_seq, last_hash";

/// The error of an org whose chain head is missing.
pub(crate) fn no_chain(org_id: &str) -> Error {
    Error::Corrupt(format!("org {org_id} has no audit chain"))
}

impl Pending {
    /// The events by org, in the order of the orgs' ids, each org's in the order appended.
    pub(crate) fn by_org(self) -> BTreeMap<String, Vec<EventRow>> {
        let mut by_org: BTreeMap<String, Vec<EventRow>> = BTreeMap::new();
        for event in self.events {
            by_org.entry(event.org_id.clone()).or_default().push(event);
        }
        by_org
    }
}

/// Links one org's `events` after `prev_hash`, the last of them numbered `last_seq` (as
/// [`RESERVE`] answered), and adds their inserts, `rows_per_insert` events a statement, and the
/// org's new head hash to `writes`.
pub(crate) fn chain(
    org_id: String,
    mut events: Vec<EventRow>,
    last_seq: i64,
    mut prev_hash: String,
    writes: &mut Script,
    rows_per_insert: usize,
) {
    const SET_HASH: &str = "UPDATE audit_heads SET last_hash = $2 WHERE org_id = $1";
    let count = i64::try_from(events.len()).unwrap_or(i64::MAX);
    let first_seq = last_seq - count + 1;
    for (offset, event) in events.iter_mut().enumerate() {
        event.seq = first_seq + i64::try_from(offset).unwrap_or(i64::MAX);
        event.prev_hash = prev_hash;
        event.hash = chain_hash(&event.prev_hash, event);
        prev_hash = event.hash.clone();
    }
    let rows_per_insert = rows_per_insert.clamp(1, INSERT_CHUNK);
    while !events.is_empty() {
        let rest = events.split_off(events.len().min(rows_per_insert));
        let chunk = std::mem::replace(&mut events, rest);
        writes.push(
            format!(
                "INSERT INTO audit_events ({EVENT_COLUMNS}) VALUES {}",
                super::values_placeholders(chunk.len(), 12)
            ),
            chunk.into_iter().flat_map(event_values).collect(),
        );
    }
    writes.push(
        SET_HASH,
        vec![script::Value::Text(org_id), script::Value::Text(prev_hash)],
    );
}

/// A chained event's values, in the order of [`EVENT_COLUMNS`].
fn event_values(event: EventRow) -> [script::Value; 12] {
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
        script::Value::OptionalText(event.agent_id),
    ]
}

pub(crate) const EVENT_COLUMNS: &str = "org_id, seq, id, kind, actor, subject_type, subject_id, detail, \
                             created_at, prev_hash, hash, agent_id";

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

/// A kind a listing keeps: exactly this kind, or every kind starting with a prefix (`check.`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KindPattern {
    Exact(String),
    Prefix(String),
}

/// What a listing keeps; every filter given must hold.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// Any of these kinds (none: every kind).
    pub kinds: Vec<KindPattern>,
    pub agent_id: Option<String>,
    pub subject_type: Option<String>,
    pub subject_id: Option<String>,
    /// Created at or after (unix seconds).
    pub since: Option<i64>,
    /// Created at or before (unix seconds).
    pub until: Option<i64>,
}

/// Where a listing starts and which way it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// Oldest first, from the event after this sequence number.
    After(i64),
    /// Newest first, from the event before this sequence number.
    Before(i64),
}

/// Up to `limit` events of the org from `position` that `filter` keeps. An agent filter is a
/// range scan of `(org_id, agent_id, seq)`; `since` first finds where its window starts by a
/// binary search of the chain ([`first_near`]), so a recent window of a long chain is not read
/// from the start.
pub async fn list_filtered(
    store: &Store,
    org_id: &str,
    position: Position,
    filter: &EventFilter,
    limit: u32,
) -> Result<Vec<EventRow>> {
    let (mut after_seq, before_seq, order) = match position {
        Position::After(seq) => (seq, i64::MAX, "ASC"),
        Position::Before(seq) => (0, seq, "DESC"),
    };
    if let Some(since) = filter.since {
        after_seq = after_seq.max(first_near(store, org_id, since - TIME_SKEW).await? - 1);
    }
    let mut values = vec![
        script::Value::Text(org_id.to_string()),
        script::Value::Integer(after_seq),
        script::Value::Integer(before_seq),
    ];
    let mut sql = format!(
        "SELECT {EVENT_COLUMNS} FROM audit_events WHERE org_id = $1 AND seq > $2 AND seq < $3"
    );
    let mut bind = |sql: &mut String, clause: &str, value: script::Value| {
        values.push(value);
        sql.push_str(&clause.replace('?', &format!("${}", values.len())));
    };
    if let Some(agent_id) = &filter.agent_id {
        bind(
            &mut sql,
            " AND agent_id = ?",
            script::Value::Text(agent_id.clone()),
        );
    }
    if let Some(subject_type) = &filter.subject_type {
        bind(
            &mut sql,
            " AND subject_type = ?",
            script::Value::Text(subject_type.clone()),
        );
    }
    if let Some(subject_id) = &filter.subject_id {
        bind(
            &mut sql,
            " AND subject_id = ?",
            script::Value::Text(subject_id.clone()),
        );
    }
    if let Some(since) = filter.since {
        bind(
            &mut sql,
            " AND created_at >= ?",
            script::Value::Integer(since),
        );
    }
    if let Some(until) = filter.until {
        bind(
            &mut sql,
            " AND created_at <= ?",
            script::Value::Integer(until),
        );
    }
    if !filter.kinds.is_empty() {
        sql.push_str(" AND (");
        for (index, kind) in filter.kinds.iter().enumerate() {
            if index > 0 {
                sql.push_str(" OR ");
            }
            match kind {
                KindPattern::Exact(kind) => {
                    bind(&mut sql, "kind = ?", script::Value::Text(kind.clone()));
                }
                // `substr` rather than `LIKE`: `_` in a kind is no wildcard.
                KindPattern::Prefix(prefix) => {
                    let length = i64::try_from(prefix.chars().count()).unwrap_or(i64::MAX);
                    bind(
                        &mut sql,
                        &format!("substr(kind, 1, {length}) = ?"),
                        script::Value::Text(prefix.clone()),
                    );
                }
            }
        }
        sql.push(')');
    }
    bind(
        &mut sql,
        &format!(" ORDER BY seq {order} LIMIT ?"),
        script::Value::Integer(i64::from(limit)),
    );
    Ok(on_db!(store, |pool| script::bind_values!(
        sqlx::query_as::<_, EventRow>(&sql),
        &values
    )
    .fetch_all(pool)
    .await?))
}

/// How far an event's `created_at` (the time of its request) may run behind a later event's:
/// events are chained at commit, in commit order, moments after their requests.
const TIME_SKEW: i64 = 300;

/// The first sequence number whose event was created at or after `at`, found by a binary
/// search of the primary key (about 20 reads for a million events; an index on the time would
/// cost every append a write). Since `created_at` follows `seq` only to within [`TIME_SKEW`],
/// callers search from `since - TIME_SKEW` and filter on the time themselves.
async fn first_near(store: &Store, org_id: &str, at: i64) -> Result<i64> {
    const PROBE: &str = "SELECT seq, created_at FROM audit_events \
                         WHERE org_id = $1 AND seq >= $2 ORDER BY seq LIMIT 1";
    let Some((head_seq, _)) = head(store, org_id).await? else {
        return Ok(1);
    };
    let (mut low, mut high) = (1, head_seq + 1);
    while low < high {
        let middle = low + (high - low) / 2;
        let probe: Option<(i64, i64)> = on_db!(store, |pool| sqlx::query_as(PROBE)
            .bind(org_id)
            .bind(middle)
            .fetch_optional(pool)
            .await?);
        match probe {
            Some((_, created_at)) if created_at < at => low = middle + 1,
            _ => high = middle,
        }
    }
    Ok(low)
}

/// One event of the org by its id.
pub async fn find(store: &Store, org_id: &str, event_id: &str) -> Result<Option<EventRow>> {
    let sql = format!("SELECT {EVENT_COLUMNS} FROM audit_events WHERE id = $1 AND org_id = $2");
    Ok(on_db!(store, |pool| sqlx::query_as::<_, EventRow>(&sql)
        .bind(event_id)
        .bind(org_id)
        .fetch_optional(pool)
        .await?))
}

/// One event of the org by its place in the chain.
pub async fn at_seq(store: &Store, org_id: &str, seq: i64) -> Result<Option<EventRow>> {
    Ok(page(store, org_id, seq - 1, seq, 1).await?.pop())
}

/// Fills in the agent of events stored before the column existed, a page at a time; run at
/// start-up, and a no-op (one index probe) once done. Safe on several replicas at once: each
/// writes the same derived value.
pub async fn index_agents(store: &Store) -> Result<u64> {
    const PAGE: u32 = 1000;
    const UPDATE: &str = "UPDATE audit_events SET agent_id = $3 WHERE org_id = $1 AND seq = $2";
    let sql =
        format!("SELECT {EVENT_COLUMNS} FROM audit_events WHERE agent_id IS NULL LIMIT {PAGE}");
    let mut indexed = 0;
    loop {
        let rows = on_db!(store, |pool| sqlx::query_as::<_, EventRow>(&sql)
            .fetch_all(pool)
            .await?);
        if rows.is_empty() {
            return Ok(indexed);
        }
        let mut tx = store.begin().await?;
        for row in &rows {
            on_tx!(tx, |conn| {
                sqlx::query(UPDATE)
                    .bind(&row.org_id)
                    .bind(row.seq)
                    .bind(row.derived_agent())
                    .execute(&mut *conn)
                    .await?;
            });
        }
        tx.commit().await?;
        indexed += rows.len() as u64;
    }
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
    /// Signed checkpoints found matching before the walk stopped.
    pub checkpoints_checked: u64,
    /// `None` when the whole chain, up to the head read at the start, is intact.
    pub broken: Option<Break>,
}

/// Events read per query while verifying: memory stays bounded whatever the chain's length.
pub const VERIFY_PAGE_SIZE: u32 = 500;

/// Which events a verification walks: `from_seq` (at least 1) to `to_seq` (`None`: the head read
/// at the start). A range that starts later than 1 links its first event to the stored hash
/// of the event before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifyRange {
    pub from_seq: i64,
    pub to_seq: Option<i64>,
}

impl VerifyRange {
    pub const WHOLE: VerifyRange = VerifyRange {
        from_seq: 1,
        to_seq: None,
    };
}

/// Judges a signed checkpoint's signature: `Err(reason)` when it does not verify.
pub type CheckpointJudge<'a> =
    &'a (dyn Fn(&CheckpointRow) -> std::result::Result<(), String> + Sync);

/// Walks an org's chain over `range`, `page_size` events at a time, and stops at the first
/// event that does not link: a missing sequence number, a `prev_hash` that is not its
/// predecessor's hash, content that does not hash to its `hash`, an agent index that is not the
/// one its content names, a signed checkpoint whose hash is not its event's or whose signature
/// `judge` refuses, or (for a walk reaching the head) a head that names a sequence number or
/// hash the events do not end with (a dropped tail). Events appended during the walk are beyond
/// the head read first, so they are not judged.
pub async fn verify_range(
    store: &Store,
    org_id: &str,
    range: VerifyRange,
    page_size: u32,
    judge: CheckpointJudge<'_>,
) -> Result<Verification> {
    let Some((head_seq, head_hash)) = head(store, org_id).await? else {
        return Err(Error::Corrupt(format!("org {org_id} has no audit chain")));
    };
    let page_size = page_size.max(1);
    let from_seq = range.from_seq.max(1);
    let to_seq = range.to_seq.map_or(head_seq, |to| to.min(head_seq));
    let broken = |seq: i64, event: Option<&EventRow>, reason: String| Break {
        seq,
        event_id: event.map(|event| event.id.clone()),
        kind: event.map(|event| event.kind.clone()),
        reason,
    };
    let mut last_seq = from_seq - 1;
    let mut prev_hash = if last_seq == 0 {
        GENESIS_HASH.to_string()
    } else {
        match at_seq(store, org_id, last_seq).await? {
            Some(event) => event.hash,
            None => {
                return Ok(Verification {
                    events_checked: 0,
                    checkpoints_checked: 0,
                    broken: Some(broken(
                        last_seq,
                        None,
                        format!("event {last_seq}, which the range links to, is missing"),
                    )),
                });
            }
        }
    };
    let mut checked: u64 = 0;
    let mut checkpoints_checked: u64 = 0;
    let stop = |checked, checkpoints_checked, problem| {
        Ok(Verification {
            events_checked: checked,
            checkpoints_checked,
            broken: Some(problem),
        })
    };
    while last_seq < to_seq {
        let events = page(store, org_id, last_seq, to_seq, page_size).await?;
        let Some(last) = events.last() else {
            break;
        };
        let checkpoints = checkpoints_between(store, org_id, last_seq, last.seq).await?;
        let mut checkpoints = checkpoints.iter().peekable();
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
            } else if event.agent_id.as_deref() != Some(event.derived_agent().as_str()) {
                Some(broken(
                    event.seq,
                    Some(event),
                    format!(
                        "event {} ({}) is indexed under another agent than the one its content \
                         names",
                        event.seq, event.id
                    ),
                ))
            } else {
                None
            };
            if let Some(problem) = problem {
                return stop(checked, checkpoints_checked, problem);
            }
            checked += 1;
            last_seq = event.seq;
            prev_hash = event.hash.clone();
            while let Some(checkpoint) =
                checkpoints.next_if(|checkpoint| checkpoint.seq <= event.seq)
            {
                let problem = if checkpoint.seq != event.seq || checkpoint.hash != event.hash {
                    Some(format!(
                        "the checkpoint signed at event {} does not match the chain: the events \
                         up to it were rewritten after it was signed",
                        checkpoint.seq
                    ))
                } else {
                    judge(checkpoint).err().map(|reason| {
                        format!(
                            "the checkpoint at event {} is not validly signed: {reason}",
                            checkpoint.seq
                        )
                    })
                };
                if let Some(reason) = problem {
                    return stop(
                        checked,
                        checkpoints_checked,
                        broken(checkpoint.seq, None, reason),
                    );
                }
                checkpoints_checked += 1;
            }
        }
    }
    let tail_problem = if last_seq != to_seq {
        Some(broken(
            last_seq + 1,
            None,
            format!(
                "the chain ends at event {last_seq} but its head says {head_seq} events were \
                 appended: event {} onwards is missing",
                last_seq + 1
            ),
        ))
    } else if to_seq == head_seq && prev_hash != head_hash {
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
        checkpoints_checked,
        broken: tail_problem,
    })
}

/// Walks an org's whole chain, leaving checkpoints' signatures unjudged (their hashes are still
/// compared): [`verify_range`] with [`VerifyRange::WHOLE`].
pub async fn verify_chain(store: &Store, org_id: &str, page_size: u32) -> Result<Verification> {
    verify_range(store, org_id, VerifyRange::WHOLE, page_size, &|_| Ok(())).await
}

/// Walks an org's chain and returns the sequence number of the first event that does not link,
/// or `None` when the whole chain is intact.
pub async fn verify(store: &Store, org_id: &str) -> Result<Option<i64>> {
    let verification = verify_chain(store, org_id, VERIFY_PAGE_SIZE).await?;
    Ok(verification.broken.map(|broken| broken.seq))
}

/// A signed chain head.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct CheckpointRow {
    pub org_id: String,
    pub seq: i64,
    pub hash: String,
    pub created_at: i64,
    pub key_id: String,
    /// The compact JWS.
    pub signature: String,
}

const CHECKPOINT_COLUMNS: &str = "org_id, seq, hash, created_at, key_id, signature";

/// Stores a checkpoint; one that another replica stored first for the same head is kept (both
/// sign the same facts). Answers whether this one was stored.
pub async fn insert_checkpoint(store: &Store, checkpoint: &CheckpointRow) -> Result<bool> {
    let sql = format!(
        "INSERT INTO audit_checkpoints ({CHECKPOINT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (org_id, seq) DO NOTHING"
    );
    let mut tx = store.begin().await?;
    let stored = on_tx!(tx, |conn| sqlx::query(&sql)
        .bind(&checkpoint.org_id)
        .bind(checkpoint.seq)
        .bind(&checkpoint.hash)
        .bind(checkpoint.created_at)
        .bind(&checkpoint.key_id)
        .bind(&checkpoint.signature)
        .execute(&mut *conn)
        .await?
        .rows_affected());
    tx.commit().await?;
    Ok(stored == 1)
}

/// Every checkpoint of an org with `after_seq < seq <= until_seq`, oldest first.
pub async fn checkpoints_between(
    store: &Store,
    org_id: &str,
    after_seq: i64,
    until_seq: i64,
) -> Result<Vec<CheckpointRow>> {
    checkpoints(store, org_id, after_seq, until_seq, u32::MAX).await
}

/// Up to `limit` of an org's checkpoints with `after_seq < seq <= until_seq`, oldest first.
pub async fn checkpoints(
    store: &Store,
    org_id: &str,
    after_seq: i64,
    until_seq: i64,
    limit: u32,
) -> Result<Vec<CheckpointRow>> {
    let sql = format!(
        "SELECT {CHECKPOINT_COLUMNS} FROM audit_checkpoints \
         WHERE org_id = $1 AND seq > $2 AND seq <= $3 ORDER BY seq LIMIT $4"
    );
    Ok(on_db!(store, |pool| sqlx::query_as::<_, CheckpointRow>(
        &sql
    )
    .bind(org_id)
    .bind(after_seq)
    .bind(until_seq)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?))
}

/// The orgs whose chain grew since their last checkpoint, with their heads: what the periodic
/// signer signs next.
pub async fn unsigned_heads(store: &Store) -> Result<Vec<(String, i64, String)>> {
    const SQL: &str = "SELECT h.org_id, h.last_seq, h.last_hash FROM audit_heads h \
                       WHERE h.last_seq > COALESCE((SELECT MAX(c.seq) FROM audit_checkpoints c \
                       WHERE c.org_id = h.org_id), 0)";
    Ok(on_db!(store, |pool| sqlx::query_as(SQL)
        .fetch_all(pool)
        .await?))
}
