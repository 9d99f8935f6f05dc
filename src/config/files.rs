//! The config dir's files: `config.toml` (non-secret settings per profile, the default
//! profile) and `credentials.toml` (API keys, mode 0600, a warning when others can read it), the
//! Python SDK's JSON config file for import, and atomic writes (temp file + rename).

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};

use super::{env, parse_duration};

const CONFIG_FILE: &str = "config.toml";
const CREDENTIALS_FILE: &str = "credentials.toml";

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

    /// Renames a profile in both files; the default follows it. `old` must exist and `new` must
    /// not (the caller says so first). Credentials are copied before the config moves and the
    /// old entry removed last, so an interruption leaves a duplicate, never a lost key.
    pub fn rename_profile(&self, old: &str, new: &str) -> anyhow::Result<()> {
        validate_profile_name(new)?;
        let mut credentials = self.load_credentials()?;
        if let Some(entry) = credentials.profiles.get(old).cloned() {
            credentials.profiles.insert(new.to_string(), entry);
            self.save_credentials(&credentials)?;
        }
        let mut config = self.load_config()?;
        if let Some(settings) = config.profiles.remove(old) {
            config.profiles.insert(new.to_string(), settings);
        }
        if config.default_profile.as_deref() == Some(old) {
            config.default_profile = Some(new.to_string());
        }
        self.save_config(&config)?;
        if credentials.profiles.remove(old).is_some() {
            self.save_credentials(&credentials)?;
        }
        Ok(())
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
            crate::output::warn(format!(
                "{} is readable by group or others (mode {:o}); run `chmod 600 {}`",
                path.display(),
                mode & 0o777,
                path.display()
            ));
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

#[cfg(test)]
mod tests {
    use super::*;

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
