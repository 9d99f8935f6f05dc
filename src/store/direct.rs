//! The SQLite group-commit writer's own connection. With sqlx every statement is a round trip
//! to the connection's own thread (a command sent, the thread woken, each row sent back), and
//! those round trips, not SQLite's work, were most of what a batch of checks cost. The writer
//! thread ([`crate::store::group_commit`]) opens this connection itself and runs a batch's
//! statements on it as plain calls, each prepared once and kept.
//!
//! It is a second connection to the database file beside sqlx's write pool: the two never
//! write at once, as both take this process's write lock ([`super::SqlitePools`]) first, and
//! `BEGIN IMMEDIATE` keeps other processes out as on the pool. It is set up as the pool's
//! connections are (WAL, the same `synchronous`, foreign keys, the same busy timeout), so a
//! batch committed here is as durable as one committed there.

use std::path::PathBuf;
use std::time::Duration;

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, OpenFlags};

use super::script::{Cell, Row, Script, Value, column};
use super::{Error, Result, SqliteSynchronous, Tx, audit};

/// Where the writer's connection goes and how it syncs.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub file: PathBuf,
    pub synchronous: SqliteSynchronous,
}

/// Statements kept prepared: the writer's are few (each job kind's, the inserts at commit one
/// row a statement, the chain's), so they all stay.
const STATEMENT_CACHE: usize = 128;

/// How long a write waits for another process's transaction (as the pools do).
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The connection, owned by the writer thread.
pub(crate) struct Direct {
    conn: Connection,
}

impl Direct {
    /// Opens the database the store connected to (which created it and set WAL mode).
    pub fn open(settings: &Settings) -> Result<Direct> {
        let conn = Connection::open_with_flags(
            &settings.file,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.pragma_update(None, "synchronous", settings.synchronous.as_str())?;
        conn.pragma_update(None, "foreign_keys", true)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        // WAL is a property of the file: the store set it; without it a commit here would not
        // be the one the module docs promise.
        let mode: String = conn.query_row("PRAGMA journal_mode", [], |row| row.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::Corrupt(format!(
                "the database is in journal mode {mode}, not WAL"
            )));
        }
        Ok(Direct { conn })
    }

    /// `BEGIN IMMEDIATE`: the database's write lock, taken now.
    pub fn begin(&self) -> Result<()> {
        Ok(self.conn.execute_batch("BEGIN IMMEDIATE")?)
    }

    /// Undoes the open transaction, if any (a failed statement may have ended it already).
    pub fn rollback(&self) {
        if !self.conn.is_autocommit()
            && let Err(error) = self.conn.execute_batch("ROLLBACK")
        {
            tracing::warn!(%error, "cannot roll back the writer's transaction");
        }
    }

    /// Runs every statement of `script` in order; the rows each returned.
    pub fn run(&self, script: &Script) -> Result<Vec<Vec<Row>>> {
        script
            .statements()
            .map(|(sql, values)| self.fetch(sql, values))
            .collect()
    }

    /// Chains and inserts what the jobs of a batch held in `tx` (a detached [`Tx`]), then
    /// commits the open transaction: what [`Tx::commit`] does on a pooled connection.
    pub fn commit(&self, mut tx: Tx) -> Result<()> {
        let mut writes = std::mem::take(&mut tx.deferred).into_script_with(1);
        let events = std::mem::take(&mut tx.audit);
        let appends = !events.is_empty();
        for (org_id, events) in events.by_org() {
            let count = i64::try_from(events.len()).unwrap_or(i64::MAX);
            let rows = self.fetch(
                audit::RESERVE,
                &[Value::Text(org_id.clone()), Value::Integer(count)],
            )?;
            let head = rows.first().ok_or_else(|| audit::no_chain(&org_id))?;
            let (last_seq, prev_hash) = (column(head, 0)?, column(head, 1)?);
            audit::chain(org_id, events, last_seq, prev_hash, &mut writes, 1);
        }
        self.run(&writes)?;
        self.conn.execute_batch("COMMIT")?;
        if appends {
            tx.appended
                .send_modify(|count| *count = count.wrapping_add(1));
        }
        Ok(())
    }

    /// Runs one statement (placeholders `$1…$n`) with `values`; the rows it returned.
    fn fetch(&self, sql: &str, values: &[Value]) -> Result<Vec<Row>> {
        let mut statement = self.conn.prepare_cached(sql)?;
        // SQLite numbers parameters in the order they first appear and names them `$n`: the
        // name says which value.
        for index in 1..=statement.parameter_count() {
            let value = statement
                .parameter_name(index)
                .and_then(|name| name.strip_prefix('$'))
                .and_then(|number| number.parse::<usize>().ok())
                .and_then(|number| values.get(number.checked_sub(1)?))
                .ok_or_else(|| {
                    Error::Corrupt(format!(
                        "parameter {index} of a statement has no value: {sql}"
                    ))
                })?;
            statement.raw_bind_parameter(index, value)?;
        }
        let columns = statement.column_count();
        let mut rows = statement.raw_query();
        let mut read = Vec::new();
        while let Some(row) = rows.next()? {
            let mut cells = Vec::with_capacity(columns);
            for index in 0..columns {
                cells.push(cell(row.get_ref(index)?)?);
            }
            read.push(Row(cells));
        }
        Ok(read)
    }
}

