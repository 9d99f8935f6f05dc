//! Agent cards over HTTP (wire-api §3.8): generate (`POST /api/v1/agents/{id}/card`, with the
//! operator's settings), get, publish and unpublish (`PUT …/card/publish|unpublish`), and the
//! public, unauthenticated `GET /a2a/agents/{id}/agent.json` (published cards of active agents
//! only; anything else is a 404 that tells nothing apart).
//!
//! Only what the operator set is stored (description, skills, documentation URL, the agent's
//! endpoint) with whether the card is published. Every answer builds the card afresh from the
//! agent's record as it stands (name, skills from its capabilities unless the operator set some,
//! the ATI trust extension with its current score and key), so a key rotation, a lock or a
//! denial shows in the next card served, and signs it with the gateway's current signing key
//! ([`super::signing::SigningKeys::sign_detached`]), so a rotation never leaves a card signed by
//! a key that is no longer published.
//!
//! Who may call what: an admin key generates, publishes and unpublishes; any org API key reads.

pub mod trust;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::agent_key::AgentPublicKey;
use crate::api::cards::{
    AgentCard, AgentInterface, Capabilities, CardSettings, CardSignature, Extension,
    MAX_DESCRIPTION_CHARACTERS, MAX_SKILLS, PROTOCOL_BINDING, PROTOCOL_VERSION, Provider,
    SIGNATURE_TYPE, Skill, TRUST_EXTENSION_URI, TrustParams,
};
use crate::api::policies::SessionMode;
use crate::api::time;
use crate::guardian::GUARD_TIER_FAST;
use crate::store::{self, agents::AgentRow, cards::CardRow};

use super::AppState;
use super::agents::not_found as agent_not_found;
use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::extract::{JsonBody, PathId};
use super::validate;

/// The version every generated card states.
const CARD_VERSION: &str = "1.0.0";
/// The media types the gateway's A2A endpoint takes and gives.
const TEXT_MODE: &str = "text/plain";
/// The longest URL an operator may set (documentation, endpoint).
const MAX_URL_CHARACTERS: usize = 2048;
/// The most examples a skill may list.
const MAX_EXAMPLES: usize = 16;

pub async fn generate(
    State(state): State<AppState>,
    caller: Caller,
    PathId(agent_id): PathId,
    JsonBody(settings): JsonBody<CardSettings>,
) -> ApiResult<Json<serde_json::Value>> {
    caller.require_admin()?;
    let settings = validate_settings(&state, settings)?;
    let row = save(&state, &caller, &agent_id, Some(settings), false).await?;
    Ok(Json(served(&state, &row).await?))
}

pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    PathId(agent_id): PathId,
) -> ApiResult<Json<serde_json::Value>> {
    caller.require_key()?;
    validate::identifier("agent_id", &agent_id)?;
    let row = store::cards::get(&state.store, &caller.org_id, &agent_id)
        .await?
        .ok_or_else(|| no_card(&agent_id))?;
    Ok(Json(served(&state, &row).await?))
}

pub async fn publish(
    State(state): State<AppState>,
    caller: Caller,
    PathId(agent_id): PathId,
) -> ApiResult<Json<serde_json::Value>> {
    caller.require_admin()?;
    let row = save(&state, &caller, &agent_id, None, true).await?;
    Ok(Json(served(&state, &row).await?))
}

pub async fn unpublish(
    State(state): State<AppState>,
    caller: Caller,
    PathId(agent_id): PathId,
) -> ApiResult<Json<serde_json::Value>> {
    caller.require_admin()?;
    validate::identifier("agent_id", &agent_id)?;
    let row = store::cards::unpublish(
        &state.store,
        &caller.org_id,
        &agent_id,
        time::now(),
        &caller.actor(),
    )
    .await?
    .ok_or_else(|| no_card(&agent_id))?;
    Ok(Json(served(&state, &row).await?))
}

