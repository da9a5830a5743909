//! Errors a source reports (as opposed to records it could not decode, which are data: see
//! [`crate::Decoded::Failed`]).

use std::path::PathBuf;

/// What the pipeline should do about an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Worth retrying with backoff (a broker or database that is briefly away).
    Transient,
    /// Retrying will not help: stop with a clear message.
    Fatal,
}

/// An error of a source as a whole.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot open {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read {path} at byte {offset}: {source}")]
    Read {
        path: PathBuf,
        offset: u64,
        source: std::io::Error,
    },
    #[error("{path} is shorter ({len} bytes) than its stored checkpoint (byte {offset}, line {line}); was the file truncated or replaced? lakefold reads files append-only")]
    Truncated {
        path: PathBuf,
        len: u64,
        offset: u64,
        line: u64,
    },
    #[error("checkpoint of type {found} cannot resume a {source_type} source")]
    CheckpointMismatch {
        found: String,
        source_type: &'static str,
    },
    #[error("the stored checkpoint belongs to file `{stored}`, but the source now reads `{configured}`; lakefold reads files append-only (to start over, `lakefold table truncate` the source's tables)")]
    CheckpointForOtherFile { stored: String, configured: String },
    #[error("kafka {brokers}: {context}: {message}")]
    Kafka {
        brokers: String,
        context: String,
        message: String,
    },
    #[error("kafka {brokers}: topic `{topic}` does not exist (or has no partitions)")]
    TopicNotFound { topic: String, brokers: String },
    #[error("schema registry {url}: {message}")]
    Registry { url: String, message: String },
    /// A database source could not be reached or its connection broke.
    #[error("{server}: {context}: {message}")]
    Database {
        server: String,
        context: String,
        message: String,
    },
    /// A database source cannot go on (configuration, permissions, a gap in the change data).
    #[error("source {name}: {message}")]
    Cdc { name: String, message: String },
    /// The source's reader stopped (a task that read ahead did not come back).
    #[error("{0}")]
    Stopped(String),
}

impl SourceError {
    pub fn class(&self) -> ErrorClass {
        match self {
            SourceError::Read { .. }
            | SourceError::Kafka { .. }
            | SourceError::Registry { .. }
            | SourceError::Database { .. } => ErrorClass::Transient,
            SourceError::Open { .. }
            | SourceError::Truncated { .. }
            | SourceError::CheckpointMismatch { .. }
            | SourceError::CheckpointForOtherFile { .. }
            | SourceError::TopicNotFound { .. }
            | SourceError::Cdc { .. }
            | SourceError::Stopped(_) => ErrorClass::Fatal,
        }
    }
}
