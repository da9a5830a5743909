//! The keyed last-value fold: project each change event through a route (columns, types, key, partition)
//! and keep, per record key, the image at the greatest source position.

mod project;
mod route;

pub use project::{project, undecided_columns, Projected};
pub use route::{RouteSpec, HIVE_DEFAULT_PARTITION};

use crate::sink::{RowChange, StagedRow};
use lakefold_api::{ChangeEvent, Position, Value};
use project::Scratch;
use std::collections::hash_map::Entry;
use std::collections::HashMap;

/// One key's surviving change within a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct FoldEntry {
    pub record_key: String,
    pub partition_path: String,
    pub position: Position,
    /// Where the position column's text goes in an upsert's values (filled in by [`Fold::drain`]).
    pub position_slot: Option<usize>,
    pub change: RowChange,
    /// What the fold counted for this entry when it took it ([`FoldEntry::held_bytes`]; 0 outside a
    /// fold), so replacing it does not walk its old values again.
    pub held: usize,
}

impl FoldEntry {
    /// What the fold holds for this entry, in bytes: the entry, its key, partition and values, the
    /// position text it will carry when drained, and the map's slot overhead.
    fn held_bytes(&self, key_len: usize) -> usize {
        const ORDER_KEY: usize = 112;
        let values = self.change.held_bytes();
        let slot = std::mem::size_of::<(String, FoldEntry)>() * 8 / 7 + 1;
        slot + key_len + self.partition_path.len() + values + ORDER_KEY
    }
}

/// Per-key last value of one route for the batch being built. The key lives once, as the map's key (the
/// stored entries' `record_key` is empty until `drain`); the maps hash with foldhash (keys are not
/// attacker-chosen in a way that matters here: a collision costs time, never correctness).
#[derive(Debug, Default)]
pub struct Fold {
    entries: HashMap<String, FoldEntry, foldhash::fast::RandomState>,
    /// Entries whose record key is one integer column, by its value (its text, the record key, is written
    /// when drained): no text built, hashed or compared per event.
    ints: HashMap<i64, FoldEntry, foldhash::fast::RandomState>,
    /// What the entries hold ([`FoldEntry::held_bytes`]), for `[commit] max_bytes`.
    bytes: usize,
    /// [`Fold::fold_event`]'s buffers.
    scratch: Scratch,
}

impl Fold {
    /// Keeps `entry` if it is newer (greater source position) than what the key holds.
    pub fn add(&mut self, mut entry: FoldEntry) {
        let key = std::mem::take(&mut entry.record_key);
        match self.entries.entry(key) {
            Entry::Occupied(mut existing) => {
                if existing.get().position < entry.position {
                    entry.held = entry.held_bytes(existing.key().len());
                    let added = entry.held;
                    let old = existing.insert(entry);
                    self.bytes = (self.bytes + added).saturating_sub(old.held);
                }
            }
            Entry::Vacant(slot) => {
                entry.held = entry.held_bytes(slot.key().len());
                self.bytes += entry.held;
                slot.insert(entry);
            }
        }
    }

    /// [`project`] then [`Fold::add`], in place: the key is looked up by its integer value, or by its
    /// text built in a reused buffer, and a newer image replaces the values of its key's entry, whose
    /// strings are reused for the next event. `Ok(false)` when the route ignores the event. An older
    /// image than the key's is still projected (a record that does not fit the route is reported
    /// whatever its position), then dropped.
    pub fn fold_event(
        &mut self,
        route: &mut RouteSpec,
        event: &ChangeEvent,
        position: &Position,
    ) -> Result<bool, String> {
        let mut scratch = std::mem::take(&mut self.scratch);
        let folded = project::project_parts(route, event, &mut scratch).map(|parts| {
            if let Some(is_delete) = parts {
                self.keep(route, is_delete, position, &mut scratch);
            }
            parts.is_some()
        });
        self.scratch = scratch;
        folded
    }

