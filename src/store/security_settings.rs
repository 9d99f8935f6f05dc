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

/// Stores the org's settings, tells the replicas, audits a change.
pub async fn set(
    store: &Store,
    org_id: &str,
    settings: SecuritySettingsRow,
    actor: &Actor,
) -> Result<SecuritySettingsRow> {
    const SQL: &str = "INSERT INTO org_security_settings (org_id, require_proof_of_possession, \
                       require_sender_constrained_tokens, updated_at) VALUES ($1, $2, $3, $4) \
                       ON CONFLICT (org_id) DO UPDATE SET \
                       require_proof_of_possession = excluded.require_proof_of_possession, \
                       require_sender_constrained_tokens = excluded.require_sender_constrained_tokens, \
                       updated_at = excluded.updated_at";
    let now = crate::api::time::now();
    let before = get(store, org_id).await?;
    let mut tx = store.begin().await?;
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
