//! An upsert into a Delta table, copy-on-write as Hudi's: the files of the touched partitions whose key
//! range admits a changed key have their key and position columns read; a file holding a key whose
//! stored position is older than the incoming one is rewritten with the newer row (or without it, for a
//! delete); new keys go into the partition's smallest file below `small_file_limit` (rewritten) or into
//! new files. One Delta commit removes the replaced files, adds the new ones, and stores the source
//! checkpoints (table configuration and `txn`).

use super::checkpoint::{self, CHECKPOINT_PROPERTY, KEY_PROPERTY};
use super::error::DeltaError;
use super::files::{self, NewFile};
use super::table::{delta_field, DeltaSinkTable};
use crate::fold::HIVE_DEFAULT_PARTITION;
use crate::schema::{coerce, TableSchema};
use crate::sink::{CommitSummary, RowChange, SourceCheckpoints, StagedRow, TableLayout};
use arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch};
use arrow::datatypes::{Field, Schema, SchemaRef};
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::kernel::{Action, Add, LogicalFileView, MetadataExt, Remove, StructType};
use deltalake::operations::create::CreateBuilder;
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::TableProperty;
use lakefold_api::Value;
use object_store::path::Path;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

/// Every how many commits Delta writes a checkpoint (Spark's default; delta-rs defaults to 100).
pub const CHECKPOINT_INTERVAL: u32 = 10;
/// Bytes a row takes in a file, when no file tells yet.
const DEFAULT_ROW_BYTES: u64 = 64;

/// A live file of the table.
struct LiveFile {
    path: Path,
    remove: Remove,
    size: u64,
    rows: u64,
    /// The min and max of the record key column (one-column keys, from the file's statistics).
    key_range: Option<(serde_json::Value, serde_json::Value)>,
}

impl LiveFile {
    /// False only when the file's key range excludes `key` (a file without a range may hold any key).
    fn may_hold(&self, key: &str) -> bool {
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
enum KeyLookup<'k> {
    /// One key column: by integer value (for integer columns), and by text.
    Integers(
        HashMap<i64, &'k str, foldhash::fast::RandomState>,
        HashSet<&'k str>,
    ),
    Texts(HashSet<&'k str>),
}

impl<'k> KeyLookup<'k> {
    fn texts(&self) -> &HashSet<&'k str> {
        match self {
            KeyLookup::Integers(_, t) | KeyLookup::Texts(t) => t,
        }
    }

    fn may_be_in(&self, file: &LiveFile) -> bool {
        self.texts().iter().any(|k| file.may_hold(k))
    }
}

/// Where a key is stored.
struct StoredKey {
    partition: String,
    /// Its file's index among the partition's live files.
    file: usize,
    position: String,
}

/// What happens to one live file.
#[derive(Default)]
struct FileWork {
    /// Keys the file holds that change: replaced by this staged row, or dropped (`None`: deleted, or
    /// moved to another partition).
    changes: HashMap<String, Option<usize>>,
    /// Staged rows appended (new keys).
    inserts: Vec<usize>,
}

/// Where a key column's values come from in a data file.
enum KeySource {
    Column(ArrayRef),
    /// A partition column: one value for the whole file.
    Partition(String),
}

/// The plan of one partition.
#[derive(Default)]
struct PartitionPlan {
    rewrites: BTreeMap<usize, FileWork>,
    new_rows: Vec<usize>,
}

impl DeltaSinkTable {
    /// Upserts `rows` (one per key) and stores `checkpoints`, in one Delta commit. Commits nothing and
    /// returns an empty summary when no row changes the table.
    pub async fn upsert(
        &mut self,
        schema: &TableSchema,
        rows: Vec<StagedRow>,
        layout: TableLayout,
        checkpoints: &SourceCheckpoints,
    ) -> Result<CommitSummary, DeltaError> {
        let live = self.live_files();
        let mut summary = CommitSummary::default();
        let plans = self
            .plan(schema, &rows, &live, layout, &mut summary)
            .await?;
        if summary.inserts + summary.updates + summary.deletes == 0 {
            return Ok(CommitSummary {
                stale: summary.stale,
                ..CommitSummary::default()
            });
        }
        let file_schema = self.file_schema(schema)?;
        let compression = crate::sink::hudi::codec(layout.compression);
        let mut adds = Vec::new();
        let mut removes = Vec::new();
        for (partition, plan) in plans {
            let files = live.get(&partition).map_or(&[][..], Vec::as_slice);
            let (a, r) = self
                .write_partition(
                    schema,
                    &file_schema,
                    &rows,
                    files,
                    plan,
                    layout,
                    compression,
                )
                .await?;
            if !a.is_empty() {
                summary.partitions.push(partition);
            }
            adds.extend(a);
            removes.extend(r);
        }
        summary.files = adds.len();
        summary.bytes = adds.iter().map(|a| a.size as u64).sum();
        crate::sink::failpoint(&self.name, "after-data");
        let counts = [
            summary.inserts,
            summary.updates,
            summary.deletes,
            summary.files as u64,
        ];
        let version = self
            .commit_actions(schema, adds, removes, checkpoints, counts)
            .await?;
        summary.instant = Some(version.to_string());
        Ok(summary)
    }

