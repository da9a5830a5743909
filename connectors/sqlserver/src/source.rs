//! The SQL Server CDC source: an initial snapshot, then bounded LSN windows of every capture instance
//! merged into log order, as Debezium's SQL Server connector reads them.

use crate::cdc::{CdcDatabase, CdcError, ChangeTable};
use crate::rows::Capture;
use lakefold_api::{
    BatchLimits, ChangeBatch, Checkpoint, Lsn, LsnPosition, Position, SnapshotCursor,
    SnapshotProgress, SourceError, SourceRecord, SqlServerCheckpoint, StreamPosition, TableId,
    Value,
};
use std::collections::VecDeque;
use std::time::Duration;

mod progress;
mod snapshot;
mod validate;
mod window;
use window::WindowSize;

type DbFuture<'a, T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, CdcError>> + Send + 'a>>;

/// What to do when changes were cleaned up before they were read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GapPolicy {
    Fail,
    Resnapshot,
}

/// How the source starts when no checkpoint is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotMode {
    Initial,
    Never,
}

/// What the source reads and how.
#[derive(Debug, Clone)]
pub struct CdcOptions {
    /// The source's name in the config (for messages).
    pub name: String,
    /// The routes' `from` tables (`schema.table`).
    pub tables: Vec<TableId>,
    /// Capture instances named in the config; empty = discovered from `cdc.change_tables`.
    pub capture_instances: Vec<String>,
    /// Transactions per LSN window (Debezium's `max.iteration.transactions`).
    pub max_transactions_per_window: u32,
    pub on_gap: GapPolicy,
    pub snapshot: SnapshotMode,
    /// Rows per snapshot query.
    pub snapshot_chunk_rows: u32,
    /// Attempts of a call after a connection error, with backoff, before the run stops.
    pub max_attempts: u32,
}

/// A position after every change of transaction `lsn` (what a finished snapshot at `lsn` covers).
fn end_of(lsn: Lsn) -> LsnPosition {
    LsnPosition {
        commit_lsn: lsn,
        change_lsn: Some(Lsn((1u128 << 80) - 1)),
        event_serial_no: Some(i64::MAX),
    }
}

/// What handing out a queued item does to the checkpoint.
enum Advance {
    Change,
    SnapshotRow {
        instance: String,
        row: u64,
        key: Vec<serde_json::Value>,
    },
    TableDone(String),
    SnapshotDone(Lsn),
}

struct Queued {
    record: Option<SourceRecord>,
    advance: Advance,
}

enum Phase {
    Snapshot,
    Streaming { from: Lsn },
}

/// Reads SQL Server CDC through a [`CdcDatabase`].
pub struct SqlServerSource {
    db: Box<dyn CdcDatabase>,
    options: CdcOptions,
    captures: Vec<Capture>,
    checkpoint: SqlServerCheckpoint,
    phase: Phase,
    queue: VecDeque<Queued>,
    /// The (commit, change) LSNs and serial of the last change queued (Debezium's offset context).
    last_change: Option<LsnPosition>,
    /// Transactions per window now (smaller than configured after a timeout).
    window: WindowSize,
    /// The snapshot progress shown for the table being read.
    progress: Option<progress::TableProgress>,
    /// The lag last measured, and when.
    lag: Option<(std::time::Instant, Vec<lakefold_api::Lag>)>,
}

impl SqlServerSource {
    /// A source that has asked the database nothing yet.
    fn unopened(db: Box<dyn CdcDatabase>, options: CdcOptions) -> SqlServerSource {
        SqlServerSource {
            db,
            window: WindowSize::new(options.max_transactions_per_window),
            progress: None,
            lag: None,
            options,
            captures: Vec::new(),
            checkpoint: SqlServerCheckpoint {
                database: String::new(),
                lsn: None,
                snapshot: None,
                resnapshotted: Default::default(),
            },
            phase: Phase::Snapshot,
            queue: VecDeque::new(),
            last_change: None,
        }
    }

