//! `agenttrust status`: which profile and URL are in use (and why), whether the gateway answers
//! (health, version, round-trip time), whether the API key works, its role and (for an admin
//! key, which may list the org's keys) its org.
//!
//! Exit status: 0 when all is well, 69 when the gateway is unreachable, 4 when the key is
//! missing or rejected: the report is printed first in every case.

use std::time::Instant;

use clap::Args;

use super::Context;
use crate::api::keys::KeyQuery;
use crate::client;
use crate::exit::{Failure, Rehinted};
use crate::output::{View, mask_secret, or_dash, without_nulls};

#[derive(Debug, Args)]
pub struct StatusArgs {}

pub async fn run(context: &Context, _args: StatusArgs) -> anyhow::Result<()> {
    let settings = &context.settings;
    let client = context.client_without_key_check()?;

    let started = Instant::now();
    let health = client::health::get(&client).await;
    let round_trip_ms = started.elapsed().as_millis() as u64;

    // Only ask about the key when the gateway answered at all.
    let key_check = match (&health, &settings.api_key) {
        (Ok(_), Some(_)) => Some(
            client::keys::list(
                &client,
                &KeyQuery {
                    cursor: None,
                    limit: Some(1),
                },
            )
            .await
            // Every key of the listing is the org's: the first names it.
            .map(|response| response.value.keys.first().map(|key| key.org_id.clone())),
        ),
        _ => None,
    };
    // A 2xx listing is an admin key; a 403 an authenticated key without the admin role.
    let (role, org_id) = match &key_check {
        Some(Ok(org_id)) => (Some("admin"), org_id.clone()),
        Some(Err(error)) if error.status() == Some(403) => (Some("runtime"), None),
        _ => (None, None),
    };
    let key_state = match (&settings.api_key, &key_check) {
        (None, _) => "not configured".to_string(),
        (Some(_), None) => match &health {
            Err(client::Error::Gateway { .. } | client::Error::Decode { .. }) => {
                "unknown (no gateway answered)".to_string()
            }
            _ => "unknown (gateway unreachable)".to_string(),
        },
        (Some(_), Some(Ok(_))) => "valid".to_string(),
        (Some(_), Some(Err(error))) => match error.status() {
            Some(401) => "rejected".to_string(),
            // Authenticated, but not allowed to list keys: a runtime key.
            Some(403) => "valid (no admin rights)".to_string(),
            _ => format!("unknown ({error})"),
        },
    };

    let (reachable, health_status, version) = match &health {
        Ok(response) => (
            true,
            response.value.status.clone(),
            response.value.version.clone(),
        ),
        // Something answered, but not as a gateway does (an HTML page, a 404 for `/health`).
        Err(error @ (client::Error::Gateway { .. } | client::Error::Decode { .. })) => (
            false,
            format!("not an AgentTrust gateway ({error})"),
            String::new(),
        ),
        Err(_) => (false, "unreachable".to_string(), String::new()),
    };
    let raw = without_nulls(serde_json::json!({
        "profile": settings.profile,
        "profile_source": settings.profile_source.to_string(),
        "url": settings.url,
        "url_source": settings.url_source.to_string(),
        "config_dir": context.store.dir(),
        "reachable": reachable,
        "health": health.as_ref().map(|response| response.raw.clone()).ok(),
        "version": if version.is_empty() { None } else { Some(version.clone()) },
        "round_trip_ms": if reachable { Some(round_trip_ms) } else { None },
        "api_key": settings.api_key.as_deref().map(mask_secret),
        "api_key_source": settings.api_key.as_ref().map(|_| settings.api_key_source.to_string()),
        "api_key_state": key_state,
        "api_key_role": role,
        "org_id": org_id,
    }));
    context.printer.show(
        &raw,
        std::slice::from_ref(&health_status),
        View::Record(vec![
            (
                "profile",
                format!("{} ({})", settings.profile, settings.profile_source),
            ),
            ("url", format!("{} ({})", settings.url, settings.url_source)),
            ("config_dir", context.store.dir().display().to_string()),
            ("gateway", health_status.clone()),
            ("version", or_dash(Some(&version))),
            (
                "round_trip_ms",
                if reachable {
                    round_trip_ms.to_string()
                } else {
                    "-".to_string()
                },
            ),
            (
                "api_key",
                match &settings.api_key {
                    Some(key) => format!("{} ({})", mask_secret(key), settings.api_key_source),
                    None => "-".to_string(),
                },
            ),
            ("api_key_state", key_state),
            ("api_key_role", or_dash(role)),
            ("org_id", or_dash(org_id.as_deref())),
        ]),
    )?;

    match health {
        Err(error @ (client::Error::Gateway { .. } | client::Error::Decode { .. })) => {
            return Err(anyhow::Error::from(Rehinted {
                error,
                hint: "check --url (or AGENTTRUST_URL, or the profile's url): it must be the \
                       base URL of an AgentTrust gateway"
                    .to_string(),
            })
            .context(format!(
                "the server at {} answered, but it is not an AgentTrust gateway",
                settings.url
            )));
        }
        Err(error) => return Err(error.into()),
        Ok(_) => {}
    }
    match key_check {
        None => Err(Failure::MissingApiKey {
            profile: settings.profile.clone(),
        }
        .into()),
        Some(Err(error)) if error.status() != Some(403) => Err(error.into()),
        Some(_) => Ok(()),
    }
}
