//! Agent tokens: issue, introspect, revoke (`/api/v1/agent-tokens/…`, on the auth URL), and
//! the admin's list and revoke by id (on the base URL).

use reqwest::Url;

use super::{Client, Error, Response, Service, with_query};
use crate::api::tokens::{
    IntrospectRequest, Introspection, IssueTokenRequest, IssuedToken, RevokeTokenByIdRequest,
    RevokeTokenRequest, RevokeTokenResponse, TokenPage, TokenQuery,
};

pub async fn issue(
    client: &Client,
    request: &IssueTokenRequest,
) -> Result<Response<IssuedToken>, Error> {
    client.post(issue_url(client)?, request).await
}

/// Where [`issue`] posts.
pub(crate) fn issue_url(client: &Client) -> Result<Url, Error> {
    client.url(Service::Auth, &["api", "v1", "agent-tokens", "issue"])
}

pub async fn introspect(
    client: &Client,
    request: &IntrospectRequest,
) -> Result<Response<Introspection>, Error> {
    client.post(introspect_url(client)?, request).await
}

/// Where [`introspect`] posts.
pub(crate) fn introspect_url(client: &Client) -> Result<Url, Error> {
    client.url(Service::Auth, &["api", "v1", "agent-tokens", "introspect"])
}

pub async fn revoke(
    client: &Client,
    request: &RevokeTokenRequest,
) -> Result<Response<RevokeTokenResponse>, Error> {
    let url = client.url(Service::Auth, &["api", "v1", "agent-tokens", "revoke"])?;
    client.post(url, request).await
}

/// `POST /api/v1/agent-tokens/{token_id}/revoke` (admin keys).
pub async fn revoke_by_id(
    client: &Client,
    token_id: &str,
    request: &RevokeTokenByIdRequest,
) -> Result<Response<RevokeTokenResponse>, Error> {
    let url = client.url(
        Service::Base,
        &["api", "v1", "agent-tokens", token_id, "revoke"],
    )?;
    client.post(url, request).await
}

/// `GET /api/v1/agent-tokens` (admin keys): one page.
pub async fn list(client: &Client, query: &TokenQuery) -> Result<Response<TokenPage>, Error> {
    let url = client.url(Service::Base, &["api", "v1", "agent-tokens"])?;
    let url = with_query(
        url,
        &[
            ("agent_id", query.agent_id.clone()),
            (
                "include_inactive",
                query.include_inactive.map(|include| include.to_string()),
            ),
            ("cursor", query.cursor.clone()),
            ("limit", query.limit.map(|limit| limit.to_string())),
        ],
    );
    client.get(url).await
}
