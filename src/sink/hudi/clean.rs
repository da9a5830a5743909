//! The cleaner, as Hudi's with policy KEEP_LATEST_COMMITS: after a commit, delete every file slice that
//! no snapshot of the last `retain_commits` completed commits needs, and record the clean on the timeline
//! as Hudi 0.14 does (`<t>.clean.requested` and `<t>.clean.inflight` holding the `HoodieCleanerPlan`,
//! `<t>.clean` the `HoodieCleanMetadata`, all Avro).
//!
//! Per file group Hudi keeps the latest slice, every slice at or after the earliest commit to retain, and
//! the newest slice before it; the rest goes. lakefold keeps that newest slice before only when the group
//! has no slice at the earliest retained commit itself (otherwise that commit's snapshot reads its own).
//! File groups replaced by a `replacecommit` older than the earliest commit to retain go entirely.

use super::error::HudiError;
use super::instant::{Action, Instant};
use super::table::HudiTable;
use super::timeline_avro::{ActionInstant, CleanMetadata, CleanPartition, CleanerPlan};
use super::view::{BaseFile, Slices};
use crate::sink::TableServicePolicy;
use std::collections::BTreeMap;

/// Hudi's name of the policy.
pub const KEEP_LATEST_COMMITS: &str = "KEEP_LATEST_COMMITS";

/// Files the cleaner removes, by partition.
#[derive(Debug, Default, PartialEq)]
pub(super) struct CleanPlan {
    pub earliest_to_retain: Option<Instant>,
    pub files: BTreeMap<String, Vec<BaseFile>>,
}

/// Decides what to clean. `now` is the current UTC time, for `min_age`.
pub(super) fn plan_clean(
    slices: &Slices,
    completed: &[Instant],
    policy: &TableServicePolicy,
    now: chrono::NaiveDateTime,
) -> CleanPlan {
    let retain = policy.retain_commits.max(1) as usize;
    if completed.len() <= retain {
        return CleanPlan::default();
    }
    let earliest = completed[completed.len() - retain].clone();
    let old_enough = |replaced_at: &Instant| {
        if policy.min_age.is_zero() {
            return true;
        }
        let min_age = chrono::TimeDelta::from_std(policy.min_age).unwrap_or(chrono::TimeDelta::MAX);
        replaced_at
            .datetime()
            .is_some_and(|t| now.signed_duration_since(t) >= min_age)
    };
    let mut files: BTreeMap<String, Vec<BaseFile>> = BTreeMap::new();
    for (id, group) in &slices.groups {
        if let Some(replaced_at) = slices.replaced.get(id) {
            if *replaced_at < earliest && old_enough(replaced_at) {
                files
                    .entry(id.0.clone())
                    .or_default()
                    .extend(group.iter().cloned());
            }
            continue;
        }
        // `group` is oldest first; the last slice is the latest and always stays. The snapshot of the
        // earliest retained commit reads the newest slice at or before it: Hudi keeps the newest one
        // strictly before it; when the group has a slice at that very commit, the older one is needed by
        // no retained snapshot, and lakefold lets it go (one slice less per rewritten group).
        let keep_before = group
            .iter()
            .rev()
            .find(|s| s.name.instant <= earliest)
            .filter(|s| s.name.instant < earliest)
            .map(|s| s.name.instant.clone());
        for (i, slice) in group.iter().enumerate() {
            let Some(next) = group.get(i + 1) else {
                continue;
            };
            let needed =
                slice.name.instant >= earliest || Some(&slice.name.instant) == keep_before.as_ref();
            if !needed && old_enough(&next.name.instant) {
                files.entry(id.0.clone()).or_default().push(slice.clone());
            }
        }
    }
    CleanPlan {
        earliest_to_retain: Some(earliest),
        files,
    }
}