    /// The live files by partition text (`col=value/…`, as the fold writes partition paths).
    fn live_files(&self) -> HashMap<String, Vec<LiveFile>> {
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
    async fn plan(
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
    async fn stored_keys(
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
    fn matching_keys<'k>(
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
    fn lookup<'k>(&self, keys: HashSet<&'k str>) -> KeyLookup<'k> {
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
    fn key_texts(
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

    /// The schema of the data files: the table's columns without the partition columns, timestamps in
    /// microseconds.
    fn file_schema(&self, schema: &TableSchema) -> Result<SchemaRef, DeltaError> {
        let fields: Vec<Field> = schema
            .arrow_fields()
            .into_iter()
            .filter(|f| !self.partition_by.contains(f.name()))
            .map(|f| {
                let dt = files::delta_arrow_type(f.data_type());
                f.with_data_type(dt)
            })
            .collect();
        Ok(Arc::new(Schema::new(fields)))
    }

    /// Writes one partition's files; returns their `add` actions and the `remove` actions of the files
    /// they replace.
    #[allow(clippy::too_many_arguments)]
    async fn write_partition(
        &self,
        schema: &TableSchema,
        file_schema: &SchemaRef,
        rows: &[StagedRow],
        files: &[LiveFile],
        plan: PartitionPlan,
        layout: TableLayout,
        compression: parquet::basic::Compression,
    ) -> Result<(Vec<Add>, Vec<Remove>), DeltaError> {
        let values = self.partition_values(schema, rows, files, &plan);
        let mut adds = Vec::new();
        let mut removes = Vec::new();
        for (f, work) in plan.rewrites {
            let file = &files[f];
            let batch = self
                .rewritten(schema, file_schema, file, rows, &work)
                .await?;
            removes.push(file.remove.clone());
            if batch.num_rows() > 0 {
                adds.push(self.put(&values, batch, compression).await?);
            }
        }
        let row_bytes = files
            .iter()
            .filter(|f| f.rows > 0)
            .map(|f| f.size / f.rows)
            .max()
            .unwrap_or(DEFAULT_ROW_BYTES)
            .max(1);
        let per_file = (layout.max_file_size / row_bytes).max(1) as usize;
        for chunk in plan.new_rows.chunks(per_file) {
            let batch = self.incoming(schema, file_schema, rows, chunk)?;
            adds.push(self.put(&values, batch, compression).await?);
        }
        Ok((adds, removes))
    }

    /// A file's rows after `work`: kept rows, replaced rows, then inserts.
    async fn rewritten(
        &self,
        schema: &TableSchema,
        file_schema: &SchemaRef,
        file: &LiveFile,
        rows: &[StagedRow],
        work: &FileWork,
    ) -> Result<RecordBatch, DeltaError> {
        let arrow = |source| DeltaError::Arrow {
            table: self.name.clone(),
            context: format!("rewriting {}", file.path),
            source,
        };
        let mut parts = Vec::new();
        let changed = self.lookup(work.changes.keys().map(String::as_str).collect());
        for batch in files::read_file(&self.store, &self.name, &file.path, None).await? {
            let matched = self.matching_keys(schema, &batch, file, &changed)?;
            let keep = BooleanArray::from_iter(matched.iter().map(|k| Some(k.is_none())));
            let kept = arrow::compute::filter_record_batch(&batch, &keep).map_err(arrow)?;
            parts.push(align(&kept, file_schema).map_err(arrow)?);
        }
        let mut replacing: Vec<usize> = work.changes.values().flatten().copied().collect();
        replacing.sort_unstable();
        replacing.extend(work.inserts.iter().copied());
        if !replacing.is_empty() {
            parts.push(self.incoming(schema, file_schema, rows, &replacing)?);
        }
        arrow::compute::concat_batches(file_schema, &parts).map_err(arrow)
    }

    /// Staged rows as a batch of the file schema.
    fn incoming(
        &self,
        schema: &TableSchema,
        file_schema: &SchemaRef,
        rows: &[StagedRow],
        indexes: &[usize],
    ) -> Result<RecordBatch, DeltaError> {
        let empty: Vec<Value> = Vec::new();
        let values = indexes.iter().map(|&i| match &rows[i].change {
            RowChange::Upsert(v) => v.as_slice(),
            RowChange::Delete => empty.as_slice(),
        });
        let arrays = schema
            .build_arrays(values)
            .map_err(|m| self.data_error(m))?;
        let columns: Vec<ArrayRef> = schema
            .columns
            .iter()
            .zip(arrays)
            .filter(|(c, _)| !self.partition_by.contains(&c.name))
            .map(|(_, a)| a)
            .collect();
        let arrow = |source| DeltaError::Arrow {
            table: self.name.clone(),
            context: "building incoming rows".into(),
            source,
        };
        let fields: Vec<Field> = schema
            .arrow_fields()
            .into_iter()
            .filter(|f| !self.partition_by.contains(f.name()))
            .collect();
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(arrow)?;
        files::conform(&self.name, batch, file_schema)
    }

    /// The partition values of a partition: those of a file already there, else of its first upserted
    /// row (a null or empty value is Delta's null partition value).
    fn partition_values(
        &self,
        schema: &TableSchema,
        rows: &[StagedRow],
        files: &[LiveFile],
        plan: &PartitionPlan,
    ) -> HashMap<String, Option<String>> {
        if let Some(values) = files
            .first()
            .and_then(|f| f.remove.partition_values.clone())
        {
            return values;
        }
        let first = plan.new_rows.iter().find_map(|&i| match &rows[i].change {
            RowChange::Upsert(v) => Some(v),
            RowChange::Delete => None,
        });
        self.partition_by
            .iter()
            .map(|name| {
                let value = first
                    .and_then(|v| schema.index_of(name).and_then(|i| v.get(i)))
                    .filter(|v| !v.is_null())
                    .map(Value::to_string)
                    .filter(|s| !s.is_empty());
                (name.clone(), value)
            })
            .collect()
    }

    /// Writes a new data file of `batch` in the partition of `values`.
    async fn put(
        &self,
        values: &HashMap<String, Option<String>>,
        batch: RecordBatch,
        compression: parquet::basic::Compression,
    ) -> Result<Add, DeltaError> {
        let dir = self
            .partition_by
            .iter()
            .map(|name| match values.get(name).cloned().flatten() {
                Some(v) => format!("{name}={}", escape_path_value(&v)),
                None => format!("{name}={HIVE_DEFAULT_PARTITION}"),
            })
            .collect::<Vec<_>>()
            .join("/");
        let name = format!(
            "part-00000-{}-c000.{}.parquet",
            uuid::Uuid::new_v4(),
            codec_name(compression)
        );
        let path = if dir.is_empty() {
            name
        } else {
            format!("{dir}/{name}")
        };
        let mut unique = vec![crate::schema::POSITION_COLUMN.to_string()];
        if let [key] = self.key.as_slice() {
            unique.push(key.clone());
        }
        let file = NewFile {
            path,
            partition_values: values.clone(),
            batch,
            unique,
        };
        files::write_file(&self.store, &self.name, file, compression).await
    }

    /// Commits the files and checkpoints: the table's first commit creates it.
    async fn commit_actions(
        &mut self,
        schema: &TableSchema,
        adds: Vec<Add>,
        removes: Vec<Remove>,
        checkpoints: &SourceCheckpoints,
        counts: [u64; 4],
    ) -> Result<u64, DeltaError> {
        let txns = self.transactions(checkpoints).await?;
        let mut info = HashMap::from([(
            CHECKPOINT_PROPERTY.to_string(),
            serde_json::Value::String(checkpoint::property_text(checkpoints)),
        )]);
        for (key, n) in super::read::COUNT_KEYS.iter().zip(counts) {
            info.insert(key.to_string(), serde_json::Value::from(n));
        }
        let properties = CommitProperties::default()
            .with_application_transactions(txns)
            .with_metadata(info);
        let removed: Vec<Path> = removes
            .iter()
            .filter_map(|r| Path::from_url_path(&r.path).ok())
            .collect();
        let mut actions: Vec<Action> = removes.into_iter().map(Action::Remove).collect();
        actions.extend(adds.into_iter().map(Action::Add));
        if !self.exists() {
            return self.create(schema, actions, properties, checkpoints).await;
        }
        actions.push(Action::Metadata(self.next_metadata(schema, checkpoints)?));
        let operation = DeltaOperation::Merge {
            predicate: None,
            merge_predicate: Some(self.merge_predicate()),
            matched_predicates: vec![],
            not_matched_predicates: vec![],
            not_matched_by_source_predicates: vec![],
        };
        let version = self.commit_with(actions, properties, operation).await?;
        let now = chrono::Utc::now().timestamp_millis();
        self.vacuum.removed(version, now, removed);
        Ok(version)
    }

    /// Commits `actions` on the current snapshot and reads the new version's state.
    pub(super) async fn commit_with(
        &mut self,
        actions: Vec<Action>,
        properties: CommitProperties,
        operation: DeltaOperation,
    ) -> Result<u64, DeltaError> {
        let state = self
            .table
            .snapshot()
            .map_err(self.log_error("reading the snapshot"))?;
        let version = CommitBuilder::from(properties)
            .with_actions(actions)
            .build(Some(state), self.table.log_store(), operation)
            .await
            .map_err(|e| DeltaError::commit(&self.name, e))?
            .version();
        self.table
            .update_incremental(Some(version))
            .await
            .map_err(self.log_error("reading the new version"))?;
        Ok(version)
    }

    /// The table's metadata with the new checkpoints (and any columns the schema gained).
    pub(super) fn next_metadata(
        &self,
        schema: &TableSchema,
        checkpoints: &SourceCheckpoints,
    ) -> Result<deltalake::kernel::Metadata, DeltaError> {
        let state = self
            .table
            .snapshot()
            .map_err(self.log_error("reading the snapshot"))?;
        let mut metadata = state.metadata().clone();
        let current = state.schema();
        let missing: Vec<_> = schema
            .columns
            .iter()
            .filter(|c| current.field(&c.name).is_none())
            .collect();
        if !missing.is_empty() {
            let mut fields: Vec<_> = current.fields().cloned().collect();
            for c in missing {
                fields.push(delta_field(c).map_err(|m| self.data_error(m))?);
            }
            let evolved =
                StructType::try_new(fields).map_err(|e| self.data_error(e.to_string()))?;
            metadata = metadata
                .with_schema(&evolved)
                .map_err(|e| self.data_error(format!("evolving the schema: {e}")))?;
        }
        metadata
            .add_config_key(
                CHECKPOINT_PROPERTY.to_string(),
                checkpoint::property_text(checkpoints),
            )
            .map_err(|e| self.data_error(format!("storing the checkpoint: {e}")))
    }

    /// The table's first commit: protocol, metadata (schema, partitioning, checkpoints) and its files.
    async fn create(
        &mut self,
        schema: &TableSchema,
        actions: Vec<Action>,
        properties: CommitProperties,
        checkpoints: &SourceCheckpoints,
    ) -> Result<u64, DeltaError> {
        let fields = schema
            .columns
            .iter()
            .map(delta_field)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|m| self.data_error(m))?;
        let created = CreateBuilder::new()
            .with_log_store(self.table.log_store())
            .with_table_name(self.name.clone())
            .with_columns(fields)
            .with_partition_columns(self.partition_by.clone())
            .with_raise_if_key_not_exists(false)
            .with_configuration_property(
                TableProperty::CheckpointInterval,
                Some(CHECKPOINT_INTERVAL.to_string()),
            )
            .with_configuration([
                (
                    CHECKPOINT_PROPERTY.to_string(),
                    Some(checkpoint::property_text(checkpoints)),
                ),
                (KEY_PROPERTY.to_string(), Some(self.key.join(","))),
            ])
            .with_save_mode(SaveMode::ErrorIfExists)
            .with_actions(actions)
            .with_commit_properties(properties)
            .await
            .map_err(|e| DeltaError::commit(&self.name, e))?;
        self.table = created;
        Ok(self.table.version().unwrap_or(0))
    }

    /// The `txn` actions of a commit of `checkpoints`.
    pub(super) async fn transactions(
        &self,
        checkpoints: &SourceCheckpoints,
    ) -> Result<Vec<deltalake::kernel::Transaction>, DeltaError> {
        let mut previous = HashMap::new();
        if let Ok(state) = self.table.snapshot() {
            for source in checkpoints.keys() {
                let id = checkpoint::app_id(source);
                let v = state
                    .transaction_version(self.table.log_store().as_ref(), &id)
                    .await
                    .map_err(self.log_error("reading the source's txn version"))?;
                if let Some(v) = v {
                    previous.insert(id, v);
                }
            }
        }
        let now = chrono::Utc::now().timestamp_millis();
        Ok(checkpoint::transactions(
            checkpoints,
            |id| previous.get(id).copied(),
            now,
        ))
    }

    fn merge_predicate(&self) -> String {
        self.key
            .iter()
            .map(|k| format!("target.`{k}` = source.`{k}`"))
            .collect::<Vec<_>>()
            .join(" AND ")
    }
}

/// The plan of `partition`.
fn plan_of<'a>(
    plans: &'a mut BTreeMap<String, PartitionPlan>,
    partition: &str,
) -> &'a mut PartitionPlan {
    plans.entry(partition.to_string()).or_default()
}

/// New keys of a partition fill its smallest file below `small_file_limit` first (as Hudi's small-file
/// handling), which is rewritten anyway or now.
fn fill_small_file(plan: &mut PartitionPlan, files: &[LiveFile], small_file_limit: u64) {
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
fn partition_text(columns: &[String], view: &LogicalFileView) -> String {
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
fn integers(column: &ArrayRef) -> Option<Box<dyn Iterator<Item = Option<i64>> + '_>> {
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
fn key_range(stats: Option<&str>, column: &str) -> Option<(serde_json::Value, serde_json::Value)> {
    let stats: serde_json::Value = serde_json::from_str(stats?).ok()?;
    let lo = stats.get("minValues")?.get(column)?.clone();
    let hi = stats.get("maxValues")?.get(column)?.clone();
    Some((lo, hi))
}

/// A column of texts as a row → text function.
fn text_column<'a>(batch: &'a RecordBatch, name: &str) -> Option<impl Fn(usize) -> String + 'a> {
    use arrow::array::AsArray;
    let array = batch.column_by_name(name)?;
    let strings = array.as_string_opt::<i32>()?;
    Some(move |r: usize| match strings.is_null(r) {
        true => String::new(),
        false => strings.value(r).to_string(),
    })
}

/// `batch` with the columns of `schema` (columns a file lacks, added to the table later, are null).
fn align(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, arrow::error::ArrowError> {
    let columns = schema
        .fields()
        .iter()
        .map(|f| match batch.column_by_name(f.name()) {
            Some(c) if c.data_type() == f.data_type() => Ok(c.clone()),
            Some(c) => arrow::compute::cast(c, f.data_type()),
            None => Ok(arrow::array::new_null_array(
                f.data_type(),
                batch.num_rows(),
            )),
        })
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new(schema.clone(), columns)
}

/// A partition value as a directory name holds it: characters other than letters, digits and `._-`
/// as `%XX` (as Hive and Spark escape path names).
fn escape_path_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'_' | b'-' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn codec_name(c: parquet::basic::Compression) -> &'static str {
    use parquet::basic::Compression as C;
    match c {
        C::SNAPPY => "snappy",
        C::GZIP(_) => "gz",
        C::ZSTD(_) => "zstd",
        _ => "uncompressed",
    }
}
