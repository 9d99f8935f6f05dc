//! Statements run together: a [`Script`] holds statements with their values and runs them in
//! order, on SQLite in one round trip to the driver's connection thread (one multi-statement
//! query), on PostgreSQL one after the other. A write that costs a round trip per statement
//! costs one per script instead, which is what the group-commit writer
//! ([`crate::store::group_commit`]) spends its time on.
//!
//! Several statements in one prepared query is a feature of sqlx's SQLite driver alone (it
//! prepares one statement after the other from the text); sqlx calls it deprecated and may drop
//! it, and this module's tests fail then.
//!
//! The rows a script returns are owned [`Row`]s, whichever connection ran it: the group-commit
//! writer runs scripts on its own connection ([`crate::store::direct`]) or through sqlx, and the
//! jobs that read them do not know which.
//!
//! Each statement is written with its own placeholders `$1…$n` (as every query here); the
//! script renumbers them into one sequence. The SQL given must not contain a `$` anywhere else
//! (in a string literal, say): every statement in this crate is a constant that binds its
//! values.

use sqlx::sqlite::{SqliteConnection, SqliteRow};

use super::{Result, Tx, TxConnection};

/// A value bound to a placeholder.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Text(String),
    OptionalText(Option<String>),
    Integer(i64),
    OptionalInteger(Option<i64>),
    Boolean(bool),
    Real(f64),
}

/// Binds `$values` (an iterator of `&Value`) to `$query` in order; one macro for both backends'
/// query types.
macro_rules! bind_values {
    ($query:expr, $values:expr) => {{
        let mut query = $query;
        for value in $values {
            query = match value {
                $crate::store::script::Value::Text(text) => query.bind(text.as_str()),
                $crate::store::script::Value::OptionalText(text) => query.bind(text.as_deref()),
                $crate::store::script::Value::Integer(number) => query.bind(*number),
                $crate::store::script::Value::OptionalInteger(number) => query.bind(*number),
                $crate::store::script::Value::Boolean(flag) => query.bind(*flag),
                $crate::store::script::Value::Real(number) => query.bind(*number),
            };
        }
        query
    }};
}
pub(crate) use bind_values;

/// One statement and its values.
#[derive(Debug, Clone)]
struct Statement {
    sql: String,
    values: Vec<Value>,
}

/// Statements to run in order.
#[derive(Debug, Default)]
pub struct Script {
    statements: Vec<Statement>,
}

impl Script {
    /// Appends `sql` (placeholders `$1…$n` of its own) with its values.
    pub fn push(&mut self, sql: impl Into<String>, values: Vec<Value>) {
        self.statements.push(Statement {
            sql: sql.into(),
            values,
        });
    }

    /// Appends every statement of `other`.
    pub fn append(&mut self, other: Script) {
        self.statements.extend(other.statements);
    }

    pub fn is_empty(&self) -> bool {
        self.statements.is_empty()
    }

    /// How many statements it holds.
    pub fn len(&self) -> usize {
        self.statements.len()
    }

    /// Each statement's SQL (placeholders `$1…$n` of its own) and values, in order.
    pub fn statements(&self) -> impl Iterator<Item = (&str, &[Value])> {
        self.statements
            .iter()
            .map(|statement| (statement.sql.as_str(), statement.values.as_slice()))
    }

    /// Runs every statement in `tx`, in order.
    pub async fn execute(self, tx: &mut Tx) -> Result<()> {
        if self.statements.is_empty() {
            return Ok(());
        }
        match &mut tx.connection {
            TxConnection::Sqlite(conn) => {
                self.fetch(conn).await?;
            }
            TxConnection::Postgres(conn) => {
                for statement in &self.statements {
                    bind_values!(sqlx::query(&statement.sql), &statement.values)
                        .execute(&mut **conn)
                        .await?;
                }
            }
            TxConnection::Detached => return Err(super::Error::Detached),
        }
        Ok(())
    }

    /// Runs every statement on a SQLite connection in one round trip; the rows each statement
    /// returned, in order (one list per statement).
    pub async fn fetch(self, conn: &mut SqliteConnection) -> Result<Vec<Vec<Row>>> {
        use futures_util::TryStreamExt;
        use sqlx::Executor;
        if self.statements.is_empty() {
            return Ok(Vec::new());
        }
        let count = self.statements.len();
        let (sql, values) = self.joined();
        // Kept in the driver's statement cache like any query: preparing the statements costs
        // more than running them, and the scripts of a busy writer repeat (see
        // `group_commit::speculation_run`).
        let query = bind_values!(sqlx::query(&sql), &values);
        let mut rows_by_statement = Vec::with_capacity(count);
        let mut rows = Vec::new();
        // The driver runs a text of several statements with one set of arguments, reporting the
        // end of each; only SQLite's driver does (see the module docs).
        let mut results = (&mut *conn).fetch_many(query);
        while let Some(item) = results.try_next().await? {
            match item {
                sqlx::Either::Left(_done) => rows_by_statement.push(std::mem::take(&mut rows)),
                sqlx::Either::Right(row) => rows.push(Row::of_sqlx(&row)?),
            }
        }
        if rows_by_statement.len() != count {
            return Err(super::Error::Corrupt(format!(
                "a script of {count} statements reported {} of them",
                rows_by_statement.len()
            )));
        }
        Ok(rows_by_statement)
    }

    /// The statements as one text with one sequence of placeholders, and the values in order.
    fn joined(mut self) -> (String, Vec<Value>) {
        if self.statements.len() == 1
            && let Some(statement) = self.statements.pop()
        {
            // Nothing to renumber (the ordinary path's single statements).
            return (statement.sql, statement.values);
        }
        let mut sql = String::new();
        let mut values = Vec::new();
        for statement in self.statements {
            renumber_into(&mut sql, &statement.sql, values.len());
            sql.push_str(";\n");
            values.extend(statement.values);
        }
        (sql, values)
    }
}

