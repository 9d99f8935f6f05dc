//! WIMSE workload tokens and proof of possession (reference §3.14):
//! `POST /api/v1/agents/{agent_id}/challenge` (a single-use nonce),
//! `POST /api/v1/wimse/token` (a JWT signed by the gateway's signing-key service, bound to the
//! agent's key with `cnf.jkt` when a proof of possession came with the request; its `aud` the
//! audience asked for, else this gateway's public URL), and
//! `POST /api/v1/wimse/verify` (HTTP 200, `valid` and the reason).
//!
//! [`verify_token`] is the one judgement of a presented WIMSE token, used by `/wimse/verify` and
//! by `gateway::auth` when a token arrives as a bearer.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use jsonwebtoken::{Algorithm, Validation};

use crate::agent_key::AgentPublicKey;
use crate::api::time;
use crate::api::wimse::{
    Challenge, Confirmation, IssueWimseTokenRequest, TOKEN_TYPE, TRUST_DOMAIN,
    VerifyWimseTokenRequest, WimseClaims, WimseToken, WimseVerification, proof_message,
    workload_id,
};
use crate::store;

use super::AppState;
use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::extract::{JsonBody, PathId};
use super::{secrets, signing, validate};

/// How long a challenge can be redeemed, in seconds.
pub const CHALLENGE_TTL_SECONDS: i64 = 60;
/// How far a proof's `ts` may be from the gateway's clock, in seconds.
pub const PROOF_WINDOW_SECONDS: i64 = 60;
/// A WIMSE token's lifetime when the caller names none.
pub const DEFAULT_TTL_SECONDS: i64 = 900;
/// The most audience entries a token may name.
const MAX_AUDIENCE: usize = 16;

/// `POST /api/v1/agents/{agent_id}/challenge`: a nonce the agent signs to prove it holds its
/// key. Only its digest is stored; it is redeemable once, for this agent, for
/// [`CHALLENGE_TTL_SECONDS`].
pub async fn challenge(
    State(state): State<AppState>,
    caller: Caller,
    PathId(agent_id): PathId,
) -> ApiResult<Json<Challenge>> {
    caller.require_key()?;
    let agent = store::agents::get(&state.store, &caller.org_id, &agent_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("agent {agent_id} not found")))?;
    if !agent.is_active() {
        return Err(ApiError::conflict(format!(
            "agent {agent_id} is {}; it cannot prove anything",
            agent.status
        )));
    }
    if agent.public_key.is_none() {
        return Err(ApiError::conflict(format!(
            "agent {agent_id} has no public key to prove possession of; register one with \
             `agenttrust agents keys rotate {agent_id}`"
        )));
    }
    let nonce = secrets::generate("");
    let expires_at = time::now() + CHALLENGE_TTL_SECONDS;
    store::agent_keys::create_challenge(
        &state.store,
        &caller.org_id,
        &agent.id,
        &secrets::digest(&nonce),
        expires_at,
    )
    .await?;
    Ok(Json(Challenge {
        nonce,
        expires_at: time::format(expires_at),
        extra: Default::default(),
    }))
}

