//! Writing an instant: choose it (create-only `.commit.requested`), write `.inflight` and the data files,
//! claim the slot after the state the write planned on, decide its fate, publish `.commit`.

use super::avro_schema::avro_schema;
use super::claim::{
    claims_dir, create, decide, forget, release, store_now, try_claim, Claim, ClaimResult, Fate,
    STALE_AFTER,
};
use super::commit_metadata::{CommitMetadata, WriteStat, SCHEMA_KEY};
use super::error::HudiError;
use super::instant::{Action, Instant, State, TimelineFile};
use super::markers::IoType;
use super::parquet_io::{codec, put_object};
use super::table::HudiTable;
use super::view::{FileGroup, FileView, GroupId, PARTITION_METADATA};
use super::write::{file_schema, relative_file_path, write_group, CommitContext, GroupWork};
use crate::schema::TableSchema;
use crate::sink::failpoint;
use crate::sink::{CommitSummary, StagedRow, TableLayout};
use futures::StreamExt;
use object_store::path::Path;

use std::collections::{BTreeMap, BTreeSet};

/// File groups of one commit rewritten at the same time.
const GROUP_WRITES_IN_FLIGHT: usize = 4;

/// Claims kept after a commit (older ones are pruned).
const KEEP_CLAIMS: usize = 2;
/// A rollback fate is kept this long after its instant left the timeline: a writer of that instant that
/// is still alive finds it and backs off instead of publishing files that were deleted.
const ROLLBACK_FATE_TTL: std::time::Duration = std::time::Duration::from_secs(3600);

/// An instant being written.
pub(super) struct Pending {
    /// The newest completed instant the write planned on.
    after: Option<Instant>,
    pub instant: Instant,
}

impl HudiTable {
    pub(super) fn newest_completed(&self) -> Option<Instant> {
        self.timeline
            .completed_writes()
            .last()
            .map(|(i, _)| (*i).clone())
    }

    /// Picks an instant after everything on the timeline and reserves it for `action` with a create-only
    /// `<t>.<action>.requested` holding `requested` (two writers never share an instant). Commits, cleans
    /// and any other action start here.
    pub(super) async fn begin(
        &mut self,
        action: Action,
        requested: Vec<u8>,
    ) -> Result<Pending, HudiError> {
        let after = self.newest_completed();
        let mut instant = Instant::next(self.timeline.last_instant());
        for _ in 0..50 {
            let [name, _, _] = TimelineFile::names(&instant, action);
            let path = Self::hoodie(&self.base).join(name.as_str());
            match create(&self.store, &path, requested.clone()).await {
                Ok(true) => return Ok(Pending { after, instant }),
                Ok(false) => instant = Instant::next(Some(&instant)),
                Err(source) => {
                    return Err(HudiError::Storage {
                        table: self.name.clone(),
                        path: path.to_string(),
                        source,
                    })
                }
            }
        }
        Err(HudiError::Data {
            table: self.name.clone(),
            message: "no free instant after 50 tries".into(),
        })
    }

    /// Writes the inflight state of `instant` (`<t>.inflight` for a commit, `<t>.<action>.inflight` else).
    pub(super) async fn start(
        &self,
        instant: &Instant,
        action: Action,
        body: Vec<u8>,
    ) -> Result<(), HudiError> {
        let [_, inflight, _] = TimelineFile::names(instant, action);
        put_object(
            &self.store,
            &self.name,
            &Self::hoodie(&self.base).join(inflight.as_str()),
            body,
        )
        .await
    }

    pub(super) fn commit_json(
        &self,
        meta: &CommitMetadata,
        instant: &Instant,
    ) -> Result<Vec<u8>, HudiError> {
        meta.to_json().map_err(|source| HudiError::CommitJson {
            table: self.name.clone(),
            instant: instant.to_string(),
            source,
        })
    }

