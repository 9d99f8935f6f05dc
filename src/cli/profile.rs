//! `agenttrust profile list|show|use|set|rename|delete|import`: the profiles in the config dir.
//! Local only: nothing here talks to the gateway.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::Context;
use crate::config::{self, DEFAULT_PROFILE, env};
use crate::output::{View, mask_secret, or_dash, without_nulls};

#[derive(Debug, Args)]
pub struct ProfileArgs {
    #[command(subcommand)]
    pub command: ProfileCommand,
}

#[derive(Debug, Subcommand)]
pub enum ProfileCommand {
    /// List profiles (`*` marks the default)
    List,
    /// Show a profile's settings, secrets masked [default: the profile in use]
    Show(ShowArgs),
    /// Make a profile the default
    Use {
        /// Profile name
        name: String,
    },
    /// Change one setting of a profile: url, auth_url, audit_url, output, timeout, insecure,
    /// ca_cert (the API key is set with `agenttrust login`, which checks it)
    Set(SetArgs),
    /// Rename a profile (its key and its place as the default go with it)
    Rename {
        /// The profile's name
        old: String,
        /// Its new name
        new: String,
    },
    /// Delete a profile and its credentials (asks first; --yes without a terminal)
    Delete(DeleteArgs),
    /// Import the SDK's JSON config file (base_url, auth_url, api_key[, audit_url, timeout])
    /// into the profile named by --profile (default `default`)
    Import(ImportArgs),
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Profile name
    pub name: Option<String>,
    /// Show the API key in full
    #[arg(long)]
    pub show_secrets: bool,
}

#[derive(Debug, Args)]
pub struct SetArgs {
    /// Profile name
    pub name: String,
    /// The setting
    #[arg(value_parser = SETTINGS)]
    pub setting: String,
    /// Its value (`http://…` for URLs, `table|json`, a duration, `true|false`, a file)
    pub value: String,
}

/// The settings `profile set` changes (positional: the global flags of the same names would
/// clash as options).
const SETTINGS: [&str; 7] = [
    "url",
    "auth_url",
    "audit_url",
    "output",
    "timeout",
    "insecure",
    "ca_cert",
];

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Profile name
    pub name: String,
    /// Do not ask for confirmation
    #[arg(long, short = 'y')]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The SDK config file (JSON)
    pub file: PathBuf,
    /// Make the profile the default
    #[arg(long)]
    pub set_default: bool,
}

pub fn run(context: &Context, args: ProfileArgs) -> anyhow::Result<()> {
    match args.command {
        ProfileCommand::List => list(context),
        ProfileCommand::Show(args) => show(context, args),
        ProfileCommand::Use { name } => use_profile(context, &name),
        ProfileCommand::Set(args) => set(context, args),
        ProfileCommand::Rename { old, new } => rename(context, &old, &new),
        ProfileCommand::Delete(args) => delete(context, args),
        ProfileCommand::Import(args) => import(context, args),
    }
}

pub fn list(context: &Context) -> anyhow::Result<()> {
    let config = context.store.load_config()?;
    let credentials = context.store.load_credentials()?;
    let mut names: Vec<&String> = config
        .profiles
        .keys()
        .chain(credentials.profiles.keys())
        .collect();
    names.sort();
    names.dedup();
    let default = config.default_profile.as_deref();
    let mut rows = Vec::new();
    let mut items = Vec::new();
    for name in &names {
        let settings = config.profiles.get(*name).cloned().unwrap_or_default();
        let key = credentials
            .profiles
            .get(*name)
            .and_then(|credentials| credentials.api_key.clone());
        let is_default = default == Some(name.as_str());
        rows.push(vec![
            if is_default { "*" } else { "" }.to_string(),
            name.to_string(),
            or_dash(settings.url.as_deref()),
            key.as_deref().map_or_else(|| "-".to_string(), mask_secret),
        ]);
        items.push(serde_json::json!({
            "name": name,
            "default": is_default,
            "url": settings.url,
            "has_api_key": key.is_some(),
        }));
    }
    let raw = serde_json::json!({ "default_profile": default, "profiles": items });
    let names: Vec<String> = names.into_iter().cloned().collect();
    context.printer.show(
        &raw,
        &names,
        View::Rows {
            headers: vec!["DEFAULT", "NAME", "URL", "API KEY"],
            rows,
        },
    )?;
    if names.is_empty() {
        context
            .printer
            .note("No profiles yet: run `agenttrust login` to create one.");
    }
    Ok(())
}

