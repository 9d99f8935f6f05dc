//! Agent cards (`/api/v1/agents/{id}/card…`, wire-api §3.8): generate, get, publish, unpublish
//! on the profile's gateway; and fetching any card and key set by URL, with no credentials
//! (`cards verify` checks cards of other gateways too, and never sends them the API key).

use reqwest::Url;

use super::{Client, Error, Response, Service};
use crate::api::cards::{AgentCard, CardSettings};

pub async fn generate(
    client: &Client,
    agent_id: &str,
    settings: &CardSettings,
) -> Result<Response<AgentCard>, Error> {
    let url = client.url(Service::Base, &["api", "v1", "agents", agent_id, "card"])?;
    client.post(url, settings).await
}

pub async fn get(client: &Client, agent_id: &str) -> Result<Response<AgentCard>, Error> {
    let url = client.url(Service::Base, &["api", "v1", "agents", agent_id, "card"])?;
    client.get(url).await
}

pub async fn publish(client: &Client, agent_id: &str) -> Result<Response<AgentCard>, Error> {
    let url = client.url(
        Service::Base,
        &["api", "v1", "agents", agent_id, "card", "publish"],
    )?;
    client.put(url, &serde_json::json!({})).await
}

pub async fn unpublish(client: &Client, agent_id: &str) -> Result<Response<AgentCard>, Error> {
    let url = client.url(
        Service::Base,
        &["api", "v1", "agents", agent_id, "card", "unpublish"],
    )?;
    client.put(url, &serde_json::json!({})).await
}

/// The public card URL of `agent_id` on the profile's gateway.
pub fn public_url(client: &Client, agent_id: &str) -> Result<Url, Error> {
    client.url(Service::Base, &["a2a", "agents", agent_id, "agent.json"])
}

/// GETs a JSON document (a card, a JWK Set) at `url` without any credential.
pub async fn fetch(client: &Client, url: Url) -> Result<Response<serde_json::Value>, Error> {
    client.with_api_key(None).get(url).await
}
