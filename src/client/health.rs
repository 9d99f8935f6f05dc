//! `GET /health`: is the gateway up, and which version is it.

use reqwest::Url;

use super::{Client, Error, Response, Service};
use crate::api::health::Health;

pub async fn get(client: &Client) -> Result<Response<Health>, Error> {
    client.get(url(client)?).await
}

/// Where [`get`] asks.
pub(crate) fn url(client: &Client) -> Result<Url, Error> {
    client.url(Service::Base, &["health"])
}
