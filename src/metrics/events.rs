//! Typed events: each says what happened once and emits its log line, its metrics and its `/status`
//! update together, so the three never disagree.

use super as m;
use crate::service::status::board;
use crate::sink::CommitSummary;
use ::metrics::{counter, gauge, histogram};
use lakefold_api::{Checkpoint, Lag, LagUnit};
use std::time::Duration;

/// A route's table is open: its counters exist from now on (at 0), so dashboards and alerts see every
/// table and source before anything happens to it.
pub struct RouteOpened<'a> {
    pub table: &'a str,
    pub source: &'a str,
}

impl RouteOpened<'_> {
    pub fn emit(&self) {
        let table = self.table.to_string();
        for name in [
            m::TABLE_COMMITS,
            m::TABLE_ROWS_INSERTED,
            m::TABLE_ROWS_UPDATED,
            m::TABLE_ROWS_DELETED,
            m::TABLE_BYTES_WRITTEN,
            m::CATALOG_SYNC_FAILURES,
        ] {
            counter!(name, "table" => table.clone()).increment(0);
        }
        let source = self.source.to_string();
        for name in [m::SOURCE_RECORDS, m::SOURCE_EVENTS, m::SOURCE_SKIPPED] {
            counter!(name, "source" => source.clone()).increment(0);
        }
        counter!(m::DEAD_LETTERS, "source" => source, "table" => table).increment(0);
    }
}

/// A batch of one source went through the routes.
pub struct BatchRead<'a> {
    pub source: &'a str,
    pub records: u64,
    pub events: u64,
    pub skipped: u64,
}

impl BatchRead<'_> {
    pub fn emit(&self) {
        let source = self.source.to_string();
        counter!(m::SOURCE_RECORDS, "source" => source.clone()).increment(self.records);
        counter!(m::SOURCE_EVENTS, "source" => source.clone()).increment(self.events);
        counter!(m::SOURCE_SKIPPED, "source" => source).increment(self.skipped);
        board().source(self.source, |s| {
            s.records += self.records;
            s.events += self.events;
            s.skipped += self.skipped;
        });
    }
}

/// A record went to the dead-letter table.
pub struct DeadLettered<'a> {
    pub source: &'a str,
    /// The route it did not fit; `None` when it could not be decoded at all.
    pub table: Option<&'a str>,
    pub location: &'a str,
    pub error: &'a str,
}

impl DeadLettered<'_> {
    pub fn emit(&self) {
        let table = self.table.unwrap_or("-");
        tracing::warn!(source = %self.source, at = %self.location, table, error = %self.error, "dead letter");
        counter!(m::DEAD_LETTERS, "source" => self.source.to_string(), "table" => table.to_string())
            .increment(1);
        board().source(self.source, |s| s.dead_letters += 1);
        if let Some(t) = self.table {
            board().route(t, |r| r.dead_letters += 1);
        }
    }
}

/// A table committed: rows with their checkpoint, or the checkpoint alone.
pub struct TableCommitted<'a> {
    pub table: &'a str,
    pub instant: &'a str,
    pub summary: &'a CommitSummary,
    pub duration: Duration,
    pub checkpoint: Option<&'a Checkpoint>,
    /// The source commit time of the newest change in the commit (ms since the epoch).
    pub newest_change_ms: Option<i64>,
}

