//! Timeline archival, as Hudi's `HoodieTimelineArchiver` bounds the active timeline: once it holds more
//! than `keep_max_commits` completed commits, the oldest instants leave it until `keep_min_commits`
//! remain. Never past a pending instant, past the earliest commit the last clean retained, or past a
//! `replacecommit` whose replaced files still exist (readers would see them again). For each instant the
//! pending-state files go before the completed one, so a crash mid-way leaves an instant that is still
//! completed, never one that looks pending.
//!
//! Hudi moves archived instants into a log file under `.hoodie/archived/`; lakefold does not write that
//! log (no snapshot reader needs it): archived instants are simply gone from the active timeline.

use super::error::HudiError;
use super::instant::{Action, Instant, State};
use super::table::HudiTable;
use super::view::Slices;
use crate::sink::TableServicePolicy;

impl HudiTable {
    /// Archives what the policy allows; returns the number of instants removed from the active timeline.
    pub async fn archive(&mut self, policy: &TableServicePolicy) -> Result<usize, HudiError> {
        let writes: Vec<(Instant, Action)> = self
            .timeline
            .completed_writes()
            .into_iter()
            .map(|(i, f)| (i.clone(), f.action))
            .collect();
        let keep_max = policy.keep_max_commits.max(policy.keep_min_commits) as usize;
        let keep_min = (policy.keep_min_commits as usize).max(1);
        if writes.len() <= keep_max {
            return Ok(0);
        }
        // The first instant that stays: the oldest of the last `keep_min` commits, or earlier.
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
        let doomed: Vec<(Instant, Vec<(State, String)>)> = self
            .timeline
            .instants()
            .take_while(|(i, _)| **i < boundary)
            .filter(|(_, files)| files.iter().any(|f| f.state == State::Completed))
            .map(|(i, files)| {
                (
                    i.clone(),
                    files
                        .iter()
                        .map(|f| (f.state, f.file_name.clone()))
                        .collect(),
                )
            })
            .collect();
        let hoodie = Self::hoodie(&self.base);
        for (_, files) in &doomed {
            let mut files = files.clone();
            // Requested, then inflight, then the completed file.
            files.sort_by_key(|(state, _)| *state);
            for (_, name) in files {
                self.delete(&hoodie.clone().join(name.as_str())).await?;
            }
        }
        if !doomed.is_empty() {
            self.reload_timeline().await?;
            tracing::info!(table = %self.name, instants = doomed.len(), first_active = %boundary, "archived the oldest instants of the timeline");
        }
        Ok(doomed.len())
    }
}
