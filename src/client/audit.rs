//! The audit log: page through the org's events (`GET /api/v1/audit/events`) and verify its
//! hash chain (`GET /api/v1/audit/verify`).

use super::{Client, Error, Response, Service, with_query};
use crate::api::audit::{AuditEventPage, AuditEventQuery, AuditVerification};

pub async fn events(
    client: &Client,
    query: &AuditEventQuery,
) -> Result<Response<AuditEventPage>, Error> {
    let url = client.url(Service::Base, &["api", "v1", "audit", "events"])?;
    let url = with_query(
        url,
        &[
            ("cursor", query.cursor.clone()),
            ("limit", query.limit.map(|limit| limit.to_string())),
        ],
    );
    client.get(url).await
}

pub async fn verify(client: &Client) -> Result<Response<AuditVerification>, Error> {
    let url = client.url(Service::Base, &["api", "v1", "audit", "verify"])?;
    client.get(url).await
}