impl HudiTable {
    /// Runs the cleaner once: plans, records the plan, deletes, records the result. Returns the clean
    /// instant and the number of files deleted (`None` when there was nothing to clean).
    pub async fn clean(
        &mut self,
        policy: &TableServicePolicy,
    ) -> Result<Option<(Instant, usize)>, HudiError> {
        let started = std::time::Instant::now();
        self.finish_pending_cleans().await?;
        let completed: Vec<Instant> = self
            .timeline
            .completed_writes()
            .into_iter()
            .map(|(i, _)| i.clone())
            .collect();
        if completed.len() <= policy.retain_commits.max(1) as usize {
            return Ok(None);
        }
        let slices = Slices::list(&self.store, &self.name, &self.base, &self.timeline).await?;
        let plan = plan_clean(&slices, &completed, policy, chrono::Utc::now().naive_utc());
        let Some(earliest) = plan.earliest_to_retain.clone() else {
            return Ok(None);
        };
        if plan.files.is_empty() {
            return Ok(None);
        }
        let last = completed.last().map(Instant::to_string).unwrap_or_default();
        let avro = CleanerPlan {
            earliest_instant_to_retain: Some(ActionInstant {
                timestamp: earliest.to_string(),
                action: "commit".into(),
                state: "COMPLETED".into(),
            }),
            last_completed_commit: last.clone(),
            policy: KEEP_LATEST_COMMITS.into(),
            files: plan
                .files
                .iter()
                .map(|(p, fs)| {
                    (
                        p.clone(),
                        fs.iter().map(|f| self.full_path(&f.path)).collect(),
                    )
                })
                .collect(),
        }
        .to_avro()
        .map_err(|message| self.data_error(message))?;
        let pending = self.begin(Action::Clean, avro.clone()).await?;
        self.start(&pending.instant, Action::Clean, avro).await?;
        let mut partitions = Vec::new();
        let mut deleted = 0usize;
        for (partition, files) in &plan.files {
            let mut names = Vec::new();
            for f in files {
                self.delete(&f.path).await?;
                names.push(f.name.name());
            }
            deleted += names.len();
            partitions.push(CleanPartition {
                partition_path: partition.clone(),
                policy: KEEP_LATEST_COMMITS.into(),
                delete_path_patterns: names.clone(),
                success: names,
                failed: Vec::new(),
            });
        }
        let meta = CleanMetadata {
            start_clean_time: pending.instant.to_string(),
            time_taken_ms: started.elapsed().as_millis() as i64,
            total_files_deleted: deleted as i32,
            earliest_commit_to_retain: earliest.to_string(),
            last_completed_commit: last,
            partitions,
        }
        .to_avro()
        .map_err(|message| self.data_error(message))?;
        self.publish(&pending.instant, Action::Clean, meta).await?;
        self.record_instant(&pending.instant, Action::Clean);
        tracing::info!(table = %self.name, instant = %pending.instant, files = deleted, earliest_commit_to_retain = %earliest, "cleaned");
        Ok(Some((pending.instant, deleted)))
    }

    /// A clean that never completed (its writer died) is dropped: the next clean plans the same files
    /// again (they are all slices no retained snapshot needs), so nothing is lost by redoing it.
    async fn finish_pending_cleans(&mut self) -> Result<(), HudiError> {
        let pending: Vec<Vec<String>> = self
            .timeline
            .pending_cleans()
            .into_iter()
            .map(|(_, files)| files.iter().map(|f| f.file_name.clone()).collect())
            .collect();
        if pending.is_empty() {
            return Ok(());
        }
        for mut names in pending {
            names.sort_by_key(|n| n.ends_with(".requested"));
            for name in names {
                self.delete(&Self::hoodie(&self.base).join(name.as_str()))
                    .await?;
            }
        }
        self.reload_timeline().await
    }

    /// The earliest commit the newest completed clean retained (archival never goes past it); read once
    /// per clean instant.
    pub(super) async fn last_clean_retained(&mut self) -> Result<Option<Instant>, HudiError> {
        let Some((instant, file)) = self.timeline.completed_cleans().last().copied() else {
            return Ok(None);
        };
        if let Some((seen, retained)) = &self.last_clean {
            if seen == instant {
                return Ok(retained.clone());
            }
        }
        let path = Self::hoodie(&self.base).join(file.file_name.as_str());
        let bytes = super::parquet_io::read_object(&self.store, &self.name, &path).await?;
        let retained = match CleanMetadata::earliest_commit_to_retain(&bytes) {
            Ok(text) => Instant::parse(&text),
            Err(message) => return Err(self.data_error(format!("{path}: {message}"))),
        };
        self.last_clean = Some((instant.clone(), retained.clone()));
        Ok(retained)
    }
}