/// Appends `sql` to `out` with every placeholder `$n` written as `$(n + offset)`.
fn renumber_into(out: &mut String, sql: &str, offset: usize) {
    let mut chars = sql.char_indices().peekable();
    while let Some((_, character)) = chars.next() {
        out.push(character);
        if character != '$' {
            continue;
        }
        let mut number = 0usize;
        let mut digits = 0;
        while let Some(&(_, digit)) = chars.peek() {
            let Some(value) = digit.to_digit(10) else {
                break;
            };
            number = number * 10 + value as usize;
            digits += 1;
            chars.next();
        }
        if digits > 0 {
            out.push_str(&(number + offset).to_string());
        }
    }
}

/// One value of a returned row, owned (SQLite's storage classes).
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

/// A row a script's statement returned: its values in column order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Row(pub Vec<Cell>);

impl Row {
    /// Copies the values of a row sqlx read, by each value's own storage class (a computed
    /// column has no declared type to go by).
    fn of_sqlx(row: &SqliteRow) -> Result<Row> {
        use sqlx::{Decode, Row as _, TypeInfo, ValueRef, sqlite::SqliteValueRef};
        fn decode<'r, T: Decode<'r, sqlx::Sqlite>>(value: SqliteValueRef<'r>) -> Result<T> {
            T::decode(value).map_err(|error| super::Error::Corrupt(error.to_string()))
        }
        let mut cells = Vec::with_capacity(row.len());
        for index in 0..row.len() {
            let value = row.try_get_raw(index)?;
            let cell = if value.is_null() {
                Cell::Null
            } else {
                let storage = match value.type_info().name() {
                    "INTEGER" | "BOOLEAN" => Cell::Integer(0),
                    "REAL" => Cell::Real(0.0),
                    "BLOB" => Cell::Blob(Vec::new()),
                    _ => Cell::Text(String::new()),
                };
                // The storage class decides how the value is read.
                match storage {
                    Cell::Integer(_) => Cell::Integer(decode(value)?),
                    Cell::Real(_) => Cell::Real(decode(value)?),
                    Cell::Blob(_) => Cell::Blob(decode(value)?),
                    _ => Cell::Text(decode(value)?),
                }
            };
            cells.push(cell);
        }
        Ok(Row(cells))
    }
}

/// A type a [`Cell`] reads as.
pub trait FromCell: Sized {
    /// `None` when the cell holds another kind of value.
    fn from_cell(cell: &Cell) -> Option<Self>;
}

impl FromCell for String {
    fn from_cell(cell: &Cell) -> Option<Self> {
        match cell {
            Cell::Text(text) => Some(text.clone()),
            _ => None,
        }
    }
}

impl FromCell for i64 {
    fn from_cell(cell: &Cell) -> Option<Self> {
        match cell {
            Cell::Integer(number) => Some(*number),
            _ => None,
        }
    }
}

impl FromCell for bool {
    fn from_cell(cell: &Cell) -> Option<Self> {
        i64::from_cell(cell).map(|number| number != 0)
    }
}

impl<T: FromCell> FromCell for Option<T> {
    fn from_cell(cell: &Cell) -> Option<Self> {
        match cell {
            Cell::Null => Some(None),
            other => T::from_cell(other).map(Some),
        }
    }
}

/// Reads column `index` of `row`, as a store error when it is missing or of another type.
pub fn column<T: FromCell>(row: &Row, index: usize) -> Result<T> {
    row.0.get(index).and_then(T::from_cell).ok_or_else(|| {
        super::Error::Corrupt(format!(
            "column {index} of a returned row is {:?}, not a {}",
            row.0.get(index),
            std::any::type_name::<T>()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_renumbered_past_the_values_before_them() {
        let mut out = String::new();
        renumber_into(&mut out, "SELECT $1, $2 WHERE a = $1 AND b = $10", 3);
        assert_eq!(out, "SELECT $4, $5 WHERE a = $4 AND b = $13");
        let mut untouched = String::new();
        renumber_into(&mut untouched, "SELECT 1", 7);
        assert_eq!(untouched, "SELECT 1");
    }

    #[tokio::test]
    async fn a_script_runs_in_order_and_reports_each_statements_rows() {
        use sqlx::Connection;
        let mut conn = SqliteConnection::connect("sqlite::memory:").await.unwrap();
        let mut script = Script::default();
        script.push("CREATE TABLE t (a TEXT, b INTEGER)", Vec::new());
        script.push(
            "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $2)",
            vec![
                Value::Text("x".into()),
                Value::Integer(7),
                Value::OptionalText(None),
            ],
        );
        script.push(
            "SELECT a, b FROM t WHERE b = $1 ORDER BY a",
            vec![Value::Integer(7)],
        );
        script.push(
            "SELECT count(*) FROM t WHERE a = $1",
            vec![Value::Text("none".into())],
        );
        let rows = script.fetch(&mut conn).await.unwrap();
        assert_eq!(rows.len(), 4);
        assert!(rows[0].is_empty() && rows[1].is_empty());
        let read: Vec<(Option<String>, i64)> = rows[2]
            .iter()
            .map(|row| (column(row, 0).unwrap(), column(row, 1).unwrap()))
            .collect();
        assert_eq!(read, vec![(None, 7), (Some("x".to_string()), 7)]);
        assert_eq!(column::<i64>(&rows[3][0], 0).unwrap(), 0);
    }
}
