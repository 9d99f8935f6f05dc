//! The replica's in-memory copies of the rows every request reads: API keys and agent tokens by
//! digest (who is calling), agent rows and session rows (what a check knows about the agent and
//! the session it calls in), and, through [`PolicyCache`], which policy version is current. This module owns the rules that keep them
//! from ever being trusted past a change:
//!
//! - **This replica's changes** are forgotten right after their commit: the handler that revoked
//!   or changed something calls [`Caches::forget`] before it answers, so the next request here
//!   reads the database.
//! - **Other replicas' changes** (PostgreSQL) arrive as notices sent inside the change's own
//!   transaction (`store::changes`), heard by `gateway::notices` within milliseconds; the bound
//!   we promise is one second.
//! - **No listening, no caching**: on PostgreSQL the caches answer only while the notice
//!   connection listens. When it drops, every cache is emptied and requests read the database
//!   until it listens again (notices sent meanwhile are lost), then the caches start empty.
//!   On SQLite one process owns the file and every change goes through it: the caches are always
//!   on and in-process forgetting is all there is.
//! - **A load that overlaps a forget is not kept.** A request that read the row just before a
//!   revocation committed must not put the old row back after the forget: every load takes a
//!   ticket (the generation of the key's slot) before reading, and the row is kept only if no
//!   forget touched that slot meanwhile.
//! - **Bounded**: each cache holds at most a fixed number of rows, and an entry is trusted for
//!   at most [`MAX_AGE`], a safety net for what no notice covers (a change made with SQL by
//!   hand), not the mechanism.
//!
//! Nothing absent is cached: an unknown key or agent is looked up every time. A session is kept
//! only while its mode is `standard`: what else of its row a check reads never changes, and
//! the only change from `standard` that loosens a decision (an operator setting `elevated`) is
//! announced; the changes that tighten one (locked by a lockout, made read-only) are caught by
//! the record transaction's re-read, and the session is forgotten then.
//! Decisions stay exact even on a stale entry: the transaction that records a check re-reads the
//! agent's status and mode, the session, the delegation chain and the token (`check::record`).

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use crate::store::{
    self, Store, agents::AgentRow, changes::Change, keys::KeyRow,
    security_settings::SecuritySettingsRow, sessions::SessionRow, tokens::TokenRow,
};

use super::policy_cache::PolicyCache;

/// How long an entry is trusted without a notice: the safety net, not the mechanism.
pub const MAX_AGE: Duration = Duration::from_secs(30);
/// The most API keys kept (by digest).
const KEY_CAPACITY: usize = 10_000;
/// The most agent tokens kept (by digest).
const TOKEN_CAPACITY: usize = 100_000;
/// The most agents kept.
const AGENT_CAPACITY: usize = 100_000;
/// The most sessions kept.
const SESSION_CAPACITY: usize = 100_000;
/// The most orgs' security settings kept.
const SECURITY_SETTINGS_CAPACITY: usize = 10_000;
/// Forgets bump the generation of one of this many slots (a key hashes to one), so forgetting
/// one row spoils only the loads in flight for a few others, not the whole cache's.
const SLOTS: usize = 64;

/// Whether the caches may answer (see the module docs). Shared by every cache of a replica.
#[derive(Debug, Default)]
pub struct Gate {
    serving: AtomicBool,
}

impl Gate {
    fn serving(&self) -> bool {
        self.serving.load(Ordering::Acquire)
    }
}

/// Every cache of a replica.
#[derive(Debug)]
pub struct Caches {
    gate: Arc<Gate>,
    keys: Bounded<KeyRow>,
    tokens: Bounded<TokenRow>,
    agents: Bounded<AgentRow>,
    /// Sessions in `standard` mode, by [`session_key`].
    sessions: Bounded<SessionRow>,
    security_settings: Bounded<SecuritySettingsRow>,
    pub policies: PolicyCache,
    /// Bumped whenever an API key may have been revoked (a forget of a key, or the caches
    /// suspended, since notices may then be missed): a long-lived request opened with a key
    /// (`audit stream`) waits on it and re-checks its key at once.
    key_revocations: tokio::sync::watch::Sender<u64>,
}

impl Default for Caches {
    /// Caches that never answer until [`Caches::resume`]: every read goes to the database.
    fn default() -> Caches {
        Caches::new(Arc::new(Gate::default()))
    }
}

