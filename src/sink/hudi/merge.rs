//! The copy-on-write merge of one file group, streamed: the old base file is decoded a batch at a time,
//! each batch's rows kept, replaced in place (newest position wins) or dropped, and written straight into
//! the new file; updates whose key the file did not hold and inserts go at the end. Memory is one decoded
//! batch plus the encoded file, whatever the file's size. Synchronous CPU work: run it on the blocking pool.

use super::bloom::{DynamicBloomFilter, BLOOM_FILTER_KEY, BLOOM_TYPE_CODE_KEY, DYNAMIC_V0};
use super::column_writer::ParallelWriter;
use super::error::HudiError;
use super::index::{footer_keys, FileKeys, MAX_KEY, MIN_KEY};
use super::splice::OldFile;
use crate::schema::POSITION_COLUMN;
use arrow::array::{
    new_null_array, Array, ArrayRef, AsArray, RecordBatch, StringArray, StringBuilder,
};
use arrow::compute::{cast, interleave_record_batch};
use arrow::datatypes::SchemaRef;
use bytes::Bytes;
use lakefold_api::compare_order_keys;
use object_store::path::Path;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use parquet::file::metadata::{KeyValue, PageIndexPolicy};
use std::collections::HashMap;
use std::sync::Arc;

/// Rows decoded from the old file at a time.
pub(super) const BATCH_ROWS: usize = 8192;

/// What happens to a stored key.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyChange {
    /// Replace the stored row with row `new` of [`Merge::new_rows`] (if `position` is not older).
    Update { new: usize, position: String },
    /// Drop the stored row (if `position` is not older).
    Delete { position: String },
    /// The key moved to another partition (already checked against the stored position): drop it here.
    MovedOut,
}

/// Hashing for the per-row key lookups.
pub type KeyMap<V> = HashMap<String, V, foldhash::fast::RandomState>;

/// One file group's merge.
pub struct Merge {
    pub table: String,
    /// The new file (for errors).
    pub path: Path,
    /// The old base file: its path and bytes.
    pub old: Option<(Path, Bytes)>,
    pub file_schema: SchemaRef,
    /// The incoming rows of this group in the file schema (sequence numbers are filled in here).
    pub new_rows: RecordBatch,
    pub changes: KeyMap<KeyChange>,
    /// Rows of `new_rows` appended after the old rows, in order.
    pub inserts: Vec<usize>,
    /// `_hoodie_commit_seqno` prefix (`<instant>_<task>`) and the new file's name.
    pub seqno_prefix: String,
    pub file_name: String,
    pub writer: parquet::arrow::arrow_writer::ArrowWriterOptions,
    /// The Avro schema Hudi puts in the footer.
    pub avro: String,
    /// Threads that encode the new file's columns.
    pub threads: usize,
}

/// What the merge wrote.
#[derive(Debug, Default)]
pub struct Merged {
    pub bytes: Vec<u8>,
    pub rows: u64,
    pub updates: u64,
    pub deletes: u64,
    pub inserts: u64,
    /// Incoming rows older than the stored row, not applied.
    pub stale: u64,
    pub keys: FileKeys,
}

/// The footer facts, gathered as rows are written.
pub(super) struct KeyStats {
    min: Option<String>,
    max: Option<String>,
    bloom: DynamicBloomFilter,
}

impl KeyStats {
    fn empty() -> Self {
        KeyStats {
            min: None,
            max: None,
            bloom: DynamicBloomFilter::with_defaults(),
        }
    }

    /// The key range and dynamic bloom filter of an old file's footer ([`footer_keys`]; `None` if one is
    /// missing or the filter is of another kind): with the appended keys added, it holds the same keys as
    /// a filter built afresh.
    fn from_footer(
        meta: &parquet::file::metadata::FileMetaData,
        merge: &Merge,
        old: &Path,
    ) -> Option<Self> {
        let kvs = meta.key_value_metadata()?;
        let type_code = kvs.iter().find(|kv| kv.key == BLOOM_TYPE_CODE_KEY)?;
        if type_code.value.as_deref() != Some(DYNAMIC_V0) {
            return None;
        }
        let keys = footer_keys(meta, &merge.table, old);
        let ((min, max), bloom) = (keys.range?, keys.bloom?);
        Some(KeyStats {
            min: Some(min),
            max: Some(max),
            bloom,
        })
    }

