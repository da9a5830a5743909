//! An upsert into a Delta table, copy-on-write as Hudi's: the files whose key range admits a changed key
//! have their key and position columns read; a file holding a key whose stored position is older than
//! the incoming one is rewritten with the newer row (or without it, for a delete); new keys go into the
//! partition's smallest file below `small_file_limit` (rewritten) or into new files. One Delta commit
//! removes the replaced files, adds the new ones, and stores the source checkpoints (table configuration
//! and `txn`). Planning is in [`super::plan`], writing in [`super::rewrite`], the commit in
//! [`super::commit`].

use super::error::DeltaError;
use super::table::DeltaSinkTable;
use crate::schema::TableSchema;
use crate::sink::{CommitSummary, SourceCheckpoints, StagedRow, TableLayout};

impl DeltaSinkTable {
    /// Upserts `rows` (one per key) and stores `checkpoints`, in one Delta commit. Commits nothing and
    /// returns an empty summary when no row changes the table.
    pub async fn upsert(
        &mut self,
        schema: &TableSchema,
        rows: Vec<StagedRow>,
        layout: TableLayout,
        checkpoints: &SourceCheckpoints,
    ) -> Result<CommitSummary, DeltaError> {
        let live = self.live_files();
        let mut summary = CommitSummary::default();
        let plans = self
            .plan(schema, &rows, &live, layout, &mut summary)
            .await?;
        if summary.inserts + summary.updates + summary.deletes == 0 {
            return Ok(CommitSummary {
                stale: summary.stale,
                ..CommitSummary::default()
            });
        }
        let file_schema = self.file_schema(schema)?;
        let compression = crate::sink::hudi::codec(layout.compression);
        let mut adds = Vec::new();
        let mut removes = Vec::new();
        for (partition, plan) in plans {
            let files = live.get(&partition).map_or(&[][..], Vec::as_slice);
            let (a, r) = self
                .write_partition(
                    schema,
                    &file_schema,
                    &rows,
                    files,
                    plan,
                    layout,
                    compression,
                )
                .await?;
            if !a.is_empty() {
                summary.partitions.push(partition);
            }
            adds.extend(a);
            removes.extend(r);
        }
        summary.files = adds.len();
        summary.bytes = adds.iter().map(|a| a.size as u64).sum();
        crate::sink::failpoint(&self.name, "after-data");
        let counts = [
            summary.inserts,
            summary.updates,
            summary.deletes,
            summary.files as u64,
        ];
        let version = self
            .commit_actions(schema, adds, removes, checkpoints, counts)
            .await?;
        summary.instant = Some(version.to_string());
        Ok(summary)
    }
}
