//! Delegations: `POST/GET /api/v1/delegations`, `GET/DELETE /api/v1/delegations/{id}`,
//! `POST /api/v1/delegations/{id}/session`.
//!
//! The gateway wraps a created delegation (`{"delegation": {...}}`) and answers a get bare; both
//! readers accept either shape and hand the CLI the object itself (`client::unwrapped`).

use super::{Client, Error, Response, Service, unwrapped, with_query};
use crate::api::delegations::{
    CreateDelegationRequest, Delegation, DelegationList, DelegationQuery, DelegationRevoked,
};
use crate::api::sessions::Session;

/// Creates a delegation (attenuation violations are a 400 naming the rule, unknown agents 404).
pub async fn create(
    client: &Client,
    request: &CreateDelegationRequest,
) -> Result<Response<Delegation>, Error> {
    let url = client.url(Service::Base, &["api", "v1", "delegations"])?;
    let response: Response<serde_json::Value> = client.post(url.clone(), request).await?;
    unwrapped(response, "delegation", &url)
}

/// One page of the org's delegations, optionally only from/to an agent, only active or only
/// inactive ones (`next_cursor` names the next).
pub async fn list(
    client: &Client,
    query: &DelegationQuery,
) -> Result<Response<DelegationList>, Error> {
    let url = client.url(Service::Base, &["api", "v1", "delegations"])?;
    let url = with_query(
        url,
        &[
            ("from", query.from.clone()),
            ("to", query.to.clone()),
            ("active", query.active.map(|active| active.to_string())),
            ("cursor", query.cursor.clone()),
            ("limit", query.limit.map(|limit| limit.to_string())),
        ],
    );
    client.get(url).await
}

pub async fn get(client: &Client, delegation_id: &str) -> Result<Response<Delegation>, Error> {
    let url = client.url(Service::Base, &["api", "v1", "delegations", delegation_id])?;
    let response: Response<serde_json::Value> = client.get(url.clone()).await?;
    unwrapped(response, "delegation", &url)
}

/// Revokes a delegation and every delegation built on it (revoking twice revokes nothing more).
pub async fn revoke(
    client: &Client,
    delegation_id: &str,
) -> Result<Response<DelegationRevoked>, Error> {
    let url = client.url(Service::Base, &["api", "v1", "delegations", delegation_id])?;
    client.delete(url).await
}

/// Opens a session of the delegate (source `a2a`) bounded by the delegation's scope and
/// restrictions.
pub async fn session(client: &Client, delegation_id: &str) -> Result<Response<Session>, Error> {
    let url = client.url(
        Service::Base,
        &["api", "v1", "delegations", delegation_id, "session"],
    )?;
    let response: Response<serde_json::Value> =
        client.post(url.clone(), &serde_json::json!({})).await?;
    unwrapped(response, "session", &url)
}
