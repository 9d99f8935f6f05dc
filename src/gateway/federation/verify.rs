//! Verifying an ID token for an org, in this order (the first failure names the answer's
//! `error`):
//!
//! 1. the token is a compact JWS whose header names an allowed algorithm (RS256, PS256, ES256,
//!    EdDSA: never `none`, never an HMAC) — else `algorithm not allowed`;
//! 2. its `iss` (read before the signature only to find the keys) is this gateway (a token it
//!    issued for an agent of the same org) or a provider the org registered, and equals the
//!    caller's `issuer_hint` when one is given — else `unknown issuer`; the provider is active —
//!    else `provider disabled`;
//! 3. the key its `kid` names is in the issuer's JWKS — else `unknown key`; the signature
//!    verifies with it — else `bad signature`;
//! 4. `exp`, `nbf` and `iat` hold within [`LEEWAY_SECONDS`] — else `expired`, `not yet valid`,
//!    `issued in the future`; `aud` holds the provider's audience (the org's, by default:
//!    `{issuer of this gateway}/orgs/{org_id}`) — else `wrong audience`;
//! 5. for this gateway's own tokens: not revoked — else `revoked`.
//!
//! Nothing about the token is trusted before step 3: the header and claims read earlier only
//! choose which keys to try.
//!
//! # Which agent a token acts as
//!
//! A token of this gateway acts as its `sub`, an agent of the org. A provider's token names an
//! external subject in the provider's subject claim (`sub` unless configured); it acts as the
//! agent an admin linked to that subject (`agenttrust federation subjects link`), or as none.
//! A revoked agent is never the answer.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{DecodingKey, Validation};
use serde::{Deserialize, Serialize};

use crate::api::federation::{ProviderStatus, TrustLevel, invalid};
use crate::api::time;
use crate::store::{self, federation::ProviderRow};

use super::super::AppState;
use super::super::error::{ApiError, ApiResult};
use super::jwks::{Algorithm, KeyError};

/// Clock skew allowed on `exp`, `nbf` and `iat`.
pub const LEEWAY_SECONDS: u64 = 60;

/// The claims of an ID token this gateway signs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdTokenClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub nbf: i64,
    pub jti: String,
    pub org_id: String,
    /// Space-separated, as OAuth scopes are.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scope: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub agent_name: String,
}

/// Who vouched for a valid token.
#[derive(Debug, Clone)]
pub enum Origin {
    /// This gateway, for an agent of the org: the token's id and scopes.
    Gateway {
        token_id: String,
        scopes: Vec<String>,
    },
    /// A provider the org registered.
    Provider(Box<ProviderRow>),
}

impl Origin {
    pub fn provider_id(&self) -> Option<&str> {
        match self {
            Origin::Gateway { .. } => None,
            Origin::Provider(provider) => Some(&provider.id),
        }
    }

    /// How far the org trusts it: its own gateway fully (its scopes bound it instead).
    pub fn trust_level(&self) -> ApiResult<TrustLevel> {
        match self {
            Origin::Gateway { .. } => Ok(TrustLevel::High),
            Origin::Provider(provider) => provider.trust_level.parse().map_err(|_| {
                tracing::error!(provider = %provider.id, "a provider has a corrupt trust level");
                ApiError::internal()
            }),
        }
    }
}

/// A token that verified.
#[derive(Debug, Clone)]
pub struct Verified {
    pub issuer: String,
    pub subject: String,
    pub expires_at: i64,
    pub origin: Origin,
    /// The active agent of the org the token acts as, if any.
    pub agent_id: Option<String>,
    /// The token's id when this gateway issued it (whichever way it was verified): its
    /// revocation ends the sessions opened with it.
    pub issued_here: Option<String>,
}

/// A token that did not: why, and the issuer it claimed when it could be read.
#[derive(Debug, Clone)]
pub struct Invalid {
    pub error: String,
    pub issuer: Option<String>,
}

impl Invalid {
    fn new(error: impl Into<String>, issuer: Option<&str>) -> Invalid {
        Invalid {
            error: error.into(),
            issuer: issuer.map(str::to_string),
        }
    }
}

