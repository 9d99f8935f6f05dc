//! Checks made with the agent's own key, when this profile holds it (`agents create
//! --generate-key`): the same flow as the SDKs' agent credentials. A WIMSE token bound to the key
//! (challenge → proof of possession → token, cached on disk until 60 s before it expires), then a
//! fresh DPoP proof per check. With an agent token, the token is the credential and the proof
//! binds it to the key (no issuance at all). Without a stored key, a plain check.

use crate::agent_key::AgentPrivateKey;
use crate::api::actions::{CheckDecision, CheckRequest};
use crate::api::time::now;
use crate::api::wimse::{IssueWimseTokenRequest, PossessionProof, proof_message};
use crate::client::{self, Client, Response};
use crate::config::agent_keys::{AgentKeyStore, CachedToken};

use super::Context;

/// How long before its expiry a cached token is renewed (the SDKs' margin).
pub const REFRESH_BEFORE_EXPIRY_SECONDS: i64 = 60;

/// The agent-key store of the profile in use.
pub fn key_store(context: &Context) -> AgentKeyStore {
    AgentKeyStore::new(context.store.dir(), &context.settings.profile)
}

/// Asks the Guardian about `request`, with the agent's key when this profile holds it.
pub async fn check(
    context: &Context,
    client: &Client,
    request: &CheckRequest,
) -> Result<Response<CheckDecision>, client::Error> {
    let Some(agent_id) = request.agent_id.as_deref() else {
        return client::actions::check(client, request).await;
    };
    let store = key_store(context);
    let key = match store.load_key(agent_id) {
        Ok(Some(key)) => key,
        Ok(None) => return client::actions::check(client, request).await,
        Err(error) => return Err(client::Error::Config(format!("{error:#}"))),
    };
    if client.signs_agent_requests() {
        return client::actions::check(client, request).await;
    }
    let url = client::actions::check_url(client)?;
    let url = url.as_str();
    if let Some(agent_token) = client.agent_token() {
        let proof = proof_for(&key, url, agent_token);
        return client::actions::check_with_proof(client, request, None, &proof).await;
    }
    let (token, cached) = wimse_token(client, &store, &key, agent_id).await?;
    let proof = proof_for(&key, url, &token);
    match client::actions::check_with_proof(client, request, Some(&token), &proof).await {
        // A cached token the gateway no longer takes (restarted with other signing keys, the key
        // rotated): issue a new one, once.
        Err(error) if cached && error.status() == Some(401) => {
            let _ = store.forget_token(agent_id);
            let (token, _) = wimse_token(client, &store, &key, agent_id).await?;
            let proof = proof_for(&key, url, &token);
            client::actions::check_with_proof(client, request, Some(&token), &proof).await
        }
        answer => answer,
    }
}

/// With an agent token and the agent's key stored in this profile, `client` signs a DPoP proof
/// for every request it makes with the token (checks, telemetry): what lets the token work when
/// the org requires sender-constrained tokens. Anything else: `client` as it is.
pub fn with_stored_key(context: &Context, client: Client, agent_id: Option<&str>) -> Client {
    let Some(agent_id) = agent_id else {
        return client;
    };
    if client.agent_token().is_none() {
        return client;
    }
    match key_store(context).load_key(agent_id) {
        Ok(Some(key)) => client.with_proof_key(key),
        Ok(None) => client,
        Err(error) => {
            tracing::warn!("cannot read the agent's key: {error:#}");
            client
        }
    }
}

fn proof_for(key: &AgentPrivateKey, url: &str, token: &str) -> String {
    key.dpop_proof("POST", url, token, now(), &uuid::Uuid::new_v4().to_string())
}

/// A WIMSE token bound to `key`: the cached one while it has more than a minute to live, else
/// a new one. Whether it came from the cache.
async fn wimse_token(
    client: &Client,
    store: &AgentKeyStore,
    key: &AgentPrivateKey,
    agent_id: &str,
) -> Result<(String, bool), client::Error> {
    let thumbprint = key.public().thumbprint();
    if let Some(cached) = store.load_token(agent_id)
        && cached.key_thumbprint == thumbprint
        && cached.expires_at > now() + REFRESH_BEFORE_EXPIRY_SECONDS
    {
        return Ok((cached.token, true));
    }
    let token = issue_bound_token(client, key, agent_id).await?;
    let expires_at = crate::api::time::parse(&token.expires_at).unwrap_or(now() + 300);
    // A cache that cannot be written costs the next check a new token, nothing more.
    if let Err(error) = store.save_token(
        agent_id,
        &CachedToken {
            token: token.token.clone(),
            expires_at,
            key_thumbprint: thumbprint,
        },
    ) {
        tracing::warn!("cannot cache the WIMSE token: {error:#}");
    }
    Ok((token.token, false))
}

/// Challenge → proof of possession → WIMSE token bound to the key.
pub async fn issue_bound_token(
    client: &Client,
    key: &AgentPrivateKey,
    agent_id: &str,
) -> Result<crate::api::wimse::WimseToken, client::Error> {
    let challenge = client::wimse::challenge(client, agent_id).await?.value;
    let ts = now();
    let signature =
        key.sign_base64url(proof_message(&challenge.nonce, agent_id, &[], ts).as_bytes());
    let request = IssueWimseTokenRequest {
        agent_id: agent_id.to_string(),
        proof: Some(PossessionProof {
            nonce: challenge.nonce,
            ts,
            signature,
        }),
        ..IssueWimseTokenRequest::default()
    };
    Ok(client::wimse::issue_token(client, &request).await?.value)
}
