//! The audit log: append-only, hash-chained per org. Each event's `hash` covers the previous
//! event's hash and the event itself, so rewriting or dropping a past event breaks every later
//! link. Events are appended inside the transaction of the change they describe. Secrets never
//! enter it: callers pass ids and digests only.

use serde_json::Value;
use sha2::{Digest, Sha256};

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
    on_tx!(tx, conn => { sqlx::query(SQL).bind(org_id).bind(GENESIS_HASH).execute(&mut *conn).await?; });
    Ok(())
}

/// Appends `event` to its org's chain inside `tx`.
pub async fn append(tx: &mut Tx, event: NewEvent<'_>) -> Result<()> {
    // Bumping the head first takes the org's row lock (PostgreSQL) before we read the hash, so
    // two replicas can't both link to the same predecessor.
    const BUMP: &str = "UPDATE audit_heads SET last_seq = last_seq + 1 WHERE org_id = $1 \
                        RETURNING last_seq, last_hash";
    const INSERT: &str = "INSERT INTO audit_events (org_id, seq, id, kind, actor, subject_type, \
                          subject_id, detail, created_at, prev_hash, hash) \
                          VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";
    const SET_HASH: &str = "UPDATE audit_heads SET last_hash = $2 WHERE org_id = $1";

    let (seq, prev_hash): (i64, String) = on_tx!(tx, conn => sqlx::query_as(BUMP)
        .bind(event.org_id)
        .fetch_optional(&mut *conn)
        .await?)
    .ok_or_else(|| Error::Corrupt(format!("org {} has no audit chain", event.org_id)))?;

    let mut row = EventRow {
        org_id: event.org_id.to_string(),
        seq,
        id: new_id(),
        kind: event.kind.to_string(),
        actor: event.actor.0.clone(),
        subject_type: event.subject_type.to_string(),
        subject_id: event.subject_id.to_string(),
        detail: to_json_text(&event.detail),
        created_at: event.created_at,
        prev_hash: prev_hash.clone(),
        hash: String::new(),
    };
    row.hash = chain_hash(&prev_hash, &row);

    on_tx!(tx, conn => {
        sqlx::query(INSERT)
            .bind(&row.org_id)
            .bind(row.seq)
            .bind(&row.id)
            .bind(&row.kind)
            .bind(&row.actor)
            .bind(&row.subject_type)
            .bind(&row.subject_id)
            .bind(&row.detail)
            .bind(row.created_at)
            .bind(&row.prev_hash)
            .bind(&row.hash)
            .execute(&mut *conn)
            .await?;
        sqlx::query(SET_HASH)
            .bind(&row.org_id)
            .bind(&row.hash)
            .execute(&mut *conn)
            .await?;
    });
    Ok(())
}

/// An org's events in chain order, oldest first.
pub async fn list(store: &Store, org_id: &str) -> Result<Vec<EventRow>> {
    const SQL: &str = "SELECT org_id, seq, id, kind, actor, subject_type, subject_id, detail, \
                       created_at, prev_hash, hash FROM audit_events WHERE org_id = $1 ORDER BY seq";
    Ok(
        on_db!(store, pool => sqlx::query_as::<_, EventRow>(SQL).bind(org_id).fetch_all(pool).await?),
    )
}

/// Walks an org's chain and returns the sequence number of the first event that does not link,
/// or `None` when the whole chain is intact.
pub async fn verify(store: &Store, org_id: &str) -> Result<Option<i64>> {
    let mut prev_hash = GENESIS_HASH.to_string();
    for (position, event) in list(store, org_id).await?.iter().enumerate() {
        let expected_seq = position as i64 + 1;
        if event.seq != expected_seq
            || event.prev_hash != prev_hash
            || chain_hash(&prev_hash, event) != event.hash
        {
            return Ok(Some(event.seq));
        }
        prev_hash = event.hash.clone();
    }
    Ok(None)
}
