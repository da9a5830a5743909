//! The initial snapshot (and the re-snapshot of a table after a gap): the tables read at one LSN in key-ordered chunks, progress kept in the checkpoint.

use super::progress::TableProgress;
use super::{Advance, Phase, Queued, SqlServerSource};
use crate::cdc::increment;
use lakefold_api::{BatchLimits, SourceError};

impl SqlServerSource {
    pub(super) async fn begin_snapshot(&mut self) -> Result<(), SourceError> {
        let snapshot_isolation = self.call(|db| Box::pin(db.begin_snapshot())).await?;
        if !snapshot_isolation {
            tracing::warn!(source = %self.options.name, "snapshot isolation is not allowed in this database; the snapshot reads under REPEATABLE READ");
        }
        Ok(())
    }

    pub(super) async fn fill_snapshot(&mut self, limits: BatchLimits) -> Result<(), SourceError> {
        let Some(progress) = self.checkpoint.snapshot.clone() else {
            return Ok(());
        };
        // A table is read once, through its newest capture instance (the table's columns now).
        let next = self
            .captures
            .iter()
            .position(|c| c.stop_lsn.is_none() && !progress.done.iter().any(|d| d == c.instance()));
        let Some(idx) = next else {
            let _ = self.call(|db| Box::pin(db.end_snapshot())).await?;
            self.queue.push_back(Queued {
                record: None,
                advance: Advance::SnapshotDone(progress.lsn),
            });
            // After a re-snapshot streaming goes on where it stopped (the other tables' changes are still
            // to be read); after the initial one it starts past the snapshot's LSN.
            let from = match self.checkpoint.lsn {
                Some(at) => at.commit_lsn,
                None => increment(progress.lsn),
            };
            self.phase = Phase::Streaming { from };
            tracing::info!(source = %self.options.name, at = %progress.lsn, "snapshot finished; streaming changes");
            return Ok(());
        };
        let capture = self.captures[idx].clone();
        let (mut row, after) = match &progress.current {
            Some(c) if c.instance == capture.instance() => {
                let key = capture.key_values(&c.last_key).map_err(|m| self.fatal(m))?;
                (c.rows, Some(key))
            }
            _ => (0, None),
        };
        self.show_progress(&capture).await;
        let limit = self
            .options
            .snapshot_chunk_rows
            .min(limits.max_records.max(1) as u32);
        let rows = self
            .call(|db| {
                let t = capture.table.clone();
                let a = after.clone();
                Box::pin(async move { db.snapshot_chunk(&t, a.as_deref(), limit).await })
            })
            .await?;
        if rows.is_empty() {
            self.table_done(row);
            self.queue.push_back(Queued {
                record: None,
                advance: Advance::TableDone(capture.instance().to_string()),
            });
            return Ok(());
        }
        let n = rows.len();
        for values in rows {
            row += 1;
            let key = capture.key_json(&values);
            self.queue.push_back(Queued {
                record: Some(capture.snapshot_record(progress.lsn, row, values)),
                advance: Advance::SnapshotRow {
                    instance: capture.instance().to_string(),
                    row,
                    key,
                },
            });
        }
        if let Some(p) = &mut self.progress {
            p.rows(row);
        }
        // A chunk that ends the table is followed by an empty query next time; none is needed when short.
        if n < limit as usize {
            self.table_done(row);
            self.queue.push_back(Queued {
                record: None,
                advance: Advance::TableDone(capture.instance().to_string()),
            });
        }
        Ok(())
    }

    /// Starts the progress display of a table (its row count from the catalog; none is no error).
    async fn show_progress(&mut self, capture: &crate::rows::Capture) {
        if self
            .progress
            .as_ref()
            .is_some_and(|p| p.instance == capture.instance())
        {
            return;
        }
        let table = capture.table.clone();
        let total = self
            .call(|db| {
                let t = table.clone();
                Box::pin(async move { db.row_count(&t).await })
            })
            .await
            .ok()
            .flatten();
        self.progress = Some(TableProgress::new(capture.instance(), total));
    }

    fn table_done(&mut self, rows: u64) {
        if let Some(mut p) = self.progress.take() {
            p.done(rows);
        }
    }
}
