//! Precedence, the rule every setting follows: flag > env > profile > default, with where each
//! value came from (`status` and `profile show` say it).

use std::path::PathBuf;
use std::time::Duration;

use super::{
    ConfigFile, CredentialsFile, DEFAULT_PROFILE, DEFAULT_TIMEOUT, DEFAULT_URL, env, parse_duration,
};

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
    use crate::config::{Credentials, ProfileSettings};
    use std::collections::HashMap;

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
}
