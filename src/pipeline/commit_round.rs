//! A commit round: the dead letters first (so resuming at the oldest route checkpoint never loses one),
//! then every route's folded rows with its source checkpoint, then each committed table's services.

use super::error::PipelineError;
use super::state::{DeadLetterState, PendingSync, RouteState, RunSummary, SourceState};
use super::DEAD_LETTER_TABLE;
use crate::config::Compression;
use crate::fold::undecided_columns;
use crate::metrics::events::TableCommitted;
use crate::sink::{CommitSummary, SourceCheckpoints, TableLayout, TableServicePolicy, TableSink};
use futures::StreamExt;
use lakefold_api::Checkpoint;
use std::collections::HashMap;
use std::time::Instant;

/// Tables of one round committed at the same time.
const TABLE_COMMITS_IN_FLIGHT: usize = 4;

/// After this many commit rounds without data, a table still commits its checkpoint (an empty commit),
/// so a quiet route does not hold its source back forever.
const IDLE_ROUNDS_BEFORE_CHECKPOINT_COMMIT: u32 = 10;

/// The dead-letter table's files: Hudi's defaults.
pub(super) const DEAD_LETTER_LAYOUT: TableLayout = TableLayout {
    compression: Compression::Gzip,
    max_file_size: 120 << 20,
    small_file_limit: 100 << 20,
};

