//! Sessions: opened for a registered MCP server or from an agent token, created implicitly by checks;
//! read by any org key, listed and re-moded (lock, unlock, read-only, elevated) by admins.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use crate::api::policies::SessionMode;
use crate::api::sessions::{
    InitApiSessionRequest, InitSessionRequest, OpenSessionRequest, SOURCE_API, SOURCE_MCP,
    SOURCE_SHELL, Session, SessionList, SessionQuery, SetModeRequest,
};
use crate::api::telemetry::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
use crate::api::time;
use crate::store::{self, sessions::SessionRow};

use super::AppState;
use super::agents::not_found as agent_not_found;
use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::extract::{JsonBody, PathId, QueryParams};
use super::secrets::{self, AGENT_TOKEN_PREFIX};
use super::validate;

/// `POST /mcp/sessions/init`: a session of an agent with an MCP server.
pub async fn init(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(request): JsonBody<InitSessionRequest>,
) -> ApiResult<(StatusCode, Json<Session>)> {
    let agent_id = Some(request.agent_id.as_str()).filter(|id| !id.is_empty());
    // Who first (a missing agent is a 400), then the server: one the org registered (another
    // org's is a 404 like a missing one).
    caller.acting_agent(agent_id)?;
    if let Some(server_id) = &request.server_id {
        super::mcp::find_server(&state, &caller.org_id, server_id).await?;
    }
    open_registered(
        &state,
        &caller,
        agent_id,
        SOURCE_MCP,
        request.server_id.as_deref(),
    )
    .await
}

/// `POST /api/v1/sessions`: a registered session of a shell agent (`guard session start`).
pub async fn open(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(request): JsonBody<OpenSessionRequest>,
) -> ApiResult<(StatusCode, Json<Session>)> {
    open_registered(
        &state,
        &caller,
        request.agent_id.as_deref(),
        SOURCE_SHELL,
        None,
    )
    .await
}

/// Opens a session the gateway registers (so a policy requiring registered sessions admits
/// it). An org key opens one for any agent of the org; an agent token only for its own agent,
/// and the session is then bounded by the token (its scopes are the session's ceiling).
async fn open_registered(
    state: &AppState,
    caller: &Caller,
    agent_id: Option<&str>,
    source: &str,
    server_id: Option<&str>,
) -> ApiResult<(StatusCode, Json<Session>)> {
    let agent_id = caller.acting_agent(agent_id)?;
    let token = caller.presented_token();
    let agent = store::agents::get(&state.store, &caller.org_id, &agent_id)
        .await?
        .ok_or_else(|| agent_not_found(&agent_id))?;
    if !agent.is_active() {
        return Err(ApiError::conflict(format!(
            "agent {} is {}; it cannot open sessions",
            agent.id, agent.status
        )));
    }
    let row = store::sessions::create(
        &state.store,
        store::sessions::NewSession {
            org_id: &caller.org_id,
            agent_id: &agent.id,
            source,
            server_id,
            scope_ceiling: token.as_ref().map_or(&[][..], |token| &token.scopes[..]),
            token_id: token.as_ref().map(|token| token.id.as_str()),
            delegation_id: None,
            federation: None,
        },
        &caller.actor(),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(to_wire(state, row).await?)))
}

/// `POST /api/v1/agenttrust/api-sessions/init`: a session whose agent and scope ceiling come
/// from an active agent token.
pub async fn init_api(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(request): JsonBody<InitApiSessionRequest>,
) -> ApiResult<(StatusCode, Json<Session>)> {
    caller.require_key()?;
    // The key opens a session as the token's agent, on the strength of a token that comes in
    // the body with no proof: where the org requires sender-constrained tokens, the agent opens
    // its session itself (`POST /api/v1/sessions` with its token and a DPoP proof).
    caller.require_may_act_as_agent()?;
    if request.token.is_empty() {
        return Err(ApiError::validation("token is required"));
    }
    let token = if request.token.starts_with(AGENT_TOKEN_PREFIX) {
        store::tokens::find_by_digest(&state.store, &secrets::digest(&request.token)).await?
    } else {
        None
    }
    .filter(|token| token.org_id == caller.org_id)
    .ok_or_else(|| ApiError::unauthenticated("the token is not a valid agent token of this org"))?;
    let inactive = if token.revoked_at.is_some() {
        Some("revoked")
    } else if token.expires_at <= time::now() {
        Some("expired")
    } else if token.agent_status != store::agents::STATUS_ACTIVE {
        Some("of a revoked agent")
    } else {
        None
    };
    if let Some(why) = inactive {
        return Err(ApiError::unauthenticated(format!("the token is {why}")));
    }
    let scopes = token.scopes()?;
    let row = store::sessions::create(
        &state.store,
        store::sessions::NewSession {
            org_id: &caller.org_id,
            agent_id: &token.agent_id,
            source: SOURCE_API,
            server_id: None,
            scope_ceiling: &scopes,
            token_id: Some(&token.id),
            delegation_id: None,
            federation: None,
        },
        &caller.actor(),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(to_wire(&state, row).await?)))
}

