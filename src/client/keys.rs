//! Org API keys: create, list, get, revoke (`/api/v1/keys…`).

use super::{Client, Error, Response, Service, with_query};
use crate::api::keys::{
    ApiKey, CreateKeyRequest, CreatedKey, KeyList, KeyQuery, RevokeKeyResponse,
};

pub async fn create(
    client: &Client,
    request: &CreateKeyRequest,
) -> Result<Response<CreatedKey>, Error> {
    let url = client.url(Service::Base, &["api", "v1", "keys"])?;
    client.post(url, request).await
}

/// One page of the org's keys (`next_cursor` names the next).
pub async fn list(client: &Client, query: &KeyQuery) -> Result<Response<KeyList>, Error> {
    let url = client.url(Service::Base, &["api", "v1", "keys"])?;
    let url = with_query(
        url,
        &[
            ("cursor", query.cursor.clone()),
            ("limit", query.limit.map(|limit| limit.to_string())),
        ],
    );
    client.get(url).await
}

/// `GET /api/v1/keys/{id}`: one key (never its secret), `current` when it is the caller's own.
pub async fn get(client: &Client, key_id: &str) -> Result<Response<ApiKey>, Error> {
    let url = client.url(Service::Base, &["api", "v1", "keys", key_id])?;
    client.get(url).await
}

/// `DELETE /api/v1/keys/{id}`; `None` when the gateway answers with an empty body (204).
pub async fn revoke(
    client: &Client,
    key_id: &str,
) -> Result<Response<Option<RevokeKeyResponse>>, Error> {
    let url = client.url(Service::Base, &["api", "v1", "keys", key_id])?;
    client.delete(url).await
}
