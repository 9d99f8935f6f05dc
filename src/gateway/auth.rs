//! Who is calling: an org API key (`X-API-Key`, with a role), an agent token presented as
//! `Authorization: Bearer at_…`, or a WIMSE workload token (`gateway::wimse`) presented as a
//! bearer. Every handler takes a [`Caller`] and asks it for the right it needs; every query is
//! then scoped by `caller.org_id`.
//!
//! A WIMSE token counts only when its `aud` names this gateway (its public URL, what the token
//! route puts in a token asked for without an audience): one issued for another service is that
//! service's to accept.
//!
//! Agent credentials may be sender-constrained (`gateway::dpop`): a `DPoP` proof that comes with
//! an agent token must be signed by one of the agent's keys, with a WIMSE token by the key the
//! token is bound to (`cnf.jkt`, always required for a bound token). When the org requires
//! sender-constrained tokens, an agent credential without a proof is refused on every route,
//! and so is an API key alone where it would act as an agent: that is judged once, when the key
//! is authenticated, and enforced by [`Caller::acting_agent`], the one way a route names the
//! agent it acts as ([`Caller::require_may_act_as_agent`] where the agent comes from elsewhere).
//! A request without a `DPoP` header and without a WIMSE token does no extra work.
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
use super::{dpop, wimse};

pub const API_KEY_HEADER: &str = "x-api-key";

