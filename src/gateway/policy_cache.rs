//! Compiled org policies, kept per replica. Two maps with different promises:
//!
//! - **compiled**, by org: the last compiled policy and its stored version. A version names one
//!   document forever, so this map is exact whatever its age; it saves compiling globs and
//!   regexes again until the policy changes.
//! - **current**, by org: which version is the stored one, trusted without asking the database
//!   under the rules of `gateway::cache` (forgotten right after this replica replaces the
//!   policy, and on the notice another replica's replacement sends; never trusted while the
//!   notice connection is down; at most `cache::MAX_AGE` old). Without it a check reads the
//!   version, one indexed point read, as it would without any cache.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::api::policies::PolicyDocument;
use crate::guardian::{self, CompiledPolicy};
use crate::store::{self, Store};

use super::cache::{Bounded, Gate};
use super::error::ApiError;

/// The most orgs whose policy is kept (compiled policies can be large).
const CAPACITY: usize = 1_000;

#[derive(Debug)]
pub struct PolicyCache {
    compiled: RwLock<HashMap<String, (i64, Arc<CompiledPolicy>)>>,
    current: Bounded<i64>,
    default_policy: Arc<CompiledPolicy>,
}

impl PolicyCache {
    pub fn new(gate: Arc<Gate>) -> PolicyCache {
        PolicyCache {
            compiled: RwLock::default(),
            current: Bounded::new(gate, CAPACITY),
            default_policy: Arc::default(),
        }
    }

    /// The org's policy as stored now (the defaults when it has none).
    pub async fn current(
        &self,
        store: &Store,
        org_id: &str,
    ) -> Result<Arc<CompiledPolicy>, ApiError> {
        if let Some(version) = self.current.get(org_id)
            && let Some(policy) = self.compiled_at(org_id, version)
        {
            return Ok(policy);
        }
        let ticket = self.current.ticket(org_id);
        let version = store::policies::version(store, org_id).await?;
        let policy = match self.compiled_at(org_id, version) {
            Some(policy) => policy,
            None => self.compile(store, org_id).await?,
        };
        if let Some(ticket) = ticket {
            self.current.keep(ticket, org_id, version);
        }
        Ok(policy)
    }

    /// Forgets which version is current (the policy was replaced); the next check asks.
    pub fn forget(&self, org_id: &str) {
        self.current.forget(org_id);
    }

    pub fn clear(&self) {
        self.current.clear();
    }

    /// The compiled policy of this version, when it is the one kept (or the defaults for 0).
    fn compiled_at(&self, org_id: &str, version: i64) -> Option<Arc<CompiledPolicy>> {
        if version == 0 {
            return Some(Arc::clone(&self.default_policy));
        }
        let compiled = self.read();
        let (kept_version, policy) = compiled.get(org_id)?;
        (*kept_version == version).then(|| Arc::clone(policy))
    }

    /// Reads the stored policy and compiles it (kept under its version).
    async fn compile(&self, store: &Store, org_id: &str) -> Result<Arc<CompiledPolicy>, ApiError> {
        let Some(row) = store::policies::get(store, org_id).await? else {
            return Ok(Arc::clone(&self.default_policy));
        };
        let document: PolicyDocument = serde_json::from_str(&row.document).map_err(|error| {
            tracing::error!(%error, org_id, "stored policy does not parse");
            ApiError::internal()
        })?;
        // Compiling takes CPU for a while on a large policy: on the blocking pool, so the async
        // workers keep serving every other request meanwhile.
        let compiled = tokio::task::spawn_blocking(move || guardian::compile(&document))
            .await
            .map_err(|error| {
                tracing::error!(%error, org_id, "compiling the stored policy failed");
                ApiError::internal()
            })?;
        let policy = Arc::new(compiled.map_err(|error| {
            tracing::error!(%error, org_id, "stored policy does not compile");
            ApiError::internal()
        })?);
        let mut compiled = self.write();
        if compiled.len() >= CAPACITY && !compiled.contains_key(org_id) {
            // Rare (more orgs than the cap checking at once): start over rather than track use.
            compiled.clear();
        }
        compiled.insert(org_id.to_string(), (row.version, Arc::clone(&policy)));
        Ok(policy)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, (i64, Arc<CompiledPolicy>)>> {
        // A panic while holding the lock leaves a map that is still consistent: keep using it.
        self.compiled
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(
        &self,
    ) -> std::sync::RwLockWriteGuard<'_, HashMap<String, (i64, Arc<CompiledPolicy>)>> {
        self.compiled
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
