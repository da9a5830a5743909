//! A route's Delta table: where it lives (a log store over lakefold's object store), whether it exists
//! yet (it is created by its first commit, with that commit's schema and rows), and its schema.

use super::error::DeltaError;
use crate::pipeline::Lake;
use crate::schema::{Column, TableSchema};
use deltalake::kernel::{DataType, PrimitiveType, StructField};
use deltalake::logstore::{default_logstore, LogStoreRef, StorageConfig};
use deltalake::{DeltaTable, DeltaTableError};
use lakefold_api::{LogicalType, TimeUnit};
use object_store::prefix::PrefixStore;
use object_store::ObjectStore;
use std::sync::Arc;
use url::Url;

/// A Delta table open for writing.
pub struct DeltaSinkTable {
    pub(super) name: String,
    /// The store rooted at the table (data files are written through it).
    pub(super) store: Arc<dyn ObjectStore>,
    /// The Delta log; its state is `None` until the table's first commit.
    pub(super) table: DeltaTable,
    pub(super) key: Vec<String>,
    pub(super) partition_by: Vec<String>,
    /// The table's URI (`file:///…` or `s3://…`).
    pub(super) location: Url,
    /// Removed files waiting for VACUUM.
    pub(super) vacuum: super::vacuum::Vacuum,
}

impl DeltaSinkTable {
    /// Opens the Delta table of `table` in `lake`; one that does not exist yet is created by its first
    /// commit, with `key` and `partition_by` from the route.
    pub async fn open(
        lake: &Lake,
        table: &str,
        key: &[String],
        partition_by: &[String],
    ) -> Result<DeltaSinkTable, DeltaError> {
        let location = table_url(lake, table)?;
        let store: Arc<dyn ObjectStore> =
            Arc::new(PrefixStore::new(lake.store.clone(), lake.table_path(table)));
        let log_store = log_store(lake, store.clone(), &location);
        let mut delta = DeltaTable::new(log_store);
        let log_error = |source| DeltaError::Log {
            table: table.to_string(),
            context: format!("reading the log at {location}"),
            source: Box::new(source),
        };
        if delta
            .verify_deltatable_existence()
            .await
            .map_err(&log_error)?
        {
            delta.load().await.map_err(&log_error)?;
        }
        Ok(DeltaSinkTable {
            name: table.to_string(),
            store,
            table: delta,
            key: key.to_vec(),
            partition_by: partition_by.to_vec(),
            location,
            vacuum: Default::default(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The table's URI, as catalogs register it.
    pub fn location(&self) -> &Url {
        &self.location
    }

    /// True once the table's first commit exists.
    pub fn exists(&self) -> bool {
        self.table.version().is_some()
    }

    pub fn delta(&self) -> &DeltaTable {
        &self.table
    }

    pub(super) fn log_error(
        &self,
        context: &str,
    ) -> impl FnOnce(DeltaTableError) -> DeltaError + '_ {
        let context = context.to_string();
        move |source| DeltaError::Log {
            table: self.name.clone(),
            context,
            source: Box::new(source),
        }
    }

    pub(super) fn data_error(&self, message: String) -> DeltaError {
        DeltaError::Data {
            table: self.name.clone(),
            message,
        }
    }

    /// The data-column schema of the latest version; `None` before the first commit.
    pub fn schema(&self) -> Result<Option<TableSchema>, DeltaError> {
        let Ok(state) = self.table.snapshot() else {
            return Ok(None);
        };
        let columns = state
            .schema()
            .fields()
            .map(|f| {
                logical_type(f.data_type())
                    .map(|ty| Column {
                        name: f.name().clone(),
                        ty,
                    })
                    .ok_or_else(|| {
                        self.data_error(format!(
                            "column `{}` has the type {:?}, which lakefold does not write",
                            f.name(),
                            f.data_type()
                        ))
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(TableSchema { columns }))
    }
}

/// The table's URI: a `file://` directory URL on local disk, else `s3://bucket/prefix/table`.
fn table_url(lake: &Lake, table: &str) -> Result<Url, DeltaError> {
    let bad = |message: String| DeltaError::Data {
        table: table.to_string(),
        message,
    };
    match &lake.local_root {
        Some(root) => Url::from_directory_path(root.join(table))
            .map_err(|()| bad(format!("{} is not an absolute path", root.display()))),
        None => Url::parse(&format!("{}/", lake.table_location(table)))
            .map_err(|e| bad(format!("bad table location: {e}"))),
    }
}

/// Delta's log store over lakefold's stores. The Delta kernel reads the log by full URLs through the
/// root store: on S3 the lake's store is rooted at the bucket already; on local disk it is rooted at the
/// lake directory, so the kernel gets a store rooted at `/`.
fn log_store(lake: &Lake, table_store: Arc<dyn ObjectStore>, location: &Url) -> LogStoreRef {
    let root: Arc<dyn ObjectStore> = match lake.local_root {
        Some(_) => Arc::new(object_store::local::LocalFileSystem::new()),
        None => lake.store.clone(),
    };
    default_logstore(table_store, root, location, &StorageConfig::default())
}

/// The Delta column of a table-schema column (millisecond timestamps are stored as Delta's microsecond
/// `timestamp`).
pub(super) fn delta_field(column: &Column) -> Result<StructField, String> {
    let ty = match column.ty {
        LogicalType::Boolean => DataType::BOOLEAN,
        LogicalType::Int => DataType::INTEGER,
        LogicalType::Bigint => DataType::LONG,
        LogicalType::Float => DataType::FLOAT,
        LogicalType::Double => DataType::DOUBLE,
        LogicalType::Decimal { precision, scale } => {
            let scale = u8::try_from(scale).map_err(|_| {
                format!(
                    "column `{}`: a negative decimal scale has no Delta type",
                    column.name
                )
            })?;
            DataType::decimal(precision, scale).map_err(|e| e.to_string())?
        }
        LogicalType::String => DataType::STRING,
        LogicalType::Binary => DataType::BINARY,
        LogicalType::Date => DataType::DATE,
        LogicalType::Timestamp(_) => DataType::TIMESTAMP,
    };
    Ok(StructField::new(column.name.clone(), ty, true))
}

fn logical_type(ty: &DataType) -> Option<LogicalType> {
    let DataType::Primitive(p) = ty else {
        return None;
    };
    Some(match p {
        PrimitiveType::Boolean => LogicalType::Boolean,
        PrimitiveType::Byte | PrimitiveType::Short | PrimitiveType::Integer => LogicalType::Int,
        PrimitiveType::Long => LogicalType::Bigint,
        PrimitiveType::Float => LogicalType::Float,
        PrimitiveType::Double => LogicalType::Double,
        PrimitiveType::Decimal(d) => LogicalType::Decimal {
            precision: d.precision(),
            scale: d.scale() as i8,
        },
        PrimitiveType::String => LogicalType::String,
        PrimitiveType::Binary => LogicalType::Binary,
        PrimitiveType::Date => LogicalType::Date,
        PrimitiveType::Timestamp | PrimitiveType::TimestampNtz => {
            LogicalType::Timestamp(TimeUnit::Microsecond)
        }
        _ => return None,
    })
}