#[cfg(test)]
mod tests {
    use super::super::file_name::BaseFileName;
    use super::*;
    use object_store::path::Path;

    fn slice(file_id: &str, instant: &str) -> BaseFile {
        let name = BaseFileName::parse(&format!("{file_id}_0-1-0_{instant}.parquet")).unwrap();
        BaseFile {
            path: Path::from(name.name()),
            name,
            size: 1,
        }
    }

    fn instants(n: u64) -> Vec<Instant> {
        (1..=n)
            .map(|i| Instant::parse(&format!("2024010100000{:04}", i)).unwrap())
            .collect()
    }

    fn now() -> chrono::NaiveDateTime {
        chrono::Utc::now().naive_utc()
    }

    const F: &str = "aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa-0";
    const G: &str = "bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb-0";

    #[test]
    fn keeps_what_the_retained_snapshots_read_and_deletes_the_rest() {
        let commits = instants(6);
        let mut slices = Slices::default();
        // F rewritten by every commit; G written once by commit 1 and never again.
        slices.groups.insert(
            (String::new(), F.into()),
            commits.iter().map(|c| slice(F, c.as_str())).collect(),
        );
        slices.groups.insert(
            (String::new(), G.into()),
            vec![slice(G, commits[0].as_str())],
        );
        let policy = TableServicePolicy {
            retain_commits: 2,
            ..Default::default()
        };
        let plan = plan_clean(&slices, &commits, &policy, now());
        // Earliest to retain = commit 5: keep 5 and 6 (5 has its own slice, so 4 is needed by no retained
        // snapshot); delete 1 to 4. G keeps its only slice.
        assert_eq!(plan.earliest_to_retain.as_ref(), Some(&commits[4]));
        let deleted: Vec<String> = plan.files[""]
            .iter()
            .map(|f| f.name.instant.to_string())
            .collect();
        assert_eq!(
            deleted,
            vec![
                commits[0].to_string(),
                commits[1].to_string(),
                commits[2].to_string(),
                commits[3].to_string()
            ]
        );
    }

    #[test]
    fn the_slice_a_retained_snapshot_reads_stays_when_the_group_skipped_that_commit() {
        let commits = instants(6);
        let mut slices = Slices::default();
        // F written by commits 1, 2 and 6 only: commit 5's snapshot reads the slice of commit 2.
        let written = [&commits[0], &commits[1], &commits[5]];
        slices.groups.insert(
            (String::new(), F.into()),
            written.iter().map(|c| slice(F, c.as_str())).collect(),
        );
        let policy = TableServicePolicy {
            retain_commits: 2,
            ..Default::default()
        };
        let plan = plan_clean(&slices, &commits, &policy, now());
        let deleted: Vec<String> = plan.files[""]
            .iter()
            .map(|f| f.name.instant.to_string())
            .collect();
        assert_eq!(deleted, vec![commits[0].to_string()]);
    }

    #[test]
    fn nothing_is_cleaned_until_more_than_the_retained_commits_exist() {
        let commits = instants(3);
        let mut slices = Slices::default();
        slices.groups.insert(
            (String::new(), F.into()),
            commits.iter().map(|c| slice(F, c.as_str())).collect(),
        );
        let policy = TableServicePolicy {
            retain_commits: 3,
            ..Default::default()
        };
        assert!(plan_clean(&slices, &commits, &policy, now())
            .files
            .is_empty());
    }

    #[test]
    fn min_age_keeps_recently_replaced_slices() {
        let commits = instants(6);
        let mut slices = Slices::default();
        slices.groups.insert(
            (String::new(), F.into()),
            commits.iter().map(|c| slice(F, c.as_str())).collect(),
        );
        let policy = TableServicePolicy {
            retain_commits: 1,
            min_age: std::time::Duration::from_secs(3600),
            ..Default::default()
        };
        // The instants are in 2024, so "now" an hour after the last replacement deletes; right after, not.
        let replaced = commits[2].datetime().unwrap();
        let plan = plan_clean(&slices, &commits, &policy, replaced);
        assert!(plan.files.is_empty());
        let later = replaced + chrono::TimeDelta::hours(2);
        assert!(!plan_clean(&slices, &commits, &policy, later)
            .files
            .is_empty());
    }
}
