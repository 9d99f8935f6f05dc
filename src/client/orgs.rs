//! The org's security settings: `GET|PUT /api/v1/orgs/security-settings`.

use super::{Client, Error, Response, Service};
use crate::api::orgs::{SecuritySettings, UpdateSecuritySettingsRequest};

pub async fn get_security_settings(client: &Client) -> Result<Response<SecuritySettings>, Error> {
    let url = client.url(Service::Base, &["api", "v1", "orgs", "security-settings"])?;
    client.get(url).await
}

pub async fn set_security_settings(
    client: &Client,
    request: &UpdateSecuritySettingsRequest,
) -> Result<Response<SecuritySettings>, Error> {
    let url = client.url(Service::Base, &["api", "v1", "orgs", "security-settings"])?;
    client.put(url, request).await
}
