//! The audit log: page through the org's events (`GET /api/v1/audit/events`), read one, follow
//! them live (`GET /api/v1/audit/stream`), verify the hash chain (`GET /api/v1/audit/verify`),
//! and the signed checkpoints of its head and the keys they are signed with.

use super::{Client, Error, Response, Service, with_query};
use crate::api::audit::{
    AuditCheckpoint, AuditCheckpointPage, AuditCheckpointQuery, AuditEvent, AuditEventPage,
    AuditEventQuery, AuditVerification, AuditVerifyQuery,
};

/// The query pairs of a listing or a stream.
fn event_query(query: &AuditEventQuery) -> Vec<(&'static str, Option<String>)> {
    vec![
        ("cursor", query.cursor.clone()),
        ("limit", query.limit.map(|limit| limit.to_string())),
        ("kind", query.kind.clone()),
        ("agent_id", query.agent_id.clone()),
        ("subject", query.subject.clone()),
        ("since", query.since.clone()),
        ("until", query.until.clone()),
        ("after_seq", query.after_seq.map(|seq| seq.to_string())),
        ("order", query.order.clone()),
    ]
}

pub async fn events(
    client: &Client,
    query: &AuditEventQuery,
) -> Result<Response<AuditEventPage>, Error> {
    let url = client.url(Service::Base, &["api", "v1", "audit", "events"])?;
    client.get(with_query(url, &event_query(query))).await
}

pub async fn event(client: &Client, event_id: &str) -> Result<Response<AuditEvent>, Error> {
    let url = client.url(Service::Base, &["api", "v1", "audit", "events", event_id])?;
    client.get(url).await
}

/// Opens the live stream; its body is Server-Sent Events named `audit`, each `id` a sequence
/// number to resume after.
pub async fn stream(
    client: &Client,
    query: &AuditEventQuery,
    last_event_id: Option<&str>,
) -> Result<reqwest::Response, Error> {
    let url = client.url(Service::Base, &["api", "v1", "audit", "stream"])?;
    client
        .open_event_stream(with_query(url, &event_query(query)), last_event_id)
        .await
}

pub async fn verify(
    client: &Client,
    query: &AuditVerifyQuery,
) -> Result<Response<AuditVerification>, Error> {
    let url = client.url(Service::Base, &["api", "v1", "audit", "verify"])?;
    let url = with_query(
        url,
        &[
            ("from_seq", query.from_seq.map(|seq| seq.to_string())),
            ("to_seq", query.to_seq.map(|seq| seq.to_string())),
        ],
    );
    client.get(url).await
}

pub async fn checkpoints(
    client: &Client,
    query: &AuditCheckpointQuery,
) -> Result<Response<AuditCheckpointPage>, Error> {
    let url = client.url(Service::Base, &["api", "v1", "audit", "checkpoints"])?;
    let url = with_query(
        url,
        &[
            ("after_seq", query.after_seq.map(|seq| seq.to_string())),
            ("limit", query.limit.map(|limit| limit.to_string())),
        ],
    );
    client.get(url).await
}

/// Signs the chain's head now.
pub async fn create_checkpoint(client: &Client) -> Result<Response<AuditCheckpoint>, Error> {
    let url = client.url(Service::Base, &["api", "v1", "audit", "checkpoints"])?;
    client.post(url, &serde_json::json!({})).await
}

/// Every public key the gateway ever signed with, as a JWK Set.
pub async fn keys(client: &Client) -> Result<Response<serde_json::Value>, Error> {
    let url = client.url(Service::Base, &["api", "v1", "audit", "keys"])?;
    client.get(url).await
}