/// `POST /api/v1/wimse/token`: a workload token for an active agent of the caller's org. With
/// a valid proof the token is bound to the agent's key (`cnf.jkt`); without one it is issued
/// only when the org does not require proof of possession.
pub async fn issue_token(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(request): JsonBody<IssueWimseTokenRequest>,
) -> ApiResult<(StatusCode, Json<WimseToken>)> {
    caller.require_key()?;
    if request.agent_id.is_empty() {
        return Err(ApiError::validation("agent_id is required"));
    }
    validate::identifier("agent_id", &request.agent_id)?;
    if request.audience.len() > MAX_AUDIENCE {
        return Err(ApiError::validation(format!(
            "audience may name at most {MAX_AUDIENCE} entries"
        )));
    }
    for audience in &request.audience {
        // `,` joins the entries in the signed message: an entry holding one would be ambiguous.
        if audience.is_empty() || audience.contains(',') || audience.len() > 512 {
            return Err(ApiError::validation(
                "every audience entry must be 1 to 512 characters without a comma",
            ));
        }
    }
    for (field, value) in [
        ("service_name", &request.service_name),
        ("environment", &request.environment),
    ] {
        if let Some(value) = value {
            validate::name(field, value)?;
        }
    }
    let (ttl, _) = super::tokens::capped_ttl(&state, request.ttl_seconds, DEFAULT_TTL_SECONDS)?;
    let agent = store::agents::get(&state.store, &caller.org_id, &request.agent_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("agent {} not found", request.agent_id)))?;
    if !agent.is_active() {
        return Err(ApiError::conflict(format!(
            "agent {} is {}; it cannot be issued tokens",
            agent.id, agent.status
        )));
    }
    let now = time::now();
    let bound_to = match &request.proof {
        Some(proof) => Some(check_proof(&state, &caller, &agent, &request, proof, now).await?),
        None => {
            let settings = state
                .caches
                .security_settings(&state.store, &caller.org_id)
                .await?;
            if settings.require_proof_of_possession {
                return Err(ApiError::unauthenticated(
                    "this org requires proof of possession: sign a challenge \
                     (POST /api/v1/agents/{agent_id}/challenge) with the agent's key and send it \
                     as proof",
                ));
            }
            None
        }
    };
    let expires_at = validate::expiry("ttl_seconds", now, ttl)?;
    // A token asked for without an audience is for this gateway: naming it keeps the token out
    // of any other service's hands, and lets the gateway refuse tokens meant for others.
    let audience = if request.audience.is_empty() {
        vec![state.federation.issuer.clone()]
    } else {
        request.audience.clone()
    };
    let claims = WimseClaims {
        iss: state.federation.issuer.clone(),
        sub: workload_id(&agent.id),
        aud: audience,
        exp: expires_at,
        iat: now,
        nbf: now,
        jti: store::new_id(),
        org_id: caller.org_id.clone(),
        agent_id: agent.id.clone(),
        service_name: request.service_name.clone(),
        environment: request.environment.clone(),
        cnf: bound_to.clone().map(|jkt| Confirmation { jkt }),
    };
    let (token, _) = state
        .federation
        .signing
        .sign_typed(&state.store, TOKEN_TYPE, &claims)
        .await
        .map_err(|error: signing::SigningError| {
            tracing::error!(%error, "cannot sign a WIMSE token");
            ApiError::internal()
        })?;
    // Recorded before it is handed out.
    store::agent_keys::record_wimse_token(
        &state.store,
        store::agent_keys::IssuedWimseToken {
            org_id: &caller.org_id,
            agent_id: &agent.id,
            token_id: &claims.jti,
            key_thumbprint: bound_to.as_deref(),
            issued_at: now,
            expires_at,
        },
        &caller.actor(),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(WimseToken {
            token,
            workload_id: claims.sub,
            trust_domain: TRUST_DOMAIN.to_string(),
            expires_at: time::format(expires_at),
            key_thumbprint: bound_to,
            extra: Default::default(),
        }),
    ))
}

