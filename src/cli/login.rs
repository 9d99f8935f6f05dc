//! `agenttrust login`: read an API key (hidden prompt or stdin), prove it works against the
//! gateway (`GET /api/v1/keys`: 2xx is an admin key, 403 a valid runtime key; only 401 refuses),
//! and only then save it in a profile.

use std::io::Read;

use anyhow::Context as _;
use clap::Args;

use super::Context;
use crate::api::keys::KeyQuery;
use crate::client::{self, Client};
use crate::config::{self, DEFAULT_PROFILE, env};
use crate::exit::{Failure, Rehinted};
use crate::output::View;

#[derive(Debug, Args)]
#[command(after_help = "\
The profile is --profile (or AGENTTRUST_PROFILE), else the default profile (`agenttrust profile \
use`), else `default`; the URL is --url (or \
AGENTTRUST_URL), else the profile's, else http://localhost:8080. Without a terminal, pass the key \
on stdin with --api-key-stdin (or set AGENTTRUST_API_KEY). A valid key without the admin role \
(a runtime key) is saved too, with a note. A rejected key (401) exits 4 and nothing is saved.")]
pub struct LoginArgs {
    /// Read the API key from stdin instead of prompting
    #[arg(long)]
    pub api_key_stdin: bool,
    /// Make this profile the default (the first profile saved always becomes the default)
    #[arg(long)]
    pub set_default: bool,
}

pub async fn run(context: &Context, args: LoginArgs) -> anyhow::Result<()> {
    let profile = context
        .globals
        .profile
        .clone()
        .or_else(|| env::var(env::PROFILE))
        // The configured default (`profile use`), the one every other command uses.
        .or(context
            .store
            .load_config()?
            .default_profile
            .filter(|name| !name.is_empty()))
        .unwrap_or_else(|| DEFAULT_PROFILE.to_string());
    config::validate_profile_name(&profile)?;

    // Resolve again for the profile being logged into (not the default one).
    let flags = config::Flags {
        profile: Some(profile.clone()),
        url: context.globals.url.clone(),
        output: None,
        timeout: context.globals.timeout,
        insecure: context.globals.insecure,
        ca_cert: context.globals.ca_cert.clone(),
    };
    let settings = config::resolve(
        &flags,
        &env::var,
        &context.store.load_config()?,
        &context.store.load_credentials()?,
    )?;

    let key_from_environment = !args.api_key_stdin && env::var(env::API_KEY).is_some();
    let api_key = read_api_key(context, &args)?;
    if settings.insecure {
        crate::output::warn("TLS certificate verification is disabled (--insecure)");
    }
    let client = Client::new(&client::Options {
        url: settings.url.clone(),
        auth_url: settings.auth_url.clone(),
        audit_url: settings.audit_url.clone(),
        api_key: Some(api_key.clone()),
        agent_token: None,
        timeout: settings.timeout,
        insecure: settings.insecure,
        ca_cert: settings.ca_cert.clone(),
        idle_connections_per_host: None,
    })?;
    // 2xx: an admin key. 403: a valid key without the admin role (a runtime key): it works for
    // checks, telemetry and tokens, so it is saved. Only 401 (unknown key) refuses.
    let runtime_key = match client::keys::list(
        &client,
        &KeyQuery {
            cursor: None,
            limit: Some(1),
        },
    )
    .await
    {
        Ok(_) => false,
        Err(error) if error.status() == Some(403) => true,
        Err(error) if error.status() == Some(401) => {
            // Logging in again would not help: the key itself is wrong.
            let from = if key_from_environment {
                format!("the key in {} is not valid there", env::API_KEY)
            } else {
                "the key is not valid there".to_string()
            };
            return Err(anyhow::Error::from(Rehinted {
                error,
                hint: format!(
                    "{from}; an admin makes one with `agenttrust keys create` (or \
                     `agenttrust server key create` on the gateway's host)"
                ),
            })
            .context(format!(
                "the gateway at {} rejected the API key; nothing was saved",
                settings.url
            )));
        }
        Err(error) => return Err(error.into()),
    };

    context
        .store
        .save_profile(&profile, &settings.url, Some(&api_key), args.set_default)?;
    context.printer.note(format!(
        "Logged in to {} as profile `{profile}` (saved in {})",
        settings.url,
        context.store.dir().display()
    ));
    if runtime_key {
        context.printer.note(
            "The key is valid but not an admin key (a runtime key): it can check actions, \
             report telemetry and issue tokens, not manage the org.",
        );
    }
    let raw = serde_json::json!({
        "profile": profile,
        "url": settings.url,
        "config_dir": context.store.dir().display().to_string(),
        "role": if runtime_key { "runtime" } else { "admin" },
    });
    if context.printer.is_json() || context.printer.is_quiet() {
        context.printer.show(
            &raw,
            std::slice::from_ref(&profile),
            View::Record(Vec::new()),
        )?;
    }
    Ok(())
}

fn read_api_key(context: &Context, args: &LoginArgs) -> anyhow::Result<String> {
    let key = if args.api_key_stdin {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read the API key from stdin")?;
        text
    } else if let Some(key) = env::var(env::API_KEY) {
        context
            .printer
            .note(format!("Using the API key from {}", env::API_KEY));
        key
    } else if context.interactive() {
        dialoguer::Password::new()
            .with_prompt("API key")
            .interact()
            .context("cannot read the API key")?
    } else {
        return Err(Failure::Usage {
            message: "no API key to log in with".to_string(),
            hint: Some(format!(
                "pass it on stdin with --api-key-stdin, set {}, or run in a terminal",
                env::API_KEY
            )),
        }
        .into());
    };
    let key = key.trim().to_string();
    if key.is_empty() {
        return Err(Failure::Usage {
            message: "the API key is empty".to_string(),
            hint: None,
        }
        .into());
    }
    Ok(key)
}