pub fn show(context: &Context, args: ShowArgs) -> anyhow::Result<()> {
    let name = args
        .name
        .unwrap_or_else(|| context.settings.profile.clone());
    let config = context.store.load_config()?;
    let credentials = context.store.load_credentials()?;
    let settings = config.profiles.get(&name).cloned();
    let key = credentials
        .profiles
        .get(&name)
        .and_then(|credentials| credentials.api_key.clone());
    if settings.is_none() && !credentials.profiles.contains_key(&name) {
        return Err(super::common::profile_not_found(
            &name,
            &config::known_profiles(&config, &credentials),
        ));
    }
    let settings = settings.unwrap_or_default();
    let shown_key = key.as_deref().map(|key| {
        if args.show_secrets {
            key.to_string()
        } else {
            mask_secret(key)
        }
    });
    let is_default = config.default_profile.as_deref() == Some(name.as_str());
    let raw = without_nulls(serde_json::json!({
        "name": name,
        "default": is_default,
        "url": settings.url,
        "auth_url": settings.auth_url,
        "audit_url": settings.audit_url,
        "output": settings.output,
        "timeout": settings.timeout,
        "insecure": settings.insecure,
        "ca_cert": settings.ca_cert,
        "api_key": shown_key,
        "config_file": context.store.config_path(),
        "credentials_file": context.store.credentials_path(),
    }));
    let path_text = |path: &Option<PathBuf>| path.as_ref().map(|path| path.display().to_string());
    context.printer.show(
        &raw,
        std::slice::from_ref(&name),
        View::Record(vec![
            ("name", name.clone()),
            ("default", is_default.to_string()),
            ("url", or_dash(settings.url.as_deref())),
            ("auth_url", or_dash(settings.auth_url.as_deref())),
            ("audit_url", or_dash(settings.audit_url.as_deref())),
            ("output", or_dash(settings.output.as_deref())),
            ("timeout", or_dash(settings.timeout.as_deref())),
            ("insecure", settings.insecure.unwrap_or(false).to_string()),
            ("ca_cert", or_dash(path_text(&settings.ca_cert).as_deref())),
            ("api_key", or_dash(shown_key.as_deref())),
            (
                "config_file",
                context.store.config_path().display().to_string(),
            ),
            (
                "credentials_file",
                context.store.credentials_path().display().to_string(),
            ),
        ]),
    )?;
    Ok(())
}

pub fn use_profile(context: &Context, name: &str) -> anyhow::Result<()> {
    let config = context.store.load_config()?;
    let credentials = context.store.load_credentials()?;
    if !config.profiles.contains_key(name) && !credentials.profiles.contains_key(name) {
        return Err(super::common::profile_not_found(
            name,
            &config::known_profiles(&config, &credentials),
        ));
    }
    context.store.use_profile(name)?;
    context
        .printer
        .note(format!("Profile `{name}` is now the default."));
    Ok(())
}

/// Fails with exit 3 unless the profile exists (in either file).
fn require_profile(context: &Context, name: &str) -> anyhow::Result<()> {
    let config = context.store.load_config()?;
    let credentials = context.store.load_credentials()?;
    if config.profiles.contains_key(name) || credentials.profiles.contains_key(name) {
        Ok(())
    } else {
        Err(super::common::profile_not_found(
            name,
            &config::known_profiles(&config, &credentials),
        ))
    }
}

