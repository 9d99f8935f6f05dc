//! The MCP sessions the gateway holds for its clients (`Mcp-Session-Id`, MCP Streamable HTTP).
//! When an upstream assigns a session on `initialize`, the client is given an id the gateway
//! minted instead (`mcps_` + 256 random bits; only its SHA-256 digest is stored), mapped in the
//! database to the upstream's id, so any replica serves it and the upstream's id never reaches
//! the client. A session belongs to the org, server and agent that initialized it: presented by
//! anyone else, or once idle past the gateway's limit, or after it ended, it is unknown — a 404,
//! on which an MCP client starts a new session. `DELETE /mcp/{server_id}` ends it, upstream too.
//!
//! An agent keeps at most [`MAX_SESSIONS_PER_AGENT`] sessions on a server: opening one more
//! ends its least recently used (and tells that one's upstream), so a flood of `initialize`
//! requests grows nothing without bound. Session ids are secrets: never logged, never audited
//! (the audit log names a session by a separate public id).

use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::api::mcp::MCP_SESSION_ID_HEADER;
use crate::api::time;
use crate::store::{self, mcp::sessions::SessionRow};

use super::super::AppState;
use super::super::auth::Caller;
use super::super::error::{ApiError, ApiResult};
use super::super::extract::PathId;
use super::super::secrets;
use super::proxy::Exchange;
use super::{NOT_SEALED, find_server, seal};

/// The prefix of the session ids the gateway mints.
pub const SESSION_PREFIX: &str = "mcps_";
/// How long a session may go unused before it ends, unless configured otherwise.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60 * 60);
/// The most sessions one agent keeps open on one server.
pub const MAX_SESSIONS_PER_AGENT: i64 = 32;
/// A session used within this many seconds is not marked used again (one write a minute at
/// most for a busy session).
const TOUCH_AFTER_SECONDS: i64 = 60;
/// The longest session id accepted, from a client or an upstream.
const MAX_SESSION_ID_BYTES: usize = 1024;

/// A client's session, resolved: its row and the upstream's id to forward with.
#[derive(Clone)]
pub struct Session {
    pub row: SessionRow,
    pub upstream_id: String,
}

/// A session id as MCP allows it: visible ASCII (0x21–0x7E), bounded.
pub fn well_formed(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= MAX_SESSION_ID_BYTES
        && value.bytes().all(|byte| (0x21..=0x7e).contains(&byte))
}

pub fn not_found() -> ApiError {
    ApiError::not_found(
        "MCP session not found (it ended, expired, or is not this agent's): initialize a new \
         session",
    )
}

fn idle_cutoff(state: &AppState, now: i64) -> i64 {
    let idle = i64::try_from(state.mcp.session_idle.as_secs()).unwrap_or(i64::MAX);
    now.saturating_sub(idle)
}

/// The session `presented` of this org, server and agent (404 otherwise), marked used.
pub async fn resolve(
    state: &AppState,
    caller: &Caller,
    server_id: &str,
    agent_id: &str,
    presented: &str,
) -> ApiResult<Session> {
    if !well_formed(presented) {
        return Err(ApiError::validation(format!(
            "the {MCP_SESSION_ID_HEADER} header must be visible ASCII of at most \
             {MAX_SESSION_ID_BYTES} bytes"
        )));
    }
    if !presented.starts_with(SESSION_PREFIX) {
        return Err(not_found());
    }
    let digest = secrets::digest(presented);
    let now = time::now();
    let row = store::mcp::sessions::find(
        &state.store,
        &digest,
        &caller.org_id,
        server_id,
        agent_id,
        idle_cutoff(state, now),
    )
    .await?
    .ok_or_else(not_found)?;
    let upstream_id = unseal(state, &row)?;
    if row.last_used_at < now - TOUCH_AFTER_SECONDS {
        store::mcp::sessions::touch(&state.store, &digest, now, now - TOUCH_AFTER_SECONDS).await?;
    }
    Ok(Session { row, upstream_id })
}

/// Opens a session for the agent on the server, mapped to the upstream's `upstream_id`;
/// returns the id to give the client. Sessions it evicts are ended upstream in the background.
pub async fn open(
    state: &AppState,
    caller: &Caller,
    exchange: &Exchange,
    upstream_id: &str,
    protocol_version: Option<String>,
) -> ApiResult<String> {
    let minted = secrets::generate(SESSION_PREFIX);
    let digest = secrets::digest(&minted);
    let (sealed, sealed_with) = seal(state.federation.signing.secret(), &digest, upstream_id)?;
    let now = time::now();
    let row = SessionRow {
        digest,
        id: store::new_id(),
        org_id: caller.org_id.clone(),
        server_id: exchange.server.id.clone(),
        agent_id: exchange.agent_id.clone(),
        upstream_session_id: sealed,
        upstream_sealed_with: sealed_with,
        protocol_version,
        created_at: now,
        last_used_at: now,
    };
    let evicted = store::mcp::sessions::open(
        &state.store,
        &row,
        MAX_SESSIONS_PER_AGENT,
        idle_cutoff(state, now),
        &caller.actor(),
    )
    .await?;
    for old in evicted {
        if let Ok(upstream_id) = unseal(state, &old) {
            let exchange = exchange.with_upstream_session(Some(upstream_id));
            tokio::spawn(async move { exchange.end_upstream().await });
        }
    }
    Ok(minted)
}

/// The upstream's session id of `row`.
fn unseal(state: &AppState, row: &SessionRow) -> ApiResult<String> {
    if row.upstream_sealed_with == NOT_SEALED {
        return Ok(row.upstream_session_id.clone());
    }
    state
        .federation
        .signing
        .secret()
        .filter(|secret| secret.sealed_with() == row.upstream_sealed_with)
        .and_then(|secret| secret.open(&row.digest, &row.upstream_session_id))
        .and_then(|plain| String::from_utf8(plain).ok())
        .ok_or_else(|| {
            tracing::error!(
                session = %row.id,
                "an MCP session's upstream id cannot be opened with the configured \
                 key-encryption key"
            );
            // The session is unusable: to the client it is gone.
            not_found()
        })
}

/// Ends `session` (`why`: `deleted` or `upstream_ended`).
pub async fn end(state: &AppState, caller: &Caller, session: &Session, why: &str) -> ApiResult<()> {
    store::mcp::sessions::end(&state.store, &session.row, why, &caller.actor()).await?;
    Ok(())
}

/// `DELETE /mcp/{server_id}` with `Mcp-Session-Id`: ends the caller's session, and the
/// upstream's (whose refusal or failure does not keep the gateway's session alive). 204.
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    PathId(server_id): PathId,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let server = find_server(&state, &caller.org_id, &server_id).await?;
    let exchange = Exchange::new(&state, &caller, server, &headers).await?;
    let Some(session) = exchange.session.as_ref() else {
        return Err(ApiError::validation(format!(
            "DELETE ends an MCP session: send the session's id in {MCP_SESSION_ID_HEADER}"
        )));
    };
    end(&state, &caller, session, "deleted").await?;
    exchange.end_upstream().await;
    Ok(StatusCode::NO_CONTENT.into_response())
}
