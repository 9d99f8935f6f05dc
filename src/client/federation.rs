//! Federation (`/api/v1/federation/…`): providers and their subject links, ID tokens (verify,
//! issue, revoke) and federation sessions.

use super::{Client, Error, Response, Service};
use crate::api::federation::{
    DeletedProvider, IssueIdTokenRequest, IssuedIdToken, LinkSubjectRequest, ProviderEnvelope,
    ProviderList, RegisterProviderRequest, RevokeIdTokenRequest, RevokedIdToken, SubjectLink,
    SubjectList, UpdateProviderRequest, Verification, VerifyTokenRequest,
};
use crate::api::sessions::Session;

const FEDERATION: [&str; 3] = ["api", "v1", "federation"];

fn path<'a>(rest: &[&'a str]) -> Vec<&'a str> {
    FEDERATION
        .iter()
        .copied()
        .chain(rest.iter().copied())
        .collect()
}

pub async fn register_provider(
    client: &Client,
    request: &RegisterProviderRequest,
) -> Result<Response<ProviderEnvelope>, Error> {
    let url = client.url(Service::Base, &path(&["providers"]))?;
    client.post(url, request).await
}

pub async fn list_providers(client: &Client) -> Result<Response<ProviderList>, Error> {
    let url = client.url(Service::Base, &path(&["providers"]))?;
    client.get(url).await
}

pub async fn get_provider(
    client: &Client,
    provider_id: &str,
) -> Result<Response<ProviderEnvelope>, Error> {
    let url = client.url(Service::Base, &path(&["providers", provider_id]))?;
    client.get(url).await
}

pub async fn update_provider(
    client: &Client,
    provider_id: &str,
    request: &UpdateProviderRequest,
) -> Result<Response<ProviderEnvelope>, Error> {
    let url = client.url(Service::Base, &path(&["providers", provider_id]))?;
    client.patch(url, request).await
}

pub async fn delete_provider(
    client: &Client,
    provider_id: &str,
) -> Result<Response<Option<DeletedProvider>>, Error> {
    let url = client.url(Service::Base, &path(&["providers", provider_id]))?;
    client.delete(url).await
}

pub async fn link_subject(
    client: &Client,
    provider_id: &str,
    request: &LinkSubjectRequest,
) -> Result<Response<SubjectLink>, Error> {
    let url = client.url(
        Service::Base,
        &path(&["providers", provider_id, "subjects"]),
    )?;
    client.post(url, request).await
}

pub async fn list_subjects(
    client: &Client,
    provider_id: &str,
) -> Result<Response<SubjectList>, Error> {
    let url = client.url(
        Service::Base,
        &path(&["providers", provider_id, "subjects"]),
    )?;
    client.get(url).await
}

pub async fn unlink_subject(
    client: &Client,
    provider_id: &str,
    subject: &str,
) -> Result<Response<Option<serde_json::Value>>, Error> {
    let url = client.url(
        Service::Base,
        &path(&["providers", provider_id, "subjects", subject]),
    )?;
    client.delete(url).await
}

/// `POST …/tokens/verify`: HTTP 200 whether the token is valid or not.
pub async fn verify_token(
    client: &Client,
    request: &VerifyTokenRequest,
) -> Result<Response<Verification>, Error> {
    let url = client.url(Service::Base, &path(&["tokens", "verify"]))?;
    client.post(url, request).await
}

pub async fn issue_token(
    client: &Client,
    request: &IssueIdTokenRequest,
) -> Result<Response<IssuedIdToken>, Error> {
    let url = client.url(Service::Base, &path(&["tokens", "issue"]))?;
    client.post(url, request).await
}

pub async fn revoke_token(
    client: &Client,
    request: &RevokeIdTokenRequest,
) -> Result<Response<RevokedIdToken>, Error> {
    let url = client.url(Service::Base, &path(&["tokens", "revoke"]))?;
    client.post(url, request).await
}

pub async fn init_session(
    client: &Client,
    request: &VerifyTokenRequest,
) -> Result<Response<Session>, Error> {
    let url = client.url(Service::Base, &path(&["sessions", "init"]))?;
    client.post(url, request).await
}
