//! The run loop: poll every source, fold its records into each route, commit each table with the source
//! checkpoint, and stop after draining (`--once`) or on SIGTERM/SIGINT.

use super::catalog_sync::{
    catch_up, open_catalog, registers_dead_letters, sync_catalog, sync_dead_letters,
};
use super::commit_round::commit_round;
use super::dead_letter::{DeadLetter, DEAD_LETTER_TABLE};
use super::dispatch::{dead_letters, dispatch};
use super::error::PipelineError;
use super::lake::Lake;
use super::lease::{Lease, LeaseInfo};
use super::resume::resume_point;
use super::sources::open_source;
use super::state::{open_route, DeadLetterState, RouteState, RunOptions, RunSummary, SourceState};
use super::tables::open_route_table;
use crate::catalog::Catalog;
use crate::config::Config;
use crate::metrics::events::{FoldHeld, Outage, RouteOpened, SourceLagged};
use crate::service::status::board;
use crate::service::systemd;
use crate::sink::{StagedRow, TableSink};
use lakefold_api::{BatchLimits, ChangeBatch, Checkpoint};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Records and bytes taken from a source per poll: raw records are dropped once folded, so memory is
/// bounded by the fold state and one poll, not by a whole commit's worth of input.
const POLL_RECORDS: usize = 8192;
const POLL_BYTES: usize = 16 << 20;

/// Everything a run has open.
struct Pipeline {
    lake: Lake,
    catalog: Catalog,
    routes: Vec<RouteState>,
    dead: DeadLetterState,
    sources: Vec<SourceState>,
    /// `[catalog] register_dead_letters`.
    register_dead_letters: bool,
}

/// The first poll's records: the fold starts while the source reads on, rather than after a whole poll
/// has been read and decoded; each poll after it may take twice as many, up to [`POLL_RECORDS`].
const FIRST_POLL_RECORDS: usize = 1024;

/// What was read since the last commit, against the `[commit]` limits.
struct Pending {
    limits: BatchLimits,
    records: usize,
    bytes: usize,
    /// The most records the next poll takes (growing from [`FIRST_POLL_RECORDS`]).
    poll_records: usize,
}

impl Pending {
    fn poll_limits(&mut self) -> BatchLimits {
        let poll_records = self.poll_records;
        self.poll_records = (poll_records * 2).min(POLL_RECORDS);
        BatchLimits {
            max_records: self
                .limits
                .max_records
                .saturating_sub(self.records)
                .clamp(1, poll_records),
            max_bytes: self
                .limits
                .max_bytes
                .saturating_sub(self.bytes)
                .clamp(1, POLL_BYTES),
        }
    }

    fn full(&self) -> bool {
        self.records >= self.limits.max_records || self.bytes >= self.limits.max_bytes
    }
}

/// Opens the pipeline of `config` and runs it until drained (`once`) or until `stop` is set, adding to
/// `summary`; `committed` is set after each commit round that succeeded.
pub(super) async fn run_pipeline(
    config: &Config,
    options: RunOptions,
    stop: &AtomicBool,
    summary: &mut RunSummary,
    committed: &mut bool,
) -> Result<(), PipelineError> {
    // Before any table is opened (opening rolls back writes that never completed).
    let lease = take_lease(config).await?;
    let result = run_leased(config, options, stop, summary, committed).await;
    lease.release().await;
    result
}

async fn run_leased(
    config: &Config,
    options: RunOptions,
    stop: &AtomicBool,
    summary: &mut RunSummary,
    committed: &mut bool,
) -> Result<(), PipelineError> {
    let Some(mut p) = open_pipeline(config, options, stop).await? else {
        return Ok(());
    };
    announce(&p);
    let mut pending = Pending {
        limits: BatchLimits {
            max_records: config.commit.max_events,
            max_bytes: config.commit.max_bytes.0 as usize,
        },
        records: 0,
        bytes: 0,
        poll_records: FIRST_POLL_RECORDS,
    };
    let mut last_commit = Instant::now();
    let mut last_lag: Option<Instant> = None;
    loop {
        board().beat();
        systemd::watchdog();
        let stopping = stop.load(Ordering::SeqCst);
        let all_caught_up = if stopping {
            true
        } else {
            poll_sources(&mut p, &mut pending, summary).await?
        };
        FoldHeld {
            bytes: pending.bytes,
        }
        .emit();
        if last_lag.is_none_or(|t| t.elapsed() >= LAG_EVERY) {
            report_lag(&mut p.sources).await;
            last_lag = Some(Instant::now());
        }
        let due = last_commit.elapsed() >= config.commit.interval.0;
        let finishing = stopping || (options.once && all_caught_up);
        if pending.records > 0 && (pending.full() || due || finishing) {
            commit(&mut p, summary).await?;
            *committed = true;
            Outage::over();
            pending.records = 0;
            pending.bytes = 0;
            last_commit = Instant::now();
        }
        if finishing {
            break;
        }
        if all_caught_up {
            nap(&p.sources, stop).await;
        }
    }
    board().set_ready(false);
    for s in p.sources {
        s.reader.finish(s.checkpoint).await;
    }
    Ok(())
}

