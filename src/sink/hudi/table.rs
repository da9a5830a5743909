//! A Hudi table: create/open, roll back abandoned writes, commit upserts with the source checkpoint in
//! `extraMetadata`, read the latest snapshot and the history.

use super::avro_schema::{avro_schema, parse_avro_schema};
use super::claim::{claims_dir, release, try_claim, Claim, ClaimResult, STALE_AFTER};
use super::commit_metadata::{CommitMetadata, WriteStat, SCHEMA_KEY};
use super::error::HudiError;
use super::file_name::BaseFileName;
use super::instant::{Action, Instant, TimelineFile};
use super::parquet_io::{codec, put_object, read_object, read_parquet};
use super::properties::{TableKey, TableProperties};
use super::timeline::Timeline;
use super::view::{FileView, KeyEntry, PARTITION_METADATA};
use super::write::{file_schema, plan, write_group, CommitContext, Sizing, StagedRow};
use crate::config::Compression;
use crate::schema::TableSchema;
use arrow::array::RecordBatch;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Claims kept after a commit (older ones are pruned).
const KEEP_CLAIMS: usize = 20;

/// How a table's files are written (from the route).
#[derive(Debug, Clone, Copy)]
pub struct TableLayout {
    pub compression: Compression,
    pub max_file_size: u64,
    pub small_file_limit: u64,
}

/// What one upsert did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CommitSummary {
    /// The completed instant; `None` when nothing changed and no commit was written.
    pub instant: Option<Instant>,
    pub inserts: u64,
    pub updates: u64,
    pub deletes: u64,
    pub files: usize,
    /// Incoming rows older than what the table held (ignored).
    pub stale: u64,
    /// Partition paths the commit wrote files in.
    pub partitions: Vec<String>,
}

/// An open Hudi table.
pub struct HudiTable {
    name: String,
    store: Arc<dyn ObjectStore>,
    base: Path,
    properties: TableProperties,
    timeline: Timeline,
    view: Option<FileView>,
    /// This writer's id in claims (see `claim.rs`).
    owner: String,
}

impl HudiTable {
    fn hoodie(base: &Path) -> Path {
        base.clone().join(".hoodie")
    }

