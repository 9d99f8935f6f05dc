//! Federation over HTTP (wire-api §3.12): trusting external OIDC issuers (providers, their
//! subjects' links to agents, verifying their tokens, opening sessions from them) and being an
//! issuer (ID tokens for the org's agents, revocation, the discovery document and JWKS).
//!
//! Who may call what: an admin key manages providers and subject links; any org API key
//! verifies tokens, opens federation sessions and issues ID tokens (as it issues agent tokens);
//! the discovery document and the JWKS are public.

pub mod discovery;
pub mod jwks;
pub mod verify;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;

use crate::api::federation::{
    DEFAULT_ID_TOKEN_TTL_SECONDS, DEFAULT_SUBJECT_CLAIM, DeletedProvider, IssueIdTokenRequest,
    IssuedIdToken, LinkSubjectRequest, ProviderEnvelope, ProviderList, ProviderStatus,
    RegisterProviderRequest, RevokeIdTokenRequest, RevokedIdToken, SubjectLink, SubjectList,
    TrustLevel, UpdateProviderRequest, Verification, VerifyTokenRequest, invalid,
};
use crate::api::sessions::{SOURCE_FEDERATION, Session};
use crate::api::time;
use crate::store::{self, federation::ProviderFields, federation::ProviderRow};

use super::AppState;
use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::extract::{JsonBody, PathId};
use super::outbound::Outbound;
use super::signing::{self, SigningKeys};
use super::validate;

/// The longest URL or token accepted.
const MAX_URL_CHARACTERS: usize = 2048;
const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// What federation needs beyond the store: this gateway's issuer name, its signing keys, the
/// outbound client and the providers' cached key sets.
#[derive(Debug)]
pub struct Federation {
    /// This gateway as an issuer (`--public-url`): the `iss` of its ID tokens.
    pub issuer: String,
    pub signing: SigningKeys,
    pub outbound: Outbound,
    pub jwks: jwks::JwksCache,
}

// ---- providers -----------------------------------------------------------------------------

fn provider_not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("federation provider {id} not found"))
}

fn parse_trust_level(text: Option<&str>) -> ApiResult<TrustLevel> {
    text.map_or(Ok(TrustLevel::default()), |text| {
        text.parse().map_err(ApiError::validation)
    })
}

fn parse_status(text: Option<&str>) -> ApiResult<ProviderStatus> {
    text.map_or(Ok(ProviderStatus::default()), |text| {
        text.parse().map_err(ApiError::validation)
    })
}

/// An issuer or endpoint URL this gateway will fetch from: absolute, https (or loopback http),
/// without query or fragment.
fn validate_url(state: &AppState, field: &str, value: &str) -> ApiResult<String> {
    let value = value.trim();
    if value.is_empty() {
        return Err(ApiError::validation(format!("{field} is required")));
    }
    if value.len() > MAX_URL_CHARACTERS || value.chars().any(char::is_control) {
        return Err(ApiError::validation(format!(
            "{field} must be a URL of at most {MAX_URL_CHARACTERS} characters"
        )));
    }
    let url = state
        .federation
        .outbound
        .check_url(value)
        .map_err(|error| ApiError::validation(format!("{field}: {error}")))?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ApiError::validation(format!(
            "{field} must not have a query or a fragment"
        )));
    }
    Ok(value.to_string())
}

fn validate_claim_name(value: Option<&str>) -> ApiResult<String> {
    match value {
        None => Ok(DEFAULT_SUBJECT_CLAIM.to_string()),
        Some(claim) => {
            validate::identifier("subject_claim", claim)?;
            Ok(claim.to_string())
        }
    }
}

fn validate_audience(value: Option<&str>) -> ApiResult<Option<String>> {
    match value {
        None => Ok(None),
        Some(audience) => {
            validate::identifier("audience", audience)?;
            Ok(Some(audience.to_string()))
        }
    }
}

