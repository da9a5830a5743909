//! Planning an upsert into a Delta table: the live files and their key ranges, where each staged key is
//! stored (in any partition: a key whose partition value changes moves, as with Hudi's global index), and
//! what happens to each file (rows replaced or dropped, new keys appended) and partition (new files).

use super::error::DeltaError;
use super::files::{self};
use super::table::DeltaSinkTable;
use crate::fold::HIVE_DEFAULT_PARTITION;
use crate::schema::{coerce, TableSchema};
use crate::sink::{CommitSummary, RowChange, StagedRow, TableLayout};
use arrow::array::{Array, ArrayRef, RecordBatch};
use deltalake::kernel::{LogicalFileView, Remove};
use object_store::path::Path;
use std::collections::{BTreeMap, HashMap, HashSet};

/// A live file of the table.
pub(super) struct LiveFile {
    pub(super) path: Path,
    pub(super) remove: Remove,
    pub(super) size: u64,
    pub(super) rows: u64,
    /// The min and max of the record key column (one-column keys, from the file's statistics).
    pub(super) key_range: Option<(serde_json::Value, serde_json::Value)>,
}

impl LiveFile {
    /// False only when the file's key range excludes `key` (a file without a range may hold any key).
    pub(super) fn may_hold(&self, key: &str) -> bool {
        use serde_json::Value as J;
        match &self.key_range {
            Some((J::Number(lo), J::Number(hi))) => {
                match (key.parse::<i64>(), lo.as_i64(), hi.as_i64()) {
                    (Ok(k), Some(lo), Some(hi)) => lo <= k && k <= hi,
                    _ => true,
                }
            }
            Some((J::String(lo), J::String(hi))) => lo.as_str() <= key && key <= hi.as_str(),
            _ => true,
        }
    }
}

/// Staged keys, as a stored row's key columns are matched against them.
pub(super) enum KeyLookup<'k> {
    /// One key column: by integer value (for integer columns), and by text.
    Integers(
        HashMap<i64, &'k str, foldhash::fast::RandomState>,
        HashSet<&'k str>,
    ),
    Texts(HashSet<&'k str>),
}

impl<'k> KeyLookup<'k> {
    pub(super) fn texts(&self) -> &HashSet<&'k str> {
        match self {
            KeyLookup::Integers(_, t) | KeyLookup::Texts(t) => t,
        }
    }

    pub(super) fn may_be_in(&self, file: &LiveFile) -> bool {
        self.texts().iter().any(|k| file.may_hold(k))
    }
}

/// Where a key is stored.
pub(super) struct StoredKey {
    pub(super) partition: String,
    /// Its file's index among the partition's live files.
    pub(super) file: usize,
    pub(super) position: String,
}

/// What happens to one live file.
#[derive(Default)]
pub(super) struct FileWork {
    /// Keys the file holds that change: replaced by this staged row, or dropped (`None`: deleted, or
    /// moved to another partition).
    pub(super) changes: HashMap<String, Option<usize>>,
    /// Staged rows appended (new keys).
    pub(super) inserts: Vec<usize>,
}

/// Where a key column's values come from in a data file.
pub(super) enum KeySource {
    Column(ArrayRef),
    /// A partition column: one value for the whole file.
    Partition(String),
}

/// The plan of one partition.
#[derive(Default)]
pub(super) struct PartitionPlan {
    pub(super) rewrites: BTreeMap<usize, FileWork>,
    pub(super) new_rows: Vec<usize>,
}

impl DeltaSinkTable {
    /// The live files by partition text (`col=value/…`, as the fold writes partition paths).
    pub(super) fn live_files(&self) -> HashMap<String, Vec<LiveFile>> {
        let mut out: HashMap<String, Vec<LiveFile>> = HashMap::new();
        let Ok(state) = self.table.snapshot() else {
            return out;
        };
        for view in state.log_data().iter() {
            let partition = partition_text(&self.partition_by, &view);
            let key_range = match self.key.as_slice() {
                [key] => key_range(view.stats().as_deref(), key),
                _ => None,
            };
            out.entry(partition).or_default().push(LiveFile {
                path: view.object_store_path(),
                remove: view.remove_action(true),
                size: view.size().max(0) as u64,
                rows: view.num_records().unwrap_or(0) as u64,
                key_range,
            });
        }
        out
    }

