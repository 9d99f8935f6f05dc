//! Configuration: the one registry of environment variable names, named profiles in the config
//! dir (`config.toml` for settings, `credentials.toml` for API keys), atomic writes, the shared
//! duration parser, and the precedence rule every setting follows: flag > env > profile > default.
//!
//! Nothing here talks to the network or prints data; the CLI decides what to show.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};

/// Every environment variable the binary reads, in one place. Names match the official SDKs.
pub mod env {
    pub const PROFILE: &str = "AGENTTRUST_PROFILE";
    /// The gateway base URL (first choice, as in every SDK).
    pub const URL: &str = "AGENTTRUST_URL";
    /// The gateway base URL (fallback, as in every SDK).
    pub const BASE_URL: &str = "AGENTTRUST_BASE_URL";
    pub const API_KEY: &str = "AGENTTRUST_API_KEY";
    pub const AUTH_URL: &str = "AGENTTRUST_AUTH_URL";
    pub const AUDIT_URL: &str = "AGENTTRUST_AUDIT_URL";
    pub const CONFIG_DIR: &str = "AGENTTRUST_CONFIG_DIR";
    pub const NO_INPUT: &str = "AGENTTRUST_NO_INPUT";
    pub const OUTPUT: &str = "AGENTTRUST_OUTPUT";
    pub const TIMEOUT: &str = "AGENTTRUST_TIMEOUT";
    pub const AGENT_ID: &str = "AGENTTRUST_AGENT_ID";
    pub const SESSION_ID: &str = "AGENTTRUST_SESSION_ID";
    pub const FAIL_OPEN: &str = "AGENTTRUST_FAIL_OPEN";
    /// Where `guard` keeps state (the telemetry spool) [default: the platform's state dir].
    pub const STATE_DIR: &str = "AGENTTRUST_STATE_DIR";
    // The embedded gateway (`agenttrust server`).
    pub const DATABASE_URL: &str = "AGENTTRUST_DATABASE_URL";
    pub const LISTEN: &str = "AGENTTRUST_LISTEN";
    pub const DATA_DIR: &str = "AGENTTRUST_DATA_DIR";
    pub const MAX_TOKEN_TTL: &str = "AGENTTRUST_MAX_TOKEN_TTL";
    /// Not ours, but respected: <https://no-color.org>.
    pub const NO_COLOR: &str = "NO_COLOR";
    /// Not ours, but respected (<https://bixense.com/clicolors/>): `0` turns colour off.
    pub const CLICOLOR: &str = "CLICOLOR";
    /// Not ours, but respected: set and not `0`, colour even off a terminal.
    pub const CLICOLOR_FORCE: &str = "CLICOLOR_FORCE";

    /// Reads a variable; an empty value means unset (as in every SDK).
    pub fn var(name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|value| !value.is_empty())
    }

    /// Reads a boolean variable: `1`, `true`, `yes`, `on` (any case) are true.
    pub fn flag(name: &str) -> bool {
        var(name).is_some_and(|value| super::parse_bool(&value))
    }
}

/// The gateway URL when nothing else names one.
pub const DEFAULT_URL: &str = "http://localhost:8080";
/// The profile used when neither `--profile`, the environment, nor `default_profile` names one.
pub const DEFAULT_PROFILE: &str = "default";
/// The request timeout when nothing else names one (every SDK's default).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

const CONFIG_FILE: &str = "config.toml";
const CREDENTIALS_FILE: &str = "credentials.toml";

/// `1`, `true`, `yes`, `on` (any case) are true; anything else is false.
pub fn parse_bool(text: &str) -> bool {
    matches!(
        text.trim().to_ascii_lowercase().as_str(),
        "1" | "true" | "yes" | "on"
    )
}