/// The default audience of an org's federation tokens.
pub fn org_audience(gateway_issuer: &str, org_id: &str) -> String {
    format!("{}/orgs/{org_id}", gateway_issuer.trim_end_matches('/'))
}

/// The header and claims, read without trusting them.
struct Unverified {
    algorithm: Algorithm,
    kid: Option<String>,
    issuer: Option<String>,
}

fn peek(token: &str) -> Result<Unverified, Invalid> {
    let malformed = || Invalid::new(invalid::MALFORMED, None);
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed());
    };
    let decode = |part: &str| -> Option<serde_json::Map<String, serde_json::Value>> {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).ok()?).ok()
    };
    let header = decode(header).ok_or_else(malformed)?;
    let claims = decode(payload).ok_or_else(malformed)?;
    let issuer = claims
        .get("iss")
        .and_then(serde_json::Value::as_str)
        .map(str::to_string);
    let algorithm = header
        .get("alg")
        .and_then(serde_json::Value::as_str)
        .and_then(Algorithm::from_name)
        .ok_or_else(|| Invalid::new(invalid::ALGORITHM_NOT_ALLOWED, issuer.as_deref()))?;
    // A token that carries its own key (`jwk`, `jku`, `x5u`) is not trusted to choose it.
    Ok(Unverified {
        algorithm,
        kid: header
            .get("kid")
            .and_then(serde_json::Value::as_str)
            .map(str::to_string),
        issuer,
    })
}

/// Verifies `token` for `org_id`; `Ok(Err(_))` is an invalid token (HTTP 200, `valid: false`),
/// `Err(_)` a failure of the gateway.
pub async fn verify(
    state: &AppState,
    org_id: &str,
    token: &str,
    issuer_hint: Option<&str>,
) -> ApiResult<Result<Verified, Invalid>> {
    let unverified = match peek(token.trim()) {
        Ok(unverified) => unverified,
        Err(invalid) => return Ok(Err(invalid)),
    };
    let Some(issuer) = unverified.issuer.clone() else {
        return Ok(Err(Invalid::new(invalid::UNKNOWN_ISSUER, None)));
    };
    let invalid_here = |error: &str| Ok(Err(Invalid::new(error, Some(&issuer))));
    if issuer_hint.is_some_and(|hint| hint != issuer) {
        return invalid_here(invalid::UNKNOWN_ISSUER);
    }
    let federation = &state.federation;
    let provider = store::federation::provider_by_issuer(&state.store, org_id, &issuer).await?;
    match provider {
        Some(provider) => verify_from_provider(state, org_id, token, &unverified, provider).await,
        None if issuer == federation.issuer => {
            verify_own(state, org_id, token.trim(), &unverified).await
        }
        None => invalid_here(invalid::UNKNOWN_ISSUER),
    }
}

