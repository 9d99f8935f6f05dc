//! `agenttrust health`: `GET /health` (no API key needed).

use clap::Args;

use super::Context;
use crate::client;
use crate::output::{View, or_dash};

#[derive(Debug, Args)]
pub struct HealthArgs {}

pub async fn run(context: &Context, _args: HealthArgs) -> anyhow::Result<()> {
    let client = context.client_without_key_check()?;
    let response = client::health::get(&client).await?;
    let health = &response.value;
    context.printer.show(
        &response.raw,
        std::slice::from_ref(&health.status),
        View::Record(vec![
            ("status", health.status.clone()),
            ("service", or_dash(Some(&health.service))),
            ("version", or_dash(Some(&health.version))),
            ("url", context.settings.url.clone()),
        ]),
    )?;
    Ok(())
}
