//! Agents: create, list, get, revoke, set mode, unlock (`/api/v1/agents…`).

use super::{Client, Error, Response, Service, unwrapped, with_query};
use crate::api::agents::{
    Agent, AgentList, AgentQuery, CreateAgentRequest, RevokeAgentRequest, RevokeAgentResponse,
    RotateAgentKeyRequest, SetAgentModeRequest,
};

pub async fn create(
    client: &Client,
    request: &CreateAgentRequest,
) -> Result<Response<Agent>, Error> {
    let url = client.url(Service::Base, &["api", "v1", "agents"])?;
    let response: Response<serde_json::Value> = client.post(url.clone(), request).await?;
    unwrapped(response, "agent", &url)
}

/// One page of the org's agents (`next_cursor` names the next).
pub async fn list(client: &Client, query: &AgentQuery) -> Result<Response<AgentList>, Error> {
    let url = client.url(Service::Base, &["api", "v1", "agents"])?;
    let url = with_query(
        url,
        &[
            ("status", query.status.clone()),
            ("name_prefix", query.name_prefix.clone()),
            ("cursor", query.cursor.clone()),
            ("limit", query.limit.map(|limit| limit.to_string())),
        ],
    );
    client.get(url).await
}

pub async fn get(client: &Client, agent_id: &str) -> Result<Response<Agent>, Error> {
    let url = client.url(Service::Base, &["api", "v1", "agents", agent_id])?;
    let response: Response<serde_json::Value> = client.get(url.clone()).await?;
    unwrapped(response, "agent", &url)
}

pub async fn revoke(
    client: &Client,
    agent_id: &str,
    request: &RevokeAgentRequest,
) -> Result<Response<RevokeAgentResponse>, Error> {
    let url = client.url(Service::Base, &["api", "v1", "agents", agent_id, "revoke"])?;
    client.post(url, request).await
}

pub async fn set_mode(
    client: &Client,
    agent_id: &str,
    request: &SetAgentModeRequest,
) -> Result<Response<Agent>, Error> {
    let url = client.url(Service::Base, &["api", "v1", "agents", agent_id, "mode"])?;
    let response: Response<serde_json::Value> = client.put(url.clone(), request).await?;
    unwrapped(response, "agent", &url)
}

pub async fn unlock(client: &Client, agent_id: &str) -> Result<Response<Agent>, Error> {
    let url = client.url(Service::Base, &["api", "v1", "agents", agent_id, "unlock"])?;
    let response: Response<serde_json::Value> =
        client.post(url.clone(), &serde_json::json!({})).await?;
    unwrapped(response, "agent", &url)
}

/// Makes `request.public_key` the agent's key (`POST /api/v1/agents/{id}/keys/rotate`).
pub async fn rotate_key(
    client: &Client,
    agent_id: &str,
    request: &RotateAgentKeyRequest,
) -> Result<Response<Agent>, Error> {
    let url = client.url(
        Service::Base,
        &["api", "v1", "agents", agent_id, "keys", "rotate"],
    )?;
    let response: Response<serde_json::Value> = client.post(url.clone(), request).await?;
    unwrapped(response, "agent", &url)
}
