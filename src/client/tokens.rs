//! Agent tokens: issue, introspect, revoke (`/api/v1/agent-tokens/…`, on the auth URL).

use super::{Client, Error, Response, Service};
use crate::api::tokens::{
    IntrospectRequest, Introspection, IssueTokenRequest, IssuedToken, RevokeTokenRequest,
    RevokeTokenResponse,
};

pub async fn issue(
    client: &Client,
    request: &IssueTokenRequest,
) -> Result<Response<IssuedToken>, Error> {
    let url = client.url(Service::Auth, &["api", "v1", "agent-tokens", "issue"])?;
    client.post(url, request).await
}

pub async fn introspect(
    client: &Client,
    request: &IntrospectRequest,
) -> Result<Response<Introspection>, Error> {
    let url = client.url(Service::Auth, &["api", "v1", "agent-tokens", "introspect"])?;
    client.post(url, request).await
}

pub async fn revoke(
    client: &Client,
    request: &RevokeTokenRequest,
) -> Result<Response<RevokeTokenResponse>, Error> {
    let url = client.url(Service::Auth, &["api", "v1", "agent-tokens", "revoke"])?;
    client.post(url, request).await
}