/// Checks a proof of possession for `agent`: the challenge is redeemed first (so a proof that
/// fails still spends it), then `ts` and the signature by the agent's current key (or the one a
/// rotation replaced, in its grace period). The thumbprint of the key that signed.
async fn check_proof(
    state: &AppState,
    caller: &Caller,
    agent: &store::agents::AgentRow,
    request: &IssueWimseTokenRequest,
    proof: &crate::api::wimse::PossessionProof,
    now: i64,
) -> ApiResult<String> {
    if proof.nonce.is_empty() || proof.nonce.len() > 256 {
        return Err(ApiError::validation(
            "proof.nonce must be 1 to 256 characters",
        ));
    }
    let redeemed = store::agent_keys::consume_challenge(
        &state.store,
        &caller.org_id,
        &agent.id,
        &secrets::digest(&proof.nonce),
        now,
    )
    .await?;
    if !redeemed {
        return Err(ApiError::unauthenticated(
            "proof refused: the nonce is unknown, expired, already used or issued for another \
             agent; ask for a new challenge",
        ));
    }
    if proof.ts.abs_diff(now) > PROOF_WINDOW_SECONDS.unsigned_abs() {
        return Err(ApiError::unauthenticated(format!(
            "proof refused: ts is more than {PROOF_WINDOW_SECONDS} s from the gateway's clock"
        )));
    }
    let message = proof_message(&proof.nonce, &agent.id, &request.audience, proof.ts);
    let mut keys = vec![agent.public_key.as_deref()];
    if agent.previous_key_in_grace(now) {
        keys.push(agent.previous_public_key.as_deref());
    }
    for pem in keys.into_iter().flatten() {
        let Ok(key) = AgentPublicKey::from_pem(pem) else {
            continue;
        };
        if key
            .verify_base64url(message.as_bytes(), &proof.signature)
            .is_ok()
        {
            return Ok(key.thumbprint());
        }
    }
    Err(ApiError::unauthenticated(
        "proof refused: the signature does not verify with the agent's registered key",
    ))
}

/// `POST /api/v1/wimse/verify`: HTTP 200 whether the token is valid or not, with the reason.
pub async fn verify(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(request): JsonBody<VerifyWimseTokenRequest>,
) -> ApiResult<Json<WimseVerification>> {
    caller.require_key()?;
    if request.token.trim().is_empty() {
        return Err(ApiError::validation("token is required"));
    }
    let answer = match verify_token(&state, &caller.org_id, request.token.trim()).await? {
        Ok(valid) => {
            if let Some(filter) = &request.trust_domain_filter
                && filter != TRUST_DOMAIN
            {
                invalid(format!(
                    "the token's trust domain is {TRUST_DOMAIN}, not {filter}"
                ))
            } else {
                WimseVerification {
                    valid: true,
                    workload_id: Some(workload_id(&valid.agent.id)),
                    trust_domain: Some(TRUST_DOMAIN.to_string()),
                    capabilities: valid.agent.capabilities()?,
                    expires_at: Some(time::format(valid.claims.exp)),
                    key_thumbprint: valid.claims.cnf.map(|cnf| cnf.jkt),
                    agent_id: Some(valid.agent.id),
                    reason: None,
                    extra: Default::default(),
                }
            }
        }
        Err(reason) => invalid(reason),
    };
    Ok(Json(answer))
}

fn invalid(reason: String) -> WimseVerification {
    WimseVerification {
        valid: false,
        agent_id: None,
        workload_id: None,
        trust_domain: None,
        capabilities: Vec::new(),
        expires_at: None,
        key_thumbprint: None,
        reason: Some(reason),
        extra: Default::default(),
    }
}

/// A WIMSE token that verified: its claims and its (active) agent.
#[derive(Debug)]
pub struct ValidToken {
    pub claims: WimseClaims,
    pub agent: store::agents::AgentRow,
}

/// Whether `token` is a WIMSE token (by its `typ` header) — a cheap look, no verification.
pub fn looks_like_wimse(token: &str) -> bool {
    jsonwebtoken::decode_header(token)
        .ok()
        .and_then(|header| header.typ)
        .is_some_and(|typ| typ == TOKEN_TYPE)
}

/// Whether `audience` (a token's `aud`) names this gateway, whose public URL is `gateway_url`.
/// A token issued for another service is that service's credential: one that reached the
/// gateway was passed on by that service or taken from it, never sent by its agent. URLs are
/// compared as URLs (scheme and host case-insensitively, default ports implied, a trailing `/`
/// ignored); an entry that is no URL only by equal text.
pub fn names_gateway(audience: &[String], gateway_url: &str) -> bool {
    let normal = |text: &str| reqwest::Url::parse(text.trim_end_matches('/')).ok();
    let gateway = normal(gateway_url);
    audience
        .iter()
        .any(|entry| match (normal(entry), &gateway) {
            (Some(entry), Some(gateway)) => entry == *gateway,
            _ => entry.trim_end_matches('/') == gateway_url.trim_end_matches('/'),
        })
}