    /// Finds where each staged key is stored (in any partition: a key whose partition value changed
    /// moves, as with Hudi's global index) and decides each row's fate, by partition.
    pub(super) async fn plan(
        &self,
        schema: &TableSchema,
        rows: &[StagedRow],
        live: &HashMap<String, Vec<LiveFile>>,
        layout: TableLayout,
        summary: &mut CommitSummary,
    ) -> Result<BTreeMap<String, PartitionPlan>, DeltaError> {
        let wanted = self.lookup(rows.iter().map(|r| r.record_key.as_str()).collect());
        let stored = self.stored_keys(schema, live, &wanted).await?;
        let mut plans: BTreeMap<String, PartitionPlan> = BTreeMap::new();
        for (i, row) in rows.iter().enumerate() {
            let upsert = matches!(row.change, RowChange::Upsert(_));
            let Some(at) = stored.get(row.record_key.as_str()) else {
                if upsert {
                    summary.inserts += 1;
                    plan_of(&mut plans, &row.partition_path).new_rows.push(i);
                }
                continue;
            };
            if at.position.as_str() >= row.position.as_str() {
                summary.stale += 1;
                continue;
            }
            let in_place = upsert && at.partition == row.partition_path;
            let work = plan_of(&mut plans, &at.partition)
                .rewrites
                .entry(at.file)
                .or_default();
            work.changes
                .insert(row.record_key.clone(), in_place.then_some(i));
            match (upsert, in_place) {
                (false, _) => summary.deletes += 1,
                (true, true) => summary.updates += 1,
                (true, false) => {
                    summary.updates += 1;
                    plan_of(&mut plans, &row.partition_path).new_rows.push(i);
                }
            }
        }
        for (partition, plan) in plans.iter_mut() {
            let files: &[LiveFile] = live.get(partition).map_or(&[], |v| v.as_slice());
            fill_small_file(plan, files, layout.small_file_limit);
        }
        Ok(plans)
    }

    /// Where each wanted key is stored, among the live files whose key range admits it.
    pub(super) async fn stored_keys(
        &self,
        schema: &TableSchema,
        live: &HashMap<String, Vec<LiveFile>>,
        wanted: &KeyLookup<'_>,
    ) -> Result<HashMap<String, StoredKey>, DeltaError> {
        let mut found = HashMap::new();
        let mut columns: Vec<&str> = self.key.iter().map(String::as_str).collect();
        columns.push(crate::schema::POSITION_COLUMN);
        for (partition, files) in live {
            for (f, file) in files.iter().enumerate() {
                if !wanted.may_be_in(file) {
                    continue;
                }
                let batches =
                    files::read_file(&self.store, &self.name, &file.path, Some(&columns)).await?;
                for batch in batches {
                    let matched = self.matching_keys(schema, &batch, file, wanted)?;
                    let positions = text_column(&batch, crate::schema::POSITION_COLUMN);
                    for (r, key) in matched.into_iter().enumerate() {
                        if let Some(key) = key {
                            let position = positions.as_ref().map_or(String::new(), |p| p(r));
                            let at = StoredKey {
                                partition: partition.clone(),
                                file: f,
                                position,
                            };
                            found.insert(key.to_string(), at);
                        }
                    }
                }
            }
        }
        Ok(found)
    }

