//! Org policies (our extension): `GET/PUT /api/v1/policies`, `POST /api/v1/policies/test`.

use super::{Client, Error, Response, Service};
use crate::api::policies::{PolicyDocument, PolicyTestRequest, PolicyTestResponse};

/// The stored policy (`version` 0 when the org never stored one).
pub async fn get(client: &Client) -> Result<Response<PolicyDocument>, Error> {
    let url = client.url(Service::Base, &["api", "v1", "policies"])?;
    client.get(url).await
}

/// Replaces the policy; a `version` other than the stored one is a 409.
pub async fn set(
    client: &Client,
    document: &PolicyDocument,
) -> Result<Response<PolicyDocument>, Error> {
    let url = client.url(Service::Base, &["api", "v1", "policies"])?;
    client.put(url, document).await
}

/// Evaluates a hypothetical check (against `request.policy` when given); records nothing.
pub async fn test(
    client: &Client,
    request: &PolicyTestRequest,
) -> Result<Response<PolicyTestResponse>, Error> {
    let url = client.url(Service::Base, &["api", "v1", "policies", "test"])?;
    client.post(url, request).await
}
