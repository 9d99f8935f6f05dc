//! Rows a transaction inserts only when it commits. A write that nothing in its transaction
//! reads back (a decision, an issued token) is held in the [`crate::store::Tx`] and inserted at
//! commit, together with every other row held for the same table: a batch of requests
//! ([`crate::store::group_commit`]) then costs one multi-row INSERT per table instead of one
//! statement per request.

use super::script::{Script, Value};
use super::values_placeholders;

/// A table rows can be held for: its name and columns, in the order each row gives its values.
#[derive(Debug)]
pub struct Table {
    pub name: &'static str,
    pub columns: &'static [&'static str],
}

/// Most rows one INSERT carries (far below either backend's limit on placeholders).
const INSERT_CHUNK: usize = 256;

/// The rows held so far, per table in the order the tables were first used.
#[derive(Debug, Default)]
pub struct Deferred {
    tables: Vec<(&'static Table, Vec<Vec<Value>>)>,
}

impl Deferred {
    /// Holds `row` (one value per column of `table`, in order) for the commit.
    pub fn insert(&mut self, table: &'static Table, row: Vec<Value>) {
        debug_assert_eq!(row.len(), table.columns.len(), "a row of {}", table.name);
        match self
            .tables
            .iter_mut()
            .find(|(held, _)| std::ptr::eq(*held, table))
        {
            Some((_, rows)) => rows.push(row),
            None => self.tables.push((table, vec![row])),
        }
    }

    /// The INSERT statements of every row held, in order.
    pub fn into_script(self) -> Script {
        self.into_script_with(INSERT_CHUNK)
    }

    /// [`Deferred::into_script`] with at most `rows_per_insert` rows a statement: one a
    /// statement suits a connection where a statement costs no round trip
    /// ([`crate::store::direct`]), as every statement then has the same text and stays prepared.
    pub fn into_script_with(self, rows_per_insert: usize) -> Script {
        let mut script = Script::default();
        for (table, rows) in self.tables {
            for chunk in rows.chunks(rows_per_insert.clamp(1, INSERT_CHUNK)) {
                let sql = format!(
                    "INSERT INTO {} ({}) VALUES {}",
                    table.name,
                    table.columns.join(", "),
                    values_placeholders(chunk.len(), table.columns.len())
                );
                script.push(sql, chunk.concat());
            }
        }
        script
    }
}
