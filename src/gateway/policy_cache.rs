//! Compiled org policies, cached per org and keyed by the stored version: a check costs one
//! indexed read of the version, and compiles globs and regexes only after a change (made by this
//! replica or another one).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::api::policies::PolicyDocument;
use crate::guardian::{self, CompiledPolicy};
use crate::store::{self, Store};

use super::error::ApiError;

#[derive(Debug, Default)]
pub struct PolicyCache {
    compiled: RwLock<HashMap<String, (i64, Arc<CompiledPolicy>)>>,
    default_policy: Arc<CompiledPolicy>,
}

impl PolicyCache {
    /// The org's policy as stored now (the defaults when it has none).
    pub async fn current(
        &self,
        store: &Store,
        org_id: &str,
    ) -> Result<Arc<CompiledPolicy>, ApiError> {
        let version = store::policies::version(store, org_id).await?;
        if version == 0 {
            return Ok(Arc::clone(&self.default_policy));
        }
        if let Some((cached_version, policy)) = self.read().get(org_id)
            && *cached_version == version
        {
            return Ok(Arc::clone(policy));
        }
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
        self.write()
            .insert(org_id.to_string(), (row.version, Arc::clone(&policy)));
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
