//! VACUUM as a post-commit service, with the Hudi cleaner's retention (the route's
//! `clean_retain_commits` and `clean_min_age`): a data file that a commit removed is deleted once the
//! snapshots of the newest `retain_commits` versions no longer need it and it was removed at least
//! `min_age` ago. Nothing is written to the log (Delta's VACUUM commits are optional bookkeeping).
//!
//! The files lakefold removes are remembered with the version that removed them; at the first run after
//! a start, the tombstones the log still holds (Delta keeps them for `delta.deletedFileRetentionDuration`,
//! a week by default) are added by their deletion time.

use super::error::DeltaError;
use super::table::DeltaSinkTable;
use crate::sink::TableServicePolicy;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::ObjectStore;
use std::collections::{HashSet, VecDeque};

/// Clock skew allowed between this host and the store when a tombstone's deletion time (this host's
/// clock) is compared with a commit file's time (the store's clock).
const SKEW_MS: i64 = 60_000;

/// When a file stopped being part of the table.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum RemovedAt {
    /// By this version, committed by this process.
    Version(u64),
    /// At this time (ms; a tombstone read from the log).
    Time(i64),
}

/// Files removed from the table and not yet deleted.
#[derive(Debug, Default)]
pub struct Vacuum {
    pending: VecDeque<(RemovedAt, i64, Path)>,
    /// The log's tombstones have been read (once per process).
    seeded: bool,
    queued: HashSet<Path>,
}

impl Vacuum {
    /// Remembers `paths`, removed by `version` at `now_ms`.
    pub(super) fn removed(&mut self, version: u64, now_ms: i64, paths: Vec<Path>) {
        for p in paths {
            if self.queued.insert(p.clone()) {
                self.pending
                    .push_back((RemovedAt::Version(version), now_ms, p));
            }
        }
    }

    /// Takes the files that may go now: removed at or before `oldest_kept` (whose commit time is
    /// `oldest_kept_ms`) and at least `min_age_ms` before `now_ms`.
    fn due(
        &mut self,
        oldest_kept: u64,
        oldest_kept_ms: Option<i64>,
        now_ms: i64,
        min_age_ms: i64,
    ) -> Vec<Path> {
        let mut out = Vec::new();
        let mut keep = VecDeque::new();
        while let Some((at, removed_ms, path)) = self.pending.pop_front() {
            let unneeded = match at {
                RemovedAt::Version(v) => v <= oldest_kept,
                RemovedAt::Time(t) => oldest_kept_ms.is_some_and(|k| t < k - SKEW_MS),
            };
            if unneeded && now_ms - removed_ms >= min_age_ms {
                self.queued.remove(&path);
                out.push(path);
            } else {
                keep.push_back((at, removed_ms, path));
            }
        }
        self.pending = keep;
        out
    }
}

impl DeltaSinkTable {
    /// Deletes the data files no retained snapshot needs; returns how many.
    pub async fn vacuum(&mut self, policy: &TableServicePolicy) -> Result<usize, DeltaError> {
        let Some(latest) = self.table.version() else {
            return Ok(0);
        };
        if !self.vacuum.seeded {
            self.seed_tombstones().await?;
        }
        // Snapshots of versions latest-N+1..=latest stay readable: a file removed by version v is
        // needed by the snapshots before v, so it may go once v <= latest-N+1.
        let retain = u64::from(policy.retain_commits.max(1));
        let Some(oldest_kept) = (latest + 1).checked_sub(retain) else {
            return Ok(0);
        };
        let state = self
            .table
            .snapshot()
            .map_err(self.log_error("reading the snapshot"))?;
        let oldest_kept_ms = state.version_timestamp(oldest_kept);
        let now = chrono::Utc::now().timestamp_millis();
        let min_age = i64::try_from(policy.min_age.as_millis()).unwrap_or(i64::MAX);
        let due = self.vacuum.due(oldest_kept, oldest_kept_ms, now, min_age);
        if due.is_empty() {
            return Ok(0);
        }
        let n = due.len();
        let locations = futures::stream::iter(due.into_iter().map(Ok)).boxed();
        let results: Vec<_> = self.store.delete_stream(locations).collect().await;
        for r in results {
            match r {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                Err(source) => {
                    return Err(DeltaError::Storage {
                        table: self.name.clone(),
                        path: "(vacuum)".into(),
                        source: Box::new(source),
                    })
                }
            }
        }
        Ok(n)
    }

    /// Queues the tombstones the log holds (files removed before this process started).
    async fn seed_tombstones(&mut self) -> Result<(), DeltaError> {
        let state = self
            .table
            .snapshot()
            .map_err(self.log_error("reading the snapshot"))?;
        let log_store = self.table.log_store();
        let tombstones: Vec<(String, Option<i64>)> = state
            .all_tombstones(log_store.as_ref())
            .map_ok(|t| (t.path().to_string(), t.deletion_timestamp()))
            .try_collect()
            .await
            .map_err(self.log_error("reading the tombstones"))?;
        for (path, deleted) in tombstones {
            let path = Path::from(path.as_str());
            if self.vacuum.queued.insert(path.clone()) {
                let t = deleted.unwrap_or(0);
                self.vacuum.pending.push_back((RemovedAt::Time(t), t, path));
            }
        }
        self.vacuum.seeded = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_removed_file_goes_once_no_retained_snapshot_needs_it_and_it_is_old_enough() {
        let mut v = Vacuum::default();
        v.removed(3, 1_000, vec![Path::from("a.parquet")]);
        v.removed(5, 2_000, vec![Path::from("b.parquet")]);
        // removed by version 3: the snapshot of version 2 needs it, so it stays while 2 is kept
        assert!(v.due(2, None, 10_000, 0).is_empty());
        assert_eq!(v.due(3, None, 10_000, 0), vec![Path::from("a.parquet")]);
        // old enough by versions, not by age
        assert!(v.due(9, None, 2_500, 1_000).is_empty());
        assert_eq!(v.due(9, None, 3_000, 1_000), vec![Path::from("b.parquet")]);
    }

    #[test]
    fn a_tombstone_read_from_the_log_goes_by_its_time_with_a_margin_for_clock_skew() {
        let mut v = Vacuum::default();
        v.pending
            .push_back((RemovedAt::Time(100_000), 100_000, Path::from("t.parquet")));
        assert!(
            v.due(7, Some(150_000), 1_000_000, 0).is_empty(),
            "within the skew margin"
        );
        assert!(
            v.due(7, None, 1_000_000, 0).is_empty(),
            "commit time unknown"
        );
        assert_eq!(
            v.due(7, Some(170_000), 1_000_000, 0),
            vec![Path::from("t.parquet")]
        );
    }
}