impl TableCommitted<'_> {
    pub fn emit(&self) {
        let s = self.summary;
        let checkpoint = self
            .checkpoint
            .map(Checkpoint::describe)
            .unwrap_or_else(|| "-".into());
        let seconds = self.duration.as_secs_f64();
        let now = chrono::Utc::now();
        let freshness = self
            .newest_change_ms
            .map(|ts| ((now.timestamp_millis() - ts) as f64 / 1000.0).max(0.0));
        if s.files > 0 || s.inserts + s.updates + s.deletes > 0 {
            tracing::info!(table = %self.table, instant = %self.instant, inserts = s.inserts, updates = s.updates, deletes = s.deletes, files = s.files, bytes = s.bytes, seconds, freshness_seconds = ?freshness, checkpoint = %checkpoint, "committed");
        } else {
            tracing::info!(table = %self.table, instant = %self.instant, checkpoint = %checkpoint, "committed the checkpoint (no rows to write)");
        }
        let table = self.table.to_string();
        counter!(m::TABLE_COMMITS, "table" => table.clone()).increment(1);
        counter!(m::TABLE_ROWS_INSERTED, "table" => table.clone()).increment(s.inserts);
        counter!(m::TABLE_ROWS_UPDATED, "table" => table.clone()).increment(s.updates);
        counter!(m::TABLE_ROWS_DELETED, "table" => table.clone()).increment(s.deletes);
        counter!(m::TABLE_BYTES_WRITTEN, "table" => table.clone()).increment(s.bytes);
        histogram!(m::TABLE_COMMIT_DURATION, "table" => table.clone()).record(seconds);
        gauge!(m::TABLE_LAST_COMMIT, "table" => table.clone()).set(now.timestamp() as f64);
        if let Some(f) = freshness {
            gauge!(m::TABLE_FRESHNESS, "table" => table).set(f);
        }
        board().route(self.table, |r| {
            r.last_instant = Some(self.instant.to_string());
            r.last_commit_time = Some(now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
            r.checkpoint = self.checkpoint.map(Checkpoint::describe);
            r.commits += 1;
            r.rows_inserted += s.inserts;
            r.rows_updated += s.updates;
            r.rows_deleted += s.deletes;
            if freshness.is_some() {
                r.freshness_seconds = freshness;
            }
            r.last_error = None;
        });
    }
}

/// A table's catalog registration failed; it is retried after the next commit.
pub struct CatalogSyncFailed<'a> {
    pub table: &'a str,
    pub instant: &'a str,
    pub error: &'a str,
}

impl CatalogSyncFailed<'_> {
    pub fn emit(&self) {
        tracing::error!(table = %self.table, instant = %self.instant, error = %self.error, "catalog sync failed; the data is committed, the sync is retried after the next commit");
        counter!(m::CATALOG_SYNC_FAILURES, "table" => self.table.to_string()).increment(1);
        board().route(self.table, |r| {
            r.last_error = Some(format!("catalog sync: {}", self.error))
        });
    }
}

/// How far a source's reader is behind.
pub struct SourceLagged<'a> {
    pub source: &'a str,
    pub lag: &'a [Lag],
}

impl SourceLagged<'_> {
    pub fn emit(&self) {
        let mut shown = std::collections::BTreeMap::new();
        for l in self.lag {
            let source = self.source.to_string();
            match (l.unit, l.partition) {
                (LagUnit::Bytes, _) => gauge!(m::SOURCE_LAG_BYTES, "source" => source).set(l.value),
                (LagUnit::Seconds, _) => {
                    gauge!(m::SOURCE_LAG_SECONDS, "source" => source).set(l.value)
                }
                (LagUnit::Messages, p) => gauge!(m::SOURCE_LAG_MESSAGES, "source" => source, "partition" => p.unwrap_or(0).to_string())
                .set(l.value),
            }
            let unit = match l.unit {
                LagUnit::Bytes => "bytes",
                LagUnit::Messages => "messages",
                LagUnit::Seconds => "seconds",
            };
            let key = match l.partition {
                Some(p) => format!("{unit}[{p}]"),
                None => unit.to_string(),
            };
            shown.insert(key, l.value);
        }
        board().source(self.source, |s| s.lag = shown);
    }
}

/// What the folds hold for the next commit.
pub struct FoldHeld {
    pub bytes: usize,
}

impl FoldHeld {
    pub fn emit(&self) {
        gauge!(m::FOLD_BYTES).set(self.bytes as f64);
    }
}

/// The run stopped on a transient error and is reopened after `retry_in` (data committed so far is safe;
/// what was folded since is read again from the source).
pub struct Outage<'a> {
    pub error: &'a str,
    pub retry_in: Duration,
    /// How long the outage has lasted (since the first failure without a successful commit).
    pub since: Duration,
}

impl Outage<'_> {
    pub fn emit(&self) {
        tracing::warn!(error = %self.error, retry_in = ?self.retry_in, outage_seconds = self.since.as_secs_f64(), "riding out an outage: the run is reopened from the tables' checkpoints");
        counter!(m::OUTAGE_RETRIES).increment(1);
        gauge!(m::DEGRADED).set(1.0);
        board().set_degraded(Some(self.error.to_string()));
    }

    /// The outage is over (a run finished or committed again).
    pub fn over() {
        gauge!(m::DEGRADED).set(0.0);
        board().set_degraded(None);
    }
}