impl Caches {
    /// The caches for `store`: on for SQLite (one process owns the file), off on PostgreSQL
    /// until `gateway::notices` listens.
    pub fn for_store(store: &Store) -> Caches {
        let caches = Caches::default();
        if matches!(store.db(), store::Db::Sqlite(_)) {
            caches.resume();
        }
        caches
    }

    fn new(gate: Arc<Gate>) -> Caches {
        Caches {
            keys: Bounded::new(Arc::clone(&gate), KEY_CAPACITY),
            tokens: Bounded::new(Arc::clone(&gate), TOKEN_CAPACITY),
            agents: Bounded::new(Arc::clone(&gate), AGENT_CAPACITY),
            sessions: Bounded::new(Arc::clone(&gate), SESSION_CAPACITY),
            security_settings: Bounded::new(Arc::clone(&gate), SECURITY_SETTINGS_CAPACITY),
            policies: PolicyCache::new(Arc::clone(&gate)),
            gate,
            key_revocations: tokio::sync::watch::Sender::new(0),
        }
    }

    /// A receiver that sees a change whenever an API key may have been revoked.
    pub fn key_revocations(&self) -> tokio::sync::watch::Receiver<u64> {
        self.key_revocations.subscribe()
    }

    fn announce_key_revocation(&self) {
        self.key_revocations
            .send_modify(|count| *count = count.wrapping_add(1));
    }

    /// Whether the caches answer now.
    pub fn serving(&self) -> bool {
        self.gate.serving()
    }

    /// The live API key with this digest, as `store::keys::find_active_by_digest`.
    pub async fn api_key(&self, store: &Store, digest: &str) -> store::Result<Option<KeyRow>> {
        self.keys
            .read_through(digest, || store::keys::find_active_by_digest(store, digest))
            .await
    }

    /// The agent token with this digest, as `store::tokens::find_by_digest` (expiry is the
    /// caller's to judge against the clock).
    pub async fn agent_token(
        &self,
        store: &Store,
        digest: &str,
    ) -> store::Result<Option<TokenRow>> {
        self.tokens
            .read_through(digest, || store::tokens::find_by_digest(store, digest))
            .await
    }

    /// The org's agent with this id, as `store::agents::get`.
    pub async fn agent(
        &self,
        store: &Store,
        org_id: &str,
        id: &str,
    ) -> store::Result<Option<AgentRow>> {
        // Agent ids are unique across orgs, so the cache is keyed by id alone; a row of
        // another org is "no such agent", as the scoped query would answer.
        let row = self
            .agents
            .read_through(id, || store::agents::get(store, org_id, id))
            .await?;
        Ok(row.filter(|row| row.org_id == org_id))
    }

    /// The org's session with this id, as `store::sessions::get`. Only a session in `standard`
    /// mode is kept (see the module docs): a locked, read-only or elevated one is read every
    /// time, so the moment it is set back to `standard` shows.
    pub async fn session(
        &self,
        store: &Store,
        org_id: &str,
        id: &str,
    ) -> store::Result<Option<SessionRow>> {
        let key = session_key(org_id, id);
        if let Some(row) = self.sessions.get(&key) {
            return Ok(Some(row));
        }
        let ticket = self.sessions.ticket(&key);
        let loaded = store::sessions::get(store, org_id, id).await?;
        if let (Some(ticket), Some(row)) = (ticket, &loaded)
            && row.mode == store::sessions::MODE_STANDARD
        {
            self.sessions.keep(ticket, &key, row.clone());
        }
        Ok(loaded)
    }

    /// The org's security settings, as `store::security_settings::get` (an org that never set
    /// any is kept too, with the defaults: every check asks).
    pub async fn security_settings(
        &self,
        store: &Store,
        org_id: &str,
    ) -> store::Result<SecuritySettingsRow> {
        let row = self
            .security_settings
            .read_through(org_id, || async {
                store::security_settings::get(store, org_id).await.map(Some)
            })
            .await?;
        Ok(row.unwrap_or_default())
    }