    /// Claims the slot, decides `commit`, publishes `.commit`. On a conflict, deletes what it wrote.
    async fn complete(
        &mut self,
        pending: &Pending,
        meta: &CommitMetadata,
        written: &[Path],
    ) -> Result<(), HudiError> {
        let json = self.commit_json(meta, &pending.instant)?;
        failpoint(&self.name, "after-data");
        if let Err(e) = self
            .claim_slot(pending.after.as_ref(), &pending.instant)
            .await
        {
            self.abandon(&pending.instant, written).await?;
            return Err(e);
        }
        let fate = Fate::Commit {
            owner: self.owner.clone(),
            commit: String::from_utf8_lossy(&json).into_owned(),
        };
        match decide(&self.store, &self.name, &self.base, &pending.instant, &fate).await? {
            Fate::Commit { owner, .. } if owner == self.owner => {}
            _ => {
                // A rollback got there first (another writer took our write for abandoned).
                self.abandon(&pending.instant, written).await?;
                return Err(HudiError::Conflict {
                    table: self.name.clone(),
                    instant: pending.instant.to_string(),
                });
            }
        }
        failpoint(&self.name, "after-fate");
        self.publish(&pending.instant, Action::Commit, json).await?;
        forget(&self.store, &self.base, &pending.instant).await;
        self.forget_markers(&pending.instant).await;
        // The timeline was read while claiming; what changed since is this writer's own instant.
        self.record_instant(&pending.instant, Action::Commit);
        Ok(())
    }

    /// Records the requested, inflight and completed files of `instant` in the in-memory timeline.
    pub(super) fn record_instant(&mut self, instant: &Instant, action: Action) {
        for name in TimelineFile::names(instant, action) {
            if let Some(file) = TimelineFile::parse(name.as_str()) {
                self.timeline.record(file);
            }
        }
    }

    /// A create-only PUT that leaves an existing object as it is.
    async fn put_once(&self, path: &Path, bytes: Vec<u8>) -> Result<(), HudiError> {
        create(&self.store, path, bytes)
            .await
            .map(|_| ())
            .map_err(|source| HudiError::Storage {
                table: self.name.clone(),
                path: path.to_string(),
                source,
            })
    }

    /// Publishes the completed state of `instant` with a create-only PUT. Already there means another
    /// writer rolled our decided commit forward: the same content, so done.
    pub(super) async fn publish(
        &self,
        instant: &Instant,
        action: Action,
        body: Vec<u8>,
    ) -> Result<(), HudiError> {
        let [_, _, completed] = TimelineFile::names(instant, action);
        let path = Self::hoodie(&self.base).join(completed.as_str());
        self.put_once(&path, body).await
    }

