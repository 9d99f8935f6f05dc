//! Federation rows: the providers an org trusts, the links from a provider's subject to an agent
//! of the org, and the ID tokens this gateway issued (by `jti`, for revocation; the token itself
//! is never kept). Every change is audited in its transaction.

use crate::api::federation::{Provider, SubjectLink};
use crate::api::time;

use super::audit::{Actor, NewEvent};
use super::{Error, Result, Store, on_db, on_tx};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ProviderRow {
    pub org_id: String,
    pub id: String,
    pub issuer: String,
    pub name: String,
    pub jwks_uri: String,
    pub authorization_endpoint: Option<String>,
    pub token_endpoint: Option<String>,
    pub audience: Option<String>,
    pub subject_claim: String,
    pub trust_level: String,
    pub status: String,
    pub created_at: i64,
    pub updated_at: i64,
}

impl ProviderRow {
    pub fn into_api(self) -> Provider {
        Provider {
            id: self.id,
            org_id: self.org_id,
            issuer: self.issuer,
            name: self.name,
            jwks_uri: self.jwks_uri,
            authorization_endpoint: self.authorization_endpoint,
            token_endpoint: self.token_endpoint,
            audience: self.audience,
            subject_claim: Some(self.subject_claim),
            trust_level: self.trust_level,
            status: self.status,
            created_at: time::format(self.created_at),
            updated_at: time::format(self.updated_at),
            extra: Default::default(),
        }
    }
}

const PROVIDER_COLUMNS: &str = "org_id, id, issuer, name, jwks_uri, authorization_endpoint, \
                                token_endpoint, audience, subject_claim, trust_level, status, \
                                created_at, updated_at";

/// What a provider holds besides its ids and times.
#[derive(Debug, Clone)]
pub struct ProviderFields {
    pub issuer: String,
    pub name: String,
    pub jwks_uri: String,
    pub authorization_endpoint: Option<String>,
    pub token_endpoint: Option<String>,
    pub audience: Option<String>,
    pub subject_claim: String,
    pub trust_level: String,
    pub status: String,
}

fn provider_detail(fields: &ProviderFields) -> serde_json::Value {
    serde_json::json!({
        "issuer": fields.issuer,
        "name": fields.name,
        "jwks_uri": fields.jwks_uri,
        "audience": fields.audience,
        "subject_claim": fields.subject_claim,
        "trust_level": fields.trust_level,
        "status": fields.status,
    })
}

pub async fn create_provider(
    store: &Store,
    org_id: &str,
    fields: ProviderFields,
    actor: &Actor,
) -> Result<ProviderRow> {
    const SQL: &str = "INSERT INTO federation_providers (org_id, id, issuer, name, jwks_uri, \
                       authorization_endpoint, token_endpoint, audience, subject_claim, \
                       trust_level, status, created_at, updated_at) \
                       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)";
    let id = super::new_id();
    let now = time::now();
    let mut tx = store.begin().await?;
    on_tx!(&mut tx, |conn| {
        sqlx::query(SQL)
            .bind(org_id)
            .bind(&id)
            .bind(&fields.issuer)
            .bind(&fields.name)
            .bind(&fields.jwks_uri)
            .bind(&fields.authorization_endpoint)
            .bind(&fields.token_endpoint)
            .bind(&fields.audience)
            .bind(&fields.subject_claim)
            .bind(&fields.trust_level)
            .bind(&fields.status)
            .bind(now)
            .execute(&mut *conn)
            .await
            .map_err(|error| {
                Error::conflict_on_unique(error, || {
                    format!(
                        "a provider for issuer {} is already registered",
                        fields.issuer
                    )
                })
            })?;
    });
    tx.commit_audited(Some(NewEvent {
        org_id,
        kind: "federation.provider.registered",
        actor,
        subject_type: "federation_provider",
        subject_id: &id,
        detail: provider_detail(&fields),
        created_at: now,
    }))
    .await?;
    Ok(ProviderRow {
        org_id: org_id.to_string(),
        id,
        issuer: fields.issuer,
        name: fields.name,
        jwks_uri: fields.jwks_uri,
        authorization_endpoint: fields.authorization_endpoint,
        token_endpoint: fields.token_endpoint,
        audience: fields.audience,
        subject_claim: fields.subject_claim,
        trust_level: fields.trust_level,
        status: fields.status,
        created_at: now,
        updated_at: now,
    })
}