fn invalid_setting(message: String) -> anyhow::Error {
    crate::exit::Failure::Usage {
        message,
        hint: None,
    }
    .into()
}

/// A URL setting as `login` and the client take it: http(s), no trailing slash.
fn setting_url(setting: &str, value: &str) -> anyhow::Result<String> {
    let valid = reqwest::Url::parse(value.trim())
        .is_ok_and(|url| matches!(url.scheme(), "http" | "https") && !url.cannot_be_a_base());
    if !valid {
        return Err(invalid_setting(format!(
            "invalid {setting} {value:?}: expected http://… or https://…"
        )));
    }
    Ok(value.trim().trim_end_matches('/').to_string())
}

pub fn set(context: &Context, args: SetArgs) -> anyhow::Result<()> {
    require_profile(context, &args.name)?;
    let value = args.value.trim();
    let mut settings = config::ProfileSettings::default();
    match args.setting.as_str() {
        "url" => settings.url = Some(setting_url("url", value)?),
        "auth_url" => settings.auth_url = Some(setting_url("auth_url", value)?),
        "audit_url" => settings.audit_url = Some(setting_url("audit_url", value)?),
        "output" => {
            value
                .parse::<crate::output::Format>()
                .map_err(invalid_setting)?;
            settings.output = Some(value.to_string());
        }
        "timeout" => {
            config::parse_duration(value).map_err(invalid_setting)?;
            settings.timeout = Some(value.to_string());
        }
        "insecure" => {
            settings.insecure = Some(match value {
                "true" => true,
                "false" => false,
                _ => {
                    return Err(invalid_setting(format!(
                        "invalid insecure {value:?}: expected true or false"
                    )));
                }
            });
        }
        // Checked when used: the file may be put in place later.
        _ => settings.ca_cert = Some(PathBuf::from(value)),
    }
    context
        .store
        .save_profile_settings(&args.name, settings, None, false)?;
    context.printer.note(format!(
        "Profile `{}`: {} = {value}",
        args.name, args.setting
    ));
    Ok(())
}

pub fn rename(context: &Context, old: &str, new: &str) -> anyhow::Result<()> {
    require_profile(context, old)?;
    if require_profile(context, new).is_ok() {
        anyhow::bail!("profile `{new}` exists already: delete it first, or pick another name");
    }
    context.store.rename_profile(old, new)?;
    context
        .printer
        .note(format!("Renamed profile `{old}` to `{new}`."));
    Ok(())
}

pub fn delete(context: &Context, args: DeleteArgs) -> anyhow::Result<()> {
    let config = context.store.load_config()?;
    let credentials = context.store.load_credentials()?;
    if !config.profiles.contains_key(&args.name) && !credentials.profiles.contains_key(&args.name) {
        return Err(super::common::profile_not_found(
            &args.name,
            &config::known_profiles(&config, &credentials),
        ));
    }
    context.confirm(
        args.yes,
        &format!("delete profile {} and its API key", args.name),
    )?;
    context.store.delete_profile(&args.name)?;
    context
        .printer
        .note(format!("Deleted profile `{}`.", args.name));
    Ok(())
}

pub fn import(context: &Context, args: ImportArgs) -> anyhow::Result<()> {
    let name = context
        .globals
        .profile
        .clone()
        .or_else(|| env::var(env::PROFILE))
        .unwrap_or_else(|| DEFAULT_PROFILE.to_string());
    let sdk = context
        .store
        .import_sdk_config(&name, &args.file, args.set_default)?;
    if sdk.base_url.as_deref().is_none_or(str::is_empty) {
        context.printer.note(format!(
            "The file names no base_url: the profile uses {}.",
            config::DEFAULT_URL
        ));
    }
    context.printer.note(format!(
        "Imported {} into profile `{name}`{}.",
        args.file.display(),
        if sdk.api_key.is_some() {
            " (with its API key)"
        } else {
            ""
        }
    ));
    Ok(())
}
