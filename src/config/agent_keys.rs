//! Agents' private keys and their cached WIMSE tokens, per profile, in the config dir:
//! `agent-keys/<profile>/<agent_id>.pem` (PKCS#8, 0600) and `<agent_id>.wimse.json` (the last
//! WIMSE token issued for that key, 0600). The directories are 0700. A private key never leaves
//! this machine: the gateway only ever sees the public half and signatures.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use super::files::write_atomic;
use crate::agent_key::AgentPrivateKey;

/// The folder under the config dir.
const DIR: &str = "agent-keys";

/// A WIMSE token kept between invocations, so a check does not pay for the challenge and the
/// issuance every time.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CachedToken {
    pub token: String,
    /// Unix seconds.
    pub expires_at: i64,
    /// The thumbprint of the key the token is bound to: a token for a rotated-out key is not
    /// reused.
    pub key_thumbprint: String,
}

/// The agent-key folder of one profile.
#[derive(Debug, Clone)]
pub struct AgentKeyStore {
    dir: PathBuf,
}

impl AgentKeyStore {
    /// The store of `profile` under `config_dir`.
    pub fn new(config_dir: &Path, profile: &str) -> AgentKeyStore {
        AgentKeyStore {
            dir: config_dir.join(DIR).join(profile),
        }
    }

    /// Where the private key of `agent_id` is kept.
    pub fn key_path(&self, agent_id: &str) -> anyhow::Result<PathBuf> {
        Ok(self.dir.join(format!("{}.pem", file_stem(agent_id)?)))
    }

    fn token_path(&self, agent_id: &str) -> anyhow::Result<PathBuf> {
        Ok(self
            .dir
            .join(format!("{}.wimse.json", file_stem(agent_id)?)))
    }

    /// Saves the agent's private key (0600), replacing any earlier one and its cached token.
    pub fn save_key(&self, agent_id: &str, key: &AgentPrivateKey) -> anyhow::Result<PathBuf> {
        let path = self.key_path(agent_id)?;
        let pem = key
            .to_pem()
            .map_err(|error| anyhow::anyhow!("cannot encode the private key: {error}"))?;
        write_atomic(&path, pem.as_bytes(), true)?;
        self.forget_token(agent_id)?;
        Ok(path)
    }

    /// The agent's private key, when this profile holds one.
    pub fn load_key(&self, agent_id: &str) -> anyhow::Result<Option<AgentPrivateKey>> {
        let path = self.key_path(agent_id)?;
        let pem = match fs::read_to_string(&path) {
            Ok(pem) => zeroize_on_drop(pem),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => {
                return Err(error).with_context(|| format!("cannot read {}", path.display()));
            }
        };
        let key = AgentPrivateKey::from_pem(&pem)
            .map_err(|error| anyhow::anyhow!("{}: {error}", path.display()))?;
        Ok(Some(key))
    }

    /// The cached token, when there is one.
    pub fn load_token(&self, agent_id: &str) -> Option<CachedToken> {
        let path = self.token_path(agent_id).ok()?;
        let text = fs::read_to_string(path).ok()?;
        serde_json::from_str(&text).ok()
    }

    pub fn save_token(&self, agent_id: &str, token: &CachedToken) -> anyhow::Result<()> {
        let path = self.token_path(agent_id)?;
        let text = serde_json::to_vec(token).context("cannot encode the cached token")?;
        write_atomic(&path, &text, true)
    }

    /// Drops the cached token (rejected, or its key replaced).
    pub fn forget_token(&self, agent_id: &str) -> anyhow::Result<()> {
        let path = self.token_path(agent_id)?;
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(error) => Err(error).with_context(|| format!("cannot remove {}", path.display())),
        }
    }
}

/// An agent id as a file name: ids are UUIDs; anything that could leave the folder is refused.
fn file_stem(agent_id: &str) -> anyhow::Result<&str> {
    let safe = !agent_id.is_empty()
        && agent_id.len() <= 128
        && agent_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if safe {
        Ok(agent_id)
    } else {
        anyhow::bail!("agent id {agent_id:?} cannot name a key file")
    }
}

fn zeroize_on_drop(text: String) -> ed25519_dalek::pkcs8::spki::der::zeroize::Zeroizing<String> {
    ed25519_dalek::pkcs8::spki::der::zeroize::Zeroizing::new(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_private_and_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = AgentKeyStore::new(dir.path(), "default");
        let key = AgentPrivateKey::generate();
        let path = store.save_key("0190-abc", &key).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let loaded = store.load_key("0190-abc").unwrap().unwrap();
        assert_eq!(loaded.public(), key.public());
        assert!(store.load_key("other").unwrap().is_none());
        assert!(store.key_path("../x").is_err());
    }
}