/// `POST /api/v1/federation/providers`: discovery first (unless a `jwks_uri` is given), then
/// the row: a provider whose documents cannot be fetched is not registered.
pub async fn register_provider(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(request): JsonBody<RegisterProviderRequest>,
) -> ApiResult<(StatusCode, Json<ProviderEnvelope>)> {
    caller.require_admin()?;
    let issuer = validate_url(&state, "issuer", &request.issuer)?;
    let name = if request.name.trim().is_empty() {
        issuer.clone()
    } else {
        validate::name("name", &request.name)?
    };
    let trust_level = parse_trust_level(request.trust_level.as_deref())?;
    let status = parse_status(request.status.as_deref())?;
    let audience = validate_audience(request.audience.as_deref())?;
    let subject_claim = validate_claim_name(request.subject_claim.as_deref())?;
    if store::federation::provider_by_issuer(&state.store, &caller.org_id, &issuer)
        .await?
        .is_some()
    {
        return Err(ApiError::conflict(format!(
            "a provider for issuer {issuer} is already registered"
        )));
    }
    let discovered = match &request.jwks_uri {
        Some(jwks_uri) => discovery::Discovered {
            jwks_uri: validate_url(&state, "jwks_uri", jwks_uri)?,
            authorization_endpoint: None,
            token_endpoint: None,
        },
        None => discovery::discover(&state.federation.outbound, &issuer)
            .await
            .map_err(|error| {
                ApiError::validation(format!(
                    "cannot register {issuer}: {error} (give jwks_uri for an issuer without \
                     discovery)"
                ))
            })?,
    };
    let row = store::federation::create_provider(
        &state.store,
        &caller.org_id,
        ProviderFields {
            issuer,
            name,
            jwks_uri: discovered.jwks_uri,
            authorization_endpoint: discovered.authorization_endpoint,
            token_endpoint: discovered.token_endpoint,
            audience,
            subject_claim,
            trust_level: trust_level.as_str().to_string(),
            status: status.as_str().to_string(),
        },
        &caller.actor(),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(envelope(row))))
}

fn envelope(row: ProviderRow) -> ProviderEnvelope {
    ProviderEnvelope {
        provider: row.into_api(),
        extra: Default::default(),
    }
}

pub async fn list_providers(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<ProviderList>> {
    caller.require_admin()?;
    let rows = store::federation::list_providers(&state.store, &caller.org_id).await?;
    Ok(Json(ProviderList {
        providers: rows.into_iter().map(ProviderRow::into_api).collect(),
        extra: Default::default(),
    }))
}

pub async fn get_provider(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId,
) -> ApiResult<Json<ProviderEnvelope>> {
    caller.require_admin()?;
    let row = find_provider(&state, &caller, &id).await?;
    Ok(Json(envelope(row)))
}

async fn find_provider(state: &AppState, caller: &Caller, id: &str) -> ApiResult<ProviderRow> {
    store::federation::get_provider(&state.store, &caller.org_id, id)
        .await?
        .ok_or_else(|| provider_not_found(id))
}

/// `PATCH /api/v1/federation/providers/{id}`: name, trust level, status, audience, subject
/// claim or JWKS URL. Disabling a provider stops its tokens and its sessions at once.
pub async fn update_provider(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId,
    JsonBody(request): JsonBody<UpdateProviderRequest>,
) -> ApiResult<Json<ProviderEnvelope>> {
    caller.require_admin()?;
    let row = find_provider(&state, &caller, &id).await?;
    let fields = ProviderFields {
        name: match &request.name {
            Some(name) => validate::name("name", name)?,
            None => row.name.clone(),
        },
        trust_level: match &request.trust_level {
            Some(level) => parse_trust_level(Some(level))?.as_str().to_string(),
            None => row.trust_level.clone(),
        },
        status: match &request.status {
            Some(status) => parse_status(Some(status))?.as_str().to_string(),
            None => row.status.clone(),
        },
        audience: match &request.audience {
            Some(audience) => validate_audience(Some(audience))?,
            None => row.audience.clone(),
        },
        subject_claim: match &request.subject_claim {
            Some(claim) => validate_claim_name(Some(claim))?,
            None => row.subject_claim.clone(),
        },
        jwks_uri: match &request.jwks_uri {
            Some(uri) => validate_url(&state, "jwks_uri", uri)?,
            None => row.jwks_uri.clone(),
        },
        issuer: row.issuer.clone(),
        authorization_endpoint: row.authorization_endpoint.clone(),
        token_endpoint: row.token_endpoint.clone(),
    };
    let row = store::federation::update_provider(
        &state.store,
        &caller.org_id,
        &id,
        fields,
        &caller.actor(),
    )
    .await?
    .ok_or_else(|| provider_not_found(&id))?;
    Ok(Json(envelope(row)))
}

pub async fn delete_provider(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId,
) -> ApiResult<Json<DeletedProvider>> {
    caller.require_admin()?;
    if !store::federation::delete_provider(&state.store, &caller.org_id, &id, &caller.actor())
        .await?
    {
        return Err(provider_not_found(&id));
    }
    Ok(Json(DeletedProvider {
        status: "deleted".to_string(),
        id,
        extra: Default::default(),
    }))
}

// ---- subject links -------------------------------------------------------------------------

/// `POST /api/v1/federation/providers/{id}/subjects`: the provider's `subject` acts as
/// `agent_id` of the org.
pub async fn link_subject(
    State(state): State<AppState>,
    caller: Caller,
    PathId(provider_id): PathId,
    JsonBody(request): JsonBody<LinkSubjectRequest>,
) -> ApiResult<(StatusCode, Json<SubjectLink>)> {
    caller.require_admin()?;
    let subject = request.subject.trim();
    if subject.is_empty() {
        return Err(ApiError::validation("subject is required"));
    }
    validate::identifier("subject", subject)?;
    if request.agent_id.is_empty() {
        return Err(ApiError::validation("agent_id is required"));
    }
    let provider = find_provider(&state, &caller, &provider_id).await?;
    let agent = store::agents::get(&state.store, &caller.org_id, &request.agent_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("agent {} not found", request.agent_id)))?;
    if !agent.is_active() {
        return Err(ApiError::conflict(format!(
            "agent {} is {}; no subject can act as it",
            agent.id, agent.status
        )));
    }
    let row = store::federation::link_subject(
        &state.store,
        &caller.org_id,
        &provider.id,
        subject,
        &agent.id,
        &caller.actor(),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(row.into_api())))
}