/// Parses a duration: `300` (seconds), `300s`, `5m`, `1h`, `1500ms`, `1d`. The one parser used by
/// `--timeout`, `--ttl`, the profile's `timeout` and `AGENTTRUST_TIMEOUT`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|character: char| !character.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (digits, unit) = trimmed.split_at(split);
    if digits.is_empty() {
        return Err(format!(
            "invalid duration {text:?}: expected a number with an optional unit (300, 300s, 5m, 1h)"
        ));
    }
    let amount: u64 = digits
        .parse()
        .map_err(|_| format!("invalid duration {text:?}: number too large"))?;
    let multiplier_ms: u64 = match unit.trim() {
        "ms" => 1,
        "" | "s" | "sec" | "secs" => 1_000,
        "m" | "min" | "mins" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        other => {
            return Err(format!(
                "invalid duration {text:?}: unknown unit {other:?} (use ms, s, m, h or d)"
            ));
        }
    };
    let millis = amount
        .checked_mul(multiplier_ms)
        .ok_or_else(|| format!("invalid duration {text:?}: too large"))?;
    Ok(Duration::from_millis(millis))
}

/// `config.toml`: non-secret settings per profile and the default profile.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ConfigFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_profile: Option<String>,
    #[serde(default)]
    pub profiles: BTreeMap<String, ProfileSettings>,
    /// Keys we do not know (written by a newer version) survive a rewrite.
    #[serde(flatten, default)]
    pub extra: toml::Table,
}

/// One profile's non-secret settings; every field is optional (absent = use the default).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ProfileSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_url: Option<String>,
    /// `table` or `json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// A duration (`30s`, `2m`); see [`parse_duration`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<PathBuf>,
    #[serde(flatten, default)]
    pub extra: toml::Table,
}

/// `credentials.toml`: secrets per profile, mode 0600.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CredentialsFile {
    #[serde(default)]
    pub profiles: BTreeMap<String, Credentials>,
    #[serde(flatten, default)]
    pub extra: toml::Table,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Credentials {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    #[serde(flatten, default)]
    pub extra: toml::Table,
}

/// The SDK's JSON config file (`AgentTrustClient.from_config`): `base_url`, `auth_url`,
/// `api_key`, and the `audit_url`/`timeout` we accept on top.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SdkConfigFile {
    #[serde(default)]
    pub base_url: Option<String>,
    #[serde(default)]
    pub auth_url: Option<String>,
    #[serde(default)]
    pub audit_url: Option<String>,
    #[serde(default)]
    pub api_key: Option<String>,
    /// Seconds as a number, or a duration string.
    #[serde(default)]
    pub timeout: Option<serde_json::Value>,
}

/// The config dir and the two files in it.
#[derive(Debug, Clone)]
pub struct ConfigStore {
    dir: PathBuf,
}