/// The credential a request carried.
#[derive(Debug, Clone)]
pub enum Principal {
    Key {
        id: String,
        role: Role,
        /// Whether the key may act as an agent (name one, open its sessions, send as it): not
        /// where the org requires sender-constrained tokens, since a copied key proves nothing
        /// about an agent. Read from the org's settings when the key is authenticated, so every
        /// route judges it alike ([`Caller::require_may_act_as_agent`]).
        may_act_as_agent: bool,
    },
    /// An agent acting with one of its tokens: its identity comes from the token, and the
    /// token's scopes (and session, when it was issued for one) bound what it may do.
    Agent {
        agent_id: String,
        token_id: String,
        scopes: Vec<String>,
        session_id: Option<String>,
    },
    /// An agent acting with a WIMSE workload token: its identity comes from the token (which
    /// carries no scopes: the agent's capabilities and the policy bound it).
    Workload { agent_id: String, token_id: String },
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
            Principal::Agent { .. } | Principal::Workload { .. } => Err(ApiError::forbidden(
                "this endpoint needs an admin API key, not an agent token",
            )),
        }
    }

    /// Token endpoints: any org API key, admin or runtime.
    pub fn require_key(&self) -> Result<(), ApiError> {
        match &self.principal {
            Principal::Key { .. } => Ok(()),
            Principal::Agent { .. } | Principal::Workload { .. } => Err(ApiError::forbidden(
                "this endpoint needs an org API key, not an agent token",
            )),
        }
    }

    /// The one judgement of whether this caller may act as an agent: an agent credential always
    /// (it was judged, proof and all, when it was authenticated); an API key only where the org
    /// does not require sender-constrained tokens. [`Caller::acting_agent`] makes it, so every
    /// route that names its agent through it is covered; a route that finds the agent another
    /// way (from a session, from a token in the body) calls it itself.
    pub fn require_may_act_as_agent(&self) -> Result<(), ApiError> {
        match &self.principal {
            Principal::Key {
                may_act_as_agent: false,
                ..
            } => Err(ApiError::unauthenticated(
                "this org requires sender-constrained tokens: an API key cannot act as an agent; \
                 act with the agent's WIMSE token (or agent token) and a DPoP proof signed by \
                 the agent's key",
            )),
            Principal::Key { .. } | Principal::Agent { .. } | Principal::Workload { .. } => Ok(()),
        }
    }

    /// The agent a runtime call acts as: the token's agent when one is presented (a body
    /// naming another agent is refused), else the body's — for an API key only where it may act
    /// as an agent ([`Caller::require_may_act_as_agent`]).
    pub fn acting_agent(&self, body_agent_id: Option<&str>) -> Result<String, ApiError> {
        self.require_may_act_as_agent()?;
        self.named_agent(body_agent_id)
    }

    /// The agent a telemetry report is about, named like [`Caller::acting_agent`] but open to an
    /// API key even where the org requires sender-constrained tokens: a report only says what
    /// happened (no decision, score or session rests on it), and the SDKs send it with the key.
    pub fn reporting_agent(&self, body_agent_id: Option<&str>) -> Result<String, ApiError> {
        self.named_agent(body_agent_id)
    }

    fn named_agent(&self, body_agent_id: Option<&str>) -> Result<String, ApiError> {
        match (&self.principal, body_agent_id) {
            (
                Principal::Agent { agent_id, .. } | Principal::Workload { agent_id, .. },
                Some(named),
            ) if named != agent_id => Err(ApiError::forbidden(format!(
                "the agent token belongs to agent {agent_id}; it cannot act as agent {named}"
            ))),
            (Principal::Agent { agent_id, .. } | Principal::Workload { agent_id, .. }, _) => {
                Ok(agent_id.clone())
            }
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
            Principal::Key { .. } | Principal::Workload { .. } => None,
        }
    }

    /// The audit actor for this caller.
    pub fn actor(&self) -> Actor {
        match &self.principal {
            Principal::Key { id, .. } => Actor(format!("key:{id}")),
            Principal::Agent { agent_id, .. } | Principal::Workload { agent_id, .. } => {
                Actor(format!("agent:{agent_id}"))
            }
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let api_key = header_text(parts, API_KEY_HEADER)?;
        let bearer = header_text(parts, AUTHORIZATION.as_str())?.and_then(bearer_token);
        let proof = header_text(parts, dpop::HEADER)?;
        let agent_token = bearer.filter(|token| token.starts_with(AGENT_TOKEN_PREFIX));
        // Other bearer kinds ride along with an API key unless they are WIMSE tokens (by their
        // `typ`) or come with a DPoP proof: then they are the credential and must verify.
        let workload_token = bearer.filter(|token| {
            !token.starts_with(AGENT_TOKEN_PREFIX)
                && (proof.is_some() || wimse::looks_like_wimse(token))
        });
        if proof.is_some() && agent_token.is_none() && workload_token.is_none() {
            return Err(ApiError::unauthenticated(
                "a DPoP proof needs the access token it is bound to in the Authorization header",
            ));
        }

        let key_caller = match api_key {
            Some(key) => Some(authenticate_key(state, key).await?),
            None => None,
        };
        let agent_caller = match (agent_token, workload_token) {
            (Some(token), _) => {
                let caller = authenticate_agent_token(state, token).await?;
                constrain_agent_token(state, parts, &caller, token, proof).await?;
                Some(caller)
            }
            (None, Some(token)) => {
                let org_id = match &key_caller {
                    Some(key_caller) => key_caller.org_id.clone(),
                    None => unverified_org(token)?,
                };
                Some(authenticate_workload(state, parts, &org_id, token, proof).await?)
            }
            (None, None) => None,
        };
        match (key_caller, agent_caller) {
            (key_caller, Some(agent_caller)) => {
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

/// An agent token with a DPoP proof: the proof must be signed by one of the agent's keys. Without
/// one: refused when the org requires sender-constrained tokens.
async fn constrain_agent_token(
    state: &AppState,
    parts: &Parts,
    caller: &Caller,
    token: &str,
    proof: Option<&str>,
) -> Result<(), ApiError> {
    let Principal::Agent { agent_id, .. } = &caller.principal else {
        return Ok(());
    };
    let Some(proof) = proof else {
        return require_no_constraint(state, &caller.org_id).await;
    };
    let now = time::now();
    let verified = dpop::verify(
        proof,
        &parts.method,
        &state.federation.issuer,
        parts.uri.path(),
        token,
        now,
    )?;
    let holds = state
        .caches
        .agent(&state.store, &caller.org_id, agent_id)
        .await?
        .is_some_and(|agent| agent.holds_key(&verified.thumbprint, now));
    if !holds {
        return Err(ApiError::unauthenticated(
            "DPoP proof refused: it is signed by a key that is not the agent's",
        ));
    }
    verified.redeem(state).await
}

async fn require_no_constraint(state: &AppState, org_id: &str) -> Result<(), ApiError> {
    let settings = state.caches.security_settings(&state.store, org_id).await?;
    if settings.require_sender_constrained_tokens {
        return Err(ApiError::unauthenticated(
            "this org requires sender-constrained tokens: send a DPoP proof signed by the \
             agent's key with the token",
        ));
    }
    Ok(())
}

/// A WIMSE token (with its DPoP proof when it is bound to a key): the agent it names.
async fn authenticate_workload(
    state: &AppState,
    parts: &Parts,
    org_id: &str,
    token: &str,
    proof: Option<&str>,
) -> Result<Caller, ApiError> {
    let valid = match wimse::verify_token(state, org_id, token).await? {
        Ok(valid) => valid,
        Err(reason) => {
            return Err(ApiError::unauthenticated(format!(
                "invalid WIMSE token: {reason}"
            )));
        }
    };
    if !wimse::names_gateway(&valid.claims.aud, &state.federation.issuer) {
        return Err(ApiError::unauthenticated(format!(
            "invalid WIMSE token: issued for another audience; its aud does not name this \
             gateway ({}): ask for a token without an audience, or with this URL among it",
            state.federation.issuer
        )));
    }
    match (&valid.claims.cnf, proof) {
        (Some(cnf), Some(proof)) => {
            let verified = dpop::verify(
                proof,
                &parts.method,
                &state.federation.issuer,
                parts.uri.path(),
                token,
                time::now(),
            )?;
            if verified.thumbprint != cnf.jkt {
                return Err(ApiError::unauthenticated(
                    "DPoP proof refused: it is signed by another key than the one the token is \
                     bound to (cnf.jkt)",
                ));
            }
            verified.redeem(state).await?;
        }
        (Some(_), None) => {
            return Err(ApiError::unauthenticated(
                "the WIMSE token is bound to a key: send a DPoP proof signed by it",
            ));
        }
        (None, _) => {
            let settings = state.caches.security_settings(&state.store, org_id).await?;
            if settings.require_sender_constrained_tokens {
                return Err(ApiError::unauthenticated(
                    "this org requires sender-constrained tokens: the WIMSE token is not bound \
                     to a key (issue it with a proof of possession)",
                ));
            }
        }
    }
    Ok(Caller {
        org_id: valid.claims.org_id,
        principal: Principal::Workload {
            agent_id: valid.agent.id,
            token_id: valid.claims.jti,
        },
    })
}

/// The org a WIMSE token says it belongs to, read before verification only to know where to
/// look: [`wimse::verify_token`] then checks the signature and that claim.
fn unverified_org(token: &str) -> Result<String, ApiError> {
    #[derive(serde::Deserialize)]
    struct OrgClaim {
        org_id: String,
    }
    token
        .split('.')
        .nth(1)
        .and_then(dpop::decode_segment::<OrgClaim>)
        .map(|claim| claim.org_id)
        .ok_or_else(|| ApiError::unauthenticated("invalid WIMSE token: malformed claims"))
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

/// The token of `Bearer <token>`, or of `DPoP <token>` (RFC 9449's scheme for bound tokens).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("dpop"))
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
    let settings = state
        .caches
        .security_settings(&state.store, &row.org_id)
        .await?;
    Ok(Caller {
        org_id: row.org_id,
        principal: Principal::Key {
            id: row.id,
            role,
            may_act_as_agent: !settings.require_sender_constrained_tokens,
        },
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
