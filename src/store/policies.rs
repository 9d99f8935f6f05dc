//! Org policy documents: one row per org, replaced whole, guarded by a version number so a
//! stale writer is refused instead of silently overwriting.

use crate::api::time;

use super::audit::{Actor, NewEvent};
use super::changes::{self, Change};
use super::{Result, Store, on_db, on_tx};

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PolicyRow {
    pub org_id: String,
    pub version: i64,
    /// The document as JSON text.
    pub document: String,
    pub updated_at: i64,
    pub updated_by: String,
}

pub async fn get(store: &Store, org_id: &str) -> Result<Option<PolicyRow>> {
    const SQL: &str = "SELECT org_id, version, document, updated_at, updated_by FROM policies \
                       WHERE org_id = $1";
    Ok(on_db!(store, |pool| sqlx::query_as::<_, PolicyRow>(SQL)
        .bind(org_id)
        .fetch_optional(pool)
        .await?))
}

/// The stored version alone (0 when the org has none): a cheap check of whether a cached,
/// compiled policy is still current.
pub async fn version(store: &Store, org_id: &str) -> Result<i64> {
    const SQL: &str = "SELECT version FROM policies WHERE org_id = $1";
    let version: Option<i64> = on_db!(store, |pool| sqlx::query_scalar(SQL)
        .bind(org_id)
        .fetch_optional(pool)
        .await?);
    Ok(version.unwrap_or(0))
}

/// The outcome of a replace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replaced {
    /// Stored as this version.
    Stored(PolicyRow),
    /// `expected_version` was not the stored version (which is given).
    Stale { current_version: i64 },
}

/// Replaces the org's document. With `expected_version`, only when it is the stored version.
pub async fn replace(
    store: &Store,
    org_id: &str,
    document_json: &str,
    expected_version: Option<i64>,
    actor: &Actor,
    summary: serde_json::Value,
) -> Result<Replaced> {
    const CURRENT: &str = "SELECT version FROM policies WHERE org_id = $1";
    const INSERT: &str = "INSERT INTO policies (org_id, version, document, updated_at, updated_by) \
                          VALUES ($1, $2, $3, $4, $5)";
    const UPDATE: &str = "UPDATE policies SET version = $2, document = $3, updated_at = $4, \
                          updated_by = $5 WHERE org_id = $1 AND version = $6";
    let now = time::now();
    let mut tx = store.begin().await?;
    let current: Option<i64> = on_tx!(&mut tx, |conn| sqlx::query_scalar(CURRENT)
        .bind(org_id)
        .fetch_optional(&mut *conn)
        .await?);
    let current_version = current.unwrap_or(0);
    if expected_version.is_some_and(|expected| expected != current_version) {
        return Ok(Replaced::Stale { current_version });
    }
    let version = current_version + 1;
    let changed = on_tx!(&mut tx, |conn| match current {
        None => sqlx::query(INSERT)
            .bind(org_id)
            .bind(version)
            .bind(document_json)
            .bind(now)
            .bind(&actor.0)
            .execute(&mut *conn)
            .await?
            .rows_affected(),
        Some(stored) => sqlx::query(UPDATE)
            .bind(org_id)
            .bind(version)
            .bind(document_json)
            .bind(now)
            .bind(&actor.0)
            .bind(stored)
            .execute(&mut *conn)
            .await?
            .rows_affected(),
    });
    if changed != 1 {
        // Another replica replaced it between our read and our write.
        return Ok(Replaced::Stale {
            current_version: version,
        });
    }
    changes::announce(
        &mut tx,
        &Change::Policy {
            org_id: org_id.to_string(),
        },
    )
    .await?;
    let mut detail = summary;
    if let Some(object) = detail.as_object_mut() {
        object.insert("version".into(), version.into());
    }
    tx.commit_audited(Some(NewEvent {
        org_id,
        kind: "policy.updated",
        actor,
        subject_type: "policy",
        subject_id: org_id,
        detail,
        created_at: now,
    }))
    .await?;
    Ok(Replaced::Stored(PolicyRow {
        org_id: org_id.to_string(),
        version,
        document: document_json.to_string(),
        updated_at: now,
        updated_by: actor.0.clone(),
    }))
}
