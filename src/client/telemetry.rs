//! Telemetry: report what happened after a tool ran (`POST /api/v1/telemetry/report`, on the
//! audit URL) and list stored events page by page (`GET /api/v1/telemetry/events`).

use reqwest::Url;

use super::{Client, Error, Response, Service};
use crate::api::telemetry::{EventPage, EventQuery, ReportRequest, ReportResponse};

pub async fn report(
    client: &Client,
    request: &ReportRequest,
) -> Result<Response<ReportResponse>, Error> {
    client.post_as_agent(report_url(client)?, request).await
}

/// Where [`report`] posts (the audit URL).
pub(crate) fn report_url(client: &Client) -> Result<Url, Error> {
    client.url(Service::Audit, &["api", "v1", "telemetry", "report"])
}

pub async fn list(client: &Client, query: &EventQuery) -> Result<Response<EventPage>, Error> {
    let mut url = client.url(Service::Base, &["api", "v1", "telemetry", "events"])?;
    {
        let mut pairs = url.query_pairs_mut();
        if let Some(agent_id) = &query.agent_id {
            pairs.append_pair("agent_id", agent_id);
        }
        if let Some(session_id) = &query.session_id {
            pairs.append_pair("session_id", session_id);
        }
        if let Some(cursor) = &query.cursor {
            pairs.append_pair("cursor", cursor);
        }
        if let Some(limit) = query.limit {
            pairs.append_pair("limit", &limit.to_string());
        }
    }
    // An empty query leaves a bare `?`; drop it.
    if url.query() == Some("") {
        url.set_query(None);
    }
    client.get(url).await
}
