//! Creating orgs and minting keys — over HTTP (`POST /api/v1/keys`) and for operators working on
//! the database directly (`agenttrust server org create`, `server key create`, `server --dev`).

use crate::api::keys::{CreatedKey, Role};
use crate::store::{self, Store, audit::Actor, orgs::Org};

use super::secrets::{self, API_KEY_PREFIX};

/// Creates an org (its name must be free).
pub async fn create_org(store: &Store, name: &str) -> store::Result<Org> {
    store::orgs::create(store, name, &Actor::operator()).await
}

/// Mints an API key for an org as the operator; the secret is in the answer and nowhere else.
pub async fn create_key(
    store: &Store,
    org_id: &str,
    role: Role,
    name: &str,
) -> store::Result<CreatedKey> {
    mint_key(store, org_id, role, name, &Actor::operator()).await
}

/// Mints an API key for an org on behalf of `actor`.
pub async fn mint_key(
    store: &Store,
    org_id: &str,
    role: Role,
    name: &str,
    actor: &Actor,
) -> store::Result<CreatedKey> {
    let key = secrets::generate(API_KEY_PREFIX);
    let id = store::new_id();
    let row = store::keys::create(
        store,
        store::keys::NewKey {
            id: &id,
            org_id,
            name,
            role,
            prefix: &secrets::display_prefix(&key),
            key_digest: &secrets::digest(&key),
        },
        actor,
    )
    .await?;
    Ok(CreatedKey {
        key,
        api_key: row.into_api()?,
    })
}
