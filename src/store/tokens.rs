//! Agent tokens: stored as SHA-256 digests of the opaque `at_…` string. Introspection is one
//! indexed point lookup joined with the agent, so revoking the agent ends its tokens at once.
//! Tokens are revoked by digest (the holder) or by id (an operator), and listed by page.

use crate::api::time;

use super::audit::{self, Actor, NewEvent};
use super::changes::{self, Change};
use super::deferred::Table;
use super::script::Value;
use super::{Result, Store, Tx, on_db, on_tx, string_list, to_json_text};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TokenRow {
    pub id: String,
    pub org_id: String,
    pub agent_id: String,
    pub scopes: String,
    pub session_id: Option<String>,
    pub issued_at: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
    pub revoke_reason: Option<String>,
    /// The owning agent's status, joined in.
    pub agent_status: String,
}

impl TokenRow {
    pub fn scopes(&self) -> Result<Vec<String>> {
        string_list(&self.scopes)
    }
}

/// A token to store; the caller generated the secret and passes only its digest.
pub struct NewToken {
    pub org_id: String,
    pub agent_id: String,
    pub token_digest: String,
    pub scopes: Vec<String>,
    pub session_id: Option<String>,
    pub issued_at: i64,
    pub expires_at: i64,
    /// Who issued it (the audit event's actor).
    pub actor: Actor,
}

pub async fn issue(store: &Store, token: &NewToken) -> Result<String> {
    let mut tx = store.begin().await?;
    let id = issue_in(&mut tx, token).await?;
    tx.commit().await?;
    Ok(id)
}

/// The `agent_tokens` columns an issue writes, for rows held until commit.
static ISSUED_TOKENS: Table = Table {
    name: "agent_tokens",
    columns: &[
        "id",
        "org_id",
        "agent_id",
        "token_digest",
        "scopes",
        "session_id",
        "issued_at",
        "expires_at",
    ],
};

/// [`issue`] inside `tx` (the gateway queues it on the group-commit writer). The row is
/// inserted when `tx` commits (nothing in the transaction reads it back), so a batch of issues
/// is one INSERT.
pub async fn issue_in(tx: &mut Tx, token: &NewToken) -> Result<String> {
    let id = super::new_id();
    tx.deferred().insert(
        &ISSUED_TOKENS,
        vec![
            Value::Text(id.clone()),
            Value::Text(token.org_id.clone()),
            Value::Text(token.agent_id.clone()),
            Value::Text(token.token_digest.clone()),
            Value::Text(to_json_text(&token.scopes)),
            Value::OptionalText(token.session_id.clone()),
            Value::Integer(token.issued_at),
            Value::Integer(token.expires_at),
        ],
    );
    audit::append(
        tx,
        NewEvent {
            org_id: &token.org_id,
            kind: "token.issued",
            actor: &token.actor,
            subject_type: "agent_token",
            subject_id: &id,
            detail: serde_json::json!({
                "agent_id": token.agent_id,
                "scopes": token.scopes,
                "expires_at": time::format(token.expires_at),
            }),
            created_at: token.issued_at,
        },
    )
    .await?;
    Ok(id)
}

/// The token with this digest and its agent's status, whatever its state.
pub async fn find_by_digest(store: &Store, token_digest: &str) -> Result<Option<TokenRow>> {
    const SQL: &str = "SELECT t.id, t.org_id, t.agent_id, t.scopes, t.session_id, t.issued_at, \
                       t.expires_at, t.revoked_at, t.revoke_reason, a.status AS agent_status \
                       FROM agent_tokens t JOIN agents a ON a.id = t.agent_id \
                       WHERE t.token_digest = $1";
    Ok(on_db!(store, |pool| sqlx::query_as::<_, TokenRow>(SQL)
        .bind(token_digest)
        .fetch_optional(pool)
        .await?))
}

/// The outcome of a revoke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revocation {
    /// The org has no token with this digest.
    NotFound,
    Revoked,
    AlreadyRevoked,
}

/// Revokes the org's token with this digest (the wire endpoint: the caller holds the secret).
pub async fn revoke(
    store: &Store,
    org_id: &str,
    token_digest: &str,
    reason: &str,
    actor: &Actor,
) -> Result<Revocation> {
    const FIND: &str = "SELECT id FROM agent_tokens WHERE org_id = $1 AND token_digest = $2";
    revoke_found(store, org_id, FIND, token_digest, reason, actor).await
}