impl ConfigStore {
    /// Opens the config dir: `dir_override` (from `--config-dir`/`AGENTTRUST_CONFIG_DIR`) or the
    /// platform's (`~/.config/agenttrust` on Linux). Nothing is created until something is saved.
    pub fn open(dir_override: Option<&Path>) -> anyhow::Result<ConfigStore> {
        let dir = match dir_override {
            Some(dir) => dir.to_path_buf(),
            None => default_config_dir()?,
        };
        Ok(ConfigStore { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.join(CONFIG_FILE)
    }

    pub fn credentials_path(&self) -> PathBuf {
        self.dir.join(CREDENTIALS_FILE)
    }

    /// Reads `config.toml`; a missing file is an empty config.
    pub fn load_config(&self) -> anyhow::Result<ConfigFile> {
        let path = self.config_path();
        match read_optional(&path)? {
            None => Ok(ConfigFile::default()),
            Some(text) => {
                toml::from_str(&text).with_context(|| format!("cannot parse {}", path.display()))
            }
        }
    }

    /// Reads `credentials.toml`; a missing file is empty. Warns (stderr) when group or others may
    /// read it: the keys in it are org secrets.
    pub fn load_credentials(&self) -> anyhow::Result<CredentialsFile> {
        let path = self.credentials_path();
        match read_optional(&path)? {
            None => Ok(CredentialsFile::default()),
            Some(text) => {
                warn_if_exposed(&path);
                toml::from_str(&text).with_context(|| format!("cannot parse {}", path.display()))
            }
        }
    }

    pub fn save_config(&self, config: &ConfigFile) -> anyhow::Result<()> {
        let text = toml::to_string_pretty(config).context("cannot serialize config.toml")?;
        write_atomic(&self.config_path(), text.as_bytes(), false)
    }

    pub fn save_credentials(&self, credentials: &CredentialsFile) -> anyhow::Result<()> {
        let text =
            toml::to_string_pretty(credentials).context("cannot serialize credentials.toml")?;
        write_atomic(&self.credentials_path(), text.as_bytes(), true)
    }

    /// Writes url (+ key into credentials.toml when Some); makes it the default profile when
    /// `make_default` or when there is no default yet.
    pub fn save_profile(
        &self,
        name: &str,
        url: &str,
        api_key: Option<&str>,
        make_default: bool,
    ) -> anyhow::Result<()> {
        let settings = ProfileSettings {
            url: Some(url.trim_end_matches('/').to_string()),
            ..ProfileSettings::default()
        };
        self.save_profile_settings(name, settings, api_key, make_default)
    }

    /// Like [`ConfigStore::save_profile`] with every setting: fields set in `settings` replace
    /// the stored ones, the others are kept.
    pub fn save_profile_settings(
        &self,
        name: &str,
        settings: ProfileSettings,
        api_key: Option<&str>,
        make_default: bool,
    ) -> anyhow::Result<()> {
        validate_profile_name(name)?;
        // Credentials first: a profile that points at a gateway without its key is less
        // surprising than a key saved under a profile that does not exist.
        if let Some(key) = api_key {
            let mut credentials = self.load_credentials()?;
            credentials
                .profiles
                .entry(name.to_string())
                .or_default()
                .api_key = Some(key.to_string());
            self.save_credentials(&credentials)?;
        }
        let mut config = self.load_config()?;
        let stored = config.profiles.entry(name.to_string()).or_default();
        merge_settings(stored, settings);
        if make_default || config.default_profile.is_none() {
            config.default_profile = Some(name.to_string());
        }
        self.save_config(&config)
    }

    /// Makes an existing profile the default.
    pub fn use_profile(&self, name: &str) -> anyhow::Result<()> {
        let mut config = self.load_config()?;
        if !config.profiles.contains_key(name) {
            let credentials = self.load_credentials()?;
            if !credentials.profiles.contains_key(name) {
                bail!(
                    "profile `{name}` not found (known: {})",
                    known_profiles(&config, &credentials)
                );
            }
        }
        config.default_profile = Some(name.to_string());
        self.save_config(&config)
    }

    /// Removes a profile from both files; false when it did not exist.
    pub fn delete_profile(&self, name: &str) -> anyhow::Result<bool> {
        let mut config = self.load_config()?;
        let mut credentials = self.load_credentials()?;
        let in_config = config.profiles.remove(name).is_some();
        let in_credentials = credentials.profiles.remove(name).is_some();
        if in_credentials {
            self.save_credentials(&credentials)?;
        }
        let was_default = config.default_profile.as_deref() == Some(name);
        if was_default {
            config.default_profile = None;
        }
        if in_config || was_default {
            self.save_config(&config)?;
        }
        Ok(in_config || in_credentials)
    }

    /// Imports the SDK's JSON config file into profile `name`.
    pub fn import_sdk_config(
        &self,
        name: &str,
        path: &Path,
        make_default: bool,
    ) -> anyhow::Result<SdkConfigFile> {
        let text =
            fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        let sdk: SdkConfigFile = serde_json::from_str(&text)
            .with_context(|| format!("{} is not an SDK JSON config file", path.display()))?;
        let timeout = match &sdk.timeout {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::Number(seconds)) => Some(format!("{seconds}s")),
            Some(serde_json::Value::String(text)) => {
                parse_duration(text).map_err(anyhow::Error::msg)?;
                Some(text.clone())
            }
            Some(other) => bail!(
                "`timeout` in {} must be seconds, not {other}",
                path.display()
            ),
        };
        let settings = ProfileSettings {
            // The Python SDK defaults `base_url` to :8081 in this file; we keep our default
            // (the gateway serves every path) and say so only when the file names none.
            url: non_empty(sdk.base_url.clone()).map(|url| url.trim_end_matches('/').to_string()),
            auth_url: non_empty(sdk.auth_url.clone()),
            audit_url: non_empty(sdk.audit_url.clone()),
            timeout,
            ..ProfileSettings::default()
        };
        let key = non_empty(sdk.api_key.clone());
        self.save_profile_settings(name, settings, key.as_deref(), make_default)?;
        Ok(sdk)
    }
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|text| !text.trim().is_empty())
}