/// `GET /mcp/sessions/{id}`.
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId,
) -> ApiResult<Json<Session>> {
    caller.require_key()?;
    let row = store::sessions::get(&state.store, &caller.org_id, &id)
        .await?
        .ok_or_else(|| not_found(&id))?;
    Ok(Json(to_wire(&state, row).await?))
}

/// `GET /api/v1/sessions`.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(query): QueryParams<SessionQuery>,
) -> ApiResult<Json<SessionList>> {
    caller.require_admin()?;
    let limit = validate::page_limit(query.limit, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)?;
    let mode = query
        .mode
        .as_deref()
        .map(str::parse::<SessionMode>)
        .transpose()
        .map_err(ApiError::validation)?;
    let (rows, more) = store::sessions::list(
        &state.store,
        store::sessions::SessionFilter {
            org_id: &caller.org_id,
            agent_id: query.agent_id.as_deref(),
            mode: mode.map(SessionMode::as_str),
            source: query.source.as_deref(),
            after_id: query.cursor.as_deref(),
            limit,
        },
    )
    .await?;
    let next_cursor = if more {
        rows.last().map(|row| row.id.clone())
    } else {
        None
    };
    let mut sessions = Vec::with_capacity(rows.len());
    for row in rows {
        sessions.push(to_wire(&state, row).await?);
    }
    Ok(Json(SessionList {
        sessions,
        next_cursor,
        extra: Default::default(),
    }))
}

/// `PUT /api/v1/sessions/{id}/mode`.
pub async fn set_mode(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId,
    JsonBody(request): JsonBody<SetModeRequest>,
) -> ApiResult<Json<Session>> {
    caller.require_admin()?;
    let mode: SessionMode = request.mode.parse().map_err(ApiError::validation)?;
    change_mode(&state, &caller, &id, mode).await
}

/// `POST /api/v1/sessions/{id}/unlock`: back to `standard`, denials so far forgiven.
pub async fn unlock(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId,
) -> ApiResult<Json<Session>> {
    caller.require_admin()?;
    change_mode(&state, &caller, &id, SessionMode::Standard).await
}

async fn change_mode(
    state: &AppState,
    caller: &Caller,
    id: &str,
    mode: SessionMode,
) -> ApiResult<Json<Session>> {
    let row = store::sessions::set_mode(
        &state.store,
        &caller.org_id,
        id,
        mode.as_str(),
        &caller.actor(),
    )
    .await?
    .ok_or_else(|| not_found(id))?;
    // Committed: this replica's next check reads the new mode (the others hear the notice).
    state.caches.forget(&store::changes::Change::Session {
        org_id: caller.org_id.clone(),
        id: id.to_string(),
    });
    Ok(Json(to_wire(state, row).await?))
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("session {id} not found"))
}

/// The wire Session: a standard or read-only session holding a live approval grant reads
/// `elevated`.
pub async fn to_wire(state: &AppState, row: SessionRow) -> ApiResult<Session> {
    let mut mode = row.mode.clone();
    if (mode == SessionMode::Standard.as_str() || mode == SessionMode::ReadOnly.as_str())
        && store::approvals::session_has_active_grant(&state.store, &row.org_id, &row.id).await?
    {
        mode = SessionMode::Elevated.as_str().to_string();
    }
    let count = |value: i64| u64::try_from(value).unwrap_or(0);
    Ok(Session {
        scope_ceiling: row.scope_ceiling()?.unwrap_or_default(),
        session_id: row.id,
        agent_id: row.agent_id,
        org_id: row.org_id,
        source: row.source,
        server_id: row.server_id,
        delegation_id: row.delegation_id,
        provider_id: row.provider_id,
        issuer: row.issuer,
        trust_level: row.trust_level,
        expires_at: row.expires_at.map(time::format),
        mode,
        allowed_actions: Vec::new(),
        total_calls: count(row.total_calls),
        read_calls: count(row.read_calls),
        write_calls: count(row.write_calls),
        denied_calls: count(row.denied_calls),
        created_at: time::format(row.created_at),
        last_activity_at: time::format(row.last_activity_at),
        extra: Default::default(),
    })
}