/// `GET /a2a/agents/{id}/agent.json`: no credentials needed, none looked at.
pub async fn public(
    State(state): State<AppState>,
    PathId(agent_id): PathId,
) -> ApiResult<Response> {
    validate::identifier("agent_id", &agent_id)?;
    let row = store::cards::get_published(&state.store, &agent_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no published card for agent {agent_id}")))?;
    let card = served(&state, &row).await?;
    // Public and signed: any cache may keep it briefly, none forever (it is rebuilt from the
    // agent's record, re-signed on rotation and gone when unpublished).
    Ok(([(header::CACHE_CONTROL, "public, max-age=60")], Json(card)).into_response())
}

/// The operator settings of the org's agent's card, as stored (none when it has no card): what
/// A2A forwarding reads for the agent's own endpoint.
pub async fn settings_of(
    state: &AppState,
    org_id: &str,
    agent_id: &str,
) -> ApiResult<Option<CardSettings>> {
    match store::cards::get(&state.store, org_id, agent_id).await? {
        Some(row) => Ok(Some(stored_settings(&row)?)),
        None => Ok(None),
    }
}

fn no_card(agent_id: &str) -> ApiError {
    ApiError::not_found(format!(
        "agent {agent_id} has no card: generate one with POST /api/v1/agents/{agent_id}/card"
    ))
}

fn stored_settings(row: &CardRow) -> ApiResult<CardSettings> {
    serde_json::from_str(&row.settings).map_err(|error| {
        tracing::error!(%error, agent = %row.agent_id, "stored card settings are corrupt");
        ApiError::internal()
    })
}

/// Stores the operator's `settings` for the agent's card (over the stored ones; `None`: the
/// stored ones), published if `publish`.
async fn save(
    state: &AppState,
    caller: &Caller,
    agent_id: &str,
    settings: Option<CardSettings>,
    publish: bool,
) -> ApiResult<CardRow> {
    validate::identifier("agent_id", agent_id)?;
    let agent = store::agents::get(&state.store, &caller.org_id, agent_id)
        .await?
        .ok_or_else(|| agent_not_found(agent_id))?;
    if publish && !agent.is_active() {
        return Err(ApiError::conflict(format!(
            "agent {agent_id} is {}: its card cannot be published",
            agent.status
        )));
    }
    let stored = match store::cards::get(&state.store, &caller.org_id, agent_id).await? {
        Some(row) => stored_settings(&row)?,
        None => CardSettings::default(),
    };
    let settings = match settings {
        Some(given) => given.over(stored),
        None => stored,
    };
    let settings_text = serde_json::to_string(&settings).map_err(|_| ApiError::internal())?;
    Ok(store::cards::save(
        &state.store,
        store::cards::SavedCard {
            org_id: &caller.org_id,
            agent_id,
            settings: &settings_text,
            publish,
            now: time::now(),
        },
        &caller.actor(),
    )
    .await?)
}

/// The card of `row`'s agent as it stands now, signed: built from the agent's record (its
/// current key, its trust score from its current mode and record) and the stored settings.
async fn served(state: &AppState, row: &CardRow) -> ApiResult<serde_json::Value> {
    let agent = store::agents::get(&state.store, &row.org_id, &row.agent_id)
        .await?
        .ok_or_else(|| agent_not_found(&row.agent_id))?;
    let org = store::orgs::get(&state.store, &row.org_id)
        .await?
        .ok_or_else(ApiError::internal)?;
    let facts = store::cards::trust_facts(&state.store, &row.org_id, &row.agent_id).await?;
    let settings = stored_settings(row)?;
    let card = build(state, &org.name, &agent, &settings, facts, time::now())?;
    let card = serde_json::to_value(&card).map_err(|_| ApiError::internal())?;
    signed(state, card, &row.agent_id).await
}

/// The card of `agent` (unsigned) as of `now`.
fn build(
    state: &AppState,
    org_name: &str,
    agent: &AgentRow,
    settings: &CardSettings,
    facts: store::cards::TrustFacts,
    now: i64,
) -> ApiResult<AgentCard> {
    let issuer = &state.federation.issuer;
    let key = agent
        .public_key
        .as_deref()
        .and_then(|pem| AgentPublicKey::from_pem(pem).ok());
    let mode = agent
        .mode
        .parse::<SessionMode>()
        .unwrap_or(SessionMode::Standard);
    let score = trust::score(&trust::TrustRecord {
        active: agent.is_active(),
        has_key: key.is_some(),
        age_seconds: now - agent.created_at,
        denials_in_window: facts.denials_in_window,
        revoked_tokens: facts.revoked_tokens,
        mode,
    });
    let params = TrustParams {
        ati_trust_score: score as f64,
        ati_guardian_tier: GUARD_TIER_FAST.to_string(),
        ati_agent_key: key.map(|key| key.jwk()),
        extra: Default::default(),
    };
    let mut params = match serde_json::to_value(params) {
        Ok(serde_json::Value::Object(params)) => params,
        _ => return Err(ApiError::internal()),
    };
    // An integer on the wire (Java reads an int; JCS prints it the same either way).
    params.insert("ati_trust_score".to_string(), score.into());
    let mut skills = match &settings.skills {
        Some(skills) => skills.clone(),
        None => skills_from_capabilities(&agent.capabilities()?),
    };
    if skills.is_empty() {
        // A card lists at least one skill (A2A requires it): taking a message is the one
        // every agent reached through the gateway has.
        skills.push(Skill {
            id: "message".to_string(),
            name: "Message".to_string(),
            description: format!("Takes a text message for {}", agent.name),
            tags: vec!["a2a".to_string()],
            examples: Vec::new(),
        });
    }
    let description = settings
        .description
        .clone()
        .filter(|text| !text.trim().is_empty())
        .unwrap_or_else(|| {
            format!(
                "{} ({} agent of {org_name}), reached through its AgentTrust gateway",
                agent.name, agent.framework
            )
        });
    let mut security_schemes = serde_json::Map::new();
    security_schemes.insert(
        "bearer".to_string(),
        serde_json::json!({"httpAuthSecurityScheme": {"scheme": "bearer"}}),
    );
    Ok(AgentCard {
        name: agent.name.clone(),
        description,
        version: CARD_VERSION.to_string(),
        supported_interfaces: vec![AgentInterface {
            url: format!("{issuer}/a2a/agents/{}", agent.id),
            protocol_binding: PROTOCOL_BINDING.to_string(),
            protocol_version: PROTOCOL_VERSION.to_string(),
            tenant: Some(agent.org_id.clone()),
        }],
        url: String::new(),
        provider: Some(Provider {
            organization: org_name.to_string(),
            url: Some(issuer.clone()),
        }),
        capabilities: Capabilities {
            streaming: false,
            push_notifications: false,
            extensions: vec![Extension {
                uri: TRUST_EXTENSION_URI.to_string(),
                description: Some(
                    "AgentTrust posture: trust score 0-100, Guardian tier, the agent's key"
                        .to_string(),
                ),
                required: false,
                params: Some(params),
            }],
        },
        security_schemes,
        security_requirements: Vec::new(),
        default_input_modes: vec![TEXT_MODE.to_string()],
        default_output_modes: vec![TEXT_MODE.to_string()],
        skills,
        signatures: Vec::new(),
        documentation_url: settings
            .documentation_url
            .clone()
            .filter(|url| !url.is_empty()),
        extra: Default::default(),
    })
}

/// One skill per capability, named after it.
fn skills_from_capabilities(capabilities: &[String]) -> Vec<Skill> {
    capabilities
        .iter()
        .map(|capability| Skill {
            id: capability.clone(),
            name: capability.clone(),
            description: format!("May {capability}, as granted by its organization"),
            tags: vec!["capability".to_string()],
            examples: Vec::new(),
        })
        .collect()
}

/// `card` (unsigned) signed now with the gateway's current signing key.
async fn signed(
    state: &AppState,
    mut card: serde_json::Value,
    agent_id: &str,
) -> ApiResult<serde_json::Value> {
    let payload = crate::api::cards::canonical_payload(&card).map_err(|error| {
        tracing::error!(%error, agent = %agent_id, "a card cannot be canonicalized");
        ApiError::internal()
    })?;
    let jku = format!("{}/.well-known/jwks.json", state.federation.issuer);
    let (protected, signature) = state
        .federation
        .signing
        .sign_detached(&state.store, SIGNATURE_TYPE, &jku, |protected| {
            crate::api::cards::signing_input(protected, &payload)
        })
        .await
        .map_err(|error| {
            tracing::error!(%error, "cannot sign an agent card");
            ApiError::internal()
        })?;
    let signature = serde_json::to_value(vec![CardSignature {
        protected,
        signature,
        header: None,
    }])
    .map_err(|_| ApiError::internal())?;
    if let Some(members) = card.as_object_mut() {
        members.insert("signatures".to_string(), signature);
    }
    Ok(card)
}

/// Checks what an operator set (a 400 naming the field, before anything is stored).
fn validate_settings(state: &AppState, settings: CardSettings) -> ApiResult<CardSettings> {
    if let Some(description) = &settings.description
        && description.chars().count() > MAX_DESCRIPTION_CHARACTERS
    {
        return Err(ApiError::validation(format!(
            "description is longer than {MAX_DESCRIPTION_CHARACTERS} characters"
        )));
    }
    if let Some(url) = settings
        .documentation_url
        .as_deref()
        .filter(|url| !url.is_empty())
    {
        web_url("documentation_url", url)?;
    }
    if let Some(url) = settings.endpoint.as_deref().filter(|url| !url.is_empty()) {
        web_url("endpoint", url)?;
        state
            .a2a
            .outbound
            .check_url(url)
            .map_err(|error| ApiError::validation(format!("endpoint: {error}")))?;
        // Forwarding to the gateway itself would loop.
        if url.starts_with(&format!("{}/", state.federation.issuer)) {
            return Err(ApiError::validation(
                "endpoint is this gateway's own A2A endpoint; name the agent's own server",
            ));
        }
    }
    if let Some(skills) = &settings.skills {
        if skills.len() > MAX_SKILLS {
            return Err(ApiError::validation(format!(
                "skills has {} entries; at most {MAX_SKILLS} are allowed",
                skills.len()
            )));
        }
        for (index, skill) in skills.iter().enumerate() {
            let field = format!("skills[{index}]");
            validate::identifier(&format!("{field}.id"), &skill.id)?;
            if skill.id.is_empty() {
                return Err(ApiError::validation(format!(
                    "{field}.id must not be empty"
                )));
            }
            validate::name(&format!("{field}.name"), &skill.name)?;
            if skill.description.chars().count() > MAX_DESCRIPTION_CHARACTERS {
                return Err(ApiError::validation(format!(
                    "{field}.description is longer than {MAX_DESCRIPTION_CHARACTERS} characters"
                )));
            }
            validate::scope_list(&format!("{field}.tags"), &skill.tags)?;
            if skill.examples.len() > MAX_EXAMPLES
                || skill
                    .examples
                    .iter()
                    .any(|example| example.chars().count() > MAX_DESCRIPTION_CHARACTERS)
            {
                return Err(ApiError::validation(format!(
                    "{field}.examples: at most {MAX_EXAMPLES} examples of at most \
                     {MAX_DESCRIPTION_CHARACTERS} characters each"
                )));
            }
        }
    }
    Ok(settings)
}

fn web_url(field: &str, url: &str) -> ApiResult<()> {
    let scheme_ok = url.starts_with("https://") || url.starts_with("http://");
    if !scheme_ok
        || url.chars().count() > MAX_URL_CHARACTERS
        || url.chars().any(char::is_whitespace)
    {
        return Err(ApiError::validation(format!(
            "{field} must be an http(s) URL of at most {MAX_URL_CHARACTERS} characters"
        )));
    }
    Ok(())
}