    fn storage(&self, path: &Path) -> impl Fn(object_store::Error) -> HudiError + '_ {
        let path = path.to_string();
        move |source| HudiError::Storage {
            table: self.name.clone(),
            path: path.clone(),
            source,
        }
    }

    /// Opens the table at `base`; `None` when there is no `.hoodie/hoodie.properties`.
    pub async fn open(
        store: Arc<dyn ObjectStore>,
        base: Path,
        name: &str,
    ) -> Result<Option<HudiTable>, HudiError> {
        let props_path = Self::hoodie(&base).clone().join("hoodie.properties");
        let text = match store.get(&props_path).await {
            Ok(r) => r.bytes().await.map_err(|source| HudiError::Storage {
                table: name.to_string(),
                path: props_path.to_string(),
                source,
            })?,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(source) => {
                return Err(HudiError::Storage {
                    table: name.to_string(),
                    path: props_path.to_string(),
                    source,
                })
            }
        };
        let properties = TableProperties::parse(&String::from_utf8_lossy(&text));
        let unsupported = |reason: String| HudiError::Unsupported {
            table: name.to_string(),
            path: base.to_string(),
            reason,
        };
        if properties.get(TableKey::Version) != Some("6") {
            return Err(unsupported(format!(
                "hoodie.table.version is {}, lakefold writes table version 6",
                properties.get(TableKey::Version).unwrap_or("unset")
            )));
        }
        if properties.get(TableKey::Type) != Some("COPY_ON_WRITE") {
            return Err(unsupported(
                "only COPY_ON_WRITE tables are supported".into(),
            ));
        }
        let mut table = HudiTable {
            name: name.to_string(),
            store,
            base,
            properties,
            timeline: Timeline::default(),
            view: None,
            owner: uuid::Uuid::new_v4().to_string(),
        };
        table.reload_timeline().await?;
        Ok(Some(table))
    }

    /// Creates a new table (writes `hoodie.properties`); fails if one exists.
    pub async fn create(
        store: Arc<dyn ObjectStore>,
        base: Path,
        name: &str,
        database: &str,
        key_fields: &[String],
        precombine: &str,
        partition_fields: &[String],
    ) -> Result<HudiTable, HudiError> {
        let properties =
            TableProperties::new_table(database, name, key_fields, precombine, partition_fields);
        let path = Self::hoodie(&base).clone().join("hoodie.properties");
        let now = chrono::Utc::now().to_rfc3339();
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match store
            .put_opts(
                &path,
                PutPayload::from(properties.to_text(&now).into_bytes()),
                opts,
            )
            .await
        {
            Ok(_) => {}
            Err(object_store::Error::AlreadyExists { .. }) => {
                return Err(HudiError::AlreadyExists {
                    table: name.to_string(),
                    path: base.to_string(),
                })
            }
            Err(source) => {
                return Err(HudiError::Storage {
                    table: name.to_string(),
                    path: path.to_string(),
                    source,
                })
            }
        }
        Ok(HudiTable {
            name: name.to_string(),
            store,
            base,
            properties,
            timeline: Timeline::default(),
            view: None,
            owner: uuid::Uuid::new_v4().to_string(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn properties(&self) -> &TableProperties {
        &self.properties
    }

    pub fn timeline(&self) -> &Timeline {
        &self.timeline
    }

    async fn reload_timeline(&mut self) -> Result<(), HudiError> {
        let hoodie = Self::hoodie(&self.base);
        let listing = self
            .store
            .list_with_delimiter(Some(&hoodie))
            .await
            .map_err(self.storage(&hoodie))?;
        self.timeline = Timeline::from_files(
            listing
                .objects
                .iter()
                .filter_map(|o| o.location.filename().and_then(TimelineFile::parse)),
        );
        Ok(())
    }

    /// Deletes the files and instant files of writes that never completed (Hudi's rollback, without the
    /// rollback instant: readers only need the files gone). Returns the instants rolled back.
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
        // Claim the next slot first: a pending instant may belong to a live writer that is about to
        // complete it; then the claim fails (or the instant completes) and nothing of it is deleted.
        let after = self.newest_completed();
        let first = pending
            .first()
            .map(|(i, _)| i.to_string())
            .unwrap_or_default();
        match self.claim_slot(after.as_ref(), &first, "rollback").await {
            Ok(()) => {}
            Err(HudiError::Conflict { .. }) => {
                self.reload_timeline().await?;
                if self.timeline.pending_writes().is_empty() {
                    return Ok(Vec::new());
                }
                return Err(HudiError::Conflict {
                    table: self.name.clone(),
                    instant: first,
                });
            }
            Err(e) => return Err(e),
        }
        let objects: Vec<_> = self
            .store
            .list(Some(&self.base))
            .try_collect()
            .await
            .map_err(self.storage(&self.base))?;
        for (instant, timeline_files) in &pending {
            for meta in &objects {
                let written_by_it = meta
                    .location
                    .filename()
                    .and_then(BaseFileName::parse)
                    .is_some_and(|f| &f.instant == instant);
                if written_by_it {
                    self.delete(&meta.location).await?;
                }
            }
            // Inflight before requested: a crash mid-rollback leaves the instant pending, so it is redone.
            let mut names = timeline_files.clone();
            names.sort_by_key(|n| if n.ends_with(".requested") { 1 } else { 0 });
            for name in names {
                self.delete(&Self::hoodie(&self.base).clone().join(name.as_str()))
                    .await?;
            }
            tracing::warn!(table = %self.name, %instant, "rolled back an incomplete write (its files were deleted)");
        }
        self.view = None;
        self.reload_timeline().await?;
        Ok(pending.into_iter().map(|(i, _)| i).collect())
    }

    fn newest_completed(&self) -> Option<Instant> {
        self.timeline
            .completed_writes()
            .last()
            .map(|(i, _)| (*i).clone())
    }

    /// Claims the slot after `after` (the newest completed instant this write planned on), waiting out a
    /// claim of a writer that may still be completing; `Conflict` when another writer has completed an
    /// instant after `after` (or holds the slot past the wait).
    async fn claim_slot(
        &mut self,
        after: Option<&Instant>,
        instant: &str,
        purpose: &str,
    ) -> Result<(), HudiError> {
        let me = Claim {
            owner: self.owner.clone(),
            instant: instant.to_string(),
            purpose: purpose.to_string(),
        };
        let deadline = std::time::Instant::now() + STALE_AFTER + std::time::Duration::from_secs(5);
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
                ClaimResult::Held { by, stale } if stale => {
                    tracing::warn!(table = %self.name, owner = %by.owner, instant = %by.instant, purpose = %by.purpose, "taking over an abandoned claim");
                    release(&self.store, &self.name, &self.base, after).await?;
                }
                ClaimResult::Held { by, .. } => {
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

    /// Deletes the files and instant files of `instant` (this writer's own write that lost a conflict).
    async fn abandon(&mut self, instant: &Instant, written: &[Path]) -> Result<(), HudiError> {
        for p in written {
            self.delete(p).await?;
        }
        let hoodie = Self::hoodie(&self.base);
        let [requested, inflight, _] = TimelineFile::commit_names(instant);
        self.delete(&hoodie.clone().join(inflight.as_str())).await?;
        self.delete(&hoodie.join(requested.as_str())).await?;
        self.view = None;
        self.reload_timeline().await
    }

    /// Keeps the last claims, removing older ones (a writer whose plan is that old is refused anyway: the
    /// timeline check in `claim_slot` sees the newer commits).
    async fn prune_claims(&self) {
        let dir = claims_dir(&self.base);
        let Ok(listing) = self.store.list_with_delimiter(Some(&dir)).await else {
            return;
        };
        let mut names: Vec<Path> = listing.objects.into_iter().map(|o| o.location).collect();
        if names.len() <= KEEP_CLAIMS {
            return;
        }
        names.sort_by(|a, b| a.as_ref().cmp(b.as_ref()));
        for p in &names[..names.len() - KEEP_CLAIMS] {
            let _ = self.store.delete(p).await;
        }
    }

    async fn delete(&self, path: &Path) -> Result<(), HudiError> {
        match self.store.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(source) => Err(HudiError::Storage {
                table: self.name.clone(),
                path: path.to_string(),
                source,
            }),
        }
    }

    /// The metadata of a completed instant.
    pub async fn commit_metadata(&self, file: &TimelineFile) -> Result<CommitMetadata, HudiError> {
        let path = Self::hoodie(&self.base)
            .clone()
            .join(file.file_name.as_str());
        let bytes = read_object(&self.store, &self.name, &path).await?;
        serde_json::from_slice(&bytes).map_err(|source| HudiError::CommitJson {
            table: self.name.clone(),
            instant: file.instant.to_string(),
            source,
        })
    }

    /// The newest completed write and its metadata.
    pub async fn last_commit(&self) -> Result<Option<(Instant, CommitMetadata)>, HudiError> {
        match self.timeline.completed_writes().last() {
            Some((instant, file)) => Ok(Some((
                (*instant).clone(),
                self.commit_metadata(file).await?,
            ))),
            None => Ok(None),
        }
    }

    /// Every completed write, oldest first.
    pub async fn history(&self) -> Result<Vec<(Instant, Action, CommitMetadata)>, HudiError> {
        let mut out = Vec::new();
        for (instant, file) in self.timeline.completed_writes() {
            out.push((
                instant.clone(),
                file.action,
                self.commit_metadata(file).await?,
            ));
        }
        Ok(out)
    }

    /// The data-column schema of the newest commit that has one (its `extraMetadata.schema`).
    pub async fn schema(&self) -> Result<Option<TableSchema>, HudiError> {
        for (_, file) in self.timeline.completed_writes().into_iter().rev() {
            let meta = self.commit_metadata(file).await?;
            if let Some(text) = meta.extra_metadata.get(SCHEMA_KEY) {
                return Ok(parse_avro_schema(text));
            }
        }
        Ok(None)
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
        let after = self.newest_completed();
        let instant = Instant::next(self.timeline.last_instant());
        let hoodie = Self::hoodie(&self.base);
        let [requested, inflight, completed] = TimelineFile::commit_names(&instant);
        let meta = CommitMetadata::upsert(extra);
        let json = self.commit_json(&meta, &instant)?;
        put_object(
            &self.store,
            &self.name,
            &hoodie.clone().join(requested.as_str()),
            Vec::new(),
        )
        .await?;
        put_object(
            &self.store,
            &self.name,
            &hoodie.clone().join(inflight.as_str()),
            b"{}".to_vec(),
        )
        .await?;
        if let Err(e) = self
            .claim_slot(after.as_ref(), instant.as_str(), "commit")
            .await
        {
            self.abandon(&instant, &[]).await?;
            return Err(e);
        }
        self.publish(&hoodie.clone().join(completed.as_str()), json, &instant)
            .await?;
        self.reload_timeline().await?;
        self.prune_claims().await;
        Ok(instant)
    }

    fn commit_json(&self, meta: &CommitMetadata, instant: &Instant) -> Result<Vec<u8>, HudiError> {
        meta.to_json().map_err(|source| HudiError::CommitJson {
            table: self.name.clone(),
            instant: instant.to_string(),
            source,
        })
    }

    /// Publishes a completed instant with a create-only put: two writers can never both complete it.
    async fn publish(
        &self,
        path: &Path,
        json: Vec<u8>,
        instant: &Instant,
    ) -> Result<(), HudiError> {
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self
            .store
            .put_opts(path, PutPayload::from(json), opts)
            .await
        {
            Ok(_) => Ok(()),
            Err(object_store::Error::AlreadyExists { .. }) => Err(HudiError::Conflict {
                table: self.name.clone(),
                instant: instant.to_string(),
            }),
            Err(source) => Err(HudiError::Storage {
                table: self.name.clone(),
                path: path.to_string(),
                source,
            }),
        }
    }

    async fn view(&mut self, with_keys: bool) -> Result<&FileView, HudiError> {
        if self.view.is_none()
            || (with_keys
                && self
                    .view
                    .as_ref()
                    .is_some_and(|v| v.keys.is_empty() && !v.groups.is_empty()))
        {
            self.view = Some(
                FileView::load(
                    &self.store,
                    &self.name,
                    &self.base,
                    &self.timeline,
                    with_keys,
                )
                .await?,
            );
        }
        self.view.as_ref().ok_or_else(|| HudiError::Data {
            table: self.name.clone(),
            message: "file view unavailable".into(),
        })
    }

    /// Partition paths that hold files (empty for an unpartitioned table).
    pub async fn partitions(&mut self) -> Result<Vec<String>, HudiError> {
        Ok(self
            .view(false)
            .await?
            .groups
            .keys()
            .map(|(p, _)| p.clone())
            .filter(|p| !p.is_empty())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect())
    }

    /// Reads the latest snapshot (every file group's latest committed slice).
    pub async fn snapshot(&mut self) -> Result<Vec<RecordBatch>, HudiError> {
        let paths: Vec<Path> = self
            .view(false)
            .await?
            .groups
            .values()
            .map(|g| g.latest.path.clone())
            .collect();
        let mut out = Vec::new();
        for p in paths {
            out.extend(read_parquet(&self.store, &self.name, &p, None).await?);
        }
        Ok(out)
    }

    /// Upserts `rows` (already folded: one per key) as one commit carrying `extra` in its metadata.
    /// Writes nothing and returns an empty summary when no row changes the table.
    pub async fn upsert(
        &mut self,
        schema: &TableSchema,
        rows: Vec<StagedRow>,
        layout: TableLayout,
        extra: BTreeMap<String, String>,
    ) -> Result<CommitSummary, HudiError> {
        self.view(true).await?;
        let view = self.view.take().unwrap_or_default();
        let sizing = Sizing {
            max_file_size: layout.max_file_size,
            small_file_limit: layout.small_file_limit,
        };
        let (work, stale) = plan(&view, &rows, sizing);
        if work.is_empty() {
            self.view = Some(view);
            return Ok(CommitSummary {
                stale,
                ..CommitSummary::default()
            });
        }
        let result = self
            .write_commit(schema, &rows, layout, extra, &view, work)
            .await;
        match result {
            Ok((mut summary, new_view)) => {
                self.view = Some(new_view);
                summary.stale += stale;
                Ok(summary)
            }
            Err(e) => {
                self.view = None;
                Err(e)
            }
        }
    }

    async fn write_commit(
        &mut self,
        schema: &TableSchema,
        rows: &[StagedRow],
        layout: TableLayout,
        mut extra: BTreeMap<String, String>,
        view: &FileView,
        work: BTreeMap<(String, String), super::write::GroupWork>,
    ) -> Result<(CommitSummary, FileView), HudiError> {
        let after = self.newest_completed();
        let instant = Instant::next(self.timeline.last_instant());
        let hoodie = Self::hoodie(&self.base);
        let [requested, inflight, completed] = TimelineFile::commit_names(&instant);
        put_object(
            &self.store,
            &self.name,
            &hoodie.clone().join(requested.as_str()),
            Vec::new(),
        )
        .await?;
        extra.insert(
            SCHEMA_KEY.to_string(),
            avro_schema(&self.name, schema, false),
        );

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
        put_object(
            &self.store,
            &self.name,
            &hoodie.clone().join(inflight.as_str()),
            planned_json,
        )
        .await?;

        let mut new_view = view.clone();
        for partition in work
            .keys()
            .map(|id| id.0.clone())
            .collect::<std::collections::BTreeSet<_>>()
        {
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
            schema,
            file_schema: file_schema(schema),
            compression: codec(layout.compression),
            rows,
        };
        let mut summary = CommitSummary {
            instant: Some(instant.clone()),
            partitions: work
                .keys()
                .map(|id| id.0.clone())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect(),
            ..CommitSummary::default()
        };
        let mut meta = CommitMetadata {
            extra_metadata: extra,
            ..planned
        };
        meta.partition_to_write_stats.clear();
        let mut written: Vec<Path> = Vec::new();
        for (task, (id, w)) in work.iter().enumerate() {
            let result = write_group(&ctx, task, id, w).await?;
            written.push(result.file.path.clone());
            summary.inserts += result.stat.num_inserts;
            summary.updates += result.stat.num_update_writes;
            summary.deletes += result.stat.num_deletes;
            summary.stale += result.stale;
            summary.files += 1;
            for k in result.removed_keys {
                if new_view.keys.get(&k).is_some_and(|e| *e.group == *id) {
                    new_view.keys.remove(&k);
                }
            }
            let shared = Arc::new(id.clone());
            for (k, position) in result.written_keys {
                new_view.keys.insert(
                    k,
                    KeyEntry {
                        group: shared.clone(),
                        position: position.into(),
                    },
                );
            }
            meta.partition_to_write_stats
                .entry(id.0.clone())
                .or_default()
                .push(result.stat);
            new_view.groups.insert(
                id.clone(),
                super::view::FileGroup {
                    partition: id.0.clone(),
                    file_id: id.1.clone(),
                    latest: result.file,
                    rows: result.rows,
                },
            );
        }

        let json = self.commit_json(&meta, &instant)?;
        if let Err(e) = self
            .claim_slot(after.as_ref(), instant.as_str(), "commit")
            .await
        {
            self.abandon(&instant, &written).await?;
            return Err(e);
        }
        self.publish(&hoodie.clone().join(completed.as_str()), json, &instant)
            .await?;
        self.reload_timeline().await?;
        self.prune_claims().await;
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
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self
            .store
            .put_opts(&path, PutPayload::from(text.into_bytes()), opts)
            .await
        {
            Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => Ok(()),
            Err(source) => Err(HudiError::Storage {
                table: self.name.clone(),
                path: path.to_string(),
                source,
            }),
        }
    }

    /// Deletes every object of the table at `base` (the table and its timeline).
    pub async fn drop_table(
        store: &Arc<dyn ObjectStore>,
        base: &Path,
        name: &str,
    ) -> Result<usize, HudiError> {
        let objects: Vec<_> = store
            .list(Some(base))
            .try_collect()
            .await
            .map_err(|source| HudiError::Storage {
                table: name.to_string(),
                path: base.to_string(),
                source,
            })?;
        // Commit files first, so a crash mid-drop never leaves data that looks committed without its files.
        let mut paths: Vec<Path> = objects.into_iter().map(|o| o.location).collect();
        paths.sort_by_key(|p| {
            let s = p.to_string();
            if s.ends_with(".commit") || s.ends_with(".replacecommit") {
                0
            } else if s.ends_with("hoodie.properties") {
                2
            } else {
                1
            }
        });
        let n = paths.len();
        for p in paths {
            match store.delete(&p).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(source) => {
                    return Err(HudiError::Storage {
                        table: name.to_string(),
                        path: p.to_string(),
                        source,
                    })
                }
            }
        }
        Ok(n)
    }
}