async fn verify_from_provider(
    state: &AppState,
    org_id: &str,
    token: &str,
    unverified: &Unverified,
    provider: ProviderRow,
) -> ApiResult<Result<Verified, Invalid>> {
    let issuer = provider.issuer.clone();
    let invalid_here = |error: String| Ok(Err(Invalid::new(error, Some(&issuer))));
    if provider.status != ProviderStatus::Active.as_str() {
        return invalid_here(invalid::PROVIDER_DISABLED.to_string());
    }
    let federation = &state.federation;
    let key = match federation
        .jwks
        .key(
            &federation.outbound,
            &provider.jwks_uri,
            unverified.kid.as_deref(),
            unverified.algorithm,
        )
        .await
    {
        Ok(key) => key,
        Err(KeyError::Unknown) => return invalid_here(invalid::UNKNOWN_KEY.to_string()),
        Err(KeyError::WrongAlgorithm { key_type }) => {
            return invalid_here(format!(
                "{}: the key named is for {key_type}, the token says {}",
                invalid::ALGORITHM_NOT_ALLOWED,
                unverified.algorithm.name()
            ));
        }
        Err(KeyError::Unavailable(error)) => {
            return invalid_here(format!("{}: {error}", invalid::KEYS_UNAVAILABLE));
        }
    };
    let audience = provider
        .audience
        .clone()
        .unwrap_or_else(|| org_audience(&federation.issuer, org_id));
    let claims = match decode(
        token,
        &key.decoding,
        unverified.algorithm,
        &issuer,
        Some(&audience),
    ) {
        Ok(claims) => claims,
        Err(error) => return invalid_here(error),
    };
    let Some(subject) = claims
        .get(&provider.subject_claim)
        .and_then(claim_text)
        .filter(|subject| !subject.is_empty())
    else {
        return invalid_here(format!(
            "{}: the token has no {:?} claim",
            invalid::NO_SUBJECT,
            provider.subject_claim
        ));
    };
    let expires_at = claims
        .get("exp")
        .and_then(serde_json::Value::as_i64)
        .unwrap_or(0);
    // An org that trusts this very gateway as a provider: what the gateway knows of its own
    // tokens (a revocation, by any org it issued to) still holds.
    let issued_here = claims
        .get("jti")
        .and_then(serde_json::Value::as_str)
        .filter(|_| issuer == federation.issuer)
        .map(str::to_string);
    if let Some(jti) = &issued_here
        && store::federation::id_token_revoked(&state.store, jti).await?
    {
        return invalid_here(invalid::REVOKED.to_string());
    }
    let agent_id = match store::federation::find_subject(
        &state.store,
        org_id,
        &provider.id,
        &subject,
    )
    .await?
    {
        Some(link) => active_agent(state, org_id, &link.agent_id).await?,
        None => None,
    };
    Ok(Ok(Verified {
        issuer,
        subject,
        expires_at,
        origin: Origin::Provider(Box::new(provider)),
        agent_id,
        issued_here,
    }))
}

/// Verifies `token` as an ID token this gateway issued to `org_id`, whatever providers the org
/// registered (revocation asks exactly this).
pub async fn verify_issued_here(
    state: &AppState,
    org_id: &str,
    token: &str,
) -> ApiResult<Result<Verified, Invalid>> {
    match peek(token.trim()) {
        Ok(unverified) if unverified.issuer.as_deref() == Some(&state.federation.issuer) => {
            verify_own(state, org_id, token.trim(), &unverified).await
        }
        Ok(unverified) => Ok(Err(Invalid::new(
            invalid::UNKNOWN_ISSUER,
            unverified.issuer.as_deref(),
        ))),
        Err(invalid) => Ok(Err(invalid)),
    }
}

async fn verify_own(
    state: &AppState,
    org_id: &str,
    token: &str,
    unverified: &Unverified,
) -> ApiResult<Result<Verified, Invalid>> {
    let federation = &state.federation;
    let issuer = federation.issuer.clone();
    let invalid_here = |error: String| Ok(Err(Invalid::new(error, Some(&issuer))));
    if unverified.algorithm != Algorithm::Es256 {
        return invalid_here(invalid::ALGORITHM_NOT_ALLOWED.to_string());
    }
    let Some(kid) = unverified.kid.as_deref() else {
        return invalid_here(invalid::UNKNOWN_KEY.to_string());
    };
    let key = match federation.signing.verifying_key(&state.store, kid).await {
        Ok(Some(key)) => key,
        Ok(None) => return invalid_here(invalid::UNKNOWN_KEY.to_string()),
        Err(error) => {
            tracing::error!(%error, "cannot read the signing keys");
            return Err(ApiError::internal());
        }
    };
    // The issuer answers about its own tokens whatever audience they were for.
    let claims = match decode(token, &key, Algorithm::Es256, &issuer, None) {
        Ok(claims) => claims,
        Err(error) => return invalid_here(error),
    };
    let claims: IdTokenClaims = match serde_json::from_value(serde_json::Value::Object(claims)) {
        Ok(claims) => claims,
        Err(_) => return invalid_here(invalid::MALFORMED.to_string()),
    };
    // Another org's token is not this org's to vouch for.
    if claims.org_id != org_id {
        return invalid_here(invalid::UNKNOWN_ISSUER.to_string());
    }
    let Some(row) = store::federation::get_id_token(&state.store, org_id, &claims.jti).await?
    else {
        return invalid_here(invalid::UNKNOWN_KEY.to_string());
    };
    if row.revoked_at.is_some() {
        return invalid_here(invalid::REVOKED.to_string());
    }
    let agent_id = active_agent(state, org_id, &claims.sub).await?;
    Ok(Ok(Verified {
        issuer,
        subject: claims.sub,
        expires_at: claims.exp,
        issued_here: Some(claims.jti.clone()),
        origin: Origin::Gateway {
            token_id: claims.jti,
            scopes: claims
                .scope
                .split_whitespace()
                .map(str::to_string)
                .collect(),
        },
        agent_id,
    }))
}