/// Revokes the org's token with this id (an operator who holds only the id).
pub async fn revoke_by_id(
    store: &Store,
    org_id: &str,
    token_id: &str,
    reason: &str,
    actor: &Actor,
) -> Result<Revocation> {
    const FIND: &str = "SELECT id FROM agent_tokens WHERE org_id = $1 AND id = $2";
    revoke_found(store, org_id, FIND, token_id, reason, actor).await
}

/// Finds the token with `find` (`$1` org, `$2` `key`) and revokes it with its audit event, in
/// one transaction.
async fn revoke_found(
    store: &Store,
    org_id: &str,
    find: &str,
    key: &str,
    reason: &str,
    actor: &Actor,
) -> Result<Revocation> {
    const SQL: &str = "UPDATE agent_tokens SET revoked_at = $3, revoke_reason = $4 \
                       WHERE org_id = $1 AND id = $2 AND revoked_at IS NULL";
    let now = time::now();
    let mut tx = store.begin().await?;
    let outcome = on_tx!(&mut tx, |conn| {
        let id: Option<String> = sqlx::query_scalar(find)
            .bind(org_id)
            .bind(key)
            .fetch_optional(&mut *conn)
            .await?;
        match id {
            None => None,
            Some(id) => {
                let changed = sqlx::query(SQL)
                    .bind(org_id)
                    .bind(&id)
                    .bind(now)
                    .bind(reason)
                    .execute(&mut *conn)
                    .await?
                    .rows_affected();
                Some((id, changed == 1))
            }
        }
    });
    let Some((id, changed)) = outcome else {
        return Ok(Revocation::NotFound);
    };
    if !changed {
        return Ok(Revocation::AlreadyRevoked);
    }
    changes::announce(&mut tx, &Change::AgentToken { id: id.clone() }).await?;
    tx.commit_audited(Some(NewEvent {
        org_id,
        kind: "token.revoked",
        actor,
        subject_type: "agent_token",
        subject_id: &id,
        detail: serde_json::json!({ "reason": reason }),
        created_at: now,
    }))
    .await?;
    Ok(Revocation::Revoked)
}

/// A page query over an org's tokens.
pub struct TokenFilter<'a> {
    pub org_id: &'a str,
    pub agent_id: Option<&'a str>,
    /// Also revoked and expired tokens and those of inactive agents.
    pub include_inactive: bool,
    /// Tokens strictly after this id (ids are UUID v7: issue order).
    pub after_id: Option<&'a str>,
    pub limit: u32,
    /// What "expired" is measured against.
    pub now: i64,
}

/// One page of tokens in issue order; asks for one row more than the limit to know whether
/// more follow.
pub async fn list(store: &Store, filter: TokenFilter<'_>) -> Result<(Vec<TokenRow>, bool)> {
    // `CAST($n AS TEXT)` tells PostgreSQL the parameter's type when it is NULL.
    const SQL: &str = "SELECT t.id, t.org_id, t.agent_id, t.scopes, t.session_id, t.issued_at, \
                       t.expires_at, t.revoked_at, t.revoke_reason, a.status AS agent_status \
                       FROM agent_tokens t JOIN agents a ON a.id = t.agent_id \
                       WHERE t.org_id = $1 \
                       AND (CAST($2 AS TEXT) IS NULL OR t.agent_id = $2) \
                       AND ($3 OR (t.revoked_at IS NULL AND t.expires_at > $4 \
                                   AND a.status = 'active')) \
                       AND (CAST($5 AS TEXT) IS NULL OR t.id > $5) \
                       ORDER BY t.id LIMIT $6";
    let fetch = i64::from(filter.limit) + 1;
    let mut rows = on_db!(store, |pool| sqlx::query_as::<_, TokenRow>(SQL)
        .bind(filter.org_id)
        .bind(filter.agent_id)
        .bind(filter.include_inactive)
        .bind(filter.now)
        .bind(filter.after_id)
        .bind(fetch)
        .fetch_all(pool)
        .await?);
    let more = rows.len() as i64 > i64::from(filter.limit);
    rows.truncate(filter.limit as usize);
    Ok((rows, more))
}
