//! Who is calling: an org API key (`X-API-Key`, with a role) or an agent token presented as
//! `Authorization: Bearer at_…`. Every handler takes a [`Caller`] and asks it for the right it
//! needs; every query is then scoped by `caller.org_id`.
//!
//! Keys and tokens are looked up by digest through the replica's caches (`gateway::cache`): a
//! revocation is refused on the replica that made it from its answer on, and on every other
//! replica within a second. Expiry and the agent's status are judged on every request.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use crate::api::keys::Role;
use crate::api::time;
use crate::store::{self, audit::Actor};

use super::AppState;
use super::error::ApiError;
use super::secrets::{self, AGENT_TOKEN_PREFIX};

pub const API_KEY_HEADER: &str = "x-api-key";

/// The credential a request carried.
#[derive(Debug, Clone)]
pub enum Principal {
    Key {
        id: String,
        role: Role,
    },
    /// An agent acting with one of its tokens: its identity comes from the token, and the
    /// token's scopes (and session, when it was issued for one) bound what it may do.
    Agent {
        agent_id: String,
        token_id: String,
        scopes: Vec<String>,
        session_id: Option<String>,
    },
}

/// The agent token a caller presented: its id and scopes, which bound a check.
#[derive(Debug, Clone)]
pub struct PresentedToken {
    pub id: String,
    pub scopes: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Caller {
    pub org_id: String,
    pub principal: Principal,
}

impl Caller {
    /// Admin endpoints: managing agents, keys, listing telemetry.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        match &self.principal {
            Principal::Key {
                role: Role::Admin, ..
            } => Ok(()),
            Principal::Key { role, .. } => Err(ApiError::forbidden(format!(
                "this endpoint needs an admin API key; the key in use has role {role}"
            ))),
            Principal::Agent { .. } => Err(ApiError::forbidden(
                "this endpoint needs an admin API key, not an agent token",
            )),
        }
    }

    /// Token endpoints: any org API key, admin or runtime.
    pub fn require_key(&self) -> Result<(), ApiError> {
        match &self.principal {
            Principal::Key { .. } => Ok(()),
            Principal::Agent { .. } => Err(ApiError::forbidden(
                "this endpoint needs an org API key, not an agent token",
            )),
        }
    }

    /// The agent a runtime call is about: the token's agent when one is presented (a body
    /// naming another agent is refused), else the body's.
    pub fn acting_agent(&self, body_agent_id: Option<&str>) -> Result<String, ApiError> {
        match (&self.principal, body_agent_id) {
            (Principal::Agent { agent_id, .. }, Some(named)) if named != agent_id => {
                Err(ApiError::forbidden(format!(
                    "the agent token belongs to agent {agent_id}; it cannot act as agent {named}"
                )))
            }
            (Principal::Agent { agent_id, .. }, _) => Ok(agent_id.clone()),
            (Principal::Key { .. }, Some(named)) => Ok(named.to_string()),
            (Principal::Key { .. }, None) => Err(ApiError::validation("agent_id is required")),
        }
    }

    /// Refuses a body `org_id` other than the caller's (the SDKs send one only when set).
    pub fn check_org(&self, org_id: Option<&str>) -> Result<(), ApiError> {
        match org_id {
            Some(named) if named != self.org_id => Err(ApiError::forbidden(format!(
                "the credentials belong to another org than {named}"
            ))),
            _ => Ok(()),
        }
    }

    /// The agent token presented with the request, if any.
    pub fn presented_token(&self) -> Option<PresentedToken> {
        match &self.principal {
            Principal::Agent {
                token_id, scopes, ..
            } => Some(PresentedToken {
                id: token_id.clone(),
                scopes: scopes.clone(),
            }),
            Principal::Key { .. } => None,
        }
    }

    /// The audit actor for this caller.
    pub fn actor(&self) -> Actor {
        match &self.principal {
            Principal::Key { id, .. } => Actor(format!("key:{id}")),
            Principal::Agent { agent_id, .. } => Actor(format!("agent:{agent_id}")),
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let api_key = header_text(parts, API_KEY_HEADER)?;
        let agent_token = header_text(parts, AUTHORIZATION.as_str())?
            .and_then(|value| bearer_token(value))
            // Other bearer kinds (WIMSE JWTs from newer SDKs) ride along with an API key;
            // only our own agent tokens carry an identity here.
            .filter(|token| token.starts_with(AGENT_TOKEN_PREFIX));

        let key_caller = match api_key {
            Some(key) => Some(authenticate_key(state, key).await?),
            None => None,
        };
        match (key_caller, agent_token) {
            (key_caller, Some(token)) => {
                let agent_caller = authenticate_agent_token(state, token).await?;
                if let Some(key_caller) = key_caller
                    && key_caller.org_id != agent_caller.org_id
                {
                    return Err(ApiError::forbidden(
                        "the API key and the agent token belong to different orgs",
                    ));
                }
                Ok(agent_caller)
            }
            (Some(key_caller), None) => Ok(key_caller),
            (None, None) => Err(ApiError::unauthenticated(
                "missing credentials: send an org API key in the X-API-Key header",
            )),
        }
    }
}

fn header_text<'a>(parts: &'a Parts, name: &str) -> Result<Option<&'a str>, ApiError> {
    match parts.headers.get(name) {
        None => Ok(None),
        Some(value) => value
            .to_str()
            .map(|text| Some(text.trim()).filter(|text| !text.is_empty()))
            .map_err(|_| ApiError::unauthenticated(format!("the {name} header is not valid text"))),
    }
}

fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|token| !token.is_empty())
}

async fn authenticate_key(state: &AppState, key: &str) -> Result<Caller, ApiError> {
    let digest = secrets::digest(key);
    let row = state
        .caches
        .api_key(&state.store, &digest)
        .await?
        .ok_or_else(|| ApiError::unauthenticated("invalid or revoked API key"))?;
    let role = row.role()?;
    Ok(Caller {
        org_id: row.org_id,
        principal: Principal::Key { id: row.id, role },
    })
}

async fn authenticate_agent_token(state: &AppState, token: &str) -> Result<Caller, ApiError> {
    let digest = secrets::digest(token);
    let row = state
        .caches
        .agent_token(&state.store, &digest)
        .await?
        .ok_or_else(|| ApiError::unauthenticated("invalid agent token"))?;
    if row.revoked_at.is_some() {
        return Err(ApiError::unauthenticated("the agent token is revoked"));
    }
    if row.expires_at <= time::now() {
        return Err(ApiError::unauthenticated("the agent token is expired"));
    }
    if row.agent_status != store::agents::STATUS_ACTIVE {
        return Err(ApiError::unauthenticated(
            "the agent of this token is revoked",
        ));
    }
    let scopes = row.scopes()?;
    Ok(Caller {
        org_id: row.org_id,
        principal: Principal::Agent {
            agent_id: row.agent_id,
            token_id: row.id,
            scopes,
            session_id: row.session_id,
        },
    })
}
