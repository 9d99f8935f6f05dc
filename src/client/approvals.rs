//! Approvals (elevation): `GET /mcp/approvals/{id}`, `POST /mcp/approvals/{id}/approve|deny`,
//! and our `GET /api/v1/approvals?status=…`.

use super::{Client, Error, Response, Service, with_query};
use crate::api::approvals::{Approval, ApprovalList, ApprovalQuery, DecideRequest, DecideResponse};

pub async fn list(client: &Client, query: &ApprovalQuery) -> Result<Response<ApprovalList>, Error> {
    let url = client.url(Service::Base, &["api", "v1", "approvals"])?;
    let url = with_query(
        url,
        &[
            ("status", query.status.clone()),
            ("agent_id", query.agent_id.clone()),
            ("session_id", query.session_id.clone()),
            ("cursor", query.cursor.clone()),
            ("limit", query.limit.map(|limit| limit.to_string())),
        ],
    );
    client.get(url).await
}

pub async fn get(client: &Client, approval_id: &str) -> Result<Response<Approval>, Error> {
    let url = client.url(Service::Base, &["mcp", "approvals", approval_id])?;
    client.get(url).await
}

/// Deciding twice, or deciding an expired approval, is a 409.
pub async fn approve(
    client: &Client,
    approval_id: &str,
    request: &DecideRequest,
) -> Result<Response<DecideResponse>, Error> {
    let url = client.url(Service::Base, &["mcp", "approvals", approval_id, "approve"])?;
    client.post(url, request).await
}

pub async fn deny(
    client: &Client,
    approval_id: &str,
    request: &DecideRequest,
) -> Result<Response<DecideResponse>, Error> {
    let url = client.url(Service::Base, &["mcp", "approvals", approval_id, "deny"])?;
    client.post(url, request).await
}