/// This run's lease on its tables; refused (to be retried) while a `lakefold replay` holds one of them.
async fn take_lease(config: &Config) -> Result<Lease, PipelineError> {
    let mut tables: Vec<String> = config.routes.iter().map(|r| r.table.clone()).collect();
    tables.push(DEAD_LETTER_TABLE.to_string());
    let listen = config.metrics.as_ref().map(|m| m.listen.clone());
    let lake = Lake::open(config).await?;
    let lease = Lease::take(&lake, LeaseInfo::of_this_process("run", listen, tables)).await?;
    let replays: Vec<String> = lease
        .others()
        .await?
        .iter()
        .filter(|h| h.info.kind == "replay")
        .map(|h| h.info.describe())
        .collect();
    if !replays.is_empty() {
        lease.release().await;
        return Err(PipelineError::Busy {
            message: format!(
                "a dead-letter replay is writing these tables ({}); waiting for it to end",
                replays.join(", ")
            ),
        });
    }
    Ok(lease)
}

/// How often sources are asked for their lag.
const LAG_EVERY: Duration = Duration::from_secs(2);

/// The routes and sources on the status board; ready from now on.
fn announce(p: &Pipeline) {
    for r in &p.routes {
        RouteOpened {
            table: &r.spec.table,
            source: &r.spec.source,
        }
        .emit();
        board().route(&r.spec.table, |s| {
            s.source = r.spec.source.clone();
            s.last_instant = r.table.latest_version();
            s.checkpoint = r.checkpoint.as_ref().map(Checkpoint::describe);
        });
    }
    for s in &p.sources {
        board().source(&s.name, |_| {});
    }
    board().set_ready(true);
    systemd::ready();
}

async fn report_lag(sources: &mut [SourceState]) {
    for s in sources.iter_mut() {
        let lag = s.reader.lag().await;
        if !lag.is_empty() {
            SourceLagged {
                source: &s.name,
                lag: &lag,
            }
            .emit();
        }
    }
}

/// Opens the lake, the catalog, every route's table, the dead-letter table and the sources at their
/// resume points. `None` when a stop was requested while connecting.
async fn open_pipeline(
    config: &Config,
    options: RunOptions,
    stop: &AtomicBool,
) -> Result<Option<Pipeline>, PipelineError> {
    let lake = Lake::open(config).await?;
    let catalog = open_catalog(config).await;
    let mut routes = Vec::new();
    for route in &config.routes {
        routes.push(open_route(&lake, route).await?);
    }
    catch_up(&catalog, &mut routes).await?;
    sync_catalog(&catalog, &lake, &mut routes).await;
    let dl_table: Box<dyn TableSink> =
        Box::new(open_route_table(&lake, DEAD_LETTER_TABLE, &DeadLetter::key_fields(), &[]).await?);
    let register_dead_letters = registers_dead_letters(config);
    let mut dead = DeadLetterState {
        checkpoints: dl_table.checkpoints().await?,
        table: dl_table,
        pending: Vec::new(),
        sync_pending: None,
    };
    if register_dead_letters {
        dead.sync_pending = dead
            .table
            .catalog_state()
            .await?
            .map(|s| (s.version, Vec::new()));
        sync_dead_letters(&catalog, &lake, &mut dead).await;
    }
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
        // Dead letters are committed before the route tables in every round, so everything up to the
        // oldest route checkpoint is already in the dead-letter table.
        let resume = resume_point(&routes, &route_ids);
        // Connecting may retry for a long time (brokers away): a stop request ends the run cleanly.
        let opened = tokio::select! {
            opened = open_source(config, name, source, resume.as_ref(), options.once) => opened?,
            _ = until_stopped(stop) => {
                tracing::info!(source = %name, "stopped while connecting; nothing was read");
                return Ok(None);
            }
        };
        let (reader, label, poll_interval) = opened;
        tracing::info!(source = %name, from = %label, resume = %resume.as_ref().map(Checkpoint::describe).unwrap_or_else(|| "start".into()), "reading");
        sources.push(SourceState {
            name: name.clone(),
            checkpoint: resume,
            reader,
            poll_interval,
            routes: route_ids,
            prefetched: None,
        });
    }
    Ok(Some(Pipeline {
        lake,
        catalog,
        routes,
        dead,
        sources,
        register_dead_letters,
    }))
}