fn merge_settings(stored: &mut ProfileSettings, new: ProfileSettings) {
    if new.url.is_some() {
        stored.url = new.url;
    }
    if new.auth_url.is_some() {
        stored.auth_url = new.auth_url;
    }
    if new.audit_url.is_some() {
        stored.audit_url = new.audit_url;
    }
    if new.output.is_some() {
        stored.output = new.output;
    }
    if new.timeout.is_some() {
        stored.timeout = new.timeout;
    }
    if new.insecure.is_some() {
        stored.insecure = new.insecure;
    }
    if new.ca_cert.is_some() {
        stored.ca_cert = new.ca_cert;
    }
    stored.extra.extend(new.extra);
}

/// The names of all configured profiles, for error messages.
pub fn known_profiles(config: &ConfigFile, credentials: &CredentialsFile) -> String {
    let mut names: Vec<&str> = config
        .profiles
        .keys()
        .chain(credentials.profiles.keys())
        .map(String::as_str)
        .collect();
    names.sort_unstable();
    names.dedup();
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    }
}

/// Profile names become TOML keys and appear in file names of nobody; still keep them simple so
/// they are easy to type and never need quoting in a shell.
pub fn validate_profile_name(name: &str) -> anyhow::Result<()> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|character| character.is_ascii_alphanumeric() || "-_.".contains(character));
    if !valid {
        bail!("invalid profile name {name:?}: use letters, digits, `-`, `_` or `.`");
    }
    Ok(())
}

fn default_config_dir() -> anyhow::Result<PathBuf> {
    directories::ProjectDirs::from("", "", "agenttrust")
        .map(|dirs| dirs.config_dir().to_path_buf())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "cannot find a home directory for the config dir; set {} or pass --config-dir",
                env::CONFIG_DIR
            )
        })
}

fn read_optional(path: &Path) -> anyhow::Result<Option<String>> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Warns once per process, however often the file is read.
#[cfg(unix)]
fn warn_if_exposed(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    use std::sync::atomic::{AtomicBool, Ordering};
    static WARNED: AtomicBool = AtomicBool::new(false);
    if WARNED.load(Ordering::Relaxed) {
        return;
    }
    if let Ok(metadata) = fs::metadata(path) {
        let mode = metadata.permissions().mode();
        if mode & 0o077 != 0 && !WARNED.swap(true, Ordering::Relaxed) {
            eprintln!(
                "warning: {} is readable by group or others (mode {:o}); run `chmod 600 {}`",
                path.display(),
                mode & 0o777,
                path.display()
            );
        }
    }
}

#[cfg(not(unix))]
fn warn_if_exposed(_path: &Path) {}

/// Writes a file so that readers see the old or the new content, never a torn one: a temp file
/// in the same dir (same filesystem, so the rename is atomic), synced, then renamed over the
/// target. `secret` files are created 0600 from the start (no window where they are readable).
pub fn write_atomic(path: &Path, contents: &[u8], secret: bool) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."));
    create_private_dir(dir)?;
    let file_name = path
        .file_name()
        .and_then(|name| name.to_str())
        .unwrap_or("file");
    let temp_path = dir.join(format!(
        ".{file_name}.{}.{}.tmp",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    let result = (|| -> anyhow::Result<()> {
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(if secret { 0o600 } else { 0o644 });
        }
        #[cfg(not(unix))]
        let _ = secret;
        let mut file = options
            .open(&temp_path)
            .with_context(|| format!("cannot create {}", temp_path.display()))?;
        file.write_all(contents)
            .and_then(|()| file.sync_all())
            .with_context(|| format!("cannot write {}", temp_path.display()))?;
        fs::rename(&temp_path, path)
            .with_context(|| format!("cannot replace {}", path.display()))?;
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp_path);
    }
    result
}

fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))
}

/// Where a resolved setting came from (shown by `status` and `profile show`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Flag,
    Env(&'static str),
    Profile(String),
    Default,
}

impl std::fmt::Display for Source {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Flag => formatter.write_str("flag"),
            Source::Env(name) => write!(formatter, "env {name}"),
            Source::Profile(name) => write!(formatter, "profile {name}"),
            Source::Default => formatter.write_str("default"),
        }
    }
}

/// The settings given as command-line flags (None = not given).
#[derive(Debug, Clone, Default)]
pub struct Flags {
    pub profile: Option<String>,
    pub url: Option<String>,
    pub output: Option<String>,
    pub timeout: Option<Duration>,
    pub insecure: bool,
    pub ca_cert: Option<PathBuf>,
}

/// Every setting after precedence (flag > env > profile > default), with where each came from.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub profile: String,
    pub profile_source: Source,
    /// Whether the profile exists in config.toml or credentials.toml.
    pub profile_exists: bool,
    pub url: String,
    pub url_source: Source,
    pub auth_url: Option<String>,
    pub audit_url: Option<String>,
    pub api_key: Option<String>,
    pub api_key_source: Source,
    /// `table` or `json` (validated by the caller).
    pub output: Option<String>,
    pub timeout: Duration,
    pub insecure: bool,
    pub ca_cert: Option<PathBuf>,
}

