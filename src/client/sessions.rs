//! Sessions: `POST /mcp/sessions/init`, `GET /mcp/sessions/{id}`,
//! `POST /api/v1/agenttrust/api-sessions/init` (on the auth URL), and our `GET /api/v1/sessions`,
//! `PUT /api/v1/sessions/{id}/mode`, `POST /api/v1/sessions/{id}/unlock`.

use super::{Client, Error, Response, Service, with_query};
use crate::api::sessions::{
    InitApiSessionRequest, InitSessionRequest, OpenSessionRequest, Session, SessionList,
    SessionQuery, SetModeRequest,
};

/// An MCP session of an agent on a server.
pub async fn init(
    client: &Client,
    request: &InitSessionRequest,
) -> Result<Response<Session>, Error> {
    let url = client.url(Service::Base, &["mcp", "sessions", "init"])?;
    client.post(url, request).await
}

/// A registered session of a shell agent (`POST /api/v1/sessions`).
pub async fn open(
    client: &Client,
    request: &OpenSessionRequest,
) -> Result<Response<Session>, Error> {
    let url = client.url(Service::Base, &["api", "v1", "sessions"])?;
    client.post_as_agent(url, request).await
}

/// An API session from an agent token: its agent and scope ceiling come from the token.
pub async fn init_api(
    client: &Client,
    request: &InitApiSessionRequest,
) -> Result<Response<Session>, Error> {
    let url = client.url(
        Service::Auth,
        &["api", "v1", "agenttrust", "api-sessions", "init"],
    )?;
    client.post(url, request).await
}

pub async fn get(client: &Client, session_id: &str) -> Result<Response<Session>, Error> {
    let url = client.url(Service::Base, &["mcp", "sessions", session_id])?;
    client.get(url).await
}

/// One page of the org's sessions.
pub async fn list(client: &Client, query: &SessionQuery) -> Result<Response<SessionList>, Error> {
    let url = client.url(Service::Base, &["api", "v1", "sessions"])?;
    let url = with_query(
        url,
        &[
            ("agent_id", query.agent_id.clone()),
            ("mode", query.mode.clone()),
            ("source", query.source.clone()),
            ("cursor", query.cursor.clone()),
            ("limit", query.limit.map(|limit| limit.to_string())),
        ],
    );
    client.get(url).await
}

pub async fn set_mode(
    client: &Client,
    session_id: &str,
    request: &SetModeRequest,
) -> Result<Response<Session>, Error> {
    let url = client.url(
        Service::Base,
        &["api", "v1", "sessions", session_id, "mode"],
    )?;
    client.put(url, request).await
}

/// Unlocks a locked session (back to `standard`).
pub async fn unlock(client: &Client, session_id: &str) -> Result<Response<Session>, Error> {
    let url = client.url(
        Service::Base,
        &["api", "v1", "sessions", session_id, "unlock"],
    )?;
    client.post(url, &serde_json::json!({})).await
}
