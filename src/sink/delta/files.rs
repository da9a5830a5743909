//! A Delta table's data files: Parquet written from arrow batches (without the partition columns, which
//! live in the `add` action), the `add` action with the statistics Delta readers skip files by, and
//! files read back, whole or only some columns.

use super::error::DeltaError;
use arrow::array::{Array, ArrayRef, RecordBatch};
use arrow::compute::kernels::aggregate;
use arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use bytes::Bytes;
use deltalake::kernel::Add;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;
use serde_json::{json, Map, Value as Json};
use std::collections::HashMap;
use std::sync::Arc;

/// Longest string statistic written: Delta writers truncate (Spark: 32 characters); a longer min or
/// max is left out rather than truncated, which would need a rounded-up maximum.
const MAX_STAT_CHARS: usize = 32;

/// One data file to write: its path relative to the table root and its rows (data columns only).
pub struct NewFile {
    pub path: String,
    pub partition_values: HashMap<String, Option<String>>,
    pub batch: RecordBatch,
    /// Columns whose values are unique per row (a one-column record key, the position): written
    /// without a dictionary, which would only be built to be dropped.
    pub unique: Vec<String>,
}

/// Writes `file` as Parquet under `store` (rooted at the table) and returns its `add` action.
pub async fn write_file(
    store: &Arc<dyn ObjectStore>,
    table: &str,
    file: NewFile,
    compression: parquet::basic::Compression,
) -> Result<Add, DeltaError> {
    let stats = statistics(&file.batch);
    let bytes = encode(table, &file, compression)?;
    let size = bytes.len() as i64;
    let path = Path::from(file.path.as_str());
    store
        .put(&path, PutPayload::from(bytes))
        .await
        .map_err(|source| DeltaError::Storage {
            table: table.to_string(),
            path: path.to_string(),
            source: Box::new(source),
        })?;
    Ok(Add {
        path: encode_path(&file.path),
        partition_values: file.partition_values,
        size,
        modification_time: chrono::Utc::now().timestamp_millis(),
        data_change: true,
        stats: Some(stats.to_string()),
        ..Add::default()
    })
}

fn encode(
    table: &str,
    file: &NewFile,
    compression: parquet::basic::Compression,
) -> Result<Vec<u8>, DeltaError> {
    let pq = |source| DeltaError::Parquet {
        table: table.to_string(),
        path: file.path.clone(),
        source,
    };
    let mut props = WriterProperties::builder()
        .set_compression(compression)
        .set_max_row_group_row_count(Some(128 * 1024));
    for name in &file.unique {
        props = props.set_column_dictionary_enabled(ColumnPath::from(name.as_str()), false);
    }
    let batch = &file.batch;
    let mut writer =
        ArrowWriter::try_new(Vec::new(), batch.schema(), Some(props.build())).map_err(pq)?;
    writer.write(batch).map_err(pq)?;
    writer.into_inner().map_err(pq)
}

/// A path as an `add` action holds it: a relative URI (percent-encoded).
fn encode_path(path: &str) -> String {
    url::form_urlencoded::byte_serialize(path.as_bytes())
        .collect::<String>()
        .replace("%2F", "/")
        .replace("%3D", "=")
        .replace('+', "%20")
}

/// Delta's per-file statistics: row count, null counts of every column, and min/max of the columns whose
/// text form lakefold writes exactly as Delta readers parse it (integers, floats, dates, short strings).
pub fn statistics(batch: &RecordBatch) -> Json {
    let mut mins = Map::new();
    let mut maxs = Map::new();
    let mut nulls = Map::new();
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        nulls.insert(field.name().clone(), json!(column.null_count()));
        if let Some((lo, hi)) = min_max(column) {
            mins.insert(field.name().clone(), lo);
            maxs.insert(field.name().clone(), hi);
        }
    }
    json!({
        "numRecords": batch.num_rows(),
        "minValues": mins,
        "maxValues": maxs,
        "nullCount": nulls,
    })
}

