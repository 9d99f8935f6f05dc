//! `agenttrust version`: this CLI's version, and the gateway's (from `GET /health`) when it
//! answers. A gateway that is down, refuses or is not a gateway is reported, never an error:
//! the command exits 0 so it can run in any bug report.

use clap::Args;
use serde_json::json;

use super::Context;
use crate::client;
use crate::output::View;

#[derive(Debug, Args)]
pub struct VersionArgs {}

/// This binary's version.
pub const CLIENT_VERSION: &str = env!("CARGO_PKG_VERSION");

pub async fn run(context: &Context, _args: VersionArgs) -> anyhow::Result<()> {
    let url = context.settings.url.clone();
    let health = match context.client_without_key_check() {
        Ok(client) => client::health::get(&client)
            .await
            .map_err(|error| error.to_string()),
        Err(error) => Err(format!("{error:#}")),
    };
    let (gateway, gateway_line) = match &health {
        Ok(response) => {
            let health = &response.value;
            let version = if health.version.is_empty() {
                "unknown"
            } else {
                health.version.as_str()
            };
            let mut gateway = json!({ "url": url, "reachable": true, "status": health.status });
            if !health.version.is_empty() {
                gateway["version"] = json!(health.version);
            }
            (gateway, format!("{version} ({}) at {url}", health.status))
        }
        Err(error) => (
            json!({ "url": url, "reachable": false, "error": error }),
            format!("unreachable at {url}: {error}"),
        ),
    };
    let raw = json!({
        "client": { "version": CLIENT_VERSION },
        "gateway": gateway,
    });
    context.printer.show(
        &raw,
        &[CLIENT_VERSION.to_string()],
        View::Record(vec![
            ("client", CLIENT_VERSION.to_string()),
            ("gateway", gateway_line),
        ]),
    )?;
    Ok(())
}