/// Takes one batch from every source and folds it; true when all of them are caught up. While a batch
/// is folded, the source already reads (and decodes) the next one, unless this batch fills the commit.
async fn poll_sources(
    p: &mut Pipeline,
    pending: &mut Pending,
    summary: &mut RunSummary,
) -> Result<bool, PipelineError> {
    let mut all_caught_up = true;
    for s in p.sources.iter_mut() {
        let source_error = |name: &str| {
            let name = name.to_string();
            move |error| PipelineError::Source { name, error }
        };
        let batch = match s.prefetched.take() {
            Some(b) => b,
            None => s
                .reader
                .poll(pending.poll_limits())
                .await
                .map_err(source_error(&s.name))?,
        };
        pending.records += batch.records.len();
        let read_ahead = !batch.caught_up && !pending.full();
        let mut fold = || {
            dispatch(
                &batch.records,
                &s.name,
                &s.routes,
                &mut p.routes,
                &p.dead.checkpoints,
                summary,
            )
        };
        let rejects = if read_ahead {
            // The source reads on its own task (its decoding on the blocking pool) while this one folds.
            let mut reader = std::mem::replace(&mut s.reader, Box::new(ReadingAhead));
            let limits = pending.poll_limits();
            let next = tokio::spawn(async move {
                let batch = reader.poll(limits).await;
                (reader, batch)
            });
            let rejects = fold();
            let (reader, batch) = next.await.map_err(|e| PipelineError::Source {
                name: s.name.clone(),
                error: lakefold_api::SourceError::Stopped(format!("reading ahead stopped: {e}")),
            })?;
            s.reader = reader;
            s.prefetched = Some(batch.map_err(source_error(&s.name))?);
            rejects
        } else {
            fold()
        };
        dead_letters(rejects, s, &mut p.dead, summary);
        all_caught_up &= batch.caught_up
            && s.prefetched
                .as_ref()
                .is_none_or(|b| b.caught_up && b.records.is_empty());
        if batch.checkpoint.is_some() {
            s.checkpoint = batch.checkpoint;
        }
    }
    pending.bytes = held_bytes(&p.routes, &p.dead);
    Ok(all_caught_up)
}

/// Stands in for a source while it reads ahead on its own task (never polled).
struct ReadingAhead;

#[async_trait::async_trait]
impl lakefold_api::Source for ReadingAhead {
    async fn poll(&mut self, _: BatchLimits) -> Result<ChangeBatch, lakefold_api::SourceError> {
        Err(lakefold_api::SourceError::Stopped(
            "the source is reading ahead".into(),
        ))
    }
}

/// What the folds and the dead letters waiting for the next commit hold, in bytes (`[commit] max_bytes`).
fn held_bytes(routes: &[RouteState], dead: &DeadLetterState) -> usize {
    let dead_bytes: usize = dead.pending.iter().map(StagedRow::held_bytes).sum();
    routes.iter().map(|r| r.fold.bytes()).sum::<usize>() + dead_bytes
}

/// One commit round with the sources paused around it, then the catalog.
async fn commit(p: &mut Pipeline, summary: &mut RunSummary) -> Result<(), PipelineError> {
    for s in p.sources.iter_mut() {
        s.reader.before_commit();
    }
    commit_round(&mut p.routes, &p.sources, &mut p.dead, summary).await?;
    sync_catalog(&p.catalog, &p.lake, &mut p.routes).await;
    if p.register_dead_letters {
        sync_dead_letters(&p.catalog, &p.lake, &mut p.dead).await;
    }
    for s in p.sources.iter_mut() {
        s.reader.after_commit(s.checkpoint.as_ref());
    }
    Ok(())
}

/// Sleeps for the shortest poll interval, waking early on a stop request.
async fn nap(sources: &[SourceState], stop: &AtomicBool) {
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

pub(super) async fn until_stopped(stop: &AtomicBool) {
    while !stop.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
