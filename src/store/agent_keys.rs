//! Agent keys and what proves their possession: rotating an agent's key (the previous one kept
//! for a grace period), proof-of-possession challenges (single use, consumed atomically), and
//! the DPoP proofs already seen (one use per key and `jti`, shared by every replica).
//!
//! Secrets are kept as SHA-256 digests: a challenge's nonce, a proof's key and `jti`.

use super::audit::{Actor, NewEvent};
use super::changes::{self, Change};
use super::{Result, Store, agents, on_tx};

/// A validated key to make an agent's current one.
pub struct NewAgentKey<'a> {
    pub public_key: &'a str,
    pub thumbprint: &'a str,
    /// Until when (unix seconds) the key it replaces keeps working; `now` or earlier: at once
    /// no more.
    pub previous_valid_until: i64,
}

/// Makes `key` the agent's current key; the key it replaces (if any) stays valid until
/// `key.previous_valid_until`. `None` when the org has no such agent; a revoked agent keeps its
/// keys (`Ok(None)` too: nothing to rotate).
pub async fn rotate_key(
    store: &Store,
    org_id: &str,
    agent_id: &str,
    key: NewAgentKey<'_>,
    actor: &Actor,
) -> Result<Option<agents::AgentRow>> {
    // Every right-hand side reads the row as it was (both dialects), so the old key moves to
    // `previous_*` in the same statement that installs the new one.
    const SQL: &str = "UPDATE agents SET \
        previous_public_key = public_key, \
        previous_key_thumbprint = public_key_thumbprint, \
        previous_key_valid_until = CASE WHEN public_key IS NULL THEN NULL ELSE $3 END, \
        public_key = $4, public_key_thumbprint = $5 \
        WHERE org_id = $1 AND id = $2 AND status = 'active'";
    let now = crate::api::time::now();
    let mut tx = store.begin().await?;
    let changed = on_tx!(&mut tx, |conn| sqlx::query(SQL)
        .bind(org_id)
        .bind(agent_id)
        .bind(key.previous_valid_until)
        .bind(key.public_key)
        .bind(key.thumbprint)
        .execute(&mut *conn)
        .await?
        .rows_affected());
    if changed == 1 {
        changes::announce(
            &mut tx,
            &Change::Agent {
                id: agent_id.to_string(),
            },
        )
        .await?;
    }
    let event = (changed == 1).then(|| NewEvent {
        org_id,
        kind: "agent.key_rotated",
        actor,
        subject_type: "agent",
        subject_id: agent_id,
        detail: serde_json::json!({
            "thumbprint": key.thumbprint,
            "previous_key_valid_until": crate::api::time::format(key.previous_valid_until.max(now)),
        }),
        created_at: now,
    });
    tx.commit_audited(event).await?;
    if changed == 0 {
        return Ok(None);
    }
    agents::get(store, org_id, agent_id).await
}

/// Records a challenge for `agent_id`, redeemable once before `expires_at`.
pub async fn create_challenge(
    store: &Store,
    org_id: &str,
    agent_id: &str,
    nonce_digest: &str,
    expires_at: i64,
) -> Result<()> {
    const SQL: &str = "INSERT INTO pop_challenges (nonce_digest, org_id, agent_id, expires_at) \
                       VALUES ($1, $2, $3, $4)";
    let mut tx = store.begin().await?;
    on_tx!(&mut tx, |conn| sqlx::query(SQL)
        .bind(nonce_digest)
        .bind(org_id)
        .bind(agent_id)
        .bind(expires_at)
        .execute(&mut *conn)
        .await?
        .rows_affected());
    tx.commit().await
}

/// Redeems the challenge with this digest for `agent_id`: deletes it and answers whether it was
/// there, bound to that agent and unexpired. One DELETE decides, so of two concurrent
/// redemptions exactly one sees the row. A challenge redeemed for the wrong agent is spent too.
pub async fn consume_challenge(
    store: &Store,
    org_id: &str,
    agent_id: &str,
    nonce_digest: &str,
    now: i64,
) -> Result<bool> {
    const SQL: &str = "DELETE FROM pop_challenges WHERE nonce_digest = $1 \
                       RETURNING org_id, agent_id, expires_at";
    let mut tx = store.begin().await?;
    let row: Option<(String, String, i64)> = on_tx!(&mut tx, |conn| sqlx::query_as(SQL)
        .bind(nonce_digest)
        .fetch_optional(&mut *conn)
        .await?);
    tx.commit().await?;
    Ok(row.is_some_and(|(row_org, row_agent, expires_at)| {
        row_org == org_id && row_agent == agent_id && now < expires_at
    }))
}

/// Remembers a DPoP proof (its key and `jti`, digested) until `expires_at`; answers `false`
/// when a live entry already holds it: a replay. An entry past its time is taken over.
pub async fn remember_proof(
    store: &Store,
    proof_digest: &str,
    expires_at: i64,
    now: i64,
) -> Result<bool> {
    const SQL: &str = "INSERT INTO dpop_proofs_seen (proof_digest, expires_at) VALUES ($1, $2) \
                       ON CONFLICT (proof_digest) DO UPDATE SET expires_at = excluded.expires_at \
                       WHERE dpop_proofs_seen.expires_at <= $3";
    let mut tx = store.begin().await?;
    let inserted = on_tx!(&mut tx, |conn| sqlx::query(SQL)
        .bind(proof_digest)
        .bind(expires_at)
        .bind(now)
        .execute(&mut *conn)
        .await?
        .rows_affected());
    tx.commit().await?;
    Ok(inserted == 1)
}

/// Deletes the challenges and remembered proofs whose time has passed; how many.
pub async fn prune(store: &Store, now: i64) -> Result<u64> {
    const CHALLENGES: &str = "DELETE FROM pop_challenges WHERE expires_at <= $1";
    const PROOFS: &str = "DELETE FROM dpop_proofs_seen WHERE expires_at <= $1";
    let mut tx = store.begin().await?;
    let pruned = on_tx!(&mut tx, |conn| {
        let challenges = sqlx::query(CHALLENGES)
            .bind(now)
            .execute(&mut *conn)
            .await?
            .rows_affected();
        let proofs = sqlx::query(PROOFS)
            .bind(now)
            .execute(&mut *conn)
            .await?
            .rows_affected();
        challenges + proofs
    });
    tx.commit().await?;
    Ok(pruned)
}

/// A WIMSE token handed out (the token itself is a signed JWT the store never keeps).
pub struct IssuedWimseToken<'a> {
    pub org_id: &'a str,
    pub agent_id: &'a str,
    pub token_id: &'a str,
    /// The thumbprint of the key it is bound to, when it is.
    pub key_thumbprint: Option<&'a str>,
    pub issued_at: i64,
    pub expires_at: i64,
}

/// Appends `wimse.token_issued` to the org's audit chain (never the token).
pub async fn record_wimse_token(
    store: &Store,
    token: IssuedWimseToken<'_>,
    actor: &Actor,
) -> Result<()> {
    let tx = store.begin().await?;
    tx.commit_audited(Some(NewEvent {
        org_id: token.org_id,
        kind: "wimse.token_issued",
        actor,
        subject_type: "agent",
        subject_id: token.agent_id,
        detail: serde_json::json!({
            "token_id": token.token_id,
            "key_thumbprint": token.key_thumbprint,
            "expires_at": crate::api::time::format(token.expires_at),
        }),
        created_at: token.issued_at,
    }))
    .await
}