/// Commits everything folded since the last round.
pub(super) async fn commit_round(
    routes: &mut [RouteState],
    sources: &[SourceState],
    dead: &mut DeadLetterState,
    summary: &mut RunSummary,
) -> Result<(), PipelineError> {
    let current: HashMap<&str, &Checkpoint> = sources
        .iter()
        .filter_map(|s| s.checkpoint.as_ref().map(|c| (s.name.as_str(), c)))
        .collect();
    commit_dead_letters(dead, &current, summary).await?;
    // Tables commit concurrently (each with its own services), the largest first: its rewrite is the
    // longest, and the small ones fit in beside it. Every table finishes its commit before the first
    // error, if any, is reported.
    let mut by_size: Vec<&mut RouteState> = routes.iter_mut().collect();
    by_size.sort_by_key(|route| std::cmp::Reverse(route.fold.bytes()));
    let commits: Vec<_> = by_size
        .into_iter()
        .map(|route| {
            let cp = current.get(route.spec.source.as_str()).copied();
            async move {
                match cp {
                    Some(cp) => commit_table(route, cp).await,
                    None => Ok(None),
                }
            }
        })
        .collect();
    let outcomes: Vec<_> = futures::stream::iter(commits)
        .buffer_unordered(TABLE_COMMITS_IN_FLIGHT)
        .collect()
        .await;
    let mut first_error = None;
    for outcome in outcomes {
        match outcome {
            Ok(Some((table, result))) => summary.add(&table, &result),
            Ok(None) => {}
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Commits one route's table (rows, or its checkpoint alone when idle) and runs its services.
async fn commit_table(
    route: &mut RouteState,
    cp: &Checkpoint,
) -> Result<Option<(String, CommitSummary)>, PipelineError> {
    let committed = if route.fold.is_empty() {
        commit_idle_route(route, cp).await?
    } else {
        Some(commit_route(route, cp).await?)
    };
    let Some(result) = committed else {
        return Ok(None);
    };
    if result.instant.is_some() {
        run_services(route.table.as_mut(), &route.services).await;
    }
    Ok(Some((route.spec.table.clone(), result)))
}

async fn commit_dead_letters(
    dead: &mut DeadLetterState,
    current: &HashMap<&str, &Checkpoint>,
    summary: &mut RunSummary,
) -> Result<(), PipelineError> {
    if dead.pending.is_empty() {
        return Ok(());
    }
    let mut checkpoints = dead.checkpoints.clone();
    for (name, cp) in current {
        checkpoints.insert(name.to_string(), (*cp).clone());
    }
    let mut rows = std::mem::take(&mut dead.pending);
    rows.sort_by(|a, b| a.record_key.cmp(&b.record_key));
    rows.dedup_by(|a, b| a.record_key == b.record_key);
    let schema = super::DeadLetter::schema();
    let started = Instant::now();
    let result = dead
        .table
        .commit(&schema, rows, DEAD_LETTER_LAYOUT, &checkpoints)
        .await?;
    if let Some(instant) = &result.instant {
        owe_sync(&mut dead.sync_pending, instant, &[]);
        TableCommitted {
            table: DEAD_LETTER_TABLE,
            instant,
            summary: &result,
            duration: started.elapsed(),
            checkpoint: None,
            newest_change_ms: None,
        }
        .emit();
        dead.checkpoints = checkpoints;
        run_services(dead.table.as_mut(), &TableServicePolicy::default()).await;
    }
    summary.add(DEAD_LETTER_TABLE, &result);
    Ok(())
}

fn single(source: &str, cp: &Checkpoint) -> SourceCheckpoints {
    SourceCheckpoints::from([(source.to_string(), cp.clone())])
}

/// A route with nothing to write commits its checkpoint alone when it has none yet or has been idle
/// for a while (and is behind its source).
async fn commit_idle_route(
    route: &mut RouteState,
    cp: &Checkpoint,
) -> Result<Option<CommitSummary>, PipelineError> {
    route.idle_rounds += 1;
    let behind = route.checkpoint.as_ref() != Some(cp);
    let due =
        route.checkpoint.is_none() || route.idle_rounds >= IDLE_ROUNDS_BEFORE_CHECKPOINT_COMMIT;
    if !behind || !due {
        return Ok(None);
    }
    let started = Instant::now();
    let Some(instant) = route
        .table
        .commit_checkpoint(&single(&route.spec.source, cp))
        .await?
    else {
        return Ok(None);
    };
    owe_sync(&mut route.sync_pending, &instant, &[]);
    let summary = CommitSummary {
        instant: Some(instant.clone()),
        ..CommitSummary::default()
    };
    TableCommitted {
        table: &route.spec.table,
        instant: &instant,
        summary: &summary,
        duration: started.elapsed(),
        checkpoint: Some(cp),
        newest_change_ms: None,
    }
    .emit();
    route.checkpoint = Some(cp.clone());
    route.idle_rounds = 0;
    Ok(Some(summary))
}

pub(super) async fn commit_route(
    route: &mut RouteState,
    cp: &Checkpoint,
) -> Result<CommitSummary, PipelineError> {
    route.idle_rounds = 0;
    let undecided = undecided_columns(&route.spec);
    if !undecided.is_empty() {
        tracing::warn!(table = %route.spec.table, columns = ?undecided, "columns seen only as nulls are stored as string; declare them in `types`");
    }
    let schema = route.spec.table_schema();
    let rows = route.fold.drain();
    let newest_change_ms = route.newest_change_ms.take();
    let started = Instant::now();
    let result = route
        .table
        .commit(&schema, rows, route.layout, &single(&route.spec.source, cp))
        .await?;
    if let Some(instant) = &result.instant {
        owe_sync(&mut route.sync_pending, instant, &result.partitions);
        route.schema = Some(schema);
        TableCommitted {
            table: &route.spec.table,
            instant,
            summary: &result,
            duration: started.elapsed(),
            checkpoint: Some(cp),
            newest_change_ms,
        }
        .emit();
        route.checkpoint = Some(cp.clone());
    }
    Ok(result)
}

/// Records that the catalog must learn of `instant`, adding the partitions it wrote to those owed.
fn owe_sync(pending: &mut Option<PendingSync>, instant: &str, partitions: &[String]) {
    let mut owed = pending.take().map(|(_, p)| p).unwrap_or_default();
    owed.extend(partitions.iter().cloned());
    owed.sort();
    owed.dedup();
    *pending = Some((instant.to_string(), owed));
}

/// Runs a table's services after its commit. A failure is logged and the services run again after the
/// next commit: the data is committed either way.
async fn run_services(table: &mut dyn TableSink, policy: &TableServicePolicy) {
    match table.run_services(policy).await {
        Ok(report) => {
            if report.files_cleaned + report.instants_archived + report.leftovers_removed > 0 {
                tracing::debug!(table = %table.name(), cleaned = report.files_cleaned, archived = report.instants_archived, leftovers = report.leftovers_removed, "table services ran");
            }
        }
        Err(e) => {
            tracing::warn!(table = %table.name(), error = %e, "table services failed; they run again after the next commit")
        }
    }
}
