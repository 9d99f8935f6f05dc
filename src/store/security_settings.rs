//! What an org enforces about agent credentials (`require_proof_of_possession`,
//! `require_sender_constrained_tokens`). An org without a row enforces nothing.

use super::audit::{Actor, NewEvent};
use super::changes::{self, Change};
use super::{Result, Store, on_db, on_tx};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct SecuritySettingsRow {
    /// WIMSE tokens are issued only against a proof of possession of the agent's key.
    pub require_proof_of_possession: bool,
    /// Agent credentials count only with a DPoP proof of the key they are bound to.
    pub require_sender_constrained_tokens: bool,
}

/// The org's settings (the defaults, both off, when it never set any).
pub async fn get(store: &Store, org_id: &str) -> Result<SecuritySettingsRow> {
    const SQL: &str = "SELECT require_proof_of_possession, require_sender_constrained_tokens \
                       FROM org_security_settings WHERE org_id = $1";
    let row = on_db!(store, |pool| sqlx::query_as::<_, SecuritySettingsRow>(SQL)
        .bind(org_id)
        .fetch_optional(pool)
        .await?);
    Ok(row.unwrap_or_default())
}

/// A change of some of the settings: a field left `None` keeps its value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SecuritySettingsChange {
    pub require_proof_of_possession: Option<bool>,
    pub require_sender_constrained_tokens: Option<bool>,
}

impl SecuritySettingsChange {
    fn applied_to(self, current: SecuritySettingsRow) -> SecuritySettingsRow {
        SecuritySettingsRow {
            require_proof_of_possession: self
                .require_proof_of_possession
                .unwrap_or(current.require_proof_of_possession),
            require_sender_constrained_tokens: self
                .require_sender_constrained_tokens
                .unwrap_or(current.require_sender_constrained_tokens),
        }
    }
}

/// Applies `change` to the org's settings in one transaction, tells the replicas, audits a
/// change; the settings as they now stand. The current settings are read in the transaction
/// that writes them, after the org's row is locked (PostgreSQL; SQLite runs one write
/// transaction at a time), so two concurrent changes of different fields both last.
pub async fn update(
    store: &Store,
    org_id: &str,
    change: SecuritySettingsChange,
    actor: &Actor,
) -> Result<SecuritySettingsRow> {
    const LOCK_ORG_POSTGRES: &str = "SELECT id FROM orgs WHERE id = $1 FOR UPDATE";
    const CURRENT: &str = "SELECT require_proof_of_possession, require_sender_constrained_tokens \
                           FROM org_security_settings WHERE org_id = $1";
    const SQL: &str = "INSERT INTO org_security_settings (org_id, require_proof_of_possession, \
                       require_sender_constrained_tokens, updated_at) VALUES ($1, $2, $3, $4) \
                       ON CONFLICT (org_id) DO UPDATE SET \
                       require_proof_of_possession = excluded.require_proof_of_possession, \
                       require_sender_constrained_tokens = excluded.require_sender_constrained_tokens, \
                       updated_at = excluded.updated_at";
    let now = crate::api::time::now();
    let mut tx = store.begin().await?;
    if let super::TxConnection::Postgres(transaction) = &mut tx.connection {
        sqlx::query(LOCK_ORG_POSTGRES)
            .bind(org_id)
            .fetch_optional(&mut **transaction)
            .await?;
    }
    let before = on_tx!(&mut tx, |conn| sqlx::query_as::<_, SecuritySettingsRow>(
        CURRENT
    )
    .bind(org_id)
    .fetch_optional(&mut *conn)
    .await?)
    .unwrap_or_default();
    let settings = change.applied_to(before);
    on_tx!(&mut tx, |conn| sqlx::query(SQL)
        .bind(org_id)
        .bind(settings.require_proof_of_possession)
        .bind(settings.require_sender_constrained_tokens)
        .bind(now)
        .execute(&mut *conn)
        .await?
        .rows_affected());
    changes::announce(
        &mut tx,
        &Change::SecuritySettings {
            org_id: org_id.to_string(),
        },
    )
    .await?;
    let event = (before != settings).then(|| NewEvent {
        org_id,
        kind: "org.security_settings_changed",
        actor,
        subject_type: "org",
        subject_id: org_id,
        detail: serde_json::json!({
            "require_proof_of_possession": settings.require_proof_of_possession,
            "require_sender_constrained_tokens": settings.require_sender_constrained_tokens,
        }),
        created_at: now,
    });
    tx.commit_audited(event).await?;
    Ok(settings)
}