    /// Forgets what `change` made stale. Called right after this replica commits a change, and
    /// for every notice heard from any replica.
    pub fn forget(&self, change: &Change) {
        match change {
            Change::ApiKey { id } => {
                self.keys.forget_where(|row| row.id == *id);
                self.announce_key_revocation();
            }
            Change::AgentToken { id } => self.tokens.forget_where(|row| row.id == *id),
            Change::Agent { id } => {
                self.agents.forget(id);
                // A token row carries its agent's status, and revoking the agent ends them.
                self.tokens.forget_where(|row| row.agent_id == *id);
            }
            Change::Session { org_id, id } => self.sessions.forget(&session_key(org_id, id)),
            Change::Policy { org_id } => self.policies.forget(org_id),
            Change::SecuritySettings { org_id } => self.security_settings.forget(org_id),
        }
    }

    /// Forgets the agent token with this digest (revoked by its holder, who sent the secret).
    pub fn forget_agent_token_digest(&self, digest: &str) {
        self.tokens.forget(digest);
    }

    /// Stops answering and empties every cache (the notice connection was lost: changes may go
    /// unheard from now on).
    pub fn suspend(&self) {
        self.gate.serving.store(false, Ordering::Release);
        self.clear();
        self.announce_key_revocation();
    }

    /// Empties every cache, then answers again (the notice connection listens: every change
    /// from now on will be heard; what changed before is not in the caches).
    pub fn resume(&self) {
        self.clear();
        self.gate.serving.store(true, Ordering::Release);
    }

    fn clear(&self) {
        self.keys.clear();
        self.tokens.clear();
        self.agents.clear();
        self.sessions.clear();
        self.security_settings.clear();
        self.policies.clear();
    }
}

/// A taken-before-reading mark: the row read afterwards is kept only if no forget touched its
/// slot meanwhile.
#[derive(Debug, Clone, Copy)]
pub struct Ticket {
    slot: usize,
    generation: u64,
}

/// One bounded cache of rows by a text key.
#[derive(Debug)]
pub struct Bounded<V> {
    gate: Arc<Gate>,
    capacity: usize,
    inner: RwLock<Inner<V>>,
}

#[derive(Debug)]
struct Inner<V> {
    entries: HashMap<String, Entry<V>>,
    generations: [u64; SLOTS],
}

#[derive(Debug)]
struct Entry<V> {
    value: V,
    loaded_at: Instant,
}

impl<V: Clone> Bounded<V> {
    pub fn new(gate: Arc<Gate>, capacity: usize) -> Bounded<V> {
        Bounded {
            gate,
            capacity: capacity.max(1),
            inner: RwLock::new(Inner {
                entries: HashMap::new(),
                generations: [0; SLOTS],
            }),
        }
    }

    /// The kept row, when the caches answer and it is younger than [`MAX_AGE`].
    pub fn get(&self, key: &str) -> Option<V> {
        if !self.gate.serving() {
            return None;
        }
        let inner = self.read();
        let entry = inner.entries.get(key)?;
        (entry.loaded_at.elapsed() < MAX_AGE).then(|| entry.value.clone())
    }

    /// A ticket to take before reading the row for `key`; `None` when the caches do not answer
    /// (then nothing read is kept either).
    pub fn ticket(&self, key: &str) -> Option<Ticket> {
        if !self.gate.serving() {
            return None;
        }
        let slot = slot_of(key);
        Some(Ticket {
            slot,
            generation: self.read().generations[slot],
        })
    }

    /// Keeps a row read after `ticket` was taken, unless a forget or a suspension came between.
    pub fn keep(&self, ticket: Ticket, key: &str, value: V) {
        let mut inner = self.write();
        // Under the lock that forgets take: a forget either came before (the generation moved)
        // or comes after (and removes this entry).
        if !self.gate.serving() || inner.generations[ticket.slot] != ticket.generation {
            return;
        }
        if inner.entries.len() >= self.capacity && !inner.entries.contains_key(key) {
            inner.make_room(self.capacity);
        }
        inner.entries.insert(
            key.to_string(),
            Entry {
                value,
                loaded_at: Instant::now(),
            },
        );
    }

    /// The kept row, or the one `load` reads (kept when found).
    pub async fn read_through<F, Load>(&self, key: &str, load: F) -> store::Result<Option<V>>
    where
        F: FnOnce() -> Load,
        Load: Future<Output = store::Result<Option<V>>>,
    {
        if let Some(value) = self.get(key) {
            return Ok(Some(value));
        }
        let ticket = self.ticket(key);
        let loaded = load().await?;
        if let (Some(ticket), Some(value)) = (ticket, &loaded) {
            self.keep(ticket, key, value.clone());
        }
        Ok(loaded)
    }