    pub(super) fn add(&mut self, key: &str) {
        if self.min.as_deref().is_none_or(|m| key < m) {
            self.min = Some(key.to_string());
        }
        if self.max.as_deref().is_none_or(|m| key > m) {
            self.max = Some(key.to_string());
        }
        self.bloom.add(key);
    }
}

impl Merge {
    pub(super) fn parquet(
        &self,
        path: &Path,
    ) -> impl Fn(parquet::errors::ParquetError) -> HudiError + '_ {
        let path = path.to_string();
        move |source| HudiError::Parquet {
            table: self.table.clone(),
            path: path.clone(),
            source,
        }
    }

    pub(super) fn arrow(
        &self,
        context: &'static str,
    ) -> impl Fn(arrow::error::ArrowError) -> HudiError + '_ {
        move |source| HudiError::Arrow {
            table: self.table.clone(),
            context: format!("{context} {}", self.path),
            source,
        }
    }

    /// Runs the merge and encodes the new file with Spark Hudi's footer.
    pub fn run(mut self) -> Result<Merged, HudiError> {
        let writer_options = std::mem::take(&mut self.writer);
        let mut writer =
            ParallelWriter::new(self.file_schema.clone(), writer_options, self.threads)
                .map_err(self.parquet(&self.path))?;
        let mut out = Merged::default();
        let mut stats = KeyStats::empty();
        let mut applied: KeyMap<()> = KeyMap::default();
        if let Some((old_path, bytes)) = self.old.take() {
            let options =
                ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional);
            let meta =
                ArrowReaderMetadata::load(&bytes, options).map_err(self.parquet(&old_path))?;
            let builder =
                ParquetRecordBatchReaderBuilder::new_with_metadata(bytes.clone(), meta.clone())
                    .with_batch_size(BATCH_ROWS);
            // When no stored row can leave the file, its keys stay in place: the new footer is the old
            // one plus the appended keys, so the old rows' keys need not be hashed again.
            let seeded = self
                .keeps_every_stored_key()
                .then(|| {
                    KeyStats::from_footer(builder.metadata().file_metadata(), &self, &old_path)
                })
                .flatten();
            let track_old_keys = seeded.is_none();
            if let Some(seed) = seeded {
                stats = seed;
            }
            if self.can_splice(&builder, &writer) {
                let old = OldFile {
                    path: &old_path,
                    bytes: &bytes,
                    meta,
                };
                let keys = track_old_keys.then_some(&mut stats);
                self.rewrite_in_place(&mut writer, &old, keys, &mut applied, &mut out)?;
            } else {
                let reader = builder.build().map_err(self.parquet(&old_path))?;
                for batch in reader {
                    let batch = batch.map_err(self.arrow("reading the old file of"))?;
                    let keys = track_old_keys.then_some(&mut stats);
                    self.merge_old_batch(&mut writer, &batch, keys, &mut applied, &mut out)?;
                }
            }
        }
        // Updates of keys the file did not hold (the index admitted the file, the key was new): inserts.
        let mut tail: Vec<usize> = self
            .changes
            .iter()
            .filter(|(k, _)| !applied.contains_key(k.as_str()))
            .filter_map(|(_, c)| match c {
                KeyChange::Update { new, .. } => Some(*new),
                _ => None,
            })
            .collect();
        tail.sort_unstable();
        tail.extend(self.inserts.iter().copied());
        out.inserts = tail.len() as u64;
        let empty = RecordBatch::new_empty(self.file_schema.clone());
        for chunk in tail.chunks(BATCH_ROWS) {
            let picks: Vec<(usize, usize)> = chunk.iter().map(|&j| (1, j)).collect();
            self.write(&mut writer, &empty, &picks, Some(&mut stats), &mut out)?;
        }
        self.finish(writer, stats, out)
    }

    /// Merges a batch of the old file's rows into the new file, row by row.
    pub(super) fn merge_old_batch(
        &self,
        writer: &mut ParallelWriter,
        batch: &RecordBatch,
        keys: Option<&mut KeyStats>,
        applied: &mut KeyMap<()>,
        out: &mut Merged,
    ) -> Result<(), HudiError> {
        let batch = align(batch, &self.file_schema).map_err(self.arrow("aligning"))?;
        let Some(record_keys) = batch.column(2).as_string_opt::<i32>() else {
            return Err(HudiError::Data {
                table: self.table.clone(),
                message: format!(
                    "rewriting {}: the old file's record keys are not text",
                    self.path
                ),
            });
        };
        let positions = batch
            .column_by_name(POSITION_COLUMN)
            .and_then(|c| c.as_string_opt::<i32>());
        let picks = self.pick(record_keys, positions, applied, out);
        self.write(writer, &batch, &picks, keys, out)
    }

    /// True when no change drops a stored row (no delete, no key moving to another partition).
    pub(super) fn keeps_every_stored_key(&self) -> bool {
        self.changes
            .values()
            .all(|c| matches!(c, KeyChange::Update { .. }))
    }

    /// The output rows of one old batch: `(0, r)` keeps old row `r`, `(1, j)` takes new row `j`.
    pub(super) fn pick(
        &self,
        keys: &StringArray,
        positions: Option<&StringArray>,
        applied: &mut KeyMap<()>,
        out: &mut Merged,
    ) -> Vec<(usize, usize)> {
        let mut picks = Vec::with_capacity(keys.len());
        for r in 0..keys.len() {
            let key = keys.value(r);
            let Some(change) = self.changes.get(key) else {
                picks.push((0, r));
                continue;
            };
            applied.insert(key.to_string(), ());
            let stored = positions
                .filter(|p| p.is_valid(r))
                .map_or("", |p| p.value(r));
            match change {
                KeyChange::Update { position, .. } | KeyChange::Delete { position }
                    if compare_order_keys(stored, position) == std::cmp::Ordering::Greater =>
                {
                    out.stale += 1;
                    picks.push((0, r));
                }
                KeyChange::Update { new, .. } => {
                    out.updates += 1;
                    picks.push((1, *new));
                }
                // A key moving to another partition is a delete here (as Hudi's global index counts it).
                KeyChange::Delete { .. } | KeyChange::MovedOut => out.deletes += 1,
            }
        }
        picks
    }

    /// Writes the picked rows with this file's sequence numbers and name.
    fn write(
        &self,
        writer: &mut ParallelWriter,
        old: &RecordBatch,
        picks: &[(usize, usize)],
        stats: Option<&mut KeyStats>,
        out: &mut Merged,
    ) -> Result<(), HudiError> {
        if picks.is_empty() {
            return Ok(());
        }
        let merged = interleave_record_batch(&[old, &self.new_rows], picks)
            .map_err(self.arrow("merging rows of"))?;
        let mut cols = merged.columns().to_vec();
        cols[1] = self.seqnos(old.column(1).as_string::<i32>(), picks, out.rows as usize);
        cols[4] = self.file_names(picks.len());
        let batch = RecordBatch::try_new(self.file_schema.clone(), cols)
            .map_err(self.arrow("setting the meta columns of"))?;
        if let Some(stats) = stats {
            for key in batch.column(2).as_string::<i32>().iter().flatten() {
                stats.add(key);
            }
        }
        writer.write(&batch).map_err(self.parquet(&self.path))?;
        out.rows += picks.len() as u64;
        Ok(())
    }

    /// `_hoodie_commit_seqno` of picked rows: a kept row keeps its own, a new row gets this commit's
    /// `<prefix>_<row in the new file>` (`first`: the new file's row of the first pick).
    pub(super) fn seqnos(
        &self,
        old_seqno: &StringArray,
        picks: &[(usize, usize)],
        first: usize,
    ) -> ArrayRef {
        let mut seqno = StringBuilder::with_capacity(picks.len(), picks.len() * 24);
        let mut text = String::new();
        for (i, &(src, r)) in picks.iter().enumerate() {
            match src {
                0 if old_seqno.is_valid(r) => seqno.append_value(old_seqno.value(r)),
                0 => seqno.append_null(),
                _ => {
                    use std::fmt::Write;
                    text.clear();
                    let _ = write!(text, "{}_{}", self.seqno_prefix, first + i);
                    seqno.append_value(&text);
                }
            }
        }
        Arc::new(seqno.finish())
    }

    /// `_hoodie_file_name` of `rows` rows: every row names the new file.
    pub(super) fn file_names(&self, rows: usize) -> ArrayRef {
        Arc::new(StringArray::from(vec![self.file_name.as_str(); rows]))
    }

    /// Appends Spark Hudi's footer, in its order, and closes the file.
    fn finish(
        &self,
        mut writer: ParallelWriter,
        stats: KeyStats,
        mut out: Merged,
    ) -> Result<Merged, HudiError> {
        let (min, max) = (stats.min.unwrap_or_default(), stats.max.unwrap_or_default());
        let footer = [
            (MIN_KEY, min.clone()),
            (BLOOM_FILTER_KEY, stats.bloom.serialize()),
            (MAX_KEY, max.clone()),
            (BLOOM_TYPE_CODE_KEY, DYNAMIC_V0.to_string()),
            ("writer.model.name", "avro".to_string()),
            ("parquet.avro.schema", self.avro.clone()),
        ];
        for (k, v) in footer {
            writer.append_key_value_metadata(KeyValue::new(k.to_string(), v));
        }
        out.bytes = writer.into_inner().map_err(self.parquet(&self.path))?;
        out.keys = FileKeys {
            range: (out.rows > 0).then_some((min, max)),
            bloom: Some(stats.bloom),
        };
        Ok(out)
    }
}

