//! The run loop: poll every source, fold its records into each route, commit each table with the source
//! checkpoint, and stop after draining (`--once`) or on SIGTERM/SIGINT.

use super::dead_letter::{DeadLetter, DEAD_LETTER_TABLE};
use super::error::PipelineError;
use super::lake::Lake;
use super::sources::{open_source, SourceReader};
use super::tables::{open_route_table, read_checkpoints};
use crate::catalog::{Catalog, GlueCatalog, TableRegistration};
use crate::config::{CatalogKind, Config, RouteConfig};
use crate::fold::{project, undecided_columns, Fold, Projected, RouteSpec};
use crate::schema::TableSchema;
use crate::sink::hudi::{CommitSummary, HudiTable, StagedRow, TableLayout, CHECKPOINT_KEY};
use lakefold_api::{BatchLimits, Checkpoint, Decoded, SourceRecord};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Records and bytes taken from a source per poll: raw records are dropped once folded, so memory is
/// bounded by the fold state and one poll, not by a whole commit's worth of input.
const POLL_RECORDS: usize = 8192;
const POLL_BYTES: usize = 16 << 20;

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
    fn add(&mut self, table: &str, s: &CommitSummary) {
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

struct RouteState {
    spec: RouteSpec,
    layout: TableLayout,
    table: HudiTable,
    checkpoint: Option<Checkpoint>,
    fold: Fold,
    /// Commit rounds since this table last committed (it had nothing to write).
    idle_rounds: u32,
    /// The catalog has not seen the latest commit yet (its sync failed): retried at the next round.
    sync_pending: Option<(String, Vec<String>)>,
    /// The table's current data schema (read at open, then the one of each data commit), for the catalog.
    schema: Option<TableSchema>,
}

/// After this many commit rounds without data, a table still commits its checkpoint (an empty commit),
/// so a quiet route does not hold its source back forever.
const IDLE_ROUNDS_BEFORE_CHECKPOINT_COMMIT: u32 = 10;

struct SourceState {
    name: String,
    /// The file path or brokers, for messages.
    label: String,
    reader: SourceReader,
    poll_interval: Duration,
    caught_up: bool,
    routes: Vec<usize>,
    checkpoint: Option<Checkpoint>,
}

struct DeadLetterState {
    table: HudiTable,
    checkpoints: BTreeMap<String, Checkpoint>,
    pending: Vec<StagedRow>,
}

/// Runs the pipeline of `config` until drained (`once`) or until `stop` is set.
pub async fn run(
    config: &Config,
    options: RunOptions,
    stop: Arc<AtomicBool>,
) -> Result<RunSummary, PipelineError> {
    if config.metrics.is_some() {
        tracing::warn!(
            "[metrics] is accepted, but this build does not serve the Prometheus endpoint yet"
        );
    }
    let lake = Lake::open(config).await?;
    let catalog = open_catalog(config).await;
    let mut routes = Vec::new();
    for route in &config.routes {
        let mut state = open_route(&lake, route).await?;
        // The catalog catches up with each table's latest commit at start (a sync that failed last time,
        // or a catalog configured after the fact), even when no new data arrives.
        if !matches!(catalog, Catalog::None) {
            if let Some((instant, _)) = state.table.last_commit().await? {
                state.sync_pending = Some((instant.to_string(), state.table.partitions().await?));
            }
        }
        routes.push(state);
    }
    sync_catalog(&catalog, &lake, &mut routes).await;
    let dl_table =
        open_route_table(&lake, DEAD_LETTER_TABLE, &DeadLetter::key_fields(), &[]).await?;
    let mut dead = DeadLetterState {
        checkpoints: read_checkpoints(&dl_table).await?,
        table: dl_table,
        pending: Vec::new(),
    };

    let mut sources = Vec::new();
    for (name, source) in &config.sources {
        let route_ids: Vec<usize> = routes
            .iter()
            .enumerate()
            .filter(|(_, r)| &r.spec.source == name)
            .map(|(i, _)| i)
            .collect();
        if route_ids.is_empty() {
            tracing::warn!(source = %name, "no route reads this source; it is not read");
            continue;
        }
        // Resume where the least advanced route table stopped. Dead letters are committed before the
        // route tables in every round, so everything up to there is already in the dead-letter table.
        let mut resume: Option<Checkpoint> = None;
        let mut from_start = false;
        for &i in &route_ids {
            match (&routes[i].checkpoint, &resume) {
                (None, _) => from_start = true,
                (Some(cp), None) => resume = Some(cp.clone()),
                (Some(cp), Some(r)) => match r.earliest(cp) {
                    Some(merged) => resume = Some(merged),
                    None => from_start = true,
                },
            }
        }
        let resume = if from_start { None } else { resume };
        // Connecting may retry for a long time (brokers away): a stop request ends the run cleanly.
        let opened = tokio::select! {
            opened = open_source(config, name, source, resume.as_ref(), options.once) => opened?,
            _ = until_stopped(&stop) => {
                tracing::info!(source = %name, "stopped while connecting; nothing was read");
                return Ok(RunSummary::default());
            }
        };
        let (reader, label, poll_interval) = opened;
        tracing::info!(source = %name, from = %label, resume = %resume.as_ref().map(Checkpoint::describe).unwrap_or_else(|| "start".into()), "reading");
        sources.push(SourceState {
            name: name.clone(),
            label,
            checkpoint: resume,
            reader,
            poll_interval,
            caught_up: false,
            routes: route_ids,
        });
    }

    let mut summary = RunSummary::default();
    let limits_total = BatchLimits {
        max_records: config.commit.max_events,
        max_bytes: config.commit.max_bytes.0 as usize,
    };
    let mut pending_records = 0usize;
    let mut pending_bytes = 0usize;
    let mut last_commit = Instant::now();
    loop {
        let stopping = stop.load(Ordering::SeqCst);
        let mut all_caught_up = true;
        if !stopping {
            for s in sources.iter_mut() {
                let limits = BatchLimits {
                    max_records: limits_total
                        .max_records
                        .saturating_sub(pending_records)
                        .clamp(1, POLL_RECORDS),
                    max_bytes: limits_total
                        .max_bytes
                        .saturating_sub(pending_bytes)
                        .clamp(1, POLL_BYTES),
                };
                let batch = s
                    .reader
                    .poll(limits)
                    .await
                    .map_err(|error| PipelineError::Source {
                        name: s.name.clone(),
                        error,
                    })?;
                s.caught_up = batch.caught_up;
                all_caught_up &= batch.caught_up;
                for record in &batch.records {
                    pending_records += 1;
                    pending_bytes += record.raw.len();
                    summary.records += 1;
                    process(record, s, &mut routes, &mut dead, &mut summary);
                }
                if batch.checkpoint.is_some() {
                    s.checkpoint = batch.checkpoint;
                }
            }
        }
        let full =
            pending_records >= limits_total.max_records || pending_bytes >= limits_total.max_bytes;
        let due = last_commit.elapsed() >= config.commit.interval.0;
        let finishing = stopping || (options.once && all_caught_up);
        if pending_records > 0 && (full || due || finishing) {
            for s in &sources {
                s.reader.before_commit();
            }
            commit_all(&mut routes, &sources, &mut dead, &mut summary).await?;
            sync_catalog(&catalog, &lake, &mut routes).await;
            for s in &sources {
                s.reader.after_commit(s.checkpoint.as_ref());
            }
            pending_records = 0;
            pending_bytes = 0;
            last_commit = Instant::now();
        }
        if finishing {
            break;
        }
        if all_caught_up {
            let nap = sources
                .iter()
                .map(|s| s.poll_interval)
                .min()
                .unwrap_or(Duration::from_secs(1));
            let until = Instant::now() + nap;
            while Instant::now() < until && !stop.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(50).min(nap)).await;
            }
        }
    }
    for s in sources {
        s.reader.finish(s.checkpoint).await;
    }
    Ok(summary)
}

