//! Orgs: the tenant every other row belongs to.

use serde::Serialize;

use super::audit::{self, Actor, NewEvent};
use super::{Error, Result, Store, new_id, on_db};

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Org {
    pub id: String,
    pub name: String,
    pub created_at: i64,
}

/// Creates an org and starts its audit chain; a taken name is a conflict.
pub async fn create(store: &Store, name: &str, actor: &Actor) -> Result<Org> {
    const SQL: &str = "INSERT INTO orgs (id, name, created_at) VALUES ($1, $2, $3)";
    let org = Org {
        id: new_id(),
        name: name.to_string(),
        created_at: crate::api::time::now(),
    };
    let mut tx = store.begin().await?;
    super::on_tx!(&mut tx, |conn| {
        sqlx::query(SQL)
            .bind(&org.id)
            .bind(&org.name)
            .bind(org.created_at)
            .execute(&mut *conn)
            .await
            .map_err(|error| {
                Error::conflict_on_unique(error, || format!("an org named {name:?} already exists"))
            })?;
    });
    audit::start_chain(&mut tx, &org.id).await?;
    tx.commit_audited(Some(NewEvent {
        org_id: &org.id,
        kind: "org.created",
        actor,
        subject_type: "org",
        subject_id: &org.id,
        detail: serde_json::json!({ "name": name }),
        created_at: org.created_at,
    }))
    .await?;
    Ok(org)
}

pub async fn get_by_name(store: &Store, name: &str) -> Result<Option<Org>> {
    const SQL: &str = "SELECT id, name, created_at FROM orgs WHERE name = $1";
    Ok(on_db!(store, |pool| sqlx::query_as::<_, Org>(SQL)
        .bind(name)
        .fetch_optional(pool)
        .await?))
}

pub async fn get(store: &Store, id: &str) -> Result<Option<Org>> {
    const SQL: &str = "SELECT id, name, created_at FROM orgs WHERE id = $1";
    Ok(on_db!(store, |pool| sqlx::query_as::<_, Org>(SQL)
        .bind(id)
        .fetch_optional(pool)
        .await?))
}

/// An org as `server org list` shows it: with how many admin and runtime keys still work.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct OrgSummary {
    pub id: String,
    pub name: String,
    pub created_at: i64,
    pub active_admin_keys: i64,
    pub active_runtime_keys: i64,
}

/// Every org in the database, oldest first (an operator's view: not scoped to any org).
pub async fn list(store: &Store) -> Result<Vec<OrgSummary>> {
    const SQL: &str = "SELECT o.id, o.name, o.created_at, \
            COUNT(k.id) FILTER (WHERE k.role = 'admin') AS active_admin_keys, \
            COUNT(k.id) FILTER (WHERE k.role = 'runtime') AS active_runtime_keys \
        FROM orgs o LEFT JOIN api_keys k ON k.org_id = o.id AND k.revoked_at IS NULL \
        GROUP BY o.id, o.name, o.created_at ORDER BY o.created_at, o.id";
    Ok(on_db!(store, |pool| sqlx::query_as::<_, OrgSummary>(SQL)
        .fetch_all(pool)
        .await?))
}

/// Finds an org by id or by name (operators type names).
pub async fn find(store: &Store, id_or_name: &str) -> Result<Option<Org>> {
    match get(store, id_or_name).await? {
        Some(org) => Ok(Some(org)),
        None => get_by_name(store, id_or_name).await,
    }
}
