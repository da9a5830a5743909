//! The keyed last-value fold: project each change event through a route (columns, types, key, partition)
//! and keep, per record key, the image at the greatest source position.

mod project;
mod route;

pub use project::{project, undecided_columns, Projected};
pub use route::{RouteSpec, HIVE_DEFAULT_PARTITION};

use crate::sink::{RowChange, StagedRow};
use lakefold_api::Position;
use std::collections::hash_map::Entry;
use std::collections::HashMap;

/// One key's surviving change within a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct FoldEntry {
    pub record_key: String,
    pub partition_path: String,
    pub position: Position,
    pub change: RowChange,
}

/// Per-key last value of one route for the batch being built. The key lives once, as the map's key (the
/// stored entries' `record_key` is empty until `drain`); the map hashes with foldhash (keys are not
/// attacker-chosen in a way that matters here: a collision costs time, never correctness).
#[derive(Debug, Default)]
pub struct Fold {
    entries: HashMap<String, FoldEntry, foldhash::fast::RandomState>,
}

impl Fold {
    /// Keeps `entry` if it is newer (greater source position) than what the key holds.
    pub fn add(&mut self, mut entry: FoldEntry) {
        let key = std::mem::take(&mut entry.record_key);
        match self.entries.entry(key) {
            Entry::Occupied(mut existing) => {
                if existing.get().position < entry.position {
                    existing.insert(entry);
                }
            }
            Entry::Vacant(slot) => {
                slot.insert(entry);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Takes the folded rows (sorted by key for deterministic files) as rows for the sink.
    pub fn drain(&mut self) -> Vec<StagedRow> {
        let mut rows: Vec<StagedRow> = self
            .entries
            .drain()
            .map(|(record_key, e)| StagedRow {
                record_key,
                partition_path: e.partition_path,
                position: e.position.order_key(),
                change: e.change,
            })
            .collect();
        rows.sort_by(|a, b| a.record_key.cmp(&b.record_key));
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lakefold_api::{LsnPosition, StreamPosition, Value};

    fn entry(key: &str, lsn: u128, line: u64, name: &str) -> FoldEntry {
        FoldEntry {
            record_key: key.into(),
            partition_path: String::new(),
            position: Position {
                lsn: Some(LsnPosition {
                    commit_lsn: lakefold_api::Lsn(lsn),
                    change_lsn: None,
                    event_serial_no: None,
                }),
                stream: StreamPosition::Line {
                    line,
                    end_offset: 0,
                },
            },
            change: RowChange::Upsert(vec![Value::String(name.into())]),
        }
    }

    #[test]
    fn the_greatest_position_wins_not_the_last_arrival() {
        let mut fold = Fold::default();
        fold.add(entry("7", 200, 1, "renamed"));
        fold.add(entry("7", 100, 2, "original"));
        fold.add(entry("8", 100, 3, "other"));
        let rows = fold.drain();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            rows[0].change,
            RowChange::Upsert(vec![Value::String("renamed".into())])
        );
    }

    #[test]
    fn a_redelivered_duplicate_changes_nothing() {
        let mut fold = Fold::default();
        fold.add(entry("7", 100, 1, "a"));
        fold.add(entry("7", 100, 1, "a"));
        assert_eq!(fold.len(), 1);
        assert_eq!(
            fold.drain()[0].position.ends_with("L00000000000000000001"),
            true
        );
    }
}
