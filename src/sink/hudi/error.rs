//! Errors of the Hudi sink; each names the table and the file or instant involved.

/// An error while reading or writing a Hudi table.
#[derive(Debug, thiserror::Error)]
pub enum HudiError {
    #[error("table `{table}`: storage error on {path}: {source}")]
    Storage {
        table: String,
        path: String,
        source: object_store::Error,
    },
    #[error("table `{table}`: parquet error in {path}: {source}")]
    Parquet {
        table: String,
        path: String,
        source: parquet::errors::ParquetError,
    },
    #[error("table `{table}`: arrow error while {context}: {source}")]
    Arrow {
        table: String,
        context: String,
        source: arrow::error::ArrowError,
    },
    #[error("table `{table}`: instant {instant} has unreadable commit metadata: {source}")]
    CommitJson {
        table: String,
        instant: String,
        source: serde_json::Error,
    },
    #[error("table `{table}` at {path}: {reason}")]
    Unsupported {
        table: String,
        path: String,
        reason: String,
    },
    #[error("table `{table}`: another writer committed to this table while lakefold was writing instant {instant}; that write was rolled back (lakefold allows one writer per table)")]
    Conflict { table: String, instant: String },
    #[error("table `{table}`: {message}")]
    Data { table: String, message: String },
    #[error("table `{table}` already exists at {path}")]
    AlreadyExists { table: String, path: String },
    #[error("table `{table}` does not exist at {path}")]
    NotFound { table: String, path: String },
}

impl HudiError {
    /// Storage errors are worth retrying; everything else stops the writer.
    pub fn class(&self) -> lakefold_api::ErrorClass {
        match self {
            HudiError::Storage { source, .. }
                if !matches!(
                    source,
                    object_store::Error::NotFound { .. }
                        | object_store::Error::AlreadyExists { .. }
                ) =>
            {
                lakefold_api::ErrorClass::Transient
            }
            // A ranged read of a file (footers, key columns) that failed in the store underneath.
            HudiError::Parquet {
                source: parquet::errors::ParquetError::External(e),
                ..
            } if e
                .downcast_ref::<object_store::Error>()
                .is_some_and(|e| !matches!(e, object_store::Error::NotFound { .. })) =>
            {
                lakefold_api::ErrorClass::Transient
            }
            _ => lakefold_api::ErrorClass::Fatal,
        }
    }
}