pub async fn list_subjects(
    State(state): State<AppState>,
    caller: Caller,
    PathId(provider_id): PathId,
) -> ApiResult<Json<SubjectList>> {
    caller.require_admin()?;
    let provider = find_provider(&state, &caller, &provider_id).await?;
    let rows = store::federation::list_subjects(&state.store, &caller.org_id, &provider.id).await?;
    Ok(Json(SubjectList {
        subjects: rows.into_iter().map(|row| row.into_api()).collect(),
        extra: Default::default(),
    }))
}

pub async fn unlink_subject(
    State(state): State<AppState>,
    caller: Caller,
    Path((provider_id, subject)): Path<(String, String)>,
) -> ApiResult<Json<serde_json::Value>> {
    caller.require_admin()?;
    let provider = find_provider(&state, &caller, &provider_id).await?;
    if !store::federation::unlink_subject(
        &state.store,
        &caller.org_id,
        &provider.id,
        &subject,
        &caller.actor(),
    )
    .await?
    {
        return Err(ApiError::not_found(format!(
            "subject {subject:?} of provider {provider_id} is not linked"
        )));
    }
    Ok(Json(
        serde_json::json!({ "status": "unlinked", "subject": subject }),
    ))
}

// ---- verification and sessions -------------------------------------------------------------

fn validate_token(token: &str) -> ApiResult<&str> {
    let token = token.trim();
    if token.is_empty() {
        return Err(ApiError::validation("token is required"));
    }
    if token.len() > MAX_TOKEN_BYTES {
        return Err(ApiError::validation(format!(
            "token is longer than {MAX_TOKEN_BYTES} bytes"
        )));
    }
    Ok(token)
}

