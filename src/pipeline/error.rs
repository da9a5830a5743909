//! Errors of the pipeline layer.

use crate::sink::hudi::HudiError;
use crate::sink::SinkError;
use lakefold_api::SourceError;

/// Why a run stopped.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Sink(#[from] HudiError),
    #[error(transparent)]
    Table(#[from] SinkError),
    #[error("source `{name}`: {error}")]
    Source { name: String, error: SourceError },
    #[error("lake {uri}: {message}")]
    Lake { uri: String, message: String },
    #[error("table `{table}`: its last commit holds an unreadable checkpoint: {message}")]
    Checkpoint { table: String, message: String },
    #[error("source `{name}`: {message}")]
    SourceConfig { name: String, message: String },
    #[error("source `{name}` of type {kind} is not supported by this build yet")]
    UnsupportedSource { name: String, kind: &'static str },
    #[error("{message}")]
    Service { message: String },
    /// Another process holds the tables (a replay while a daemon runs, or the other way round).
    #[error("{message}")]
    Busy { message: String },
    #[error("unknown table `{0}` (not a route's table nor {dl})", dl = super::DEAD_LETTER_TABLE)]
    UnknownTable(String),
    #[error("table `{table}` is a Delta table: `lakefold {command}` reads Hudi tables only in this build (read it with any Delta reader, e.g. Python `deltalake`)")]
    DeltaUnsupported {
        table: String,
        command: &'static str,
    },
}

impl PipelineError {
    /// True for outages worth riding out (storage, broker or database unreachable): reopening the run
    /// from the tables' checkpoints may succeed later.
    pub fn is_transient(&self) -> bool {
        use lakefold_api::ErrorClass::Transient;
        match self {
            PipelineError::Sink(e) => e.class() == Transient,
            PipelineError::Table(e) => e.class() == Transient,
            PipelineError::Source { error, .. } => error.class() == Transient,
            // A daemon waits for a replay to end (a replay itself is not retried).
            PipelineError::Busy { .. } => true,
            _ => false,
        }
    }
}
