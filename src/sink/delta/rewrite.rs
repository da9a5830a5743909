//! Writing an upsert's files: a rewritten file keeps its rows, replaced and dropped ones excepted, and
//! takes the partition's new keys when it is the partition's small file; other new keys go into new files
//! of at most `max_file_size`.

use super::error::DeltaError;
use super::files::{self, NewFile};
use super::plan::*;
use super::table::DeltaSinkTable;
use crate::fold::HIVE_DEFAULT_PARTITION;
use crate::schema::TableSchema;
use crate::sink::{RowChange, StagedRow, TableLayout};
use arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch};
use arrow::datatypes::{Field, Schema, SchemaRef};
use deltalake::kernel::{Add, Remove};
use lakefold_api::Value;
use std::collections::HashMap;
use std::sync::Arc;

/// Bytes a row takes in a file, when no file tells yet.
const DEFAULT_ROW_BYTES: u64 = 64;

impl DeltaSinkTable {
    /// The schema of the data files: the table's columns without the partition columns, timestamps in
    /// microseconds.
    pub(super) fn file_schema(&self, schema: &TableSchema) -> Result<SchemaRef, DeltaError> {
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
    pub(super) async fn write_partition(
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
    pub(super) async fn rewritten(
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
    pub(super) fn incoming(
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
    pub(super) fn partition_values(
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
    pub(super) async fn put(
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
}

/// `batch` with the columns of `schema` (columns a file lacks, added to the table later, are null).
pub(super) fn align(
    batch: &RecordBatch,
    schema: &SchemaRef,
) -> Result<RecordBatch, arrow::error::ArrowError> {
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
pub(super) fn escape_path_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'_' | b'-' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

pub(super) fn codec_name(c: parquet::basic::Compression) -> &'static str {
    use parquet::basic::Compression as C;
    match c {
        C::SNAPPY => "snappy",
        C::GZIP(_) => "gz",
        C::ZSTD(_) => "zstd",
        _ => "uncompressed",
    }
}
