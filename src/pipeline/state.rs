//! What a run holds per route, per source and for the dead-letter table, and the run's totals.

use super::error::PipelineError;
use super::lake::Lake;
use super::sources::SourceReader;
use super::tables::open_route_sink;
use crate::config::RouteConfig;
use crate::fold::{Fold, RouteSpec};
use crate::schema::TableSchema;
use crate::sink::{
    CommitSummary, SourceCheckpoints, StagedRow, TableLayout, TableServicePolicy, TableSink,
};
use lakefold_api::{ChangeBatch, Checkpoint};
use std::collections::BTreeMap;
use std::time::Duration;

/// How to run.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// Drain what is available now, commit, and return.
    pub once: bool,
}

/// Row counts of one table over a run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TableTotals {
    pub commits: u64,
    pub inserts: u64,
    pub updates: u64,
    pub deletes: u64,
    pub stale: u64,
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunSummary {
    pub records: u64,
    pub events: u64,
    pub skipped: u64,
    pub dead_letters: u64,
    pub tables: BTreeMap<String, TableTotals>,
}

impl RunSummary {
    pub(super) fn add(&mut self, table: &str, s: &CommitSummary) {
        let t = self.tables.entry(table.to_string()).or_default();
        if s.instant.is_some() {
            t.commits += 1;
        }
        t.inserts += s.inserts;
        t.updates += s.updates;
        t.deletes += s.deletes;
        t.stale += s.stale;
    }
}

/// A catalog sync still owed: the version to register and the partitions written since the last sync.
pub(super) type PendingSync = (String, Vec<String>);

pub(super) struct RouteState {
    pub spec: RouteSpec,
    pub layout: TableLayout,
    pub services: TableServicePolicy,
    pub table: Box<dyn TableSink>,
    pub checkpoint: Option<Checkpoint>,
    pub fold: Fold,
    /// Commit rounds since this table last committed (it had nothing to write).
    pub idle_rounds: u32,
    /// The catalog has not seen the latest commit yet (its sync failed): retried at the next round.
    pub sync_pending: Option<PendingSync>,
    /// The table's current data schema (read at open, then the one of each data commit), for the catalog.
    pub schema: Option<TableSchema>,
    /// The source commit time (ms) of the newest change folded since the last commit (freshness).
    pub newest_change_ms: Option<i64>,
}

pub(super) struct SourceState {
    pub name: String,
    pub reader: SourceReader,
    pub poll_interval: Duration,
    pub routes: Vec<usize>,
    pub checkpoint: Option<Checkpoint>,
    /// The next batch, read while the previous one was folded; not yet folded (the checkpoint is not past
    /// it), so a commit or a stop in between loses nothing.
    pub prefetched: Option<ChangeBatch>,
}

pub(super) struct DeadLetterState {
    pub table: Box<dyn TableSink>,
    pub checkpoints: SourceCheckpoints,
    pub pending: Vec<StagedRow>,
    /// The catalog has not seen the latest commit yet (`[catalog] register_dead_letters` only).
    pub sync_pending: Option<PendingSync>,
}

/// The table services of a route: its cleaner settings, and an archival window Hudi accepts with them
/// (`hoodie.keep.min.commits` must exceed `hoodie.cleaner.commits.retained`).
pub(super) fn service_policy(route: &RouteConfig) -> TableServicePolicy {
    let defaults = TableServicePolicy::default();
    let keep_min = defaults
        .keep_min_commits
        .max(route.clean_retain_commits + 1);
    TableServicePolicy {
        retain_commits: route.clean_retain_commits,
        min_age: route.clean_min_age.0,
        keep_min_commits: keep_min,
        keep_max_commits: defaults.keep_max_commits.max(keep_min + 10),
    }
}

/// Opens (or creates) a route's table and reads its schema and stored checkpoint.
pub(super) async fn open_route(
    lake: &Lake,
    route: &RouteConfig,
) -> Result<RouteState, PipelineError> {
    let mut spec = RouteSpec::new(route, None);
    let table = open_route_sink(lake, route, &spec.key_names(), &spec.partition_names()).await?;
    let existing_schema = table.schema().await?;
    if let Some(existing) = &existing_schema {
        spec = RouteSpec::new(route, Some(existing));
    }
    let checkpoint = table.checkpoints().await?.remove(&route.source);
    Ok(RouteState {
        spec,
        layout: TableLayout {
            compression: route.codec(route.format.unwrap_or(lake.format)),
            max_file_size: route.max_file_size.0,
            small_file_limit: route.small_file_limit.0,
        },
        services: service_policy(route),
        table,
        checkpoint,
        fold: Fold::default(),
        idle_rounds: 0,
        sync_pending: None,
        schema: existing_schema,
        newest_change_ms: None,
    })
}
