//! Streaming: bounded LSN windows of every capture instance merged into log order, the gap check before
//! each window (fail, or re-snapshot the table), and the window size that shrinks when a change query
//! times out.

use super::{Advance, GapPolicy, Phase, Queued, SqlServerSource};
use crate::cdc::{CdcError, INVALID_RANGE_ERROR};
use crate::history::ChangeRow;
use lakefold_api::{Lsn, LsnPosition, SnapshotProgress, SourceError};
use std::collections::HashMap;

/// Windows read at a reduced size before the size doubles again.
const GROW_AFTER: u32 = 8;

/// Transactions per window: the configured number, halved after a change query timed out, doubled back
/// after [`GROW_AFTER`] windows read in time.
#[derive(Debug, Clone)]
pub(super) struct WindowSize {
    configured: u32,
    pub(super) current: u32,
    in_time: u32,
}

impl WindowSize {
    pub(super) fn new(configured: u32) -> WindowSize {
        let configured = configured.max(1);
        WindowSize {
            configured,
            current: configured,
            in_time: 0,
        }
    }

    fn shrink(&mut self, source: &str, error: &CdcError) {
        let from = self.current;
        self.current = (self.current / 2).max(1);
        self.in_time = 0;
        tracing::warn!(source, from, to = self.current, %error, "a change query timed out; reading smaller LSN windows");
    }

    fn read_in_time(&mut self, source: &str) {
        if self.current >= self.configured {
            return;
        }
        self.in_time += 1;
        if self.in_time >= GROW_AFTER {
            self.current = (self.current * 2).min(self.configured);
            self.in_time = 0;
            tracing::info!(
                source,
                transactions = self.current,
                "LSN windows grow again"
            );
        }
    }
}

/// What reading one capture instance's part of a window gave.
enum Read {
    Rows(Vec<ChangeRow>),
    /// Nothing of this instance belongs to the window.
    Skipped,
    /// The window must be read again from the start (it shrank, or a re-snapshot began).
    Restart,
}

/// The result of the gap check of one instance.
enum Gap {
    /// No gap; the instance's minimum LSN.
    No(Lsn),
    Found {
        stored: Lsn,
        min: Lsn,
    },
}

impl SqlServerSource {
    /// Reads the next LSN window from `from`; false when there is none yet.
    pub(super) async fn fill_window(&mut self, from: Lsn) -> Result<bool, SourceError> {
        let max = self.call(|db| Box::pin(db.max_lsn())).await?;
        if from > max {
            return Ok(false);
        }
        let n = self.window.current;
        let end = match self.call(|db| Box::pin(db.window_end(from, n))).await? {
            Some(end) => end.min(max),
            None => return Ok(false),
        };
        let mut rows: Vec<(usize, ChangeRow)> = Vec::new();
        for idx in 0..self.captures.len() {
            match self.read_instance(idx, from, end).await? {
                Read::Rows(r) => rows.extend(r.into_iter().map(|c| (idx, c))),
                Read::Skipped => {}
                Read::Restart => return Ok(true),
            }
        }
        self.window.read_in_time(&self.options.name);
        rows.sort_by_key(|(_, c)| (c.start_lsn, c.seqval, c.operation));
        let times = if rows.is_empty() {
            HashMap::new()
        } else {
            self.call(|db| Box::pin(db.transaction_times(from, end)))
                .await?
                .into_iter()
                .collect()
        };
        // Windows start at a transaction, so serial numbers never continue across them; a resumed window
        // re-reads its first transaction and numbers it exactly as the first read did.
        self.last_change = None;
        self.queue_changes(rows, &times);
        self.phase = Phase::Streaming {
            from: self.call(|db| Box::pin(db.increment_lsn(end))).await?,
        };
        Ok(true)
    }

    /// One instance's changes in `from..=end` (bounded by a newer instance's start).
    async fn read_instance(
        &mut self,
        idx: usize,
        from: Lsn,
        end: Lsn,
    ) -> Result<Read, SourceError> {
        // An older instance already read up to its successor's start is done: no gap check (its cleanup
        // no longer matters), no query.
        if self.captures[idx].stop_lsn.is_some_and(|stop| stop <= from) {
            return Ok(Read::Skipped);
        }
        let min = match self.check_gap(idx).await? {
            Gap::No(min) => min,
            Gap::Found { stored, min } => return self.on_gap(idx, stored, min).await,
        };
        let lo = from.max(min);
        let hi = match self.captures[idx].stop_lsn {
            Some(stop) if stop <= lo => return Ok(Read::Skipped),
            Some(stop) => end.min(Lsn(stop.0 - 1)),
            None => end,
        };
        if lo > hi {
            return Ok(Read::Skipped);
        }
        let table = self.captures[idx].table.clone();
        // A timeout shrinks the window instead of asking the same question again, down to one transaction.
        let shrinkable = self.window.current > 1;
        let got = self
            .retrying(
                |db| {
                    let t = table.clone();
                    Box::pin(async move { db.changes(&t, lo, hi).await })
                },
                |e| e.is_transient() && !(shrinkable && e.is_timeout()),
            )
            .await;
        match got {
            Ok(rows) => Ok(Read::Rows(rows)),
            Err(CdcError::Server { number, .. }) if number == INVALID_RANGE_ERROR => {
                // The cleanup job ran between the minimum LSN check and the query.
                match self.check_gap(idx).await? {
                    Gap::Found { stored, min } => self.on_gap(idx, stored, min).await,
                    Gap::No(_) => Ok(Read::Restart),
                }
            }
            Err(e) if shrinkable && e.is_timeout() => {
                self.window.shrink(&self.options.name, &e);
                Ok(Read::Restart)
            }
            Err(e) => Err(self.source_error(e)),
        }
    }

