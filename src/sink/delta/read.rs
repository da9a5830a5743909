//! Reading a Delta table back for people (`show`, `history`, `status`) and removing it (`table
//! truncate|drop`).

use super::checkpoint::CHECKPOINT_PROPERTY;
use super::error::DeltaError;
use super::files;
use super::table::DeltaSinkTable;
use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::{Field, Schema};
use futures::{StreamExt, TryStreamExt};
use object_store::{ObjectStore, ObjectStoreExt};
use std::sync::Arc;

/// One commit of the table's history.
#[derive(Debug, Clone, PartialEq)]
pub struct DeltaCommit {
    pub version: u64,
    /// Commit time, ms since the epoch.
    pub timestamp: Option<i64>,
    pub operation: String,
    /// lakefold's row counts (`inserted`, `updated`, `deleted`, `files`), when lakefold wrote it.
    pub counts: Option<[u64; 4]>,
    /// The source checkpoints JSON the commit stored, when lakefold wrote it.
    pub checkpoint: Option<String>,
}

/// Commit-info keys of lakefold's counts.
pub const COUNT_KEYS: [&str; 4] = [
    "lakefold.inserted",
    "lakefold.updated",
    "lakefold.deleted",
    "lakefold.files",
];

impl DeltaSinkTable {
    /// Every row of the latest version, columns in table-schema order (partition columns from the
    /// files' partition values).
    pub async fn snapshot(&self) -> Result<Vec<RecordBatch>, DeltaError> {
        let Some(schema) = self.schema()? else {
            return Ok(Vec::new());
        };
        let state = self
            .table
            .snapshot()
            .map_err(self.log_error("reading the snapshot"))?;
        let fields: Vec<Field> = schema
            .arrow_fields()
            .into_iter()
            .map(|f| {
                let dt = files::delta_arrow_type(f.data_type());
                f.with_data_type(dt)
            })
            .collect();
        let target = Arc::new(Schema::new(fields));
        let mut out = Vec::new();
        for view in state.log_data().iter() {
            let values = view.partition_values_map();
            for batch in
                files::read_file(&self.store, &self.name, &view.object_store_path(), None).await?
            {
                let columns = target
                    .fields()
                    .iter()
                    .map(|f| match batch.column_by_name(f.name()) {
                        Some(c) => arrow::compute::cast(c, f.data_type()),
                        None => partition_column(
                            f,
                            values.get(f.name()).cloned().flatten(),
                            batch.num_rows(),
                        ),
                    })
                    .collect::<Result<Vec<ArrayRef>, _>>()
                    .map_err(|source| DeltaError::Arrow {
                        table: self.name.clone(),
                        context: "reading rows".into(),
                        source,
                    })?;
                out.push(
                    RecordBatch::try_new(target.clone(), columns).map_err(|source| {
                        DeltaError::Arrow {
                            table: self.name.clone(),
                            context: "reading rows".into(),
                            source,
                        }
                    })?,
                );
            }
        }
        Ok(out)
    }

    /// The commits still in the log, newest first.
    pub async fn history(&self) -> Result<Vec<DeltaCommit>, DeltaError> {
        let Some(latest) = self.table.version() else {
            return Ok(Vec::new());
        };
        let infos: Vec<_> = self
            .table
            .history(None)
            .try_collect()
            .await
            .map_err(self.log_error("reading the history"))?;
        Ok(infos
            .into_iter()
            .enumerate()
            .map(|(i, info)| {
                let number = |k: &str| info.info.get(k).and_then(serde_json::Value::as_u64);
                let counts = COUNT_KEYS.map(number);
                DeltaCommit {
                    version: latest.saturating_sub(i as u64),
                    timestamp: info.timestamp,
                    operation: info.operation.clone().unwrap_or_default(),
                    counts: counts
                        .iter()
                        .all(Option::is_some)
                        .then(|| counts.map(|c| c.unwrap_or(0))),
                    checkpoint: info
                        .info
                        .get(CHECKPOINT_PROPERTY)
                        .and_then(|v| v.as_str().map(str::to_string)),
                }
            })
            .collect())
    }

    /// Deletes every object of the table (its files and its log); returns how many.
    pub async fn drop_table(&self) -> Result<usize, DeltaError> {
        let storage = |source| DeltaError::Storage {
            table: self.name.clone(),
            path: self.location.to_string(),
            source: Box::new(source),
        };
        let paths: Vec<_> = self
            .store
            .list(None)
            .map(|m| m.map(|m| m.location))
            .try_collect()
            .await
            .map_err(storage)?;
        for path in &paths {
            self.store.delete(path).await.map_err(storage)?;
        }
        Ok(paths.len())
    }
}

/// A partition column: the file's value on every row (null for the null partition).
fn partition_column(
    field: &Field,
    value: Option<String>,
    rows: usize,
) -> Result<ArrayRef, arrow::error::ArrowError> {
    let text: ArrayRef = Arc::new(arrow::array::StringArray::from(vec![value; rows]));
    arrow::compute::cast(&text, field.data_type())
}
