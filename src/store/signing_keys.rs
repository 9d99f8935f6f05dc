//! The gateway's signing keys (one set for the whole gateway, not per org): stored with their
//! public JWK and their private half (sealed or not, as `sealed_with` says), created and retired
//! here. Which key signs and which are published is decided in `gateway::signing`; this module
//! only keeps the rows.

use super::audit::Actor;
use super::{Result, Store, on_db, on_tx};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SigningKeyRow {
    /// The key id (`kid`): the RFC 7638 thumbprint of the public key.
    pub id: String,
    pub algorithm: String,
    pub public_jwk: String,
    pub private_key: String,
    pub sealed_with: String,
    pub created_at: i64,
    pub retired_at: Option<i64>,
    pub published_until: Option<i64>,
}

impl SigningKeyRow {
    /// Still in the JWKS at `now`: not retired, or retired and some token it signed may live.
    pub fn is_published(&self, now: i64) -> bool {
        match (self.retired_at, self.published_until) {
            (None, _) => true,
            (Some(_), Some(until)) => now < until,
            (Some(_), None) => false,
        }
    }
}

const COLUMNS: &str =
    "id, algorithm, public_jwk, private_key, sealed_with, created_at, retired_at, published_until";

/// Every key, newest first (the first unretired one signs).
pub async fn list(store: &Store) -> Result<Vec<SigningKeyRow>> {
    let sql = format!("SELECT {COLUMNS} FROM signing_keys ORDER BY created_at DESC, id DESC");
    Ok(on_db!(store, |pool| sqlx::query_as::<_, SigningKeyRow>(
        &sql
    )
    .fetch_all(pool)
    .await?))
}

/// A key to store.
pub struct NewSigningKey<'a> {
    pub id: &'a str,
    pub algorithm: &'a str,
    pub public_jwk: &'a str,
    pub private_key: &'a str,
    pub sealed_with: &'a str,
}

/// Stores `key` as the signing key and retires every other unretired key, which stays
/// published until `now + overlap_seconds` (every token it signed has expired by then). One
/// transaction: there is never a moment with no signing key, nor with two.
pub async fn rotate(
    store: &Store,
    key: NewSigningKey<'_>,
    now: i64,
    overlap_seconds: i64,
    actor: &Actor,
) -> Result<Vec<String>> {
    const RETIRE: &str = "UPDATE signing_keys SET retired_at = $1, published_until = $2 \
                          WHERE retired_at IS NULL RETURNING id";
    const INSERT: &str = "INSERT INTO signing_keys (id, algorithm, public_jwk, private_key, \
                          sealed_with, created_at) VALUES ($1, $2, $3, $4, $5, $6)";
    let mut tx = store.begin().await?;
    let retired: Vec<String> = on_tx!(&mut tx, |conn| {
        let retired = sqlx::query_scalar::<_, String>(RETIRE)
            .bind(now)
            .bind(now.saturating_add(overlap_seconds))
            .fetch_all(&mut *conn)
            .await?;
        sqlx::query(INSERT)
            .bind(key.id)
            .bind(key.algorithm)
            .bind(key.public_jwk)
            .bind(key.private_key)
            .bind(key.sealed_with)
            .bind(now)
            .execute(&mut *conn)
            .await?;
        retired
    });
    tx.commit().await?;
    // The audit chains are per org; a gateway-wide key change is logged, not chained.
    tracing::info!(
        key_id = key.id,
        retired = ?retired,
        actor = %actor.0,
        "signing key rotated"
    );
    Ok(retired)
}

/// Stores `key` as the first signing key when there is none yet. Two replicas starting at once
/// may both add one; the newer signs and both are published, which is harmless.
pub async fn create_first(store: &Store, key: NewSigningKey<'_>, now: i64) -> Result<bool> {
    const SQL: &str = "INSERT INTO signing_keys (id, algorithm, public_jwk, private_key, \
                       sealed_with, created_at) \
                       SELECT $1, $2, $3, $4, $5, $6 \
                       WHERE NOT EXISTS (SELECT 1 FROM signing_keys WHERE retired_at IS NULL)";
    let mut tx = store.begin().await?;
    let inserted = on_tx!(&mut tx, |conn| sqlx::query(SQL)
        .bind(key.id)
        .bind(key.algorithm)
        .bind(key.public_jwk)
        .bind(key.private_key)
        .bind(key.sealed_with)
        .bind(now)
        .execute(&mut *conn)
        .await?
        .rows_affected());
    tx.commit().await?;
    Ok(inserted > 0)
}