    /// Resolves the capture instances and positions the source after `resume`.
    pub async fn open(
        db: Box<dyn CdcDatabase>,
        options: CdcOptions,
        resume: Option<&SqlServerCheckpoint>,
    ) -> Result<SqlServerSource, SourceError> {
        let mut src = SqlServerSource::unopened(db, options);
        let database = src.call(|db| Box::pin(db.database_name())).await?;
        if let Some(cp) = resume {
            if !cp.database.eq_ignore_ascii_case(&database) {
                return Err(src.fatal(format!(
                    "the stored checkpoint belongs to database `{}`, the connection is to `{database}`",
                    cp.database
                )));
            }
        }
        src.captures = src.resolve_captures().await?;
        src.checkpoint = match resume {
            Some(cp) => cp.clone(),
            None => SqlServerCheckpoint {
                database,
                lsn: None,
                snapshot: None,
                resnapshotted: Default::default(),
            },
        };
        src.last_change = src.checkpoint.lsn;
        src.phase = src.start_phase().await?;
        Ok(src)
    }

    fn fatal(&self, message: String) -> SourceError {
        SourceError::Cdc {
            name: self.options.name.clone(),
            message,
        }
    }

    fn source_error(&self, e: CdcError) -> SourceError {
        if e.is_transient() {
            SourceError::Database {
                server: self.db.describe(),
                context: format!("source {}", self.options.name),
                message: e.to_string(),
            }
        } else {
            self.fatal(e.to_string())
        }
    }

