//! Timeline archival, as Hudi's `HoodieTimelineArchiver` bounds the active timeline: once it holds more
//! than `keep_max_commits` completed commits, the oldest instants leave it until `keep_min_commits`
//! remain. Never past a pending instant, past the earliest commit the last clean retained, or past a
//! `replacecommit` whose replaced files still exist (readers would see them again). For each instant the
//! pending-state files go before the completed one, so a crash mid-way leaves an instant that is still
//! completed, never one that looks pending.
//!
//! Clean instants older than the commit the newest clean retained are archived at every commit (Hudi
//! archives cleans by their own count, 20–30; about ten stay here).
//!
//! Hudi moves archived instants into a log file under `.hoodie/archived/`; lakefold does not write that
//! log (no snapshot reader needs it): archived instants are simply gone from the active timeline.

use super::error::HudiError;
use super::instant::{Action, Instant, State};
use super::table::HudiTable;
use super::view::Slices;
use crate::sink::TableServicePolicy;
use std::collections::BTreeSet;

impl HudiTable {
    /// Archives what the policy allows; returns the number of instants removed from the active timeline.
    pub async fn archive(&mut self, policy: &TableServicePolicy) -> Result<usize, HudiError> {
        let mut doomed: BTreeSet<Instant> = self.obsolete_cleans().await?;
        let boundary = self.commit_boundary(policy).await?;
        if let Some(boundary) = &boundary {
            doomed.extend(
                self.timeline
                    .instants()
                    .take_while(|(i, _)| *i < boundary)
                    .filter(|(_, files)| files.iter().any(|f| f.state == State::Completed))
                    .map(|(i, _)| i.clone()),
            );
        }
        let hoodie = Self::hoodie(&self.base);
        for instant in &doomed {
            let Some((_, files)) = self.timeline.instants().find(|(i, _)| *i == instant) else {
                continue;
            };
            let mut files: Vec<(State, String)> = files
                .iter()
                .map(|f| (f.state, f.file_name.clone()))
                .collect();
            // Requested, then inflight, then the completed file.
            files.sort_by_key(|(state, _)| *state);
            for (_, name) in files {
                self.delete(&hoodie.clone().join(name.as_str())).await?;
            }
        }
        if !doomed.is_empty() {
            self.reload_timeline().await?;
            match &boundary {
                Some(first_active) => {
                    tracing::info!(table = %self.name, instants = doomed.len(), %first_active, "archived the oldest instants of the timeline")
                }
                None => {
                    tracing::debug!(table = %self.name, instants = doomed.len(), "archived obsolete clean instants")
                }
            }
        }
        Ok(doomed.len())
    }

    /// Completed cleans older than the commit the newest clean retained (and than any pending instant),
    /// but that newest clean itself: no snapshot needs them, and a later cleaner (Hudi's incremental
    /// cleaning too) reads only the newest clean. Hudi archives cleans by their own count; this keeps the
    /// timeline at about ten cleans instead of thirty.
    async fn obsolete_cleans(&mut self) -> Result<BTreeSet<Instant>, HudiError> {
        let cleans: Vec<Instant> = self
            .timeline
            .completed_cleans()
            .into_iter()
            .map(|(i, _)| i.clone())
            .collect();
        if cleans.len() <= 1 {
            return Ok(BTreeSet::new());
        }
        let Some(mut limit) = self.last_clean_retained().await? else {
            return Ok(BTreeSet::new());
        };
        if let Some(p) = self.timeline.first_pending() {
            limit = limit.min(p.clone());
        }
        Ok(cleans[..cleans.len() - 1]
            .iter()
            .filter(|i| **i < limit)
            .cloned()
            .collect())
    }

    /// The first instant that stays once the active timeline holds more than `keep_max_commits`
    /// commits: the oldest of the last `keep_min_commits`, or earlier (a pending instant, the last
    /// clean's earliest retained commit, a replacecommit whose replaced files still exist).
    async fn commit_boundary(
        &mut self,
        policy: &TableServicePolicy,
    ) -> Result<Option<Instant>, HudiError> {
        let writes: Vec<(Instant, Action)> = self
            .timeline
            .completed_writes()
            .into_iter()
            .map(|(i, f)| (i.clone(), f.action))
            .collect();
        let keep_max = policy.keep_max_commits.max(policy.keep_min_commits) as usize;
        let keep_min = (policy.keep_min_commits as usize).max(1);
        if writes.len() <= keep_max {
            return Ok(None);
        }
        let mut boundary = writes[writes.len() - keep_min].0.clone();
        if let Some(p) = self.timeline.first_pending() {
            boundary = boundary.min(p.clone());
        }
        if let Some(retained) = self.last_clean_retained().await? {
            boundary = boundary.min(retained);
        }
        if writes
            .iter()
            .any(|(i, a)| *a == Action::ReplaceCommit && *i < boundary)
        {
            let slices = Slices::list(&self.store, &self.name, &self.base, &self.timeline).await?;
            if let Some(first_live) = slices
                .replaced
                .iter()
                .filter(|(id, _)| slices.groups.contains_key(*id))
                .map(|(_, at)| at.clone())
                .min()
            {
                boundary = boundary.min(first_live);
            }
        }
        Ok(Some(boundary))
    }
}
