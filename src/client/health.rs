//! `GET /health`: is the gateway up, and which version is it.

use super::{Client, Error, Response, Service};
use crate::api::health::Health;

pub async fn get(client: &Client) -> Result<Response<Health>, Error> {
    let url = client.url(Service::Base, &["health"])?;
    client.get(url).await
}
