//! Agent tokens: issue (the secret is shown once), introspect (the only way to know whether a
//! token is good), revoke by the secret — any org API key may call these — and, for admin keys,
//! list (never a secret: only digests are kept) and revoke by id.

use std::time::Instant;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use crate::api::time;
use crate::api::tokens::{
    DEFAULT_PAGE_SIZE, DEFAULT_TTL_SECONDS, IntrospectRequest, Introspection, IssueTokenRequest,
    IssuedToken, MAX_PAGE_SIZE, RevokeTokenByIdRequest, RevokeTokenRequest, RevokeTokenResponse,
    TokenPage, TokenQuery, TokenSummary,
};
use crate::guardian::GUARD_TIER_FAST;
use crate::store;
use crate::store::changes::Change;
use crate::store::group_commit::WriteFn;
use crate::store::tokens::Revocation;

use super::AppState;
use super::agents::{DEFAULT_REVOKE_REASON, not_found as agent_not_found};
use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::extract::{JsonBody, PathId, QueryParams};
use super::secrets::{self, AGENT_TOKEN_PREFIX};
use super::validate;

/// The lifetime of a token to issue: `requested` (or `default`), positive, capped — not
/// refused — at the server's `--max-token-ttl` like Vault's max_ttl, with a warning saying so.
pub fn capped_ttl(
    state: &AppState,
    requested: Option<i64>,
    default: i64,
) -> ApiResult<(i64, Vec<String>)> {
    let requested_ttl = requested.unwrap_or(default);
    if requested_ttl <= 0 {
        return Err(ApiError::validation(format!(
            "ttl must be a positive number of seconds, not {requested_ttl}"
        )));
    }
    let max_ttl = state.settings.max_token_ttl_seconds;
    let ttl = requested_ttl.min(max_ttl);
    let mut warnings = Vec::new();
    if ttl < requested_ttl {
        warnings.push(format!(
            "ttl {requested_ttl} s was capped to {max_ttl} s, the longest this gateway issues \
             tokens for (server option --max-token-ttl)"
        ));
    }
    Ok((ttl, warnings))
}

/// The agent a token (an agent token or an ID token) is issued for: of the org, active, and
/// holding every scope asked for — the same ceiling as a delegation's: a token carries only
/// what its agent holds, and an agent registered without capabilities holds nothing to hand
/// out.
pub async fn issuable_agent(
    state: &AppState,
    org_id: &str,
    agent_id: &str,
    scopes: &[String],
) -> ApiResult<store::agents::AgentRow> {
    // Through the replica's cache, as a check reads it: a revocation on any replica reaches it
    // within a second, and a token issued to an agent revoked meanwhile is refused wherever it
    // is presented (a token is only as live as its agent).
    let agent = state
        .caches
        .agent(&state.store, org_id, agent_id)
        .await?
        .ok_or_else(|| agent_not_found(agent_id))?;
    if !agent.is_active() {
        return Err(ApiError::conflict(format!(
            "agent {} is {}; it cannot be issued tokens",
            agent.id, agent.status
        )));
    }
    let capabilities = agent.capabilities()?;
    if let Some(extra) = scopes.iter().find(|scope| !capabilities.contains(scope)) {
        return Err(ApiError::validation(if capabilities.is_empty() {
            format!(
                "scope {extra:?}: agent {} was registered without capabilities, so its tokens \
                 may carry none; register the agent with `agenttrust agents create \
                 --capabilities …`",
                agent.id
            )
        } else {
            format!(
                "scope {extra:?} is not among the agent's capabilities ({})",
                capabilities.join(", ")
            )
        }));
    }
    Ok(agent)
}

