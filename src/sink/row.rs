//! Rows and changes as every table format receives them: what the fold produces and a sink writes.

use crate::config::Compression;
use lakefold_api::Value;

/// What happens to one key.
#[derive(Debug, Clone, PartialEq)]
pub enum RowChange {
    /// Insert or replace the row with these data-column values (in table-schema order).
    Upsert(Vec<Value>),
    /// Remove the row.
    Delete,
}

/// One folded row ready to be written.
#[derive(Debug, Clone, PartialEq)]
pub struct StagedRow {
    /// The record key (Hudi `_hoodie_record_key`: the value, or `col:value,...` for complex keys).
    pub record_key: String,
    /// The partition path (`col=value/...`; "" for unpartitioned tables).
    pub partition_path: String,
    /// The source position order key (`_lakefold_position`); older positions never overwrite newer rows.
    pub position: String,
    pub change: RowChange,
}

impl RowChange {
    /// Bytes the values hold on the heap.
    pub fn held_bytes(&self) -> usize {
        match self {
            RowChange::Upsert(v) => {
                v.capacity() * std::mem::size_of::<Value>()
                    + v.iter().map(Value::heap_bytes).sum::<usize>()
            }
            RowChange::Delete => 0,
        }
    }
}

impl StagedRow {
    /// Bytes the row holds (itself, its texts and values).
    pub fn held_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.record_key.capacity()
            + self.partition_path.capacity()
            + self.position.capacity()
            + self.change.held_bytes()
    }
}

/// How a table's files are written (from the route).
#[derive(Debug, Clone, Copy)]
pub struct TableLayout {
    pub compression: Compression,
    /// Target maximum size of one data file.
    pub max_file_size: u64,
    /// Files below this size receive new inserts first.
    pub small_file_limit: u64,
}

/// What one commit did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CommitSummary {
    /// The committed version (a Hudi instant); `None` when nothing changed and nothing was committed.
    pub instant: Option<String>,
    pub inserts: u64,
    pub updates: u64,
    pub deletes: u64,
    pub files: usize,
    /// Bytes of the files written.
    pub bytes: u64,
    /// Incoming rows older than what the table held (ignored).
    pub stale: u64,
    /// Partition paths the commit wrote files in.
    pub partitions: Vec<String>,
}