async fn open_catalog(config: &Config) -> Catalog {
    match &config.catalog {
        Some(c) if c.kind == CatalogKind::Glue => {
            Catalog::Glue(Box::new(GlueCatalog::new(c).await))
        }
        _ => Catalog::None,
    }
}

/// Registers every table whose latest commit the catalog has not seen. Failures are logged and retried
/// at the next round; data commits are never undone for them.
async fn sync_catalog(catalog: &Catalog, lake: &Lake, routes: &mut [RouteState]) {
    if matches!(catalog, Catalog::None) {
        return;
    }
    for route in routes.iter_mut() {
        let Some((instant, partitions)) = route.sync_pending.clone() else {
            continue;
        };
        let Some(schema) = route.schema.clone() else {
            continue;
        };
        let partition_fields = route.spec.partition_names();
        let reg = TableRegistration {
            table: &route.spec.table,
            location: lake.table_location(&route.spec.table),
            schema: &schema,
            partition_fields: &partition_fields,
            partitions: &partitions,
            instant: &instant,
        };
        match catalog.sync(&reg).await {
            Ok(()) => {
                tracing::info!(table = %route.spec.table, %instant, "catalog synced");
                route.sync_pending = None;
            }
            Err(e) => {
                tracing::error!(table = %route.spec.table, error = %e, "catalog sync failed; the data is committed, the sync is retried after the next commit")
            }
        }
    }
}