/// `POST …/tokens/verify` and `…/tokens/introspect`: HTTP 200 with `valid` (and `active`)
/// whatever the token; `error` names why it is not valid.
pub async fn verify_token(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(request): JsonBody<VerifyTokenRequest>,
) -> ApiResult<Json<Verification>> {
    caller.require_key()?;
    let token = validate_token(&request.token)?;
    let answer = match verify::verify(
        &state,
        &caller.org_id,
        token,
        request.issuer_hint.as_deref(),
    )
    .await?
    {
        Ok(verified) => Verification {
            active: true,
            valid: true,
            trust_level: Some(verified.origin.trust_level()?.as_str().to_string()),
            provider_id: verified.origin.provider_id().map(str::to_string),
            agent_id: verified.agent_id,
            issuer: Some(verified.issuer),
            subject: Some(verified.subject),
            expires_at: Some(time::format(verified.expires_at)),
            error: None,
            extra: Default::default(),
        },
        Err(not_valid) => Verification {
            issuer: not_valid.issuer,
            error: Some(not_valid.error),
            ..Verification::default()
        },
    };
    Ok(Json(answer))
}

/// `POST …/sessions/init`: a session of the agent the token acts as, with source `federation`,
/// bounded by the provider's trust level (the Guardian's ceiling) and ending when the token
/// expires. A token of this gateway's own is bounded by its scopes instead.
pub async fn init_session(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(request): JsonBody<VerifyTokenRequest>,
) -> ApiResult<(StatusCode, Json<Session>)> {
    caller.require_key()?;
    let token = validate_token(&request.token)?;
    let verified = match verify::verify(
        &state,
        &caller.org_id,
        token,
        request.issuer_hint.as_deref(),
    )
    .await?
    {
        Ok(verified) => verified,
        Err(not_valid) => {
            return Err(ApiError::unauthenticated(format!(
                "the token is not valid here: {}",
                not_valid.error
            )));
        }
    };
    let Some(agent_id) = verified.agent_id.as_deref() else {
        return Err(ApiError::forbidden(format!(
            "subject {:?} of issuer {} acts as no active agent of this org; link it with \
             `agenttrust federation subjects link`",
            verified.subject, verified.issuer
        )));
    };
    let trust_level = verified.origin.trust_level()?;
    let scope_ceiling = match &verified.origin {
        verify::Origin::Gateway { scopes, .. } => scopes.clone(),
        verify::Origin::Provider(_) => Vec::new(),
    };
    let row = store::sessions::create(
        &state.store,
        store::sessions::NewSession {
            org_id: &caller.org_id,
            agent_id,
            source: SOURCE_FEDERATION,
            server_id: None,
            scope_ceiling: &scope_ceiling,
            token_id: None,
            delegation_id: None,
            federation: Some(store::sessions::FederationOrigin {
                provider_id: verified.origin.provider_id(),
                issuer: &verified.issuer,
                trust_level: trust_level.as_str(),
                expires_at: verified.expires_at,
                token_id: verified.issued_here.as_deref(),
            }),
        },
        &caller.actor(),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(super::sessions::to_wire(&state, row).await?),
    ))
}

// ---- this gateway as an issuer -------------------------------------------------------------

/// `POST …/tokens/issue`: an ES256 ID token for an active agent of the org, with scopes from
/// its capabilities and a lifetime capped like an agent token's.
pub async fn issue_token(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(request): JsonBody<IssueIdTokenRequest>,
) -> ApiResult<(StatusCode, Json<IssuedIdToken>)> {
    caller.require_key()?;
    if request.agent_id.is_empty() {
        return Err(ApiError::validation("agent_id is required"));
    }
    validate::identifier("agent_id", &request.agent_id)?;
    let scopes = validate::scope_list("scopes", &request.scopes)?;
    let audience = match &request.audience {
        Some(audience) => {
            validate::identifier("audience", audience)?;
            audience.clone()
        }
        None => state.federation.issuer.clone(),
    };
    let (ttl, warnings) =
        super::tokens::capped_ttl(&state, request.ttl, DEFAULT_ID_TOKEN_TTL_SECONDS)?;
    let agent =
        super::tokens::issuable_agent(&state, &caller.org_id, &request.agent_id, &scopes).await?;
    let issued_at = time::now();
    let expires_at = validate::expiry("ttl", issued_at, ttl)?;
    let token_id = store::new_id();
    let claims = verify::IdTokenClaims {
        iss: state.federation.issuer.clone(),
        sub: agent.id.clone(),
        aud: audience.clone(),
        exp: expires_at,
        iat: issued_at,
        nbf: issued_at,
        jti: token_id.clone(),
        org_id: caller.org_id.clone(),
        scope: scopes.join(" "),
        agent_name: agent.name.clone(),
    };
    let (token, key_id) = state
        .federation
        .signing
        .sign(&state.store, &claims)
        .await
        .map_err(signing_failed)?;
    // Recorded before it is handed out: a token the store does not know is never valid here.
    store::federation::record_id_token(
        &state.store,
        store::federation::NewIdToken {
            id: &token_id,
            org_id: &caller.org_id,
            agent_id: &agent.id,
            audience: &audience,
            scopes: &scopes,
            key_id: &key_id,
            issued_at,
            expires_at,
        },
        &caller.actor(),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(IssuedIdToken {
            token,
            token_id,
            agent_id: agent.id,
            issuer: state.federation.issuer.clone(),
            audience,
            scopes,
            expires_in: expires_at - issued_at,
            expires_at: time::format(expires_at),
            warnings,
            extra: Default::default(),
        }),
    ))
}

