//! Agents: create, list, get, revoke (`/api/v1/agents…`).

use super::{Client, Error, Response, Service, decode, with_query};
use crate::api::agents::{
    Agent, AgentList, AgentQuery, CreateAgentRequest, RevokeAgentRequest, RevokeAgentResponse,
};

pub async fn create(
    client: &Client,
    request: &CreateAgentRequest,
) -> Result<Response<Agent>, Error> {
    let url = client.url(Service::Base, &["api", "v1", "agents"])?;
    let response: Response<serde_json::Value> = client.post(url.clone(), request).await?;
    unwrap_agent(response, &url)
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
    unwrap_agent(response, &url)
}

pub async fn revoke(
    client: &Client,
    agent_id: &str,
    request: &RevokeAgentRequest,
) -> Result<Response<RevokeAgentResponse>, Error> {
    let url = client.url(Service::Base, &["api", "v1", "agents", agent_id, "revoke"])?;
    client.post(url, request).await
}

/// The wire contract allows a bare agent or `{"agent": {...}}`; the raw JSON stays as sent.
fn unwrap_agent(
    response: Response<serde_json::Value>,
    url: &reqwest::Url,
) -> Result<Response<Agent>, Error> {
    let object = response
        .raw
        .get("agent")
        .filter(|agent| agent.is_object())
        .unwrap_or(&response.raw);
    let value = decode(object, url)?;
    Ok(Response {
        value,
        raw: response.raw,
    })
}
