//! Org API keys: stored as SHA-256 digests, looked up by digest, revocable.

use crate::api::keys::{ApiKey, Role};
use crate::api::time;

use super::audit::{self, Actor, NewEvent};
use super::changes::{self, Change};
use super::{Error, Result, Store, on_db, on_tx};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct KeyRow {
    pub id: String,
    pub org_id: String,
    pub name: String,
    pub role: String,
    pub prefix: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

impl KeyRow {
    pub fn role(&self) -> Result<Role> {
        self.role
            .parse()
            .map_err(|_| Error::Corrupt(format!("api key {} has role {:?}", self.id, self.role)))
    }

    pub fn into_api(self) -> Result<ApiKey> {
        Ok(ApiKey {
            role: self.role()?,
            id: self.id,
            org_id: self.org_id,
            name: self.name,
            prefix: self.prefix,
            created_at: time::format(self.created_at),
            revoked_at: self.revoked_at.map(time::format),
            current: false,
            extra: Default::default(),
        })
    }
}

const COLUMNS: &str = "id, org_id, name, role, prefix, created_at, revoked_at";

/// A key to store: the secret itself never reaches the store.
pub struct NewKey<'a> {
    pub id: &'a str,
    pub org_id: &'a str,
    pub name: &'a str,
    pub role: Role,
    pub prefix: &'a str,
    pub key_digest: &'a str,
}

pub async fn create(store: &Store, key: NewKey<'_>, actor: &Actor) -> Result<KeyRow> {
    const SQL: &str = "INSERT INTO api_keys (id, org_id, name, role, prefix, key_digest, created_at) \
                       VALUES ($1, $2, $3, $4, $5, $6, $7)";
    let now = time::now();
    let mut tx = store.begin().await?;
    on_tx!(&mut tx, |conn| {
        sqlx::query(SQL)
            .bind(key.id)
            .bind(key.org_id)
            .bind(key.name)
            .bind(key.role.as_str())
            .bind(key.prefix)
            .bind(key.key_digest)
            .bind(now)
            .execute(&mut *conn)
            .await?;
    });
    tx.commit_audited(Some(NewEvent {
            org_id: key.org_id,
            kind: "key.created",
            actor,
            subject_type: "api_key",
            subject_id: key.id,
            detail: serde_json::json!({ "name": key.name, "role": key.role.as_str(), "prefix": key.prefix }),
            created_at: now,
    }))
    .await?;
    Ok(KeyRow {
        id: key.id.to_string(),
        org_id: key.org_id.to_string(),
        name: key.name.to_string(),
        role: key.role.as_str().to_string(),
        prefix: key.prefix.to_string(),
        created_at: now,
        revoked_at: None,
    })
}

/// The live key with this digest, if any (the authentication lookup: one indexed point read).
pub async fn find_active_by_digest(store: &Store, key_digest: &str) -> Result<Option<KeyRow>> {
    const SQL: &str = "SELECT id, org_id, name, role, prefix, created_at, revoked_at FROM api_keys \
                       WHERE key_digest = $1 AND revoked_at IS NULL";
    Ok(on_db!(store, |pool| sqlx::query_as::<_, KeyRow>(SQL)
        .bind(key_digest)
        .fetch_optional(pool)
        .await?))
}

/// One page of the org's keys ordered by id, after `after_id` (the cursor); asks one row more
/// to know whether more follow.
pub async fn list(
    store: &Store,
    org_id: &str,
    after_id: Option<&str>,
    limit: u32,
) -> Result<(Vec<KeyRow>, bool)> {
    let sql = format!(
        "SELECT {COLUMNS} FROM api_keys WHERE org_id = $1 \
         AND (CAST($2 AS TEXT) IS NULL OR id > $2) ORDER BY id LIMIT $3"
    );
    let mut rows = on_db!(store, |pool| sqlx::query_as::<_, KeyRow>(&sql)
        .bind(org_id)
        .bind(after_id)
        .bind(i64::from(limit) + 1)
        .fetch_all(pool)
        .await?);
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    Ok((rows, more))
}

pub async fn get(store: &Store, org_id: &str, id: &str) -> Result<Option<KeyRow>> {
    let sql = format!("SELECT {COLUMNS} FROM api_keys WHERE org_id = $1 AND id = $2");
    Ok(on_db!(store, |pool| sqlx::query_as::<_, KeyRow>(&sql)
        .bind(org_id)
        .bind(id)
        .fetch_optional(pool)
        .await?))
}

/// Revokes a key of the org. `None` when the org has no such key; revoking twice is a no-op.
/// The org's last active admin key is never revoked ([`Error::Conflict`]): nobody could manage
/// the org afterwards, not even to mint a new key over HTTP.
pub async fn revoke(
    store: &Store,
    org_id: &str,
    id: &str,
    actor: &Actor,
) -> Result<Option<KeyRow>> {
    // PostgreSQL: revocations of one org's keys queue on the org's row, so two admins revoking
    // each other's keys at once cannot both see the other's key as the one that remains. SQLite
    // runs one write transaction at a time anyway.
    const LOCK_ORG_POSTGRES: &str = "SELECT id FROM orgs WHERE id = $1 FOR UPDATE";
    const SQL: &str = "UPDATE api_keys SET revoked_at = $3 \
                       WHERE org_id = $1 AND id = $2 AND revoked_at IS NULL \
                       AND (role <> 'admin' OR EXISTS (SELECT 1 FROM api_keys other \
                            WHERE other.org_id = $1 AND other.id <> $2 \
                            AND other.role = 'admin' AND other.revoked_at IS NULL))";
    let now = time::now();
    let mut tx = store.begin().await?;
    if let super::TxConnection::Postgres(transaction) = &mut tx.connection {
        sqlx::query(LOCK_ORG_POSTGRES)
            .bind(org_id)
            .fetch_optional(&mut **transaction)
            .await?;
    }
    let changed = on_tx!(&mut tx, |conn| sqlx::query(SQL)
        .bind(org_id)
        .bind(id)
        .bind(now)
        .execute(&mut *conn)
        .await?
        .rows_affected());
    if changed == 1 {
        audit::append(
            &mut tx,
            NewEvent {
                org_id,
                kind: "key.revoked",
                actor,
                subject_type: "api_key",
                subject_id: id,
                detail: serde_json::json!({}),
                created_at: now,
            },
        )
        .await?;
        changes::announce(&mut tx, &Change::ApiKey { id: id.to_string() }).await?;
    } else {
        let sql = format!("SELECT {COLUMNS} FROM api_keys WHERE org_id = $1 AND id = $2");
        let row = on_tx!(&mut tx, |conn| sqlx::query_as::<_, KeyRow>(&sql)
            .bind(org_id)
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?);
        if let Some(row) = row
            && row.revoked_at.is_none()
        {
            return Err(Error::Conflict(format!(
                "API key {id} is the org's last active admin key: revoking it would leave nobody \
                 able to manage the org. Create another admin key first \
                 (`agenttrust keys create --role admin`), then revoke this one with it"
            )));
        }
    }
    tx.commit().await?;
    get(store, org_id, id).await
}