    /// Runs a database call, retrying connection errors with backoff.
    async fn call<T, F>(&mut self, f: F) -> Result<T, SourceError>
    where
        F: for<'a> Fn(&'a mut dyn CdcDatabase) -> DbFuture<'a, T>,
    {
        self.retrying(f, CdcError::is_transient)
            .await
            .map_err(|e| self.source_error(e))
    }

    /// Runs a database call, retrying with backoff the errors `retry` accepts; the database's own error.
    async fn retrying<T, F>(
        &mut self,
        f: F,
        retry: impl Fn(&CdcError) -> bool,
    ) -> Result<T, CdcError>
    where
        F: for<'a> Fn(&'a mut dyn CdcDatabase) -> DbFuture<'a, T>,
    {
        let mut delay = Duration::from_millis(100);
        let mut attempt = 1;
        loop {
            match f(self.db.as_mut()).await {
                Ok(v) => return Ok(v),
                Err(e) if retry(&e) && attempt < self.options.max_attempts => {
                    tracing::warn!(source = %self.options.name, attempt, error = %e, "sql server call failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(30));
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The capture instance(s) of every route table: configured ones, else all that capture it. When a
    /// table has two (a schema change in progress), the older one is read up to the newer one's start.
    async fn resolve_captures(&mut self) -> Result<Vec<Capture>, SourceError> {
        let tables = self.call(|db| Box::pin(db.change_tables())).await?;
        let mut chosen: Vec<ChangeTable> = Vec::new();
        let mut problems = Vec::new();
        if self.options.capture_instances.is_empty() {
            for id in &self.options.tables {
                let found: Vec<&ChangeTable> = tables
                    .iter()
                    .filter(|t| {
                        id.matches(&TableId {
                            schema: Some(t.schema.clone()),
                            table: t.table.clone(),
                        })
                    })
                    .collect();
                if found.is_empty() {
                    problems.push(format!("CDC is not enabled for table {id} (no capture instance in cdc.change_tables)"));
                }
                chosen.extend(found.into_iter().cloned());
            }
        } else {
            for name in &self.options.capture_instances {
                match tables
                    .iter()
                    .find(|t| t.instance.eq_ignore_ascii_case(name))
                {
                    Some(t) => chosen.push(t.clone()),
                    None => problems.push(format!(
                        "capture instance `{name}` does not exist (cdc.change_tables lists {})",
                        tables
                            .iter()
                            .map(|t| t.instance.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )),
                }
            }
        }
        if !problems.is_empty() {
            return Err(self.fatal(problems.join("; ")));
        }
        chosen.sort_by(|a, b| a.instance.cmp(&b.instance));
        chosen.dedup_by(|a, b| a.instance == b.instance);
        let mut captures = Vec::with_capacity(chosen.len());
        for t in chosen {
            let table = self
                .call(|db| {
                    let t = t.clone();
                    Box::pin(async move { db.capture_table(&t).await })
                })
                .await?;
            if table.key_names().is_empty() {
                tracing::warn!(instance = %t.instance, "capture instance has no index columns; snapshot chunks need a key");
            }
            captures.push(Capture::new(table));
        }
        let starts: Vec<(TableId, Lsn)> = captures
            .iter()
            .map(|c| (c.id.clone(), c.table.change_table.start_lsn))
            .collect();
        for c in &mut captures {
            let own = c.table.change_table.start_lsn;
            c.stop_lsn = starts
                .iter()
                .filter(|(id, start)| id.matches(&c.id) && *start > own)
                .map(|(_, s)| *s)
                .min();
            if let Some(stop) = c.stop_lsn {
                tracing::info!(instance = %c.instance(), until = %stop, "a newer capture instance of the same table exists; reading this one up to its start");
            }
        }
        Ok(captures)
    }

    /// Snapshot first (no checkpoint and `initial`, or one under way), else stream.
    async fn start_phase(&mut self) -> Result<Phase, SourceError> {
        if self.checkpoint.snapshot.is_some() {
            self.begin_snapshot().await?;
            return Ok(Phase::Snapshot);
        }
        if let Some(last) = self.checkpoint.lsn {
            return Ok(Phase::Streaming {
                from: last.commit_lsn,
            });
        }
        match self.options.snapshot {
            SnapshotMode::Initial => {
                self.begin_snapshot().await?;
                let lsn = self.call(|db| Box::pin(db.max_lsn())).await?;
                tracing::info!(source = %self.options.name, at = %lsn, tables = self.captures.len(), "initial snapshot");
                self.checkpoint.snapshot = Some(SnapshotProgress {
                    lsn,
                    done: Vec::new(),
                    current: None,
                });
                Ok(Phase::Snapshot)
            }
            SnapshotMode::Never => {
                let mut from: Option<Lsn> = None;
                for i in 0..self.captures.len() {
                    let min = self.min_lsn(i).await?;
                    from = Some(from.map_or(min, |f| f.min(min)));
                }
                Ok(Phase::Streaming {
                    from: from.unwrap_or_default(),
                })
            }
        }
    }

    /// `sys.fn_cdc_get_min_lsn` of capture `idx`.
    async fn min_lsn(&mut self, idx: usize) -> Result<Lsn, SourceError> {
        let name = self.captures[idx].instance().to_string();
        self.call(|db| {
            let n = name.clone();
            Box::pin(async move { db.min_lsn(&n).await })
        })
        .await
    }

    /// Queues what comes next; false when nothing more is available now.
    async fn fill(&mut self, limits: BatchLimits) -> Result<bool, SourceError> {
        match self.phase {
            Phase::Snapshot => self.fill_snapshot(limits).await.map(|_| true),
            Phase::Streaming { from } => self.fill_window(from).await,
        }
    }

    /// Moves the checkpoint past a handed-out item.
    fn advance(&mut self, q: &Queued) {
        match &q.advance {
            Advance::Change => {
                if let Some(at) = q.record.as_ref().and_then(|r| r.position.lsn) {
                    self.checkpoint.lsn = Some(at);
                    // Once streaming is past a re-snapshot's LSN, nothing of that instance is covered by it.
                    self.checkpoint
                        .resnapshotted
                        .retain(|_, s| *s >= at.commit_lsn);
                }
            }
            Advance::SnapshotRow { instance, row, key } => {
                if let Some(s) = &mut self.checkpoint.snapshot {
                    let cur = s.current.get_or_insert_with(|| SnapshotCursor {
                        instance: instance.clone(),
                        rows: 0,
                        last_key: Vec::new(),
                    });
                    if cur.instance != *instance {
                        *cur = SnapshotCursor {
                            instance: instance.clone(),
                            rows: 0,
                            last_key: Vec::new(),
                        };
                    }
                    cur.rows = *row;
                    cur.last_key = key.clone();
                }
            }
            Advance::TableDone(instance) => {
                if let Some(s) = &mut self.checkpoint.snapshot {
                    if !s.done.contains(instance) {
                        s.done.push(instance.clone());
                    }
                    s.current = None;
                }
            }
            // A re-snapshot leaves the position where streaming resumes; the initial one moves it past
            // its LSN.
            Advance::SnapshotDone(lsn) => {
                self.checkpoint.snapshot = None;
                if self.checkpoint.lsn.is_none() {
                    self.checkpoint.lsn = Some(end_of(*lsn));
                }
                self.last_change = None;
            }
        }
    }

    /// Where a record is, for people.
    pub fn describe(&self, position: &Position) -> String {
        match (&position.stream, &position.lsn) {
            (StreamPosition::Snapshot { instance, row }, _) => {
                format!(
                    "{} snapshot of {instance} row {row}",
                    self.checkpoint.database
                )
            }
            (_, Some(l)) => format!(
                "{} commit_lsn {} change_lsn {} event_serial_no {}",
                self.checkpoint.database,
                l.commit_lsn,
                l.change_lsn
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| "-".into()),
                l.event_serial_no.unwrap_or(0)
            ),
            _ => position.to_string(),
        }
    }
}

#[async_trait::async_trait]
impl lakefold_api::Source for SqlServerSource {
    async fn poll(&mut self, limits: BatchLimits) -> Result<ChangeBatch, SourceError> {
        let mut records = Vec::new();
        let mut bytes = 0usize;
        let mut caught_up = false;
        while records.len() < limits.max_records && bytes < limits.max_bytes {
            let Some(q) = self.queue.pop_front() else {
                if !self.fill(limits).await? {
                    caught_up = true;
                    break;
                }
                continue;
            };
            self.advance(&q);
            if let Some(r) = q.record {
                bytes += r.raw.len();
                records.push(r);
            }
        }
        Ok(ChangeBatch {
            records,
            checkpoint: Some(Checkpoint::SqlserverCdc(self.checkpoint.clone())),
            caught_up,
        })
    }

    fn locate(&self, position: &Position) -> String {
        self.describe(position)
    }

    /// Seconds between the commit time of the last change read and of the newest transaction
    /// (`fn_cdc_get_max_lsn`), refreshed every [`LAG_REFRESH`]; nothing while a snapshot runs.
    async fn lag(&mut self) -> Vec<lakefold_api::Lag> {
        if let Some((at, lag)) = &self.lag {
            if at.elapsed() < LAG_REFRESH {
                return lag.clone();
            }
        }
        let lag = match (self.checkpoint.snapshot.is_none(), self.checkpoint.lsn) {
            (true, Some(read)) => self.seconds_behind(read.commit_lsn).await,
            _ => None,
        };
        let out: Vec<_> = lag
            .into_iter()
            .map(|value| lakefold_api::Lag {
                partition: None,
                value,
                unit: lakefold_api::LagUnit::Seconds,
            })
            .collect();
        self.lag = Some((std::time::Instant::now(), out.clone()));
        out
    }
}

/// How often the SQL Server source measures its lag (two small queries).
const LAG_REFRESH: Duration = Duration::from_secs(10);

impl SqlServerSource {
    /// Commit time of the newest transaction minus that of `read` (0 when caught up), in seconds.
    async fn seconds_behind(&mut self, read: Lsn) -> Option<f64> {
        let max = self.db.max_lsn().await.ok()?;
        if max <= read {
            return Some(0.0);
        }
        let time = |times: Vec<(Lsn, i64)>| times.first().map(|(_, t)| *t);
        let newest = time(self.db.transaction_times(max, max).await.ok()?)?;
        let last = time(self.db.transaction_times(read, read).await.ok()?)?;
        Some(((newest - last) as f64 / 1e6).max(0.0))
    }
}

/// The value of `column` in a record's row image (tests and tools).
pub fn value_of<'a>(record: &'a SourceRecord, column: &str) -> Option<&'a Value> {
    match &record.decoded {
        lakefold_api::Decoded::Event(e) => e.image()?.get(column).map(|(_, v)| v),
        _ => None,
    }
}
