//! Errors of the Delta sink; each names the table, and the file or version involved.

use deltalake::kernel::transaction::{CommitConflictError, TransactionError};
use deltalake::DeltaTableError;

/// An error while reading or writing a Delta table.
#[derive(Debug, thiserror::Error)]
pub enum DeltaError {
    #[error("table `{table}`: delta log error while {context}: {source}")]
    Log {
        table: String,
        context: String,
        source: Box<DeltaTableError>,
    },
    #[error("table `{table}`: storage error on {path}: {source}")]
    Storage {
        table: String,
        path: String,
        source: Box<object_store::Error>,
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
    #[error("table `{table}`: another writer committed to this Delta table while lakefold was committing ({reason}); nothing of this commit was written (lakefold allows one writer per table)")]
    Conflict { table: String, reason: String },
    #[error("table `{table}`: {message}")]
    Data { table: String, message: String },
}

impl DeltaError {
    /// Storage errors are worth retrying; a conflict, bad data or an unreadable log stops the writer.
    pub fn class(&self) -> lakefold_api::ErrorClass {
        use lakefold_api::ErrorClass::{Fatal, Transient};
        match self {
            DeltaError::Storage { source, .. } => storage_class(source),
            DeltaError::Log { source, .. } => match source.as_ref() {
                DeltaTableError::ObjectStore { source } => storage_class(source),
                DeltaTableError::Io { .. } => Transient,
                _ => Fatal,
            },
            DeltaError::Parquet {
                source: parquet::errors::ParquetError::External(e),
                ..
            } if e
                .downcast_ref::<object_store::Error>()
                .is_some_and(|e| !matches!(e, object_store::Error::NotFound { .. })) =>
            {
                Transient
            }
            _ => Fatal,
        }
    }

    /// A commit's error: a lost race against another writer is a [`DeltaError::Conflict`].
    pub(super) fn commit(table: &str, source: DeltaTableError) -> DeltaError {
        match conflict_reason(&source) {
            Some(reason) => DeltaError::Conflict {
                table: table.to_string(),
                reason,
            },
            None => DeltaError::Log {
                table: table.to_string(),
                context: "committing".into(),
                source: Box::new(source),
            },
        }
    }
}

fn storage_class(e: &object_store::Error) -> lakefold_api::ErrorClass {
    match e {
        object_store::Error::NotFound { .. } | object_store::Error::AlreadyExists { .. } => {
            lakefold_api::ErrorClass::Fatal
        }
        _ => lakefold_api::ErrorClass::Transient,
    }
}

fn conflict_reason(e: &DeltaTableError) -> Option<String> {
    match e {
        DeltaTableError::Transaction { source } => match source {
            TransactionError::CommitConflict(c) => Some(match c {
                CommitConflictError::ConcurrentTransaction => {
                    "it committed the same source's checkpoint".to_string()
                }
                other => other.to_string(),
            }),
            TransactionError::MaxCommitAttempts(n) => {
                Some(format!("version taken after {n} attempts"))
            }
            TransactionError::VersionAlreadyExists(v) => Some(format!("version {v} exists")),
            _ => None,
        },
        DeltaTableError::VersionAlreadyExists(v) => Some(format!("version {v} exists")),
        _ => None,
    }
}