    /// For each row of `batch` (read from `file`), the key of `keys` it holds, if any.
    pub(super) fn matching_keys<'k>(
        &self,
        schema: &TableSchema,
        batch: &RecordBatch,
        file: &LiveFile,
        keys: &KeyLookup<'k>,
    ) -> Result<Vec<Option<&'k str>>, DeltaError> {
        if let (KeyLookup::Integers(by_value, _), [name]) = (keys, self.key.as_slice()) {
            if let Some(values) = batch.column_by_name(name).and_then(integers) {
                return Ok(values
                    .map(|v| v.and_then(|v| by_value.get(&v).copied()))
                    .collect());
            }
        }
        let texts = self.key_texts(schema, batch, file)?;
        Ok(texts
            .iter()
            .map(|t| keys.texts().get(t.as_str()).copied())
            .collect())
    }

    /// A lookup of `keys`: by value as well when the key is one column (its stored values may be
    /// integers, matched without building their texts).
    pub(super) fn lookup<'k>(&self, keys: HashSet<&'k str>) -> KeyLookup<'k> {
        match self.key.len() {
            1 => {
                let by_value = keys
                    .iter()
                    .filter_map(|k| k.parse::<i64>().ok().map(|v| (v, *k)))
                    .collect();
                KeyLookup::Integers(by_value, keys)
            }
            _ => KeyLookup::Texts(keys),
        }
    }

    /// The record key text of each row of `batch` (read from `file`), as the fold writes it (the bare
    /// value of one key column, `col:value,…` for several). A key column that partitions the table is
    /// not in the file: its value is the file's partition value.
    pub(super) fn key_texts(
        &self,
        schema: &TableSchema,
        batch: &RecordBatch,
        file: &LiveFile,
    ) -> Result<Vec<String>, DeltaError> {
        let mut columns = Vec::new();
        for name in &self.key {
            let source = match batch.column_by_name(name) {
                Some(array) => KeySource::Column(array.clone()),
                None => match file
                    .remove
                    .partition_values
                    .as_ref()
                    .and_then(|p| p.get(name))
                {
                    Some(v) => KeySource::Partition(v.clone().unwrap_or_default()),
                    None => {
                        return Err(self.data_error(format!(
                            "data file {} has no key column `{name}`",
                            file.path
                        )))
                    }
                },
            };
            let ty = schema.index_of(name).map(|i| schema.columns[i].ty);
            columns.push((name.as_str(), source, ty));
        }
        let complex = columns.len() > 1;
        (0..batch.num_rows())
            .map(|r| {
                let mut text = String::new();
                for (j, (name, source, ty)) in columns.iter().enumerate() {
                    let value = match source {
                        KeySource::Partition(text) => text.clone(),
                        KeySource::Column(array) => {
                            let v = crate::schema::value_at(array.as_ref(), r);
                            match ty {
                                Some(ty) => coerce(v, *ty).map_err(|e| self.data_error(e))?,
                                None => v,
                            }
                            .to_string()
                        }
                    };
                    if complex {
                        if j > 0 {
                            text.push(',');
                        }
                        text.push_str(name);
                        text.push(':');
                        text.push_str(if value.is_empty() {
                            "__empty__"
                        } else {
                            &value
                        });
                    } else {
                        text = value;
                    }
                }
                Ok(text)
            })
            .collect()
    }
}

/// The plan of `partition`.
pub(super) fn plan_of<'a>(
    plans: &'a mut BTreeMap<String, PartitionPlan>,
    partition: &str,
) -> &'a mut PartitionPlan {
    plans.entry(partition.to_string()).or_default()
}

/// New keys of a partition fill its smallest file below `small_file_limit` first (as Hudi's small-file
/// handling), which is rewritten anyway or now.
pub(super) fn fill_small_file(plan: &mut PartitionPlan, files: &[LiveFile], small_file_limit: u64) {
    if plan.new_rows.is_empty() {
        return;
    }
    let small = files
        .iter()
        .enumerate()
        .filter(|(_, f)| f.size < small_file_limit)
        .min_by_key(|(_, f)| f.size);
    if let Some((i, _)) = small {
        let work = plan.rewrites.entry(i).or_default();
        work.inserts = std::mem::take(&mut plan.new_rows);
    }
}

/// A live file's partition text, as the fold writes partition paths.
pub(super) fn partition_text(columns: &[String], view: &LogicalFileView) -> String {
    let values = view.partition_values_map();
    columns
        .iter()
        .map(|c| {
            let v = values.get(c).cloned().flatten().filter(|s| !s.is_empty());
            format!("{c}={}", v.as_deref().unwrap_or(HIVE_DEFAULT_PARTITION))
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The values of an integer column as i64 (`None` for other types).
pub(super) fn integers(column: &ArrayRef) -> Option<Box<dyn Iterator<Item = Option<i64>> + '_>> {
    use arrow::array::AsArray;
    use arrow::datatypes::{Int32Type, Int64Type};
    match column.data_type() {
        arrow::datatypes::DataType::Int32 => Some(Box::new(
            column
                .as_primitive::<Int32Type>()
                .iter()
                .map(|v| v.map(i64::from)),
        )),
        arrow::datatypes::DataType::Int64 => {
            Some(Box::new(column.as_primitive::<Int64Type>().iter()))
        }
        _ => None,
    }
}

/// The min and max of `column` in a file's statistics JSON.
pub(super) fn key_range(
    stats: Option<&str>,
    column: &str,
) -> Option<(serde_json::Value, serde_json::Value)> {
    let stats: serde_json::Value = serde_json::from_str(stats?).ok()?;
    let lo = stats.get("minValues")?.get(column)?.clone();
    let hi = stats.get("maxValues")?.get(column)?.clone();
    Some((lo, hi))
}

/// A column of texts as a row → text function.
pub(super) fn text_column<'a>(
    batch: &'a RecordBatch,
    name: &str,
) -> Option<impl Fn(usize) -> String + 'a> {
    use arrow::array::AsArray;
    let array = batch.column_by_name(name)?;
    let strings = array.as_string_opt::<i32>()?;
    Some(move |r: usize| match strings.is_null(r) {
        true => String::new(),
        false => strings.value(r).to_string(),
    })
}