/// Checks the signature, then the claims; the claims as a map, or why not.
fn decode(
    token: &str,
    key: &DecodingKey,
    algorithm: Algorithm,
    issuer: &str,
    audience: Option<&str>,
) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    let mut validation = Validation::new(algorithm.to_jsonwebtoken());
    validation.leeway = LEEWAY_SECONDS;
    validation.validate_nbf = true;
    validation.set_issuer(&[issuer]);
    match audience {
        Some(audience) => {
            validation.set_audience(&[audience]);
            validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        }
        None => {
            validation.validate_aud = false;
            validation.set_required_spec_claims(&["exp", "iss"]);
        }
    }
    let data =
        jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(token, key, &validation)
            .map_err(|error| reason(error.kind()))?;
    let claims = data.claims;
    let now = time::now();
    if let Some(issued_at) = claims.get("iat").and_then(serde_json::Value::as_i64)
        && issued_at > now.saturating_add(LEEWAY_SECONDS as i64)
    {
        return Err(invalid::ISSUED_IN_FUTURE.to_string());
    }
    Ok(claims)
}

fn reason(kind: &ErrorKind) -> String {
    match kind {
        ErrorKind::ExpiredSignature => invalid::EXPIRED.to_string(),
        ErrorKind::ImmatureSignature => invalid::NOT_YET_VALID.to_string(),
        ErrorKind::InvalidAudience => invalid::WRONG_AUDIENCE.to_string(),
        ErrorKind::InvalidIssuer => invalid::UNKNOWN_ISSUER.to_string(),
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => {
            invalid::ALGORITHM_NOT_ALLOWED.to_string()
        }
        ErrorKind::MissingRequiredClaim(claim) => {
            format!("{}: the {claim:?} claim is missing", invalid::MALFORMED)
        }
        ErrorKind::InvalidClaimFormat(claim) => {
            format!("{}: the {claim:?} claim is malformed", invalid::MALFORMED)
        }
        ErrorKind::InvalidSignature
        | ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidEddsaKey
        | ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidKeyFormat => invalid::BAD_SIGNATURE.to_string(),
        _ => invalid::MALFORMED.to_string(),
    }
}

/// A claim's value as text: a string, or a number (some issuers use numeric subjects).
fn claim_text(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(text) => Some(text.clone()),
        serde_json::Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

async fn active_agent(state: &AppState, org_id: &str, agent_id: &str) -> ApiResult<Option<String>> {
    let agent = store::agents::get(&state.store, org_id, agent_id).await?;
    Ok(agent
        .filter(store::agents::AgentRow::is_active)
        .map(|agent| agent.id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(value: serde_json::Value) -> String {
        URL_SAFE_NO_PAD.encode(value.to_string())
    }

    #[test]
    fn tokens_outside_the_allow_list_are_refused_before_any_key_is_looked_at() {
        for alg in ["none", "HS256", "RS512", "ES384"] {
            let token = format!(
                "{}.{}.",
                part(serde_json::json!({ "alg": alg })),
                part(serde_json::json!({ "iss": "https://idp" }))
            );
            let invalid = peek(&token).err().unwrap();
            assert_eq!(invalid.error, invalid::ALGORITHM_NOT_ALLOWED, "{alg}");
            assert_eq!(invalid.issuer.as_deref(), Some("https://idp"));
        }
        assert_eq!(peek("a.b").err().unwrap().error, invalid::MALFORMED);
        assert_eq!(peek("a.b.c.d").err().unwrap().error, invalid::MALFORMED);
        assert_eq!(peek("!!.!!.!!").err().unwrap().error, invalid::MALFORMED);
    }

    #[test]
    fn the_default_audience_names_the_org() {
        assert_eq!(
            org_audience("https://gw.example.com/", "org-1"),
            "https://gw.example.com/orgs/org-1"
        );
    }
}