fn signing_failed(error: signing::SigningError) -> ApiError {
    tracing::error!(%error, "cannot sign an ID token");
    ApiError::internal()
}

/// `POST …/tokens/revoke`: revokes an ID token this gateway issued to the caller's org; it
/// fails verification here from then on. A token that does not verify is a 400, not a leak of
/// whether it exists.
pub async fn revoke_token(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(request): JsonBody<RevokeIdTokenRequest>,
) -> ApiResult<Json<RevokedIdToken>> {
    caller.require_key()?;
    let token = validate_token(&request.token)?;
    // Verified as this gateway's own whatever providers the org registered: only the org a
    // token was issued to may revoke it.
    let token_id = match verify::verify_issued_here(&state, &caller.org_id, token).await? {
        Ok(verify::Verified {
            origin: verify::Origin::Gateway { token_id, .. },
            ..
        }) => token_id,
        Ok(_) => {
            tracing::error!("a token verified as this gateway's own names no token id");
            return Err(ApiError::internal());
        }
        Err(not_valid) if not_valid.error == invalid::REVOKED => {
            return Ok(Json(RevokedIdToken {
                revoked: true,
                token_id: String::new(),
                extra: Default::default(),
            }));
        }
        // An expired token needs no revoking; anything else is not ours to revoke.
        Err(not_valid) if not_valid.error == invalid::EXPIRED => {
            return Ok(Json(RevokedIdToken {
                revoked: false,
                token_id: String::new(),
                extra: Default::default(),
            }));
        }
        Err(not_valid) => {
            return Err(ApiError::validation(format!(
                "not an ID token of this gateway for this org: {}",
                not_valid.error
            )));
        }
    };
    store::federation::revoke_id_token(&state.store, &caller.org_id, &token_id, &caller.actor())
        .await?;
    Ok(Json(RevokedIdToken {
        revoked: true,
        token_id,
        extra: Default::default(),
    }))
}

/// `GET /.well-known/openid-configuration`: this gateway as an issuer.
pub async fn openid_configuration(State(state): State<AppState>) -> impl IntoResponse {
    let issuer = &state.federation.issuer;
    (
        [(header::CACHE_CONTROL, "public, max-age=300")],
        Json(serde_json::json!({
            "issuer": issuer,
            "jwks_uri": format!("{}/.well-known/jwks.json", issuer.trim_end_matches('/')),
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [signing::ALGORITHM],
            "claims_supported": ["iss", "sub", "aud", "exp", "iat", "nbf", "jti", "org_id", "scope", "agent_name"],
        })),
    )
}

/// `GET /.well-known/jwks.json`: every published signing key (the old one stays until its
/// tokens have expired).
pub async fn jwks(State(state): State<AppState>) -> ApiResult<impl IntoResponse> {
    let set = state
        .federation
        .signing
        .jwks(&state.store)
        .await
        .map_err(|error| {
            tracing::error!(%error, "cannot read the signing keys");
            ApiError::internal()
        })?;
    Ok(([(header::CACHE_CONTROL, "public, max-age=60")], Json(set)))
}