pub async fn issue(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(request): JsonBody<IssueTokenRequest>,
) -> ApiResult<(StatusCode, Json<IssuedToken>)> {
    caller.require_key()?;
    if request.agent_id.is_empty() {
        return Err(ApiError::validation("agent_id is required"));
    }
    let scopes = validate::scope_list("scopes", &request.scopes)?;
    if let Some(session_id) = &request.session_id {
        validate::identifier("session_id", session_id)?;
    }
    let (ttl, warnings) = capped_ttl(&state, request.ttl, DEFAULT_TTL_SECONDS)?;
    let agent = issuable_agent(&state, &caller.org_id, &request.agent_id, &scopes).await?;

    let token = secrets::generate(AGENT_TOKEN_PREFIX);
    let issued_at = time::now();
    let expires_at = validate::expiry("ttl", issued_at, ttl)?;
    let new_token = store::tokens::NewToken {
        org_id: caller.org_id.clone(),
        agent_id: agent.id.clone(),
        token_digest: secrets::digest(&token),
        scopes: scopes.clone(),
        session_id: request.session_id.clone(),
        issued_at,
        expires_at,
        actor: caller.actor(),
    };
    let token_id = state
        .writer
        .write(
            &agent.id,
            WriteFn::holding(new_token, |token, tx| {
                Box::pin(store::tokens::issue_in(tx, token))
            }),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(IssuedToken {
            token,
            token_id,
            agent_id: agent.id,
            scope: scopes.clone(),
            scopes,
            audience: Vec::new(),
            issued_at: time::format(issued_at),
            expires_at: time::format(expires_at),
            ttl_seconds: ttl,
            session_id: request.session_id,
            warnings,
            extra: Default::default(),
        }),
    ))
}

pub async fn introspect(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(request): JsonBody<IntrospectRequest>,
) -> ApiResult<Json<Introspection>> {
    let started = Instant::now();
    caller.require_key()?;
    if request.token.is_empty() {
        return Err(ApiError::validation("token is required"));
    }
    let mut answer = Introspection {
        active: false,
        agent_id: None,
        org_id: None,
        token_id: None,
        scopes: Vec::new(),
        session_id: None,
        expires_at: None,
        reasoning: String::new(),
        guard_tier: GUARD_TIER_FAST.to_string(),
        confidence: 1.0,
        latency_ms: 0,
        extra: Default::default(),
    };
    let row = if request.token.starts_with(AGENT_TOKEN_PREFIX) {
        store::tokens::find_by_digest(&state.store, &secrets::digest(&request.token)).await?
    } else {
        None
    };
    // Another org's token is as unknown as a made-up one: nothing about it leaks.
    match row.filter(|row| row.org_id == caller.org_id) {
        None => answer.reasoning = "token not recognised".to_string(),
        Some(row) => {
            let scopes = row.scopes()?;
            let missing: Vec<&str> = request
                .required_scopes
                .iter()
                .filter(|scope| !scopes.contains(scope))
                .map(String::as_str)
                .collect();
            answer.reasoning = if let Some(revoked_at) = row.revoked_at {
                format!(
                    "token revoked at {} ({})",
                    time::format(revoked_at),
                    row.revoke_reason.as_deref().unwrap_or("no reason given")
                )
            } else if row.expires_at <= time::now() {
                format!("token expired at {}", time::format(row.expires_at))
            } else if row.agent_status != store::agents::STATUS_ACTIVE {
                format!("agent {} is {}", row.agent_id, row.agent_status)
            } else if !missing.is_empty() {
                format!("token lacks required scope(s): {}", missing.join(", "))
            } else {
                answer.active = true;
                "token is active".to_string()
            };
            answer.agent_id = Some(row.agent_id);
            answer.org_id = Some(row.org_id);
            answer.token_id = Some(row.id);
            answer.scopes = scopes;
            answer.session_id = row.session_id;
            answer.expires_at = Some(time::format(row.expires_at));
        }
    }
    answer.latency_ms = started.elapsed().as_millis() as i64;
    Ok(Json(answer))
}

pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(request): JsonBody<RevokeTokenRequest>,
) -> ApiResult<Json<RevokeTokenResponse>> {
    caller.require_key()?;
    if request.token.is_empty() {
        return Err(ApiError::validation("token is required"));
    }
    let reason = request.reason.as_deref().unwrap_or(DEFAULT_REVOKE_REASON);
    validate::name("reason", reason)?;
    let digest = secrets::digest(&request.token);
    let outcome = store::tokens::revoke(
        &state.store,
        &caller.org_id,
        &digest,
        reason,
        &caller.actor(),
    )
    .await?;
    // Committed: from this answer on, this replica refuses the token (others on the notice).
    state.caches.forget_agent_token_digest(&digest);
    match outcome {
        Revocation::NotFound => Err(ApiError::not_found("token not found")),
        Revocation::Revoked | Revocation::AlreadyRevoked => Ok(Json(RevokeTokenResponse {
            success: true,
            revoked: outcome == Revocation::Revoked,
            token_id: String::new(),
            extra: Default::default(),
        })),
    }
}

/// Revokes a token by its id (admin keys only: the caller does not hold the token).
pub async fn revoke_by_id(
    State(state): State<AppState>,
    caller: Caller,
    PathId(token_id): PathId,
    JsonBody(request): JsonBody<RevokeTokenByIdRequest>,
) -> ApiResult<Json<RevokeTokenResponse>> {
    caller.require_admin()?;
    validate::identifier("token_id", &token_id)?;
    let reason = request.reason.as_deref().unwrap_or(DEFAULT_REVOKE_REASON);
    validate::name("reason", reason)?;
    let outcome = store::tokens::revoke_by_id(
        &state.store,
        &caller.org_id,
        &token_id,
        reason,
        &caller.actor(),
    )
    .await?;
    state.caches.forget(&Change::AgentToken {
        id: token_id.clone(),
    });
    match outcome {
        Revocation::NotFound => Err(ApiError::not_found(format!("token {token_id} not found"))),
        Revocation::Revoked | Revocation::AlreadyRevoked => Ok(Json(RevokeTokenResponse {
            success: true,
            revoked: outcome == Revocation::Revoked,
            token_id,
            extra: Default::default(),
        })),
    }
}

/// Lists the org's tokens, active ones only unless asked (admin keys only; never a secret).
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(query): QueryParams<TokenQuery>,
) -> ApiResult<Json<TokenPage>> {
    caller.require_admin()?;
    let limit = validate::page_limit(query.limit, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)?;
    if let Some(agent_id) = &query.agent_id {
        validate::identifier("agent_id", agent_id)?;
    }
    let now = time::now();
    let (rows, more) = store::tokens::list(
        &state.store,
        store::tokens::TokenFilter {
            org_id: &caller.org_id,
            agent_id: query.agent_id.as_deref(),
            include_inactive: query.include_inactive.unwrap_or(false),
            after_id: query.cursor.as_deref(),
            limit,
            now,
        },
    )
    .await?;
    let next_cursor = if more {
        rows.last().map(|row| row.id.clone())
    } else {
        None
    };
    let tokens = rows
        .into_iter()
        .map(|row| summary(row, now))
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(Json(TokenPage {
        tokens,
        next_cursor,
        extra: Default::default(),
    }))
}

fn summary(row: store::tokens::TokenRow, now: i64) -> ApiResult<TokenSummary> {
    let status = if row.revoked_at.is_some() {
        "revoked".to_string()
    } else if row.expires_at <= now {
        "expired".to_string()
    } else if row.agent_status != store::agents::STATUS_ACTIVE {
        format!("agent_{}", row.agent_status)
    } else {
        "active".to_string()
    };
    Ok(TokenSummary {
        scopes: row.scopes()?,
        token_id: row.id,
        agent_id: row.agent_id,
        session_id: row.session_id,
        issued_at: time::format(row.issued_at),
        expires_at: time::format(row.expires_at),
        revoked_at: row.revoked_at.map(time::format),
        revoke_reason: row.revoke_reason,
        status,
        extra: Default::default(),
    })
}