async fn until_stopped(stop: &AtomicBool) {
    while !stop.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn open_route(lake: &Lake, route: &RouteConfig) -> Result<RouteState, PipelineError> {
    let mut spec = RouteSpec::new(route, None);
    let table = open_route_table(
        lake,
        &route.table,
        &spec.key_names(),
        &spec.partition_names(),
    )
    .await?;
    let existing_schema = table.schema().await?;
    if let Some(existing) = &existing_schema {
        spec = RouteSpec::new(route, Some(existing));
    }
    let checkpoint = read_checkpoints(&table).await?.remove(&route.source);
    Ok(RouteState {
        spec,
        layout: TableLayout {
            compression: route.compression,
            max_file_size: route.max_file_size.0,
            small_file_limit: route.small_file_limit.0,
        },
        table,
        checkpoint,
        fold: Fold::default(),
        idle_rounds: 0,
        sync_pending: None,
        schema: existing_schema,
    })
}

fn location(source: &SourceState, record: &SourceRecord) -> String {
    match record.position.stream {
        lakefold_api::StreamPosition::Line { .. } => {
            format!("{} {}", source.label, record.position)
        }
        lakefold_api::StreamPosition::Kafka { .. } => record.position.to_string(),
    }
}

fn process(
    record: &SourceRecord,
    source: &SourceState,
    routes: &mut [RouteState],
    dead: &mut DeadLetterState,
    summary: &mut RunSummary,
) {
    let dl_covers = dead
        .checkpoints
        .get(&source.name)
        .is_some_and(|cp| cp.covers(&record.position));
    let mut reject = |table: Option<String>, error: String| {
        if dl_covers {
            return;
        }
        tracing::warn!(source = %source.name, at = %location(source, record), table = table.as_deref().unwrap_or("-"), %error, "dead letter");
        summary.dead_letters += 1;
        let letter = DeadLetter {
            source: source.name.clone(),
            table,
            position: record.position.clone(),
            location: location(source, record),
            raw: record.raw.clone(),
            error,
        };
        dead.pending
            .push(letter.staged(chrono::Utc::now().timestamp_micros()));
    };
    let event = match &record.decoded {
        Decoded::Event(e) => e,
        Decoded::Skipped(_) => {
            summary.skipped += 1;
            return;
        }
        Decoded::Failed(error) => {
            reject(None, error.clone());
            return;
        }
    };
    summary.events += 1;
    for &i in &source.routes {
        let route = &mut routes[i];
        if route
            .checkpoint
            .as_ref()
            .is_some_and(|cp| cp.covers(&record.position))
        {
            continue;
        }
        if event
            .table
            .as_ref()
            .is_some_and(|t| !route.spec.from.matches(t))
        {
            continue;
        }
        match project(&mut route.spec, event, &record.position) {
            Ok(Projected::Entry(entry)) => route.fold.add(entry),
            Ok(Projected::Ignored) => {}
            Err(error) => reject(Some(route.spec.table.clone()), error),
        }
    }
}

fn checkpoint_json(map: &BTreeMap<String, Checkpoint>) -> String {
    serde_json::to_string(map).unwrap_or_default()
}

/// The commit metadata that carries a route's source checkpoint: lakefold's JSON, plus HoodieStreamer's
/// `deltastreamer.checkpoint.key` (`topic,partition:offset,...`) for a single-topic Kafka source.
fn checkpoint_metadata(source: &str, cp: &Checkpoint) -> BTreeMap<String, String> {
    let map = BTreeMap::from([(source.to_string(), cp.clone())]);
    let mut extra = BTreeMap::from([(CHECKPOINT_KEY.to_string(), checkpoint_json(&map))]);
    if let Checkpoint::DebeziumKafka(k) = cp {
        if k.offsets.len() == 1 {
            if let Some(text) = k.offsets.keys().next().and_then(|t| k.streamer_text(t)) {
                extra.insert("deltastreamer.checkpoint.key".to_string(), text);
            }
        }
    }
    extra
}

async fn commit_all(
    routes: &mut [RouteState],
    sources: &[SourceState],
    dead: &mut DeadLetterState,
    summary: &mut RunSummary,
) -> Result<(), PipelineError> {
    let current: HashMap<&str, &Checkpoint> = sources
        .iter()
        .filter_map(|s| s.checkpoint.as_ref().map(|c| (s.name.as_str(), c)))
        .collect();
    if !dead.pending.is_empty() {
        let mut map = dead.checkpoints.clone();
        for (name, cp) in &current {
            map.insert(name.to_string(), (*cp).clone());
        }
        let extra = BTreeMap::from([(CHECKPOINT_KEY.to_string(), checkpoint_json(&map))]);
        let mut rows = std::mem::take(&mut dead.pending);
        rows.sort_by(|a, b| a.record_key.cmp(&b.record_key));
        rows.dedup_by(|a, b| a.record_key == b.record_key);
        let layout = TableLayout {
            compression: crate::config::Compression::Gzip,
            max_file_size: 120 << 20,
            small_file_limit: 100 << 20,
        };
        let result = dead
            .table
            .upsert(&DeadLetter::schema(), rows, layout, extra)
            .await?;
        if result.instant.is_some() {
            dead.checkpoints = map;
        }
        summary.add(DEAD_LETTER_TABLE, &result);
    }
    for route in routes.iter_mut() {
        let Some(cp) = current.get(route.spec.source.as_str()) else {
            continue;
        };
        let extra = checkpoint_metadata(&route.spec.source, cp);
        if route.fold.is_empty() {
            route.idle_rounds += 1;
            let behind = route.checkpoint.as_ref() != Some(*cp);
            if behind
                && (route.checkpoint.is_none()
                    || route.idle_rounds >= IDLE_ROUNDS_BEFORE_CHECKPOINT_COMMIT)
            {
                let instant = route.table.commit_checkpoint(extra).await?;
                let partitions = route
                    .sync_pending
                    .take()
                    .map(|(_, p)| p)
                    .unwrap_or_default();
                route.sync_pending = Some((instant.to_string(), partitions));
                tracing::info!(table = %route.spec.table, %instant, checkpoint = %cp.describe(), "committed the checkpoint (no rows to write)");
                route.checkpoint = Some((*cp).clone());
                route.idle_rounds = 0;
                summary.add(
                    &route.spec.table,
                    &CommitSummary {
                        instant: Some(instant),
                        ..CommitSummary::default()
                    },
                );
            }
            continue;
        }
        route.idle_rounds = 0;
        let undecided = undecided_columns(&route.spec);
        if !undecided.is_empty() {
            tracing::warn!(table = %route.spec.table, columns = ?undecided, "columns seen only as nulls are stored as string; declare them in `types`");
        }
        let schema = route.spec.table_schema();
        let rows = route.fold.drain();
        let result = route
            .table
            .upsert(&schema, rows, route.layout, extra)
            .await?;
        if let Some(instant) = &result.instant {
            let mut partitions = route
                .sync_pending
                .take()
                .map(|(_, p)| p)
                .unwrap_or_default();
            partitions.extend(result.partitions.iter().cloned());
            partitions.sort();
            partitions.dedup();
            route.sync_pending = Some((instant.to_string(), partitions));
            route.schema = Some(schema.clone());
            tracing::info!(table = %route.spec.table, %instant, inserts = result.inserts, updates = result.updates, deletes = result.deletes, files = result.files, checkpoint = %cp.describe(), "committed");
            route.checkpoint = Some((*cp).clone());
        }
        summary.add(&route.spec.table, &result);
    }
    Ok(())
}