    /// Claims the slot after `after`, waiting out a claim that may still be completing; `Conflict` when a
    /// write completed after `after` (another writer's), or the slot stays held past the wait.
    async fn claim_slot(
        &mut self,
        after: Option<&Instant>,
        instant: &Instant,
    ) -> Result<(), HudiError> {
        let me = Claim {
            owner: self.owner.clone(),
            instant: instant.to_string(),
        };
        let deadline = std::time::Instant::now() + STALE_AFTER + std::time::Duration::from_secs(10);
        loop {
            let result = try_claim(&self.store, &self.name, &self.base, after, &me).await?;
            // Whatever the claim says, a completed instant after ours means our plan is stale.
            self.reload_timeline().await?;
            if self.newest_completed().as_ref() != after {
                return Err(HudiError::Conflict {
                    table: self.name.clone(),
                    instant: instant.to_string(),
                });
            }
            match result {
                ClaimResult::Claimed => return Ok(()),
                ClaimResult::Held { by, since } => {
                    let now = store_now(&self.store, &self.name, &self.base, &self.owner).await?;
                    let held_for = now
                        .signed_duration_since(since)
                        .to_std()
                        .unwrap_or_default();
                    if held_for >= STALE_AFTER {
                        tracing::warn!(table = %self.name, owner = %by.owner, instant = %by.instant, "taking over an abandoned claim");
                        release(&self.store, &self.name, &self.base, after).await?;
                        continue;
                    }
                    if std::time::Instant::now() >= deadline {
                        tracing::error!(table = %self.name, owner = %by.owner, instant = %by.instant, "another writer holds the table");
                        return Err(HudiError::Conflict {
                            table: self.name.clone(),
                            instant: instant.to_string(),
                        });
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                }
            }
        }
    }

    /// Deletes the files and instant files of this writer's own `instant` after it lost a conflict.
    async fn abandon(&mut self, instant: &Instant, written: &[Path]) -> Result<(), HudiError> {
        for p in written {
            self.delete(p).await?;
        }
        let hoodie = Self::hoodie(&self.base);
        let [requested, inflight, _] = TimelineFile::commit_names(instant);
        self.delete(&hoodie.clone().join(inflight.as_str())).await?;
        self.delete(&hoodie.join(requested.as_str())).await?;
        self.delete_markers(instant).await?;
        self.view = None;
        self.reload_timeline().await
    }

    /// Removes lakefold's bookkeeping that no writer can need any more, so `.hoodie/.lakefold/` stays
    /// bounded: slot claims but the newest [`KEEP_CLAIMS`] (a writer that planned on an older state is
    /// refused anyway: `claim_slot` re-reads the timeline), fate markers of instants that completed or left
    /// the timeline, rollback fates older than [`ROLLBACK_FATE_TTL`] (long after any writer of that instant
    /// gave up), and clock probes and leases (`pipeline/lease.rs`) of processes that died.
    pub(super) async fn prune_leftovers(&self) -> Result<usize, HudiError> {
        let dir = claims_dir(&self.base);
        let listing = self
            .store
            .list_with_delimiter(Some(&dir))
            .await
            .map_err(self.storage(&dir))?;
        let mut claims = Vec::new();
        let mut doomed = Vec::new();
        let mut aged = Vec::new();
        for o in listing.objects {
            let Some(name) = o.location.filename().map(str::to_string) else {
                continue;
            };
            if name.starts_with("next-after-") {
                claims.push(o.location);
            } else if let Some(instant) = name.strip_prefix("fate-").and_then(Instant::parse) {
                if self.timeline.is_completed_write(&instant) {
                    doomed.push(o.location);
                } else if !self.timeline.instants().any(|(i, _)| *i == instant) {
                    aged.push(o);
                }
            } else if name.starts_with("clock-") || name.starts_with("lease-") {
                aged.push(o);
            }
        }
        claims.sort_by(|a, b| a.as_ref().cmp(b.as_ref()));
        let excess = claims.len().saturating_sub(KEEP_CLAIMS);
        doomed.extend(claims.into_iter().take(excess));
        if !aged.is_empty() {
            let now = store_now(&self.store, &self.name, &self.base, &self.owner).await?;
            for o in aged {
                let age = now
                    .signed_duration_since(o.last_modified)
                    .to_std()
                    .unwrap_or_default();
                if age >= ROLLBACK_FATE_TTL {
                    doomed.push(o.location);
                }
            }
        }
        for p in &doomed {
            self.delete(p).await?;
        }
        Ok(doomed.len() + self.prune_markers().await?)
    }

    /// Marker folders of instants that are no longer pending (a removal that failed after a commit).
    async fn prune_markers(&self) -> Result<usize, HudiError> {
        let temp = Self::hoodie(&self.base).join(".temp");
        let listing = self
            .store
            .list_with_delimiter(Some(&temp))
            .await
            .map_err(self.storage(&temp))?;
        let mut removed = 0;
        for dir in listing.common_prefixes {
            let Some(instant) = dir.filename().and_then(Instant::parse) else {
                continue;
            };
            let pending = self.timeline.instants().any(|(i, files)| {
                *i == instant && !files.iter().any(|f| f.state == State::Completed)
            });
            if !pending {
                removed += self.delete_markers(&instant).await?;
            }
        }
        Ok(removed)
    }

    /// Writes a commit without data that only records `extra` (the source checkpoint), so a table whose
    /// route saw nothing to write still moves its checkpoint forward. Carries the last known schema.
    pub async fn commit_checkpoint(
        &mut self,
        mut extra: BTreeMap<String, String>,
    ) -> Result<Instant, HudiError> {
        if let Some(schema) = self.schema().await? {
            extra.insert(
                SCHEMA_KEY.to_string(),
                avro_schema(&self.name, &schema, false),
            );
        }
        let pending = self.begin(Action::Commit, Vec::new()).await?;
        self.start(&pending.instant, Action::Commit, b"{}".to_vec())
            .await?;
        self.complete(&pending, &CommitMetadata::upsert(extra), &[])
            .await?;
        Ok(pending.instant)
    }

    /// Writes every touched file group as a new slice and commits them as one instant.
    pub(super) async fn write_commit(
        &mut self,
        schema: &TableSchema,
        rows: &[StagedRow],
        layout: TableLayout,
        mut extra: BTreeMap<String, String>,
        mut new_view: FileView,
        work: BTreeMap<GroupId, GroupWork>,
    ) -> Result<(CommitSummary, FileView), HudiError> {
        let data_schema = avro_schema(&self.name, schema, false);
        self.ensure_create_schema(&data_schema).await?;
        let pending = self.begin(Action::Commit, Vec::new()).await?;
        let instant = pending.instant.clone();
        extra.insert(SCHEMA_KEY.to_string(), data_schema);

        let mut planned = CommitMetadata::upsert(BTreeMap::new());
        for (id, w) in &work {
            planned
                .partition_to_write_stats
                .entry(id.0.clone())
                .or_default()
                .push(WriteStat {
                    file_id: id.1.clone(),
                    prev_commit: w
                        .existing
                        .as_ref()
                        .map(|f| f.name.instant.to_string())
                        .unwrap_or_else(|| "null".into()),
                    partition_path: None,
                    ..WriteStat::default()
                });
        }
        let planned_json = self.commit_json(&planned, &instant)?;
        self.start(&instant, Action::Commit, planned_json).await?;
        let stage = rand_stage();
        let markers: Vec<(String, IoType)> = work
            .iter()
            .enumerate()
            .map(|(task, (id, w))| {
                let io = if w.existing.is_some() {
                    IoType::Merge
                } else {
                    IoType::Create
                };
                (relative_file_path(id, task, stage, &instant), io)
            })
            .collect();
        self.write_markers(&instant, &markers).await?;

        for partition in work.keys().map(|id| id.0.clone()).collect::<BTreeSet<_>>() {
            if !new_view.partitions.contains(&partition) {
                self.write_partition_metadata(&partition, &instant).await?;
                new_view.partitions.insert(partition);
            }
        }

        let ctx = CommitContext {
            store: &self.store,
            table: &self.name,
            base: &self.base,
            instant: &instant,
            stage,
            schema,
            file_schema: file_schema(schema),
            compression: codec(layout.compression),
            rows,
        };
        let mut summary = CommitSummary {
            instant: Some(instant.to_string()),
            partitions: work
                .keys()
                .map(|id| id.0.clone())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
            ..CommitSummary::default()
        };
        let mut meta = CommitMetadata {
            extra_metadata: extra,
            ..planned
        };
        meta.partition_to_write_stats.clear();
        // File groups are rewritten concurrently (reads, encodes and uploads overlap), results in order.
        let writes: Vec<_> = work
            .iter()
            .enumerate()
            .map(|(task, (id, w))| write_group(&ctx, task, id, w))
            .collect();
        let results: Vec<_> = futures::stream::iter(writes)
            .buffered(GROUP_WRITES_IN_FLIGHT)
            .collect()
            .await;
        let planned = markers
            .iter()
            .filter_map(|(rel, _)| Path::parse(format!("{}/{rel}", self.base)).ok())
            .collect::<Vec<_>>();
        let mut written: Vec<Path> = Vec::new();
        let mut done = Vec::new();
        for (r, (id, _)) in results.into_iter().zip(work.iter()) {
            match r {
                Ok(result) => done.push((id, result)),
                Err(e) => {
                    self.abandon(&instant, &planned).await?;
                    return Err(e);
                }
            }
        }
        for (id, result) in done {
            written.push(result.file.path.clone());
            summary.inserts += result.stat.num_inserts;
            summary.updates += result.stat.num_update_writes;
            summary.deletes += result.stat.num_deletes;
            summary.stale += result.stale;
            summary.files += 1;
            summary.bytes += result.stat.total_write_bytes;
            meta.partition_to_write_stats
                .entry(id.0.clone())
                .or_default()
                .push(result.stat);
            new_view.groups.insert(
                id.clone(),
                FileGroup {
                    partition: id.0.clone(),
                    file_id: id.1.clone(),
                    latest: result.file,
                    rows: result.rows,
                    keys: result.keys,
                },
            );
        }
        self.complete(&pending, &meta, &written).await?;
        Ok((summary, new_view))
    }

    async fn write_partition_metadata(
        &self,
        partition: &str,
        instant: &Instant,
    ) -> Result<(), HudiError> {
        let depth = if partition.is_empty() {
            0
        } else {
            partition.split('/').count()
        };
        let text = format!(
            "#partition metadata\n#{}\ncommitTime={instant}\npartitionDepth={depth}\n",
            chrono::Utc::now().format("%a %b %d %H:%M:%S UTC %Y")
        );
        let path = if partition.is_empty() {
            self.base.clone().join(PARTITION_METADATA)
        } else {
            Path::parse(format!(
                "{}/{}/{}",
                self.base, partition, PARTITION_METADATA
            ))
            .map_err(|e| HudiError::Data {
                table: self.name.clone(),
                message: format!("bad partition path `{partition}`: {e}"),
            })?
        };
        self.put_once(&path, text.into_bytes()).await
    }
}

/// The middle part of the write token (`<task>-<stage>-<attempt>`): random per commit, so two writers
/// never produce the same file name even in one file group.
fn rand_stage() -> u32 {
    let id = uuid::Uuid::new_v4();
    u32::from_le_bytes([
        id.as_bytes()[0],
        id.as_bytes()[1],
        id.as_bytes()[2],
        id.as_bytes()[3],
    ]) % 1_000_000
}
