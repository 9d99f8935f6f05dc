//! All SQL. `Store` wraps one of two backends — a SQLite file (zero setup) or PostgreSQL (several
//! replicas) — behind the same functions, one per verb in `store/<group>.rs`.
//!
//! Queries are runtime strings (no database at build time) with `$1…$n` placeholders, which both
//! dialects accept, and the migrations in `store/migrations/` are written in their common SQL; the few places where the dialects differ keep two constants side by side.
//! Every write that changes state runs in a [`Tx`] together with its audit event.
//!
//! SQLite gets two pools: readers in WAL mode, and a single writer connection; the group-commit
//! writer has a connection of its own besides ([`direct`]). Writers queue on one in-process lock
//! (fair, no busy-wait) instead of letting SQLite's busy handler sleep-and-retry; `BEGIN
//! IMMEDIATE` keeps a second process (an operator's `agenttrust server key create`) safe too. By default every commit is synced to disk (`synchronous=FULL`): an
//! answered decision survives an OS crash or power loss, not only a crash of the process
//! ([`SqliteSynchronous`]). A database file this store creates is private to its user (0600);
//! SQLite gives its WAL and shared-memory files the database file's mode.

pub mod a2a;
pub mod agent_keys;
pub mod agents;
pub mod approvals;
pub mod audit;
pub mod cards;
pub mod changes;
pub mod checks;
mod deferred;
pub mod delegations;
mod direct;
pub mod federation;
pub mod group_commit;
mod held;
pub mod keys;
pub mod mcp;
pub mod orgs;
pub mod policies;
pub mod script;
pub mod security_settings;
pub mod sessions;
pub mod signing_keys;
pub mod streaming;
pub mod telemetry;
pub mod tokens;

use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A unique constraint refused the write; the text names what already exists.
    #[error("{0}")]
    Conflict(String),
    #[error("unsupported database URL {0:?}: expected sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The group-commit writer is gone (the gateway is shutting down).
    #[error("the database writer has stopped")]
    WriterStopped,
    /// A statement was run in a transaction whose statements the group-commit writer runs on
    /// its own connection ([`TxConnection::Detached`]); the writer runs the job again through
    /// the ordinary path.
    #[error("a statement was run outside the writer's own connection")]
    Detached,
    /// The SQLite writer's own connection failed.
    #[error("database error: {0}")]
    Direct(#[from] rusqlite::Error),
    #[error("cannot create the database file {path}: {source}")]
    CreateFile {
        path: String,
        source: std::io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Turns a unique-constraint violation into [`Error::Conflict`] with `message`.
    pub fn conflict_on_unique(error: sqlx::Error, message: impl FnOnce() -> String) -> Error {
        match &error {
            sqlx::Error::Database(database_error) if database_error.is_unique_violation() => {
                Error::Conflict(message())
            }
            _ => Error::Database(error),
        }
    }
}

/// When SQLite syncs a commit to disk (its `synchronous` setting, in WAL mode).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SqliteSynchronous {
    /// Every commit is synced before it is acknowledged: it survives an OS crash or power loss.
    #[default]
    Full,
    /// Commits are synced at checkpoints only: they survive a crash of the process, but the
    /// last ones may be lost when the machine goes down. Faster; opt in knowingly.
    Normal,
}

impl SqliteSynchronous {
    pub fn as_str(self) -> &'static str {
        match self {
            SqliteSynchronous::Full => "full",
            SqliteSynchronous::Normal => "normal",
        }
    }
}

impl FromStr for SqliteSynchronous {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "full" => Ok(SqliteSynchronous::Full),
            "normal" => Ok(SqliteSynchronous::Normal),
            _ => Err(format!(
                "unknown SQLite synchronous mode {text:?}: expected full or normal"
            )),
        }
    }
}

/// How to open a store (settings that apply to one backend are ignored by the other).
#[derive(Debug, Clone, Copy, Default)]
pub struct StoreOptions {
    pub sqlite_synchronous: SqliteSynchronous,
}

