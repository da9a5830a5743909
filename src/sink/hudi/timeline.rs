//! The active timeline: the instant files under `.hoodie/`.

use super::instant::{Action, Instant, State, TimelineFile};
use std::collections::BTreeMap;

/// All instants of a table, by instant time, with the states seen for each.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    instants: BTreeMap<Instant, Vec<TimelineFile>>,
}

impl Timeline {
    pub fn from_files(files: impl IntoIterator<Item = TimelineFile>) -> Timeline {
        let mut instants: BTreeMap<Instant, Vec<TimelineFile>> = BTreeMap::new();
        for f in files {
            instants.entry(f.instant.clone()).or_default().push(f);
        }
        Timeline { instants }
    }

    /// Adds a file this writer just created (the timeline stays current without listing `.hoodie/`).
    pub fn record(&mut self, file: TimelineFile) {
        let files = self.instants.entry(file.instant.clone()).or_default();
        if !files.iter().any(|f| f.file_name == file.file_name) {
            files.push(file);
        }
    }

    /// Drops `instant` (its files were deleted).
    pub fn forget(&mut self, instant: &Instant) {
        self.instants.remove(instant);
    }

    fn completed_of(&self, actions: &[Action]) -> Vec<(&Instant, &TimelineFile)> {
        self.instants
            .iter()
            .filter_map(|(i, files)| {
                files
                    .iter()
                    .find(|f| f.state == State::Completed && actions.contains(&f.action))
                    .map(|f| (i, f))
            })
            .collect()
    }

    /// Completed instants that change data (commit, replacecommit, deltacommit), oldest first.
    pub fn completed_writes(&self) -> Vec<(&Instant, &TimelineFile)> {
        self.completed_of(&[Action::Commit, Action::ReplaceCommit, Action::DeltaCommit])
    }

    pub fn is_completed_write(&self, instant: &Instant) -> bool {
        self.instants.get(instant).is_some_and(|files| {
            files.iter().any(|f| {
                f.state == State::Completed
                    && matches!(
                        f.action,
                        Action::Commit | Action::ReplaceCommit | Action::DeltaCommit
                    )
            })
        })
    }

    /// Write instants that were requested or started but never completed (a crashed or abandoned write).
    pub fn pending_writes(&self) -> Vec<(&Instant, &[TimelineFile])> {
        self.instants
            .iter()
            .filter(|(_, files)| {
                let writes = files
                    .iter()
                    .all(|f| matches!(f.action, Action::Commit | Action::ReplaceCommit));
                writes && !files.iter().any(|f| f.state == State::Completed)
            })
            .map(|(i, files)| (i, files.as_slice()))
            .collect()
    }

    /// The newest instant in any state (new instants must come after it).
    pub fn last_instant(&self) -> Option<&Instant> {
        self.instants.keys().next_back()
    }

    pub fn first_instant(&self) -> Option<&Instant> {
        self.instants.keys().next()
    }

    /// The oldest completed write: readers treat base files older than it as committed
    /// (`containsOrBeforeTimelineStarts`), so visibility is judged against it.
    pub fn first_completed_write(&self) -> Option<&Instant> {
        self.completed_writes().first().map(|(i, _)| *i)
    }

    /// Completed clean instants, oldest first.
    pub fn completed_cleans(&self) -> Vec<(&Instant, &TimelineFile)> {
        self.completed_of(&[Action::Clean])
    }

    /// Clean instants that were requested or started but never completed.
    pub fn pending_cleans(&self) -> Vec<(&Instant, &[TimelineFile])> {
        self.instants
            .iter()
            .filter(|(_, files)| {
                files.iter().all(|f| f.action == Action::Clean)
                    && !files.iter().any(|f| f.state == State::Completed)
            })
            .map(|(i, files)| (i, files.as_slice()))
            .collect()
    }

    /// The oldest instant of any action that has not completed.
    pub fn first_pending(&self) -> Option<&Instant> {
        self.instants
            .iter()
            .find(|(_, files)| !files.iter().any(|f| f.state == State::Completed))
            .map(|(i, _)| i)
    }

    /// Every instant with its timeline files, oldest first.
    pub fn instants(&self) -> impl Iterator<Item = (&Instant, &[TimelineFile])> {
        self.instants.iter().map(|(i, f)| (i, f.as_slice()))
    }

    /// Number of timeline files.
    pub fn file_count(&self) -> usize {
        self.instants.values().map(Vec::len).sum()
    }
}