pub async fn list_providers(store: &Store, org_id: &str) -> Result<Vec<ProviderRow>> {
    let sql = format!(
        "SELECT {PROVIDER_COLUMNS} FROM federation_providers WHERE org_id = $1 ORDER BY id"
    );
    Ok(on_db!(store, |pool| sqlx::query_as::<_, ProviderRow>(&sql)
        .bind(org_id)
        .fetch_all(pool)
        .await?))
}

pub async fn get_provider(store: &Store, org_id: &str, id: &str) -> Result<Option<ProviderRow>> {
    provider_where(store, org_id, ProviderKey::Id, id).await
}

/// The org's provider for `issuer` (compared byte for byte).
pub async fn provider_by_issuer(
    store: &Store,
    org_id: &str,
    issuer: &str,
) -> Result<Option<ProviderRow>> {
    provider_where(store, org_id, ProviderKey::Issuer, issuer).await
}

/// The two unique keys of a provider within its org.
#[derive(Clone, Copy)]
enum ProviderKey {
    Id,
    Issuer,
}

async fn provider_where(
    store: &Store,
    org_id: &str,
    key: ProviderKey,
    value: &str,
) -> Result<Option<ProviderRow>> {
    let column = match key {
        ProviderKey::Id => "id",
        ProviderKey::Issuer => "issuer",
    };
    let sql = format!(
        "SELECT {PROVIDER_COLUMNS} FROM federation_providers WHERE org_id = $1 AND {column} = $2"
    );
    Ok(on_db!(store, |pool| sqlx::query_as::<_, ProviderRow>(&sql)
        .bind(org_id)
        .bind(value)
        .fetch_optional(pool)
        .await?))
}

/// Replaces the provider's changeable fields with `fields` (the issuer stays). `None` when the
/// org has no such provider.
pub async fn update_provider(
    store: &Store,
    org_id: &str,
    id: &str,
    fields: ProviderFields,
    actor: &Actor,
) -> Result<Option<ProviderRow>> {
    const SQL: &str = "UPDATE federation_providers SET name = $3, jwks_uri = $4, audience = $5, \
                       subject_claim = $6, trust_level = $7, status = $8, updated_at = $9 \
                       WHERE org_id = $1 AND id = $2";
    let now = time::now();
    let mut tx = store.begin().await?;
    let changed = on_tx!(&mut tx, |conn| sqlx::query(SQL)
        .bind(org_id)
        .bind(id)
        .bind(&fields.name)
        .bind(&fields.jwks_uri)
        .bind(&fields.audience)
        .bind(&fields.subject_claim)
        .bind(&fields.trust_level)
        .bind(&fields.status)
        .bind(now)
        .execute(&mut *conn)
        .await?
        .rows_affected());
    if changed == 0 {
        return Ok(None);
    }
    tx.commit_audited(Some(NewEvent {
        org_id,
        kind: "federation.provider.updated",
        actor,
        subject_type: "federation_provider",
        subject_id: id,
        detail: provider_detail(&fields),
        created_at: now,
    }))
    .await?;
    get_provider(store, org_id, id).await
}

