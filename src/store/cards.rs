//! Agent card rows: what the operator set for each agent's card and whether it is published
//! (the card itself is built from the agent's record whenever it is served). Also the facts of
//! an agent's record its trust score is computed from.

use super::audit::{Actor, NewEvent};
use super::{Result, Store, on_db, on_tx};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CardRow {
    pub org_id: String,
    pub agent_id: String,
    /// `api::cards::CardSettings` as JSON.
    pub settings: String,
    /// When the operator last generated (or published) the card.
    pub generated_at: i64,
    pub published_at: Option<i64>,
}

const COLUMNS: &str = "org_id, agent_id, settings, generated_at, published_at";

/// The org's card of `agent_id`; another org's is `None`, as a missing one.
pub async fn get(store: &Store, org_id: &str, agent_id: &str) -> Result<Option<CardRow>> {
    let sql = format!("SELECT {COLUMNS} FROM agent_cards WHERE org_id = $1 AND agent_id = $2");
    Ok(on_db!(store, |pool| sqlx::query_as::<_, CardRow>(&sql)
        .bind(org_id)
        .bind(agent_id)
        .fetch_optional(pool)
        .await?))
}

/// The published card of `agent_id`, whatever its org, while the agent is active: the public
/// route's lookup. A revoked agent's card is gone with it.
pub async fn get_published(store: &Store, agent_id: &str) -> Result<Option<CardRow>> {
    const SQL: &str = "SELECT c.org_id, c.agent_id, c.settings, c.generated_at, \
                       c.published_at FROM agent_cards c JOIN agents a \
                       ON a.id = c.agent_id AND a.org_id = c.org_id \
                       WHERE c.agent_id = $1 AND c.published_at IS NOT NULL \
                       AND a.status = $2";
    Ok(on_db!(store, |pool| sqlx::query_as::<_, CardRow>(SQL)
        .bind(agent_id)
        .bind(super::agents::STATUS_ACTIVE)
        .fetch_optional(pool)
        .await?))
}

/// A card's settings to store.
pub struct SavedCard<'a> {
    pub org_id: &'a str,
    pub agent_id: &'a str,
    pub settings: &'a str,
    /// Publish it too (else it stays as published or unpublished as it was).
    pub publish: bool,
    pub now: i64,
}

/// Stores the agent's card settings (replacing the ones before) and audits it.
pub async fn save(store: &Store, saved: SavedCard<'_>, actor: &Actor) -> Result<CardRow> {
    // `published_at` is set by a publish, kept by a regeneration.
    const SQL: &str = "INSERT INTO agent_cards (org_id, agent_id, settings, generated_at, \
                       published_at) VALUES ($1, $2, $3, $4, $5) \
                       ON CONFLICT (org_id, agent_id) DO UPDATE SET settings = excluded.settings, \
                       generated_at = excluded.generated_at, \
                       published_at = COALESCE(excluded.published_at, agent_cards.published_at)";
    let published_at = saved.publish.then_some(saved.now);
    let mut tx = store.begin().await?;
    on_tx!(&mut tx, |conn| {
        sqlx::query(SQL)
            .bind(saved.org_id)
            .bind(saved.agent_id)
            .bind(saved.settings)
            .bind(saved.now)
            .bind(published_at)
            .execute(&mut *conn)
            .await?;
    });
    let row = {
        let sql = format!("SELECT {COLUMNS} FROM agent_cards WHERE org_id = $1 AND agent_id = $2");
        on_tx!(&mut tx, |conn| sqlx::query_as::<_, CardRow>(&sql)
            .bind(saved.org_id)
            .bind(saved.agent_id)
            .fetch_one(&mut *conn)
            .await?)
    };
    tx.commit_audited(Some(NewEvent {
        org_id: saved.org_id,
        kind: if saved.publish {
            "card.published"
        } else {
            "card.generated"
        },
        actor,
        subject_type: "agent",
        subject_id: saved.agent_id,
        detail: serde_json::json!({ "published": row.published_at.is_some() }),
        created_at: saved.now,
    }))
    .await?;
    Ok(row)
}

/// Takes the agent's card off the public route; `None` when the agent has no card.
pub async fn unpublish(
    store: &Store,
    org_id: &str,
    agent_id: &str,
    now: i64,
    actor: &Actor,
) -> Result<Option<CardRow>> {
    const SQL: &str =
        "UPDATE agent_cards SET published_at = NULL WHERE org_id = $1 AND agent_id = $2";
    let mut tx = store.begin().await?;
    let updated = on_tx!(&mut tx, |conn| {
        sqlx::query(SQL)
            .bind(org_id)
            .bind(agent_id)
            .execute(&mut *conn)
            .await?
            .rows_affected()
    });
    if updated == 0 {
        return Ok(None);
    }
    let row = {
        let sql = format!("SELECT {COLUMNS} FROM agent_cards WHERE org_id = $1 AND agent_id = $2");
        on_tx!(&mut tx, |conn| sqlx::query_as::<_, CardRow>(&sql)
            .bind(org_id)
            .bind(agent_id)
            .fetch_one(&mut *conn)
            .await?)
    };
    tx.commit_audited(Some(NewEvent {
        org_id,
        kind: "card.unpublished",
        actor,
        subject_type: "agent",
        subject_id: agent_id,
        detail: serde_json::json!({}),
        created_at: now,
    }))
    .await?;
    Ok(Some(row))
}

/// What an agent's trust score is computed from, beyond its row.
#[derive(Debug, Clone, Copy, Default, sqlx::FromRow)]
pub struct TrustFacts {
    /// Hard denials counted in its current lockout window.
    pub denials_in_window: i64,
    /// Its agent tokens revoked before they expired.
    pub revoked_tokens: i64,
}

/// The trust facts of the org's agent `agent_id` (point lookups: the agent's row, its tokens
/// by the agent index).
pub async fn trust_facts(store: &Store, org_id: &str, agent_id: &str) -> Result<TrustFacts> {
    const SQL: &str = "SELECT a.denials_in_window AS denials_in_window, \
                       (SELECT COUNT(*) FROM agent_tokens t WHERE t.agent_id = a.id \
                       AND t.revoked_at IS NOT NULL) AS revoked_tokens \
                       FROM agents a WHERE a.org_id = $1 AND a.id = $2";
    Ok(on_db!(store, |pool| sqlx::query_as::<_, TrustFacts>(SQL)
        .bind(org_id)
        .bind(agent_id)
        .fetch_optional(pool)
        .await?)
    .unwrap_or_default())
}
