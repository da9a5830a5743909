//! Rolling back writes that never completed: decide `rollback` for the instant (or find it decided
//! `commit`, and roll it forward), then delete its files and instant files. Readers only need the files gone,
//! so no `.rollback` instant is written.

use super::claim::{decide, forget, Fate};
use super::error::HudiError;
use super::file_name::BaseFileName;
use super::instant::{Action, Instant, TimelineFile};
use super::table::HudiTable;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::ObjectStoreExt;

impl HudiTable {
    /// Resolves every pending write instant; returns the instants rolled back.
    pub async fn rollback_pending(&mut self) -> Result<Vec<Instant>, HudiError> {
        let pending: Vec<(Instant, Vec<String>)> = self
            .timeline
            .pending_writes()
            .into_iter()
            .map(|(i, files)| {
                (
                    i.clone(),
                    files.iter().map(|f| f.file_name.clone()).collect(),
                )
            })
            .collect();
        if pending.is_empty() {
            return Ok(Vec::new());
        }
        let mut rolled_back = Vec::new();
        let mut objects: Option<Vec<object_store::ObjectMeta>> = None;
        for (instant, timeline_files) in &pending {
            let ours = Fate::Rollback {
                owner: self.owner.clone(),
            };
            match decide(&self.store, &self.name, &self.base, instant, &ours).await? {
                Fate::Commit { commit, .. } => {
                    // Its writer decided to commit and stopped before publishing: finish it.
                    self.publish(instant, Action::Commit, commit.into_bytes())
                        .await?;
                    forget(&self.store, &self.base, instant).await;
                    self.forget_markers(instant).await;
                    tracing::warn!(table = %self.name, %instant, "completed a write its writer had decided to commit");
                    continue;
                }
                Fate::Rollback { .. } => {}
            }
            // It may have completed (and its fate been forgotten) since we listed it.
            let [_, _, completed] = TimelineFile::commit_names(instant);
            if self
                .store
                .head(&Self::hoodie(&self.base).join(completed.as_str()))
                .await
                .is_ok()
            {
                continue;
            }
            if objects.is_none() {
                objects = Some(
                    self.store
                        .list(Some(&self.base))
                        .try_collect()
                        .await
                        .map_err(self.storage(&self.base))?,
                );
            }
            for meta in objects.iter().flatten() {
                if meta
                    .location
                    .filename()
                    .and_then(BaseFileName::parse)
                    .is_some_and(|f| &f.instant == instant)
                {
                    self.delete(&meta.location).await?;
                }
            }
            // Inflight before requested: a crash mid-rollback leaves the instant pending, so it is redone.
            let mut names = timeline_files.clone();
            names.sort_by_key(|n| if n.ends_with(".requested") { 1 } else { 0 });
            for name in names {
                self.delete(&Self::hoodie(&self.base).join(name.as_str()))
                    .await?;
            }
            self.delete_markers(instant).await?;
            tracing::warn!(table = %self.name, %instant, "rolled back an incomplete write (its files were deleted)");
            rolled_back.push(instant.clone());
        }
        self.view = None;
        self.reload_timeline().await?;
        Ok(rolled_back)
    }

    pub(super) async fn delete(&self, path: &Path) -> Result<(), HudiError> {
        match self.store.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(source) => Err(HudiError::Storage {
                table: self.name.clone(),
                path: path.to_string(),
                source,
            }),
        }
    }
}