    pub fn forget(&self, key: &str) {
        let mut inner = self.write();
        inner.generations[slot_of(key)] += 1;
        inner.entries.remove(key);
    }

    /// Forgets every row `stale` matches (the cache's key is not what the change names).
    pub fn forget_where(&self, stale: impl Fn(&V) -> bool) {
        let mut inner = self.write();
        // Any slot may hold a matching row, and loads in flight may be about to keep one.
        inner.bump_all();
        inner.entries.retain(|_, entry| !stale(&entry.value));
    }

    pub fn clear(&self) {
        let mut inner = self.write();
        inner.bump_all();
        inner.entries.clear();
    }

    fn read(&self) -> RwLockReadGuard<'_, Inner<V>> {
        // A panic while holding the lock leaves a map that is still consistent: keep using it.
        self.inner
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner<V>> {
        self.inner
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl<V> Inner<V> {
    fn bump_all(&mut self) {
        for generation in &mut self.generations {
            *generation += 1;
        }
    }

    /// At capacity: drops the expired entries, and if that frees nothing, an arbitrary eighth
    /// (the map's iteration order is as good as random), so a full cache costs one scan per
    /// eighth of its capacity inserted, not one per insert.
    fn make_room(&mut self, capacity: usize) {
        self.entries
            .retain(|_, entry| entry.loaded_at.elapsed() < MAX_AGE);
        if self.entries.len() >= capacity {
            let drop: Vec<String> = self
                .entries
                .keys()
                .take((capacity / 8).max(1))
                .cloned()
                .collect();
            for key in drop {
                self.entries.remove(&key);
            }
        }
    }
}

/// Sessions are the org's own (two orgs may use the same id): keyed by both. Org ids are
/// minted by the gateway and hold no `/`.
fn session_key(org_id: &str, id: &str) -> String {
    format!("{org_id}/{id}")
}

fn slot_of(key: &str) -> usize {
    // A fixed-key hasher: the slot only spreads forgets, it guards nothing.
    let mut hasher = DefaultHasher::new();
    key.hash(&mut hasher);
    (hasher.finish() % SLOTS as u64) as usize
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::{Bounded, Gate};

    fn serving() -> Arc<Gate> {
        let gate = Arc::new(Gate::default());
        gate.serving
            .store(true, std::sync::atomic::Ordering::Release);
        gate
    }

    #[test]
    fn a_load_that_overlaps_a_forget_is_not_kept() {
        let cache = Bounded::new(serving(), 10);
        let ticket = cache.ticket("k").unwrap();
        // The row was read, then the change committed and was forgotten...
        cache.forget("k");
        // ...so the row read before it must not come back.
        cache.keep(ticket, "k", "old");
        assert_eq!(cache.get("k"), None);
        let ticket = cache.ticket("k").unwrap();
        cache.keep(ticket, "k", "new");
        assert_eq!(cache.get("k"), Some("new"));
    }

    #[test]
    fn a_forget_by_value_spoils_every_load_in_flight() {
        let cache = Bounded::new(serving(), 10);
        let ticket = cache.ticket("digest").unwrap();
        cache.forget_where(|row: &&str| *row == "id-1");
        cache.keep(ticket, "digest", "id-1");
        assert_eq!(cache.get("digest"), None);
    }

    #[test]
    fn nothing_is_served_or_kept_while_not_listening() {
        let gate = Arc::new(Gate::default());
        let cache = Bounded::new(Arc::clone(&gate), 10);
        assert!(cache.ticket("k").is_none());
        gate.serving
            .store(true, std::sync::atomic::Ordering::Release);
        let ticket = cache.ticket("k").unwrap();
        cache.keep(ticket, "k", 1);
        assert_eq!(cache.get("k"), Some(1));
        gate.serving
            .store(false, std::sync::atomic::Ordering::Release);
        assert_eq!(cache.get("k"), None);
    }

    #[test]
    fn the_size_stays_bounded() {
        let cache = Bounded::new(serving(), 16);
        for index in 0..1000 {
            let key = format!("k{index}");
            let ticket = cache.ticket(&key).unwrap();
            cache.keep(ticket, &key, index);
        }
        assert!(cache.read().entries.len() <= 16);
    }
}