    /// Compares the instance's minimum LSN with the position after the checkpoint (or after the
    /// instance's re-snapshot): cleanup of changes already read is normal, beyond that is a gap.
    async fn check_gap(&mut self, idx: usize) -> Result<Gap, SourceError> {
        let min = self.min_lsn(idx).await?;
        let resnapshot = self
            .checkpoint
            .resnapshotted
            .get(self.captures[idx].instance())
            .copied();
        let stored = match [self.checkpoint.lsn.map(|l| l.commit_lsn), resnapshot]
            .into_iter()
            .flatten()
            .max()
        {
            Some(s) => s,
            None => return Ok(Gap::No(min)),
        };
        let next = self.call(|db| Box::pin(db.increment_lsn(stored))).await?;
        if min > next && self.captures[idx].table.change_table.start_lsn <= stored {
            return Ok(Gap::Found { stored, min });
        }
        Ok(Gap::No(min))
    }

    async fn on_gap(&mut self, idx: usize, stored: Lsn, min: Lsn) -> Result<Read, SourceError> {
        let instance = self.captures[idx].instance().to_string();
        if self.options.on_gap == GapPolicy::Fail {
            return Err(self.fatal(format!(
                "gap in the change data of capture instance {instance}: the stored checkpoint is at LSN {stored} but the instance's minimum LSN is now {min} (changes in between were removed by the CDC cleanup job before lakefold read them); on_gap = \"fail\": stopping. Raise the retention (sys.sp_cdc_change_job @retention), then set on_gap = \"resnapshot\" for one run or truncate the tables (lakefold table truncate) and run"
            )));
        }
        let at = self.call(|db| Box::pin(db.max_lsn())).await?;
        let table = self.captures[idx].id.clone();
        tracing::warn!(source = %self.options.name, %instance, %stored, %min, %at, "gap in the change data: re-snapshotting the table (on_gap = \"resnapshot\"); rows deleted during the gap stay in the lake tables");
        let done = self
            .captures
            .iter()
            .filter(|c| !c.id.matches(&table))
            .map(|c| c.instance().to_string())
            .collect();
        for c in self.captures.iter().filter(|c| c.id.matches(&table)) {
            self.checkpoint
                .resnapshotted
                .insert(c.instance().to_string(), at);
        }
        self.checkpoint.snapshot = Some(SnapshotProgress {
            lsn: at,
            done,
            current: None,
        });
        self.begin_snapshot().await?;
        self.phase = Phase::Snapshot;
        Ok(Read::Restart)
    }

    /// Pairs updates' before (3) and after (4) rows, numbers events as Debezium does, and queues what the
    /// checkpoint (or a re-snapshot) does not cover, each with its transaction's commit time (`times`, µs).
    fn queue_changes(&mut self, rows: Vec<(usize, ChangeRow)>, times: &HashMap<Lsn, i64>) {
        let mut it = rows.into_iter().peekable();
        while let Some((idx, row)) = it.next() {
            let after = if row.operation == 3 {
                match it.peek() {
                    Some((j, next))
                        if *j == idx && next.operation == 4 && next.seqval == row.seqval =>
                    {
                        it.next().map(|(_, r)| r)
                    }
                    _ => None,
                }
            } else {
                None
            };
            let count = if after.is_some() { 2 } else { 1 };
            let serial = match self.last_change {
                Some(l) if l.commit_lsn == row.start_lsn && l.change_lsn == Some(row.seqval) => {
                    l.event_serial_no.unwrap_or(0) + count
                }
                _ => count,
            };
            let position = LsnPosition {
                commit_lsn: row.start_lsn,
                change_lsn: Some(row.seqval),
                event_serial_no: Some(serial),
            };
            self.last_change = Some(position);
            if self.checkpoint.lsn.is_some_and(|cp| position <= cp)
                || self.resnapshot_covers(idx, &row)
            {
                continue;
            }
            let committed_ms = times.get(&row.start_lsn).map(|us| us.div_euclid(1000));
            let record = self.captures[idx].change_record(position, row, after, committed_ms);
            self.queue.push_back(Queued {
                record: Some(record),
                advance: Advance::Change,
            });
        }
    }

    fn resnapshot_covers(&self, idx: usize, row: &ChangeRow) -> bool {
        self.checkpoint
            .resnapshotted
            .get(self.captures[idx].instance())
            .is_some_and(|at| row.start_lsn <= *at)
    }
}