/// Casts/fills an old file's batch to the current file schema (columns added later read as null).
fn align(batch: &RecordBatch, target: &SchemaRef) -> Result<RecordBatch, arrow::error::ArrowError> {
    if batch.schema() == *target {
        return Ok(batch.clone());
    }
    let columns = target
        .fields()
        .iter()
        .map(|f| match batch.column_by_name(f.name()) {
            Some(c) if c.data_type() == f.data_type() => Ok(c.clone()),
            Some(c) => cast(c, f.data_type()),
            None => Ok(new_null_array(f.data_type(), batch.num_rows())),
        })
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new(target.clone(), columns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{DataType, Field, Schema};

    fn schema() -> SchemaRef {
        let mut fields: Vec<Field> = super::super::avro_schema::META_COLUMNS
            .iter()
            .map(|m| Field::new(*m, DataType::Utf8, true))
            .collect();
        fields.push(Field::new("v", DataType::Utf8, true));
        fields.push(Field::new(POSITION_COLUMN, DataType::Utf8, true));
        Arc::new(Schema::new(fields))
    }

    /// Rows `(key, value, position)` as a batch of the test schema.
    fn batch(rows: &[(String, String, String)], seqno: &str) -> RecordBatch {
        let col = |f: &dyn Fn(usize) -> String| -> ArrayRef {
            Arc::new(StringArray::from_iter_values((0..rows.len()).map(f)))
        };
        RecordBatch::try_new(
            schema(),
            vec![
                col(&|_| "001".to_string()),
                col(&|i| format!("{seqno}_{i}")),
                col(&|i| rows[i].0.clone()),
                col(&|_| String::new()),
                col(&|_| "old.parquet".to_string()),
                col(&|i| rows[i].1.clone()),
                col(&|i| rows[i].2.clone()),
            ],
        )
        .unwrap()
    }

    fn encode(batch: &RecordBatch) -> Bytes {
        let mut w = parquet::arrow::ArrowWriter::try_new(Vec::new(), schema(), None).unwrap();
        w.write(batch).unwrap();
        Bytes::from(w.into_inner().unwrap())
    }

    fn read(bytes: Vec<u8>) -> Vec<(String, String, String, String)> {
        let reader = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(bytes))
            .unwrap()
            .build()
            .unwrap();
        let mut out = Vec::new();
        for b in reader {
            let b = b.unwrap();
            let s = |c: usize, r: usize| b.column(c).as_string::<i32>().value(r).to_string();
            for r in 0..b.num_rows() {
                assert_eq!(s(4, r), "new.parquet", "every row names the new file");
                out.push((s(2, r), s(5, r), s(6, r), s(1, r)));
            }
        }
        out
    }

    #[test]
    fn a_streamed_merge_keeps_order_applies_newest_positions_and_appends_inserts() {
        // 20,000 stored rows: more than two decoded batches.
        let stored: Vec<_> = (0..20_000)
            .map(|i| (format!("k{i:05}"), format!("v{i}"), "p5".to_string()))
            .collect();
        let incoming = [
            ("k00003", "updated", "p6"),
            ("k12000", "updated", "p6"),
            ("k19999", "too old", "p4"),
            ("kNEW01", "inserted by update", "p6"),
            ("kNEW02", "inserted", "p6"),
        ];
        let new_rows = batch(
            &incoming
                .iter()
                .map(|(k, v, p)| (k.to_string(), v.to_string(), p.to_string()))
                .collect::<Vec<_>>(),
            "",
        );
        let mut changes = KeyMap::default();
        for (j, (k, _, p)) in incoming.iter().take(4).enumerate() {
            let position = p.to_string();
            changes.insert(k.to_string(), KeyChange::Update { new: j, position });
        }
        changes.insert(
            "k00007".into(),
            KeyChange::Delete {
                position: "p6".into(),
            },
        );
        changes.insert("k00008".into(), KeyChange::MovedOut);
        let merge = Merge {
            table: "t".into(),
            path: Path::from("t/new.parquet"),
            old: Some((Path::from("t/old.parquet"), encode(&batch(&stored, "old")))),
            file_schema: schema(),
            new_rows,
            changes,
            inserts: vec![4],
            seqno_prefix: "002_0".into(),
            file_name: "new.parquet".into(),
            writer: Default::default(),
            avro: "{}".into(),
            threads: 2,
        };
        let merged = merge.run().unwrap();
        assert_eq!(
            (merged.updates, merged.deletes, merged.inserts, merged.stale),
            (2, 2, 2, 1)
        );
        let rows = read(merged.bytes);
        assert_eq!(rows.len(), 20_000 - 2 + 2);
        assert_eq!(merged.rows, rows.len() as u64);
        assert_eq!(rows[3].1, "updated");
        assert_eq!(
            rows[3].3, "002_0_3",
            "a replaced row gets this commit's seqno at its place"
        );
        assert_eq!(rows[2].3, "old_2", "kept rows keep their seqno");
        assert!(!rows.iter().any(|r| r.0 == "k00007" || r.0 == "k00008"));
        let at = |k: &str| rows.iter().find(|r| r.0 == k).unwrap().clone();
        assert_eq!(at("k12000").1, "updated");
        assert_eq!(
            at("k19999").1,
            "v19999",
            "an older position does not overwrite"
        );
        let tail: Vec<_> = rows[rows.len() - 2..]
            .iter()
            .map(|r| r.0.as_str())
            .collect();
        assert_eq!(tail, ["kNEW01", "kNEW02"]);
        let keys = merged.keys;
        assert_eq!(keys.range, Some(("k00000".into(), "kNEW02".into())));
        assert!(keys.may_contain("k12000") && keys.may_contain("kNEW02"));
        assert!(
            !keys.may_contain("k00007"),
            "a deleted key leaves the filter"
        );
    }
}
