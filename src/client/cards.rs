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

/// The largest card or key set `fetch` reads: far above any real one, and a bound on what a
/// hostile URL can make the CLI buffer.
pub const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

/// GETs a JSON document (a card, a JWK Set) at `url` without any credential, reading at most
/// [`MAX_DOCUMENT_BYTES`] within the client's timeout.
pub async fn fetch(client: &Client, url: Url) -> Result<Response<serde_json::Value>, Error> {
    let shown_url = url.to_string();
    let exchange = async {
        let mut response = client
            .http
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|error| client.transport_error(&shown_url, error))?;
        let status = response.status().as_u16();
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|error| client.transport_error(&shown_url, error))?
        {
            if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                return Err(Error::Decode {
                    url: shown_url.clone(),
                    detail: format!("the answer is larger than {MAX_DOCUMENT_BYTES} bytes"),
                });
            }
            body.extend_from_slice(&chunk);
        }
        Ok((status, body))
    };
    let (status, body) = tokio::time::timeout(client.timeout, exchange)
        .await
        .map_err(|_| Error::Timeout {
            url: shown_url.clone(),
            timeout: client.timeout,
        })??;
    if !(200..300).contains(&status) {
        return Err(super::gateway_error(status, &body));
    }
    let raw: serde_json::Value = serde_json::from_slice(&body).map_err(|error| Error::Decode {
        url: shown_url,
        detail: format!("not JSON: {error}"),
    })?;
    Ok(Response {
        value: raw.clone(),
        raw,
    })
}