/// Applies precedence. `lookup` reads an environment variable (empty = unset); tests pass a map.
pub fn resolve(
    flags: &Flags,
    lookup: &dyn Fn(&str) -> Option<String>,
    config: &ConfigFile,
    credentials: &CredentialsFile,
) -> anyhow::Result<Resolved> {
    let lookup = |name: &str| lookup(name).filter(|value| !value.is_empty());

    let (profile, profile_source) = if let Some(name) = &flags.profile {
        (name.clone(), Source::Flag)
    } else if let Some(name) = lookup(env::PROFILE) {
        (name, Source::Env(env::PROFILE))
    } else if let Some(name) = config.default_profile.clone().filter(|n| !n.is_empty()) {
        (name, Source::Default)
    } else {
        (DEFAULT_PROFILE.to_string(), Source::Default)
    };
    let settings = config.profiles.get(&profile).cloned().unwrap_or_default();
    let stored_key = credentials
        .profiles
        .get(&profile)
        .and_then(|credentials| credentials.api_key.clone())
        .filter(|key| !key.is_empty());
    let profile_exists =
        config.profiles.contains_key(&profile) || credentials.profiles.contains_key(&profile);
    let from_profile = Source::Profile(profile.clone());

    let (url, url_source) = if let Some(url) = &flags.url {
        (url.clone(), Source::Flag)
    } else if let Some(url) = lookup(env::URL) {
        (url, Source::Env(env::URL))
    } else if let Some(url) = lookup(env::BASE_URL) {
        (url, Source::Env(env::BASE_URL))
    } else if let Some(url) = settings.url.clone().filter(|url| !url.is_empty()) {
        (url, from_profile.clone())
    } else {
        (DEFAULT_URL.to_string(), Source::Default)
    };

    let (api_key, api_key_source) = if let Some(key) = lookup(env::API_KEY) {
        (Some(key), Source::Env(env::API_KEY))
    } else if let Some(key) = stored_key {
        (Some(key), from_profile.clone())
    } else {
        (None, Source::Default)
    };

    let auth_url = lookup(env::AUTH_URL).or(settings.auth_url.clone());
    let audit_url = lookup(env::AUDIT_URL).or(settings.audit_url.clone());
    let output = flags
        .output
        .clone()
        .or_else(|| lookup(env::OUTPUT))
        .or(settings.output.clone());

    let timeout = if let Some(timeout) = flags.timeout {
        timeout
    } else if let Some(text) = lookup(env::TIMEOUT) {
        parse_duration(&text).map_err(|error| anyhow::anyhow!("{}: {error}", env::TIMEOUT))?
    } else if let Some(text) = &settings.timeout {
        parse_duration(text)
            .map_err(|error| anyhow::anyhow!("profile `{profile}` timeout: {error}"))?
    } else {
        DEFAULT_TIMEOUT
    };

    Ok(Resolved {
        url: url.trim_end_matches('/').to_string(),
        url_source,
        auth_url: auth_url.map(|url| url.trim_end_matches('/').to_string()),
        audit_url: audit_url.map(|url| url.trim_end_matches('/').to_string()),
        api_key,
        api_key_source,
        output,
        timeout,
        insecure: flags.insecure || settings.insecure.unwrap_or(false),
        ca_cert: flags.ca_cert.clone().or(settings.ca_cert.clone()),
        profile,
        profile_source,
        profile_exists,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("300"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("300s"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1500ms"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration(" 2d "), Ok(Duration::from_secs(172_800)));
        for bad in ["", "s", "5x", "-5", "1.5h", "99999999999999999999"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    fn sample() -> (ConfigFile, CredentialsFile) {
        let mut config = ConfigFile {
            default_profile: Some("prod".to_string()),
            ..ConfigFile::default()
        };
        config.profiles.insert(
            "prod".to_string(),
            ProfileSettings {
                url: Some("https://prod.example/".to_string()),
                timeout: Some("10s".to_string()),
                ..ProfileSettings::default()
            },
        );
        config.profiles.insert(
            "dev".to_string(),
            ProfileSettings {
                url: Some("http://dev:9000".to_string()),
                ..ProfileSettings::default()
            },
        );
        let mut credentials = CredentialsFile::default();
        credentials.profiles.insert(
            "prod".to_string(),
            Credentials {
                api_key: Some("sk_live_prod".to_string()),
                ..Credentials::default()
            },
        );
        (config, credentials)
    }

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn profile_beats_default() {
        let (config, credentials) = sample();
        let resolved = resolve(&Flags::default(), &env_of(&[]), &config, &credentials).unwrap();
        assert_eq!(resolved.profile, "prod");
        assert_eq!(resolved.url, "https://prod.example");
        assert_eq!(resolved.url_source, Source::Profile("prod".to_string()));
        assert_eq!(resolved.api_key.as_deref(), Some("sk_live_prod"));
        assert_eq!(resolved.timeout, Duration::from_secs(10));
    }

    #[test]
    fn env_beats_profile_and_flag_beats_env() {
        let (config, credentials) = sample();
        let env = env_of(&[
            (env::URL, "http://env-url"),
            (env::BASE_URL, "http://base-url"),
            (env::API_KEY, "sk_live_env"),
            (env::TIMEOUT, "1m"),
            (env::PROFILE, "dev"),
        ]);
        let resolved = resolve(&Flags::default(), &env, &config, &credentials).unwrap();
        assert_eq!(resolved.profile, "dev");
        assert_eq!(resolved.url, "http://env-url");
        assert_eq!(resolved.api_key.as_deref(), Some("sk_live_env"));
        assert_eq!(resolved.timeout, Duration::from_secs(60));

        let flags = Flags {
            profile: Some("prod".to_string()),
            url: Some("http://flag".to_string()),
            timeout: Some(Duration::from_secs(5)),
            ..Flags::default()
        };
        let resolved = resolve(&flags, &env, &config, &credentials).unwrap();
        assert_eq!(resolved.profile, "prod");
        assert_eq!(resolved.url, "http://flag");
        assert_eq!(resolved.url_source, Source::Flag);
        assert_eq!(resolved.timeout, Duration::from_secs(5));
    }

    #[test]
    fn base_url_is_the_fallback_and_empty_env_is_unset() {
        let (config, credentials) = sample();
        let env = env_of(&[
            (env::URL, ""),
            (env::BASE_URL, "http://base"),
            (env::API_KEY, ""),
        ]);
        let resolved = resolve(&Flags::default(), &env, &config, &credentials).unwrap();
        assert_eq!(resolved.url, "http://base");
        assert_eq!(resolved.api_key.as_deref(), Some("sk_live_prod"));
    }

    #[test]
    fn nothing_configured_gives_defaults() {
        let resolved = resolve(
            &Flags::default(),
            &env_of(&[]),
            &ConfigFile::default(),
            &CredentialsFile::default(),
        )
        .unwrap();
        assert_eq!(resolved.profile, DEFAULT_PROFILE);
        assert!(!resolved.profile_exists);
        assert_eq!(resolved.url, DEFAULT_URL);
        assert_eq!(resolved.api_key, None);
        assert_eq!(resolved.timeout, DEFAULT_TIMEOUT);
    }

    fn temp_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("agenttrust-config-{}", uuid::Uuid::new_v4()));
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn save_profile_writes_both_files_atomically() {
        let dir = temp_dir();
        let store = ConfigStore::open(Some(&dir.join("nested"))).unwrap();
        store
            .save_profile("local", "http://127.0.0.1:8080/", Some("sk_live_x"), false)
            .unwrap();
        store
            .save_profile("other", "http://other", None, false)
            .unwrap();
        let config = store.load_config().unwrap();
        assert_eq!(config.default_profile.as_deref(), Some("local"));
        assert_eq!(
            config.profiles["local"].url.as_deref(),
            Some("http://127.0.0.1:8080")
        );
        let credentials = store.load_credentials().unwrap();
        assert_eq!(
            credentials.profiles["local"].api_key.as_deref(),
            Some("sk_live_x")
        );
        assert!(!credentials.profiles.contains_key("other"));
        store
            .save_profile("other", "http://other", None, true)
            .unwrap();
        assert_eq!(
            store.load_config().unwrap().default_profile.as_deref(),
            Some("other")
        );
        // No temp files left behind.
        let leftovers: Vec<_> = fs::read_dir(store.dir())
            .unwrap()
            .filter_map(Result::ok)
            .filter(|entry| entry.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(store.credentials_path())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(store.delete_profile("local").unwrap());
        assert!(!store.delete_profile("local").unwrap());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn write_atomic_replaces_content() {
        let dir = temp_dir();
        let path = dir.join("file.toml");
        write_atomic(&path, b"one", true).unwrap();
        write_atomic(&path, b"two", true).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "two");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn imports_the_sdk_json_file() {
        let dir = temp_dir();
        let file = dir.join("sdk.json");
        fs::write(
            &file,
            r#"{"base_url": "http://localhost:8081/", "auth_url": "http://localhost:8082", "api_key": "sk_live_abc", "timeout": 12}"#,
        )
        .unwrap();
        let store = ConfigStore::open(Some(&dir)).unwrap();
        store.import_sdk_config("sdk", &file, false).unwrap();
        let config = store.load_config().unwrap();
        let profile = &config.profiles["sdk"];
        assert_eq!(profile.url.as_deref(), Some("http://localhost:8081"));
        assert_eq!(profile.auth_url.as_deref(), Some("http://localhost:8082"));
        assert_eq!(profile.timeout.as_deref(), Some("12s"));
        assert_eq!(
            store.load_credentials().unwrap().profiles["sdk"]
                .api_key
                .as_deref(),
            Some("sk_live_abc")
        );
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn profile_names_are_simple() {
        assert!(validate_profile_name("prod-eu_1.x").is_ok());
        assert!(validate_profile_name("").is_err());
        assert!(validate_profile_name("a b").is_err());
        assert!(validate_profile_name("a/b").is_err());
    }
}