    /// Keeps the projected image in `scratch` if it is newer than what its key holds.
    fn keep(
        &mut self,
        route: &RouteSpec,
        is_delete: bool,
        position: &Position,
        scratch: &mut Scratch,
    ) {
        let values = std::mem::take(&mut scratch.values);
        let (existing, key_len) = match scratch.int_key {
            Some(k) => (self.ints.get_mut(&k), decimal_len(k)),
            None => (
                self.entries.get_mut(scratch.key.as_str()),
                scratch.key.len(),
            ),
        };
        match existing {
            Some(existing) if existing.position >= *position => scratch.values = values,
            Some(existing) => {
                let held = existing.held;
                let (change, slot) = project::change_of(route, is_delete, values);
                if let RowChange::Upsert(old) = std::mem::replace(&mut existing.change, change) {
                    // The next event's values are written into these (long out of the cache): asked
                    // for now, they arrive while the other routes and records are folded.
                    prefetch(&old);
                    scratch.values = old;
                }
                existing.position.clone_from(position);
                existing.position_slot = slot;
                // (Most routes have no partition: two empty paths are not compared.)
                let same_partition = existing.partition_path.is_empty()
                    && scratch.partition.is_empty()
                    || existing.partition_path == scratch.partition;
                if !same_partition {
                    existing.partition_path.clone_from(&scratch.partition);
                }
                existing.held = existing.held_bytes(key_len);
                self.bytes = (self.bytes + existing.held).saturating_sub(held);
            }
            None => {
                let (change, position_slot) = project::change_of(route, is_delete, values);
                let mut entry = FoldEntry {
                    record_key: String::new(),
                    partition_path: scratch.partition.clone(),
                    position: position.clone(),
                    position_slot,
                    change,
                    held: 0,
                };
                entry.held = entry.held_bytes(key_len);
                self.bytes += entry.held;
                match scratch.int_key {
                    Some(k) => self.ints.insert(k, entry),
                    None => self.entries.insert(scratch.key.clone(), entry),
                };
            }
        }
    }

    /// [`Fold::bytes`] counted again from the entries.
    #[cfg(test)]
    pub(crate) fn recount(&self) -> usize {
        let texts = self.entries.iter().map(|(k, e)| e.held_bytes(k.len()));
        let ints = self.ints.iter().map(|(k, e)| e.held_bytes(decimal_len(*k)));
        texts.chain(ints).sum()
    }

    /// Bytes the fold holds now.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn len(&self) -> usize {
        self.entries.len() + self.ints.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.ints.is_empty()
    }

    /// Takes the folded rows (sorted by key for deterministic files) as rows for the sink.
    pub fn drain(&mut self) -> Vec<StagedRow> {
        if !self.entries.is_empty() {
            // A key folded both as an integer and as text (a column whose type was still undecided):
            // one entry, the newer, as `add` keeps it.
            for (k, mut e) in std::mem::take(&mut self.ints) {
                e.record_key = k.to_string();
                self.add(e);
            }
        }
        // Taken whole, so the maps' tables are freed now rather than held through the commit.
        let entries = std::mem::take(&mut self.entries);
        let ints = std::mem::take(&mut self.ints);
        self.bytes = 0;
        if entries.is_empty() {
            // Integer keys sorted by the order of their texts (the record keys), without the texts; the
            // entries stay put while their order is sorted.
            let mut slots: Vec<Option<(i64, FoldEntry)>> = ints.into_iter().map(Some).collect();
            let mut order: Vec<(u128, usize)> = slots
                .iter()
                .enumerate()
                .filter_map(|(i, slot)| slot.as_ref().map(|(k, _)| (text_order(*k), i)))
                .collect();
            order.sort_unstable();
            return order
                .into_iter()
                .filter_map(|(_, i)| slots[i].take())
                .map(|(k, e)| staged(k.to_string(), e))
                .collect();
        }
        let mut rows: Vec<StagedRow> = entries.into_iter().map(|(k, e)| staged(k, e)).collect();
        // Keys are unique: the unstable sort gives the one order, with less work than a stable one.
        rows.sort_unstable_by(|a, b| a.record_key.cmp(&b.record_key));
        rows
    }
}

/// A drained entry as the row the table commits, its position text in the position column.
fn staged(record_key: String, mut e: FoldEntry) -> StagedRow {
    let position = e.position.order_key();
    if let (RowChange::Upsert(values), Some(slot)) = (&mut e.change, e.position_slot) {
        if let Some(v) = values.get_mut(slot) {
            *v = Value::String(position.clone());
        }
    }
    StagedRow {
        record_key,
        partition_path: e.partition_path,
        position,
        change: e.change,
    }
}

/// A key whose order is that of `k`'s decimal text: `-` sorts before the digits (the top bit), then the
/// digits compare left-aligned, then the shorter text first (`1` before `10`, its prefix being equal).
fn text_order(k: i64) -> u128 {
    let magnitude = k.unsigned_abs();
    let digits = digits_of(magnitude);
    let aligned = u128::from(magnitude) * 10u128.pow((20 - digits) as u32);
    (u128::from(k >= 0) << 127) | (aligned << 5) | digits as u128
}

