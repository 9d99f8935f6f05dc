//! MCP (`/mcp/…`): the registry of MCP servers, and JSON-RPC calls through the gateway's proxy
//! (`POST /mcp/{server_id}`) as an agent.

use super::{Client, Error, Response, Service};
use crate::api::mcp::{
    AGENT_ID_HEADER, CODE_ELEVATION_REQUIRED, CODE_POLICY_DENIED, DeletedServer, McpServer,
    RefusedCall, RegisterServerRequest, RpcRequest, SESSION_ID_HEADER, ServerList,
};

pub async fn register_server(
    client: &Client,
    request: &RegisterServerRequest,
) -> Result<Response<McpServer>, Error> {
    let url = client.url(Service::Base, &["mcp", "servers"])?;
    client.post(url, request).await
}

pub async fn list_servers(client: &Client) -> Result<Response<ServerList>, Error> {
    let url = client.url(Service::Base, &["mcp", "servers"])?;
    client.get(url).await
}

pub async fn get_server(client: &Client, server_id: &str) -> Result<Response<McpServer>, Error> {
    let url = client.url(Service::Base, &["mcp", "servers", server_id])?;
    client.get(url).await
}

pub async fn delete_server(
    client: &Client,
    server_id: &str,
) -> Result<Response<Option<DeletedServer>>, Error> {
    let url = client.url(Service::Base, &["mcp", "servers", server_id])?;
    client.delete(url).await
}

/// What the proxy answered a call.
#[derive(Debug)]
pub enum Called {
    /// The upstream's JSON-RPC response (the proxy's own JSON-RPC errors included).
    Answered(Response<serde_json::Value>),
    /// A tool call the policy refused (403 `POLICY_DENIED`) or sent to a human (403
    /// `ELEVATION_REQUIRED`).
    Refused {
        raw: serde_json::Value,
        refusal: Box<RefusedCall>,
    },
}

/// Sends one JSON-RPC request through the proxy for `agent_id` (as `X-Agent-ID`; with an agent
/// token the token's agent acts), in `session_id` when given.
pub async fn call(
    client: &Client,
    server_id: &str,
    agent_id: Option<&str>,
    session_id: Option<&str>,
    request: &RpcRequest,
) -> Result<Called, Error> {
    let url = client.url(Service::Base, &["mcp", server_id])?;
    let shown_url = url.to_string();
    let mut headers = Vec::new();
    if let Some(agent_id) = agent_id {
        headers.push((AGENT_ID_HEADER, agent_id));
    }
    if let Some(session_id) = session_id {
        headers.push((SESSION_ID_HEADER, session_id));
    }
    let (status, body) = client.post_as_agent_with(url, request, &headers).await?;
    let raw: Option<serde_json::Value> = serde_json::from_slice(&body).ok();
    if (200..300).contains(&status) {
        let raw = raw.ok_or_else(|| Error::Decode {
            url: shown_url.clone(),
            detail: "the proxy's answer is not JSON".to_string(),
        })?;
        return Ok(Called::Answered(Response {
            value: raw.clone(),
            raw,
        }));
    }
    if status == 403
        && let Some(raw) = raw
        && let Ok(refusal) = serde_json::from_value::<RefusedCall>(raw.clone())
        && (refusal.code == CODE_POLICY_DENIED || refusal.code == CODE_ELEVATION_REQUIRED)
    {
        return Ok(Called::Refused {
            raw,
            refusal: Box::new(refusal),
        });
    }
    Err(super::gateway_error(status, &body))
}
