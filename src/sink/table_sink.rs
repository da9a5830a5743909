//! The seam between the pipeline and a table format: open a table, read what it stored (checkpoints,
//! schema), commit folded rows together with the source checkpoints, run the table's services after a
//! commit, and describe the table to a catalog.

use super::delta::DeltaError;
use super::hudi::HudiError;
use super::row::{CommitSummary, StagedRow, TableLayout};
use crate::config::LakeFormat;
use crate::schema::TableSchema;
use lakefold_api::{Checkpoint, ErrorClass};
use std::collections::BTreeMap;
use std::time::Duration;

/// Source checkpoints by source name, as stored in one commit.
pub type SourceCheckpoints = BTreeMap<String, Checkpoint>;

/// An error of a table sink, whichever its format.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error(transparent)]
    Hudi(#[from] HudiError),
    #[error(transparent)]
    Delta(#[from] DeltaError),
}

impl SinkError {
    /// Retry (storage unavailable) or stop (conflict, unsupported table, bad data).
    pub fn class(&self) -> ErrorClass {
        match self {
            SinkError::Hudi(e) => e.class(),
            SinkError::Delta(e) => e.class(),
        }
    }
}

/// How a sink's table services keep a table bounded (from the route).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TableServicePolicy {
    /// Commits whose snapshots stay readable (Hudi `hoodie.cleaner.commits.retained`).
    pub retain_commits: u32,
    /// A replaced file is kept at least this long after it was replaced.
    pub min_age: Duration,
    /// The active timeline is trimmed to `keep_min_commits` once it holds more than `keep_max_commits`.
    pub keep_min_commits: u32,
    pub keep_max_commits: u32,
}

impl Default for TableServicePolicy {
    fn default() -> Self {
        TableServicePolicy {
            retain_commits: 10,
            min_age: Duration::ZERO,
            keep_min_commits: 20,
            keep_max_commits: 30,
        }
    }
}

/// What the table services did after a commit.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServiceReport {
    /// The clean instant written, if files were cleaned.
    pub clean_instant: Option<String>,
    pub files_cleaned: usize,
    /// Instants moved out of the active timeline.
    pub instants_archived: usize,
    /// Leftover bookkeeping objects (claims, decided fates, markers) removed.
    pub leftovers_removed: usize,
}

/// What a catalog needs to know of a table's latest commit.
#[derive(Debug, Clone, PartialEq)]
pub struct CatalogState {
    /// The latest committed version (Hudi instant).
    pub version: String,
    /// Partition paths holding data.
    pub partitions: Vec<String>,
}

/// A table in some format, open for writing.
#[async_trait::async_trait]
pub trait TableSink: Send {
    /// The table's name.
    fn name(&self) -> &str;

    /// The table's format.
    fn format(&self) -> LakeFormat;

    /// The latest completed version (Hudi instant), as last read or written; `None` before the first.
    fn latest_version(&self) -> Option<String>;

    /// The source checkpoints of the newest commit that carries lakefold's checkpoint (commits by other
    /// writers carry none and are skipped); empty when no commit carries one.
    async fn checkpoints(&self) -> Result<SourceCheckpoints, SinkError>;

    /// The table's data-column schema, when a commit recorded one.
    async fn schema(&self) -> Result<Option<TableSchema>, SinkError>;

    /// Upserts `rows` (one per key) and stores `checkpoints` in the same atomic commit. Returns an empty
    /// summary, and commits nothing, when no row changes the table.
    async fn commit(
        &mut self,
        schema: &TableSchema,
        rows: Vec<StagedRow>,
        layout: TableLayout,
        checkpoints: &SourceCheckpoints,
    ) -> Result<CommitSummary, SinkError>;

    /// Commits `checkpoints` without data (a route that had nothing to write moves its checkpoint on).
    /// Returns the version committed, or `None` when the format cannot commit without data yet (a
    /// Delta table is created by its first rows).
    async fn commit_checkpoint(
        &mut self,
        checkpoints: &SourceCheckpoints,
    ) -> Result<Option<String>, SinkError>;

    /// Runs the table services (cleaning, timeline archival, leftovers) after a commit.
    async fn run_services(
        &mut self,
        policy: &TableServicePolicy,
    ) -> Result<ServiceReport, SinkError>;

    /// The latest commit and partitions, for the catalog; `None` before the first commit.
    async fn catalog_state(&mut self) -> Result<Option<CatalogState>, SinkError>;
}
