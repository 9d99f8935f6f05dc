//! SIEM streaming (`/api/v1/siem/destinations`): destinations, their delivery logs and test
//! deliveries.

use super::{Client, Error, Response, Service, with_query};
use crate::api::streaming::{
    CreateDestinationRequest, DeletedDestination, DeliveryLog, Destination, DestinationList,
    TestResult, UpdateDestinationRequest,
};

fn path<'a>(rest: &[&'a str]) -> Vec<&'a str> {
    ["api", "v1", "siem", "destinations"]
        .into_iter()
        .chain(rest.iter().copied())
        .collect()
}

pub async fn create(
    client: &Client,
    request: &CreateDestinationRequest,
) -> Result<Response<Destination>, Error> {
    let url = client.url(Service::Base, &path(&[]))?;
    client.post(url, request).await
}

pub async fn list(client: &Client) -> Result<Response<DestinationList>, Error> {
    let url = client.url(Service::Base, &path(&[]))?;
    client.get(url).await
}

pub async fn get(client: &Client, destination_id: &str) -> Result<Response<Destination>, Error> {
    let url = client.url(Service::Base, &path(&[destination_id]))?;
    client.get(url).await
}

pub async fn update(
    client: &Client,
    destination_id: &str,
    request: &UpdateDestinationRequest,
) -> Result<Response<Destination>, Error> {
    let url = client.url(Service::Base, &path(&[destination_id]))?;
    client.put(url, request).await
}

pub async fn delete(
    client: &Client,
    destination_id: &str,
) -> Result<Response<Option<DeletedDestination>>, Error> {
    let url = client.url(Service::Base, &path(&[destination_id]))?;
    client.delete(url).await
}

/// The newest `limit` delivery records, newest first.
pub async fn logs(
    client: &Client,
    destination_id: &str,
    limit: Option<u32>,
) -> Result<Response<DeliveryLog>, Error> {
    let url = client.url(Service::Base, &path(&[destination_id, "logs"]))?;
    let url = with_query(url, &[("limit", limit.map(|limit| limit.to_string()))]);
    client.get(url).await
}

/// Sends one test event now; HTTP 200 whether it arrived or not (`success` says).
pub async fn test(client: &Client, destination_id: &str) -> Result<Response<TestResult>, Error> {
    let url = client.url(Service::Base, &path(&[destination_id, "test"]))?;
    client.post(url, &serde_json::json!({})).await
}