/// Deletes the provider and its subject links; its sessions stop at their next check. `false`
/// when the org has no such provider.
pub async fn delete_provider(store: &Store, org_id: &str, id: &str, actor: &Actor) -> Result<bool> {
    const LINKS: &str = "DELETE FROM federation_subjects WHERE org_id = $1 AND provider_id = $2";
    const SQL: &str = "DELETE FROM federation_providers WHERE org_id = $1 AND id = $2";
    let now = time::now();
    let mut tx = store.begin().await?;
    let deleted = on_tx!(&mut tx, |conn| {
        sqlx::query(LINKS)
            .bind(org_id)
            .bind(id)
            .execute(&mut *conn)
            .await?;
        sqlx::query(SQL)
            .bind(org_id)
            .bind(id)
            .execute(&mut *conn)
            .await?
            .rows_affected()
    });
    if deleted == 0 {
        return Ok(false);
    }
    tx.commit_audited(Some(NewEvent {
        org_id,
        kind: "federation.provider.deleted",
        actor,
        subject_type: "federation_provider",
        subject_id: id,
        detail: serde_json::json!({}),
        created_at: now,
    }))
    .await?;
    Ok(true)
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SubjectRow {
    pub org_id: String,
    pub provider_id: String,
    pub subject: String,
    pub agent_id: String,
    pub created_at: i64,
}

impl SubjectRow {
    pub fn into_api(self) -> SubjectLink {
        SubjectLink {
            provider_id: self.provider_id,
            subject: self.subject,
            agent_id: self.agent_id,
            created_at: time::format(self.created_at),
            extra: Default::default(),
        }
    }
}

const SUBJECT_COLUMNS: &str = "org_id, provider_id, subject, agent_id, created_at";

/// Links `subject` of the provider to `agent_id` (both of the org: the caller checked),
/// replacing an earlier link of the same subject.
pub async fn link_subject(
    store: &Store,
    org_id: &str,
    provider_id: &str,
    subject: &str,
    agent_id: &str,
    actor: &Actor,
) -> Result<SubjectRow> {
    const SQL: &str = "INSERT INTO federation_subjects (org_id, provider_id, subject, agent_id, \
                       created_at) VALUES ($1, $2, $3, $4, $5) \
                       ON CONFLICT (org_id, provider_id, subject) DO UPDATE SET \
                       agent_id = excluded.agent_id, created_at = excluded.created_at";
    let now = time::now();
    let mut tx = store.begin().await?;
    on_tx!(&mut tx, |conn| {
        sqlx::query(SQL)
            .bind(org_id)
            .bind(provider_id)
            .bind(subject)
            .bind(agent_id)
            .bind(now)
            .execute(&mut *conn)
            .await?;
    });
    tx.commit_audited(Some(NewEvent {
        org_id,
        kind: "federation.subject.linked",
        actor,
        subject_type: "federation_provider",
        subject_id: provider_id,
        detail: serde_json::json!({ "subject": subject, "agent_id": agent_id }),
        created_at: now,
    }))
    .await?;
    Ok(SubjectRow {
        org_id: org_id.to_string(),
        provider_id: provider_id.to_string(),
        subject: subject.to_string(),
        agent_id: agent_id.to_string(),
        created_at: now,
    })
}

pub async fn list_subjects(
    store: &Store,
    org_id: &str,
    provider_id: &str,
) -> Result<Vec<SubjectRow>> {
    let sql = format!(
        "SELECT {SUBJECT_COLUMNS} FROM federation_subjects WHERE org_id = $1 AND provider_id = $2 \
         ORDER BY subject"
    );
    Ok(on_db!(store, |pool| sqlx::query_as::<_, SubjectRow>(&sql)
        .bind(org_id)
        .bind(provider_id)
        .fetch_all(pool)
        .await?))
}

/// The agent `subject` of the provider acts as, if linked.
pub async fn find_subject(
    store: &Store,
    org_id: &str,
    provider_id: &str,
    subject: &str,
) -> Result<Option<SubjectRow>> {
    let sql = format!(
        "SELECT {SUBJECT_COLUMNS} FROM federation_subjects WHERE org_id = $1 AND provider_id = $2 \
         AND subject = $3"
    );
    Ok(on_db!(store, |pool| sqlx::query_as::<_, SubjectRow>(&sql)
        .bind(org_id)
        .bind(provider_id)
        .bind(subject)
        .fetch_optional(pool)
        .await?))
}

/// `false` when there was no such link.
pub async fn unlink_subject(
    store: &Store,
    org_id: &str,
    provider_id: &str,
    subject: &str,
    actor: &Actor,
) -> Result<bool> {
    const SQL: &str = "DELETE FROM federation_subjects WHERE org_id = $1 AND provider_id = $2 \
                       AND subject = $3";
    let now = time::now();
    let mut tx = store.begin().await?;
    let deleted = on_tx!(&mut tx, |conn| sqlx::query(SQL)
        .bind(org_id)
        .bind(provider_id)
        .bind(subject)
        .execute(&mut *conn)
        .await?
        .rows_affected());
    if deleted == 0 {
        return Ok(false);
    }
    tx.commit_audited(Some(NewEvent {
        org_id,
        kind: "federation.subject.unlinked",
        actor,
        subject_type: "federation_provider",
        subject_id: provider_id,
        detail: serde_json::json!({ "subject": subject }),
        created_at: now,
    }))
    .await?;
    Ok(true)
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct IdTokenRow {
    pub id: String,
    pub org_id: String,
    pub agent_id: String,
    pub audience: String,
    pub scopes: String,
    pub key_id: String,
    pub issued_at: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
}

/// An ID token about to be signed.
pub struct NewIdToken<'a> {
    pub id: &'a str,
    pub org_id: &'a str,
    pub agent_id: &'a str,
    pub audience: &'a str,
    pub scopes: &'a [String],
    pub key_id: &'a str,
    pub issued_at: i64,
    pub expires_at: i64,
}

/// Records an issued ID token (its `jti`, never the token).
pub async fn record_id_token(store: &Store, token: NewIdToken<'_>, actor: &Actor) -> Result<()> {
    const SQL: &str = "INSERT INTO federation_tokens (id, org_id, agent_id, audience, scopes, \
                       key_id, issued_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
    let mut tx = store.begin().await?;
    on_tx!(&mut tx, |conn| {
        sqlx::query(SQL)
            .bind(token.id)
            .bind(token.org_id)
            .bind(token.agent_id)
            .bind(token.audience)
            .bind(super::to_json_text(&token.scopes))
            .bind(token.key_id)
            .bind(token.issued_at)
            .bind(token.expires_at)
            .execute(&mut *conn)
            .await?;
    });
    tx.commit_audited(Some(NewEvent {
        org_id: token.org_id,
        kind: "federation.token.issued",
        actor,
        subject_type: "agent",
        subject_id: token.agent_id,
        detail: serde_json::json!({
            "token_id": token.id,
            "audience": token.audience,
            "scopes": token.scopes,
            "key_id": token.key_id,
            "expires_at": time::format(token.expires_at),
        }),
        created_at: token.issued_at,
    }))
    .await
}

pub async fn get_id_token(store: &Store, org_id: &str, id: &str) -> Result<Option<IdTokenRow>> {
    const SQL: &str = "SELECT id, org_id, agent_id, audience, scopes, key_id, issued_at, \
                       expires_at, revoked_at FROM federation_tokens WHERE org_id = $1 AND id = $2";
    Ok(on_db!(store, |pool| sqlx::query_as::<_, IdTokenRow>(SQL)
        .bind(org_id)
        .bind(id)
        .fetch_optional(pool)
        .await?))
}

/// Whether the ID token `id` (of any org) was revoked: a gateway that is its own provider
/// honours its revocations.
pub async fn id_token_revoked(store: &Store, id: &str) -> Result<bool> {
    const SQL: &str =
        "SELECT COUNT(*) FROM federation_tokens WHERE id = $1 AND revoked_at IS NOT NULL";
    let count: i64 = on_db!(store, |pool| sqlx::query_scalar(SQL)
        .bind(id)
        .fetch_one(pool)
        .await?);
    Ok(count > 0)
}

/// Revokes an ID token of the org. `None` when the org has no such token; `Some(false)` when it
/// was revoked already.
pub async fn revoke_id_token(
    store: &Store,
    org_id: &str,
    id: &str,
    actor: &Actor,
) -> Result<Option<bool>> {
    const SQL: &str = "UPDATE federation_tokens SET revoked_at = $3 \
                       WHERE org_id = $1 AND id = $2 AND revoked_at IS NULL";
    let now = time::now();
    let mut tx = store.begin().await?;
    let revoked = on_tx!(&mut tx, |conn| sqlx::query(SQL)
        .bind(org_id)
        .bind(id)
        .bind(now)
        .execute(&mut *conn)
        .await?
        .rows_affected());
    if revoked == 0 {
        drop(tx);
        return Ok(get_id_token(store, org_id, id).await?.map(|_| false));
    }
    tx.commit_audited(Some(NewEvent {
        org_id,
        kind: "federation.token.revoked",
        actor,
        subject_type: "federation_token",
        subject_id: id,
        detail: serde_json::json!({}),
        created_at: now,
    }))
    .await?;
    Ok(Some(true))
}