/// The SQLite pair of pools (see the module docs for why two).
#[derive(Debug, Clone)]
pub struct SqlitePools {
    pub read: SqlitePool,
    pub write: SqlitePool,
    /// Held by whoever writes in this process: a transaction on `write`, or a batch of the
    /// group-commit writer on its own connection. Fair (first come, first served), so writers
    /// queue here instead of in SQLite's sleep-and-retry busy handler.
    writing: Arc<tokio::sync::Mutex<()>>,
    /// The database file and its sync level, for the group-commit writer's own connection
    /// (`None` for an in-memory database, which another connection cannot open).
    direct: Option<direct::Settings>,
}

/// The backend.
#[derive(Debug, Clone)]
pub enum Db {
    Sqlite(SqlitePools),
    Postgres(PgPool),
}

/// A cheap-to-clone handle on the database.
#[derive(Debug, Clone)]
pub struct Store {
    db: Arc<Db>,
    /// Counts the commits that appended audit events in this process: a follower of the chain
    /// waits on it instead of polling (other replicas' appends it reads on a timer).
    appended: Arc<tokio::sync::watch::Sender<u64>>,
}

/// Runs `$body` with `$pool` bound to the backend's read pool (a `&SqlitePool` or `&PgPool`):
/// `on_db!(store, |pool| query.fetch_one(pool).await?)`. The body is written once and compiled
/// for both backends; the closure-like syntax parses as an expression, so rustfmt formats it.
macro_rules! on_db {
    ($store:expr, |$pool:ident| $body:expr) => {
        match $store.db() {
            $crate::store::Db::Sqlite(pools) => {
                let $pool = &pools.read;
                $body
            }
            $crate::store::Db::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_db;

/// Runs `$body` with `$conn` bound to the transaction's connection (`&mut SqliteConnection` or
/// `&mut PgConnection`): `on_tx!(tx, |conn| query.execute(&mut *conn).await?)`.
macro_rules! on_tx {
    ($tx:expr, |$conn:ident| $body:expr) => {
        match &mut ($tx).connection {
            $crate::store::TxConnection::Sqlite(transaction) => {
                let $conn: &mut sqlx::SqliteConnection = &mut *transaction;
                $body
            }
            $crate::store::TxConnection::Postgres(transaction) => {
                let $conn: &mut sqlx::PgConnection = &mut *transaction;
                $body
            }
            $crate::store::TxConnection::Detached => {
                return Err($crate::store::Error::Detached.into());
            }
        }
    };
}
pub(crate) use on_tx;

/// An open write transaction; dropped without [`Tx::commit`] it rolls back.
///
/// Audit events appended in it ([`audit::append`]) wait in `audit` and are chained and
/// inserted at commit, together: the org's chain head is taken once per transaction, at its
/// end (after every row the transaction locks, the one lock order every write follows), and a
/// transaction that records many decisions ([`group_commit`]) extends the chain with one
/// multi-row insert. Rows nothing in the transaction reads back (decisions, issued tokens)
/// wait the same way in `deferred` and are inserted at commit, one statement per table; on
/// SQLite every statement of the commit after the heads' reservation is one round trip
/// ([`script`]).
pub struct Tx {
    pub(crate) connection: TxConnection,
    /// SQLite: this process's write lock ([`SqlitePools`]), held until the transaction ends.
    _writing: Option<tokio::sync::OwnedMutexGuard<()>>,
    deferred: deferred::Deferred,
    audit: audit::Pending,
    /// PostgreSQL: the rows this transaction holds locked, as it read them ([`held`]).
    pub(crate) held: held::Held,
    /// The store's [`Store::audit_appended`] counter, bumped when this commits events.
    appended: Arc<tokio::sync::watch::Sender<u64>>,
}

/// The backend's transaction under a [`Tx`].
pub enum TxConnection {
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
    /// No connection: the SQLite group-commit writer runs the statements of a batch on its own
    /// connection ([`direct`]), and the jobs only hold rows and audit events in the `Tx` for
    /// its commit. A statement run here fails with [`Error::Detached`].
    Detached,
}

impl Tx {
    /// Chains and inserts the audit events appended so far, then commits.
    pub async fn commit(mut self) -> Result<()> {
        let mut writes = std::mem::take(&mut self.deferred).into_script();
        if let TxConnection::Postgres(_) = self.connection {
            // Rows are written before the org's audit-chain head is taken, the one lock order
            // of every write (the inserts take key-share locks on the rows they reference).
            std::mem::take(&mut writes).execute(&mut self).await?;
        }
        let events = std::mem::take(&mut self.audit);
        let appends = !events.is_empty();
        audit::flush(&mut self, events, &mut writes).await?;
        writes.execute(&mut self).await?;
        match self.connection {
            TxConnection::Sqlite(transaction) => transaction.commit().await?,
            TxConnection::Postgres(transaction) => transaction.commit().await?,
            TxConnection::Detached => return Err(Error::Detached),
        }
        if appends {
            self.appended
                .send_modify(|count| *count = count.wrapping_add(1));
        }
        Ok(())
    }

    /// Ends an audited write, the one shape every state change takes (begin → change →
    /// audit if it changed something → commit): appends `event`, when there is one, to the org's
    /// hash chain in this transaction, then commits both together.
    pub async fn commit_audited(mut self, event: Option<audit::NewEvent<'_>>) -> Result<()> {
        if let Some(event) = event {
            audit::append(&mut self, event).await?;
        }
        self.commit().await
    }

    /// The rows held for insertion at commit.
    pub(crate) fn deferred(&mut self) -> &mut deferred::Deferred {
        &mut self.deferred
    }

    /// The audit events appended and not yet flushed.
    pub(crate) fn audit_pending(&mut self) -> &mut audit::Pending {
        &mut self.audit
    }

    /// A transaction without a connection, for a batch the SQLite writer runs on its own
    /// connection ([`TxConnection::Detached`]).
    fn detached(store: &Store) -> Tx {
        Tx {
            connection: TxConnection::Detached,
            _writing: None,
            deferred: deferred::Deferred::default(),
            audit: audit::Pending::default(),
            held: held::Held::default(),
            appended: Arc::clone(&store.appended),
        }
    }
}

/// Every table, for [`Store::row_counts`].
const TABLES: &[&str] = &[
    "orgs",
    "api_keys",
    "agents",
    "agent_tokens",
    "sessions",
    "checks",
    "telemetry_events",
    "audit_events",
    "audit_heads",
    "audit_checkpoints",
    "policies",
    "approvals",
    "delegations",
    "signing_keys",
    "federation_providers",
    "federation_subjects",
    "federation_tokens",
    "siem_destinations",
    "siem_deliveries",
    "pop_challenges",
    "dpop_proofs_seen",
    "org_security_settings",
    "agent_cards",
    "a2a_tasks",
];

impl Store {
    /// Connects to `sqlite://PATH` (created when missing) or `postgres://…` and applies the
    /// migrations.
    pub async fn connect(database_url: &str) -> Result<Store> {
        Store::connect_with(database_url, StoreOptions::default()).await
    }

    /// [`Store::connect`] with explicit options.
    pub async fn connect_with(database_url: &str, options: StoreOptions) -> Result<Store> {
        let db = if database_url.starts_with("sqlite:") {
            Db::Sqlite(connect_sqlite(database_url, options.sqlite_synchronous).await?)
        } else if database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://")
        {
            Db::Postgres(connect_postgres(database_url).await?)
        } else {
            return Err(Error::UnsupportedUrl(database_url.to_string()));
        };
        let store = Store {
            db: Arc::new(db),
            appended: Arc::new(tokio::sync::watch::Sender::new(0)),
        };
        store.migrate().await?;
        let indexed = audit::index_agents(&store).await?;
        if indexed > 0 {
            tracing::info!(events = indexed, "indexed older audit events by agent");
        }
        Ok(store)
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// SQLite: the lock every writer of this process holds while it writes ([`SqlitePools`]).
    fn sqlite_write_lock(&self) -> Option<&tokio::sync::Mutex<()>> {
        match self.db() {
            Db::Sqlite(pools) => Some(&pools.writing),
            Db::Postgres(_) => None,
        }
    }

    /// SQLite on a file: what the group-commit writer's own connection opens.
    fn direct_settings(&self) -> Option<&direct::Settings> {
        match self.db() {
            Db::Sqlite(pools) => pools.direct.as_ref(),
            Db::Postgres(_) => None,
        }
    }

    /// A receiver that sees a change whenever this process commits audit events.
    pub fn audit_appended(&self) -> tokio::sync::watch::Receiver<u64> {
        self.appended.subscribe()
    }

    /// `sqlite` or `postgres`, for logs and `/health`.
    pub fn backend_name(&self) -> &'static str {
        match self.db() {
            Db::Sqlite(_) => "sqlite",
            Db::Postgres(_) => "postgres",
        }
    }

    async fn migrate(&self) -> Result<()> {
        // One set of migrations serves both backends: the SQL is written in the dialect they
        // share. A migration that ever needs dialect-specific SQL splits the directory then.
        let migrator = sqlx::migrate!("src/store/migrations");
        match self.db() {
            Db::Sqlite(pools) => migrator.run(&pools.write).await?,
            Db::Postgres(pool) => migrator.run(pool).await?,
        }
        Ok(())
    }

    /// Opens a write transaction.
    pub async fn begin(&self) -> Result<Tx> {
        Ok(match self.db() {
            Db::Sqlite(pools) => {
                // The lock first: the pool's one connection is then free or about to be.
                let writing = Arc::clone(&pools.writing).lock_owned().await;
                Tx {
                    connection: TxConnection::Sqlite(
                        pools.write.begin_with("BEGIN IMMEDIATE").await?,
                    ),
                    _writing: Some(writing),
                    deferred: deferred::Deferred::default(),
                    audit: audit::Pending::default(),
                    held: held::Held::default(),
                    appended: Arc::clone(&self.appended),
                }
            }
            Db::Postgres(pool) => Tx {
                connection: TxConnection::Postgres(pool.begin().await?),
                _writing: None,
                deferred: deferred::Deferred::default(),
                audit: audit::Pending::default(),
                held: held::Held::default(),
                appended: Arc::clone(&self.appended),
            },
        })
    }

    /// Answers whether the database responds, for `/health`.
    pub async fn ping(&self) -> bool {
        on_db!(self, |pool| sqlx::query("SELECT 1")
            .execute(pool)
            .await
            .is_ok())
    }

    /// Rows per table: lets tests assert that a refused request changed nothing.
    pub async fn row_counts(&self) -> Result<BTreeMap<String, i64>> {
        let mut counts = BTreeMap::new();
        for table in TABLES {
            let sql = format!("SELECT COUNT(*) FROM {table}");
            let count: i64 = on_db!(self, |pool| sqlx::query_scalar(&sql)
                .fetch_one(pool)
                .await?);
            counts.insert((*table).to_string(), count);
        }
        Ok(counts)
    }

    /// Closes every connection (graceful shutdown).
    pub async fn close(&self) {
        match self.db() {
            Db::Sqlite(pools) => {
                pools.write.close().await;
                pools.read.close().await;
            }
            Db::Postgres(pool) => pool.close().await,
        }
    }
}

async fn connect_sqlite(database_url: &str, synchronous: SqliteSynchronous) -> Result<SqlitePools> {
    // WAL, foreign keys on, and the sync level chosen by the operator (FULL by default: see the
    // module docs; design.md §5's budget is met by group commit, not by skipping the fsync).
    let options = SqliteConnectOptions::from_str(database_url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(match synchronous {
            SqliteSynchronous::Full => sqlx::sqlite::SqliteSynchronous::Full,
            SqliteSynchronous::Normal => sqlx::sqlite::SqliteSynchronous::Normal,
        })
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(10));
    if let Some(path) = sqlite_file(database_url) {
        create_private_file(&path)?;
    }
    // A connection to a local file does not go stale: no ping before each use (with sqlx-sqlite
    // every statement, a ping too, is a round trip to the connection's own thread).
    let write = SqlitePoolOptions::new()
        .max_connections(1)
        .test_before_acquire(false)
        .connect_with(options.clone())
        .await?;
    let readers = std::thread::available_parallelism()
        .map(|cores| cores.get() as u32 * 2)
        .unwrap_or(4)
        .max(4);
    let read = SqlitePoolOptions::new()
        .max_connections(readers)
        .test_before_acquire(false)
        .connect_with(options.read_only(false))
        .await?;
    Ok(SqlitePools {
        read,
        write,
        writing: Arc::new(tokio::sync::Mutex::new(())),
        direct: sqlite_file(database_url).map(|file| direct::Settings { file, synchronous }),
    })
}

/// The file of a `sqlite:` database URL, as SQLite opens it; `None` for an in-memory database
/// (`sqlite::memory:`, `?mode=memory`), which has no file, or for a URL that is not SQLite's.
pub fn sqlite_file(database_url: &str) -> Option<std::path::PathBuf> {
    // sqlx parses any URL as SQLite options (a `postgres://…` URL included): only ours count.
    if !database_url.starts_with("sqlite:")
        || database_url.contains(":memory:")
        || database_url.contains("mode=memory")
    {
        return None;
    }
    let options = SqliteConnectOptions::from_str(database_url).ok()?;
    Some(options.get_filename().to_path_buf())
}

/// Creates the database file with mode 0600 when it does not exist yet, so SQLite (which would
/// create it world-readable under the usual umask) opens a file only its user can read. An
/// existing file is left as the operator made it.
fn create_private_file(path: &Path) -> Result<()> {
    let mut open = std::fs::OpenOptions::new();
    open.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut open, 0o600);
    match open.open(path) {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(Error::CreateFile {
            path: path.display().to_string(),
            source,
        }),
    }
}

async fn connect_postgres(database_url: &str) -> Result<PgPool> {
    let options = PgConnectOptions::from_str(database_url)?;
    Ok(PgPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(Duration::from_secs(10))
        // sqlx pings a connection before it hands it out (`test_before_acquire`, on by
        // default): one closed while idle (a server restart, a proxy's idle timeout) is
        // replaced before any request sees it. The hot reads come from the replica's caches,
        // so this costs a round trip per write batch, not per request.
        .connect_with(options)
        .await?)
}

/// Parses a JSON list of strings kept in a TEXT column.
pub(crate) fn string_list(text: &str) -> Result<Vec<String>> {
    serde_json::from_str(text).map_err(|error| Error::Corrupt(format!("string list: {error}")))
}

/// Parses a JSON object kept in a TEXT column.
pub(crate) fn json_object(text: &str) -> Result<serde_json::Map<String, serde_json::Value>> {
    serde_json::from_str(text).map_err(|error| Error::Corrupt(format!("object: {error}")))
}

/// Serialises a value for a TEXT column (serialising plain data cannot fail).
pub(crate) fn to_json_text<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_string())
}

/// The `VALUES` list of a multi-row INSERT: `($1, $2), ($3, $4)` for 2 rows of 2 columns.
pub(crate) fn values_placeholders(rows: usize, columns: usize) -> String {
    let mut sql = String::with_capacity(rows * columns * 5);
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for column in 1..=columns {
            if column > 1 {
                sql.push_str(", ");
            }
            sql.push('$');
            sql.push_str(&(row * columns + column).to_string());
        }
        sql.push(')');
    }
    sql
}

/// A fresh time-ordered id (UUID v7: new rows land at the end of the index).
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

#[cfg(test)]
mod tests;
