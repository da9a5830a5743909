//! The initial snapshot: the tables read at one LSN in key-ordered chunks, progress kept in the checkpoint.

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
        let next = self
            .captures
            .iter()
            .position(|c| !progress.done.iter().any(|d| d == c.instance()));
        let Some(idx) = next else {
            let _ = self.call(|db| Box::pin(db.end_snapshot())).await?;
            self.queue.push_back(Queued {
                record: None,
                advance: Advance::SnapshotDone(progress.lsn),
            });
            self.phase = Phase::Streaming {
                from: increment(progress.lsn),
            };
            tracing::info!(source = %self.options.name, at = %progress.lsn, "initial snapshot finished; streaming changes");
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
            tracing::info!(instance = %capture.instance(), rows = row, "snapshot of table done");
            self.queue.push_back(Queued {
                record: None,
                advance: Advance::TableDone(capture.instance().to_string()),
            });
            return Ok(());
        }
        tracing::info!(instance = %capture.instance(), rows = row + rows.len() as u64, "snapshot progress");
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
        // A chunk that ends the table is followed by an empty query next time; none is needed when short.
        if n < limit as usize {
            self.queue.push_back(Queued {
                record: None,
                advance: Advance::TableDone(capture.instance().to_string()),
            });
        }
        Ok(())
    }
}