fn min_max(column: &ArrayRef) -> Option<(Json, Json)> {
    use arrow::array::{AsArray, PrimitiveArray};
    use arrow::datatypes::{Date32Type, Float64Type, Int32Type, Int64Type};
    fn pair<T: Into<Json>>(lo: Option<T>, hi: Option<T>) -> Option<(Json, Json)> {
        Some((lo?.into(), hi?.into()))
    }
    match column.data_type() {
        DataType::Int32 => {
            let a: &PrimitiveArray<Int32Type> = column.as_primitive();
            pair(aggregate::min(a), aggregate::max(a))
        }
        DataType::Int64 => {
            let a: &PrimitiveArray<Int64Type> = column.as_primitive();
            pair(aggregate::min(a), aggregate::max(a))
        }
        DataType::Float64 => {
            let a: &PrimitiveArray<Float64Type> = column.as_primitive();
            let (lo, hi) = (aggregate::min(a)?, aggregate::max(a)?);
            (lo.is_finite() && hi.is_finite()).then(|| (json!(lo), json!(hi)))
        }
        DataType::Date32 => {
            let a: &PrimitiveArray<Date32Type> = column.as_primitive();
            let text = |d: i32| lakefold_api::Value::Date(d).to_string();
            Some((
                json!(text(aggregate::min(a)?)),
                json!(text(aggregate::max(a)?)),
            ))
        }
        DataType::Utf8 => {
            let a = column.as_string::<i32>();
            let (lo, hi) = (aggregate::min_string(a)?, aggregate::max_string(a)?);
            let short = |s: &str| s.chars().count() <= MAX_STAT_CHARS;
            (short(lo) && short(hi)).then(|| (json!(lo), json!(hi)))
        }
        _ => None,
    }
}

/// The file schema of a table: timestamps in microseconds (Delta's `timestamp`), everything else as the
/// table schema's arrow type.
pub fn delta_arrow_type(dt: &DataType) -> DataType {
    match dt {
        DataType::Timestamp(_, tz) => DataType::Timestamp(TimeUnit::Microsecond, tz.clone()),
        other => other.clone(),
    }
}

/// Casts `batch`'s columns to `schema` (millisecond timestamps become microseconds).
pub fn conform(
    table: &str,
    batch: RecordBatch,
    schema: &SchemaRef,
) -> Result<RecordBatch, DeltaError> {
    let arrow = |source| DeltaError::Arrow {
        table: table.to_string(),
        context: "casting rows to the file schema".into(),
        source,
    };
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(c, f)| match c.data_type() == f.data_type() {
            true => Ok(c.clone()),
            false => arrow::compute::cast(c, f.data_type()),
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(arrow)?;
    RecordBatch::try_new(schema.clone(), columns).map_err(arrow)
}

/// Reads a data file, only `columns` when given.
pub async fn read_file(
    store: &Arc<dyn ObjectStore>,
    table: &str,
    path: &Path,
    columns: Option<&[&str]>,
) -> Result<Vec<RecordBatch>, DeltaError> {
    let bytes = read_object(store, table, path).await?;
    crate::storage::parquet_read::decode(bytes, columns).map_err(|source| DeltaError::Parquet {
        table: table.to_string(),
        path: path.to_string(),
        source,
    })
}

async fn read_object(
    store: &Arc<dyn ObjectStore>,
    table: &str,
    path: &Path,
) -> Result<Bytes, DeltaError> {
    crate::storage::read_whole(store, path)
        .await
        .map_err(|source| DeltaError::Storage {
            table: table.to_string(),
            path: path.to_string(),
            source: Box::new(source),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{Field, Schema};

    #[test]
    fn statistics_hold_counts_and_the_ranges_readers_can_trust() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
            Field::new("long", DataType::Utf8, true),
        ]));
        let long = "x".repeat(40);
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![Some(7), None, Some(-3)])),
                Arc::new(StringArray::from(vec!["b", "a", "c"])),
                Arc::new(StringArray::from(vec![long.as_str(), "y", "z"])),
            ],
        )
        .unwrap();
        let stats = statistics(&batch);
        assert_eq!(stats["numRecords"], 3);
        assert_eq!(stats["minValues"]["id"], -3);
        assert_eq!(stats["maxValues"]["id"], 7);
        assert_eq!(stats["nullCount"]["id"], 1);
        assert_eq!(stats["minValues"]["name"], "a");
        assert!(stats["minValues"].get("long").is_none());
    }

    #[test]
    fn paths_in_add_actions_are_percent_encoded() {
        assert_eq!(
            encode_path("p=a b/part-0.parquet"),
            "p=a%20b/part-0.parquet"
        );
        assert_eq!(encode_path("p=1%/x.parquet"), "p=1%25/x.parquet");
    }
}
