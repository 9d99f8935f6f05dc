//! WIMSE workload tokens and proof of possession: `POST /api/v1/agents/{id}/challenge`,
//! `POST /api/v1/wimse/token`, `POST /api/v1/wimse/verify`.

use super::{Client, Error, Response, Service};
use crate::api::wimse::{
    Challenge, IssueWimseTokenRequest, VerifyWimseTokenRequest, WimseToken, WimseVerification,
};

pub async fn challenge(client: &Client, agent_id: &str) -> Result<Response<Challenge>, Error> {
    let url = client.url(
        Service::Base,
        &["api", "v1", "agents", agent_id, "challenge"],
    )?;
    client.post(url, &serde_json::json!({})).await
}

pub async fn issue_token(
    client: &Client,
    request: &IssueWimseTokenRequest,
) -> Result<Response<WimseToken>, Error> {
    let url = client.url(Service::Base, &["api", "v1", "wimse", "token"])?;
    client.post(url, request).await
}

pub async fn verify(
    client: &Client,
    request: &VerifyWimseTokenRequest,
) -> Result<Response<WimseVerification>, Error> {
    let url = client.url(Service::Base, &["api", "v1", "wimse", "verify"])?;
    client.post(url, request).await
}