/// Asks the CPU to bring `values` into its cache (a hint: nothing is read or written).
fn prefetch(values: &[Value]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let start = values.as_ptr().cast::<i8>();
        for offset in (0..std::mem::size_of_val(values)).step_by(64) {
            // SAFETY: a prefetch never faults or changes memory; the addresses lie within `values`.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(start.wrapping_add(offset)) }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = values;
}

/// The number of decimal digits of `m`.
fn digits_of(m: u64) -> usize {
    m.checked_ilog10().map_or(1, |d| d as usize + 1)
}

/// The length of `k`'s decimal text.
fn decimal_len(k: i64) -> usize {
    digits_of(k.unsigned_abs()) + usize::from(k < 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lakefold_api::{LsnPosition, StreamPosition};

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
            position_slot: None,
            change: RowChange::Upsert(vec![Value::String(name.into())]),
            held: 0,
        }
    }

    #[test]
    fn integer_keys_sort_as_their_texts_do() {
        let mut keys: Vec<i64> = vec![
            0,
            1,
            9,
            10,
            100,
            101,
            19,
            2,
            -1,
            -10,
            -2,
            -100,
            i64::MAX,
            i64::MIN,
            i64::MIN + 1,
            1_000_000_000_000_000_000,
            999_999_999_999_999_999,
        ];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..2000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            keys.push((x as i64) >> (x % 60));
        }
        let mut by_text = keys.clone();
        by_text.sort_by_key(|k| k.to_string());
        keys.sort_by_key(|k| text_order(*k));
        assert_eq!(keys, by_text);
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
        assert!(fold.drain()[0].position.ends_with("Lb1"), "line 1");
    }

    #[test]
    fn a_key_folded_as_an_integer_and_as_text_drains_once_the_newer() {
        use crate::config::{ByteSize, Columns, Compression, OnDelete, RouteConfig};
        let cfg = RouteConfig {
            table: "t".into(),
            source: "s".into(),
            from: "dbo.T".into(),
            key: vec!["k".into()],
            columns: Columns::List(vec!["k".into(), "v".into()]),
            types: indexmap::IndexMap::new(),
            on_delete: OnDelete::Delete,
            partition_by: vec![],
            compression: Some(Compression::Snappy),
            format: None,
            max_file_size: ByteSize(1 << 27),
            small_file_limit: ByteSize(1 << 26),
            clean_retain_commits: 10,
            clean_min_age: crate::config::DurationText(std::time::Duration::ZERO),
        };
        let mut route = RouteSpec::new(&cfg, None);
        let event = |k: i64, v: &str| ChangeEvent {
            table: None,
            op: lakefold_api::Op::Create,
            before: None,
            after: Some(lakefold_api::Row {
                fields: std::sync::Arc::new(
                    ["k", "v"]
                        .iter()
                        .map(|n| lakefold_api::Field {
                            name: n.to_string(),
                            ty: None,
                        })
                        .collect(),
                ),
                values: vec![Value::Bigint(k), Value::String(v.into())],
            }),
            source_ts_ms: None,
        };
        let mut fold = Fold::default();
        fold.add(entry("-5", 100, 1, "text, older"));
        fold.add(entry("6", 300, 3, "text, newer"));
        let at = |lsn, line| entry("", lsn, line, "").position;
        assert_eq!(
            fold.fold_event(&mut route, &event(-5, "int, newer"), &at(200, 2)),
            Ok(true)
        );
        assert_eq!(
            fold.fold_event(&mut route, &event(6, "int, older"), &at(200, 2)),
            Ok(true)
        );
        assert_eq!(
            fold.fold_event(&mut route, &event(70, "int only"), &at(200, 2)),
            Ok(true)
        );
        assert_eq!(fold.bytes(), fold.recount());
        let rows = fold.drain();
        let got: Vec<(&str, &Value)> = rows
            .iter()
            .map(|r| match &r.change {
                // `entry`'s rows hold the name alone; the routed ones key, name and position.
                RowChange::Upsert(v) => (r.record_key.as_str(), v.get(1).unwrap_or(&v[0])),
                RowChange::Delete => panic!("no delete here"),
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("-5", &Value::String("int, newer".into())),
                ("6", &Value::String("text, newer".into())),
                ("70", &Value::String("int only".into())),
            ]
        );
        assert!(fold.is_empty());
        assert_eq!(
            (decimal_len(0), decimal_len(-10), decimal_len(i64::MIN)),
            (1, 3, 20)
        );
    }
}