/// A value read, owned.
fn cell(value: ValueRef<'_>) -> Result<Cell> {
    Ok(match value {
        ValueRef::Null => Cell::Null,
        ValueRef::Integer(number) => Cell::Integer(number),
        ValueRef::Real(number) => Cell::Real(number),
        ValueRef::Text(bytes) => Cell::Text(
            String::from_utf8(bytes.to_vec())
                .map_err(|error| Error::Corrupt(format!("stored text: {error}")))?,
        ),
        ValueRef::Blob(bytes) => Cell::Blob(bytes.to_vec()),
    })
}

/// Binds as sqlx does: a boolean is an integer 0 or 1.
impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            Value::Text(text) | Value::OptionalText(Some(text)) => ValueRef::Text(text.as_bytes()),
            Value::OptionalText(None) => ValueRef::Null,
            Value::Integer(number) | Value::OptionalInteger(Some(number)) => {
                ValueRef::Integer(*number)
            }
            Value::OptionalInteger(None) => ValueRef::Null,
            Value::Boolean(flag) => ValueRef::Integer(i64::from(*flag)),
            Value::Real(number) => ValueRef::Real(*number),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(dir: &tempfile::TempDir) -> Direct {
        let file = dir.path().join("direct.db");
        let setup = Connection::open(&file).unwrap();
        setup
            .query_row("PRAGMA journal_mode = WAL", [], |row| {
                row.get::<_, String>(0)
            })
            .unwrap();
        setup
            .execute_batch("CREATE TABLE t (a TEXT, b INTEGER, c REAL, d INTEGER)")
            .unwrap();
        Direct::open(&Settings {
            file,
            synchronous: SqliteSynchronous::Full,
        })
        .unwrap()
    }

    #[test]
    fn the_connection_syncs_every_commit_and_enforces_foreign_keys() {
        let dir = tempfile::tempdir().unwrap();
        let direct = open(&dir);
        let pragma = |name: &str| -> i64 {
            direct
                .conn
                .query_row(&format!("PRAGMA {name}"), [], |row| row.get(0))
                .unwrap()
        };
        // 2 is FULL.
        assert_eq!(pragma("synchronous"), 2);
        assert_eq!(pragma("foreign_keys"), 1);
    }

    #[test]
    fn placeholders_bind_by_their_number_and_rows_come_back_owned() {
        let dir = tempfile::tempdir().unwrap();
        let direct = open(&dir);
        let mut script = Script::default();
        // `$2` first: SQLite numbers it 1, the name says it is the second value.
        script.push(
            "INSERT INTO t (b, a, c, d) VALUES ($2, $1, $3, $4), ($2, $5, NULL, $6)",
            vec![
                Value::Text("x".into()),
                Value::Integer(7),
                Value::Real(0.5),
                Value::Boolean(true),
                Value::OptionalText(None),
                Value::OptionalInteger(None),
            ],
        );
        script.push(
            "SELECT a, b, c, d FROM t WHERE b = $1 ORDER BY a",
            vec![Value::Integer(7)],
        );
        direct.begin().unwrap();
        let rows = direct.run(&script).unwrap();
        direct.conn.execute_batch("COMMIT").unwrap();
        assert_eq!(rows.len(), 2);
        assert!(rows[0].is_empty());
        assert_eq!(
            rows[1],
            vec![
                Row(vec![Cell::Null, Cell::Integer(7), Cell::Null, Cell::Null]),
                Row(vec![
                    Cell::Text("x".into()),
                    Cell::Integer(7),
                    Cell::Real(0.5),
                    Cell::Integer(1)
                ]),
            ]
        );
        assert!(column::<bool>(&rows[1][1], 3).unwrap());
        assert!(column::<i64>(&rows[1][1], 0).is_err());
    }

    #[test]
    fn a_statement_without_a_value_for_a_placeholder_fails_and_the_rollback_undoes_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let direct = open(&dir);
        let mut script = Script::default();
        script.push(
            "INSERT INTO t (a) VALUES ($1)",
            vec![Value::Text("kept?".into())],
        );
        script.push(
            "INSERT INTO t (a) VALUES ($2)",
            vec![Value::Text("y".into())],
        );
        direct.begin().unwrap();
        assert!(matches!(direct.run(&script), Err(Error::Corrupt(_))));
        direct.rollback();
        let count: i64 = direct
            .conn
            .query_row("SELECT count(*) FROM t", [], |row| row.get(0))
            .unwrap();
        assert_eq!(count, 0);
        assert!(direct.conn.is_autocommit());
    }
}