/// Judges a WIMSE token presented to `org_id`: signed by a published key of this gateway,
/// typed as a WIMSE token, unexpired, of this org, its agent active and (when bound) still
/// holding the key. `Ok(Err(reason))` when it is not valid.
pub async fn verify_token(
    state: &AppState,
    org_id: &str,
    token: &str,
) -> ApiResult<Result<ValidToken, String>> {
    let Ok(header) = jsonwebtoken::decode_header(token) else {
        return Ok(Err("not a JWT".to_string()));
    };
    if header.typ.as_deref() != Some(TOKEN_TYPE) {
        return Ok(Err(format!("not a WIMSE token (typ must be {TOKEN_TYPE})")));
    }
    if header.alg != Algorithm::ES256 {
        return Ok(Err("algorithm not allowed".to_string()));
    }
    let Some(kid) = header.kid.as_deref() else {
        return Ok(Err("unknown signing key".to_string()));
    };
    let key = match state
        .federation
        .signing
        .verifying_key(&state.store, kid)
        .await
    {
        Ok(Some(key)) => key,
        Ok(None) => return Ok(Err("unknown signing key".to_string())),
        Err(error) => {
            tracing::error!(%error, "cannot read the signing keys");
            return Err(ApiError::internal());
        }
    };
    let mut validation = Validation::new(Algorithm::ES256);
    // Expiry is exact: the SDKs renew 60 s ahead, so no leeway is owed.
    validation.leeway = 0;
    // `nbf` is the issue time: checked without leeway it would refuse a fresh token on a
    // replica whose clock runs a little behind the issuer's.
    validation.validate_nbf = false;
    // The audience is checked by the caller: the gateway's own login (`gateway::auth`) accepts
    // only tokens meant for it ([`names_gateway`]), a verify request (made by the service a
    // token was meant for) reports any.
    validation.validate_aud = false;
    validation.set_issuer(&[state.federation.issuer.as_str()]);
    validation.set_required_spec_claims(&["exp", "iss", "sub"]);
    let claims = match jsonwebtoken::decode::<WimseClaims>(token, &key, &validation) {
        Ok(data) => data.claims,
        Err(error) => {
            use jsonwebtoken::errors::ErrorKind;
            return Ok(Err(match error.kind() {
                ErrorKind::ExpiredSignature => "token expired".to_string(),
                ErrorKind::ImmatureSignature => "token not yet valid".to_string(),
                ErrorKind::InvalidIssuer => "issued by another gateway".to_string(),
                ErrorKind::InvalidSignature => "bad signature".to_string(),
                _ => "malformed token".to_string(),
            }));
        }
    };
    // Another org's token is not this org's to vouch for.
    if claims.org_id != org_id {
        return Ok(Err("issued to another org".to_string()));
    }
    let Some(agent) = state
        .caches
        .agent(&state.store, org_id, &claims.agent_id)
        .await?
    else {
        return Ok(Err("the token's agent no longer exists".to_string()));
    };
    if !agent.is_active() {
        return Ok(Err(format!("the token's agent is {}", agent.status)));
    }
    if let Some(cnf) = &claims.cnf
        && !agent.holds_key(&cnf.jkt, time::now())
    {
        return Ok(Err(
            "the key the token is bound to was rotated out".to_string()
        ));
    }
    Ok(Ok(ValidToken { claims, agent }))
}

/// How often expired challenges and DPoP proofs are deleted.
pub const PRUNE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

/// Runs for as long as the gateway serves: every [`PRUNE_INTERVAL`], deletes the challenges and
/// remembered DPoP proofs whose time has passed (each replica does; the deletes are idempotent).
pub async fn prune(store: store::Store) {
    let mut interval = tokio::time::interval(PRUNE_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        if let Err(error) = store::agent_keys::prune(&store, time::now()).await {
            tracing::warn!(%error, "could not prune spent challenges and DPoP proofs");
        }
    }
}
