//! A Hudi table: create/open, roll back abandoned writes, commit upserts with the source checkpoint in
//! `extraMetadata`, read the latest snapshot and the history.

use super::avro_schema::parse_avro_schema;
use super::commit_metadata::{CommitMetadata, SCHEMA_KEY};
use super::error::HudiError;
use super::index::locate;
use super::instant::{Action, Instant, TimelineFile};
use super::parquet_io::{read_object, read_parquet};
use super::properties::{TableKey, TableProperties};
use super::timeline::Timeline;
use super::view::FileView;
use super::write::{plan, Sizing};
use crate::schema::TableSchema;
use crate::sink::{CommitSummary, StagedRow, TableLayout};
use arrow::array::RecordBatch;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use std::collections::BTreeMap;
use std::sync::Arc;

/// An open Hudi table.
pub struct HudiTable {
    pub(super) name: String,
    pub(super) store: Arc<dyn ObjectStore>,
    pub(super) base: Path,
    pub(super) properties: TableProperties,
    pub(super) timeline: Timeline,
    pub(super) view: Option<FileView>,
    /// This writer's id in claims (see `claim.rs`).
    pub(super) owner: String,
    /// The table's URI (`file:/…`, `s3://…`), for the full paths Hudi records in clean plans.
    pub(super) location: String,
    /// The newest completed clean read so far and the earliest commit it retained (archival's limit).
    pub(super) last_clean: Option<(Instant, Option<Instant>)>,
    /// The commit file read last and its metadata (completed instants never change).
    pub(super) last_read: std::sync::Mutex<Option<(String, CommitMetadata)>>,
}

impl HudiTable {
    pub(super) fn hoodie(base: &Path) -> Path {
        base.clone().join(".hoodie")
    }

    pub(super) fn storage(&self, path: &Path) -> impl Fn(object_store::Error) -> HudiError + '_ {
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
        if let Some(partitions) = properties
            .get(TableKey::MetadataPartitions)
            .filter(|p| !p.trim().is_empty())
        {
            return Err(unsupported(format!(
                "the table has a metadata table ({}={partitions}); lakefold does not maintain one, so \
                 writing would leave it out of date for readers that list files through it. Disable it \
                 with a JVM writer first (hoodie.metadata.enable=false, which removes .hoodie/metadata \
                 and the property)",
                TableKey::MetadataPartitions.key()
            )));
        }
        let mut table = HudiTable {
            name: name.to_string(),
            store,
            base,
            properties,
            timeline: Timeline::default(),
            view: None,
            owner: uuid::Uuid::new_v4().to_string(),
            location: String::new(),
            last_clean: None,
            last_read: Default::default(),
        };
        table.location = table.base.to_string();
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
            location: base.to_string(),
            base,
            properties,
            timeline: Timeline::default(),
            view: None,
            owner: uuid::Uuid::new_v4().to_string(),
            last_clean: None,
            last_read: Default::default(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sets the table's URI (`file:/abs/path`, `s3://bucket/prefix/table`), which Hudi records in clean
    /// plans as the prefix of every file path.
    pub fn set_location(&mut self, uri: &str) {
        self.location = uri.trim_end_matches('/').to_string();
    }

    /// The full path of an object of this table, as Hudi records it (`<table uri>/<relative path>`).
    pub(super) fn full_path(&self, path: &Path) -> String {
        let relative: Vec<String> = path
            .prefix_match(&self.base)
            .map(|parts| parts.map(|p| p.as_ref().to_string()).collect())
            .unwrap_or_default();
        format!("{}/{}", self.location, relative.join("/"))
    }

    /// The table's folder when it is on the local disk (`file:` location).
    pub(super) fn local_dir(&self) -> Option<std::path::PathBuf> {
        self.location
            .strip_prefix("file:")
            .map(std::path::PathBuf::from)
    }

    pub(super) fn data_error(&self, message: String) -> HudiError {
        HudiError::Data {
            table: self.name.clone(),
            message,
        }
    }

    /// Records `hoodie.table.create.schema` (the Avro schema of the data columns, as Spark writes it when
    /// it creates a table) once the table has a schema, rewriting `hoodie.properties` as Hudi does: a
    /// backup first, then the file, then the backup removed.
    pub(super) async fn ensure_create_schema(&mut self, avro: &str) -> Result<(), HudiError> {
        if self.properties.get(TableKey::CreateSchema).is_some() {
            return Ok(());
        }
        self.properties.set(TableKey::CreateSchema, avro);
        let hoodie = Self::hoodie(&self.base);
        let text = self
            .properties
            .to_text(&chrono::Utc::now().to_rfc3339())
            .into_bytes();
        let backup = hoodie.clone().join("hoodie.properties.backup");
        let path = hoodie.join("hoodie.properties");
        for p in [&backup, &path] {
            self.store
                .put(p, PutPayload::from(text.clone()))
                .await
                .map_err(self.storage(p))?;
        }
        self.delete(&backup).await
    }
    pub fn properties(&self) -> &TableProperties {
        &self.properties
    }

    pub fn timeline(&self) -> &Timeline {
        &self.timeline
    }

    pub(super) async fn reload_timeline(&mut self) -> Result<(), HudiError> {
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

    /// The metadata of a completed instant (the last one read is kept: resuming reads the newest commit's
    /// checkpoint and then its schema).
    pub async fn commit_metadata(&self, file: &TimelineFile) -> Result<CommitMetadata, HudiError> {
        if let Ok(last) = self.last_read.lock() {
            if let Some((name, meta)) = last.as_ref().filter(|(n, _)| *n == file.file_name) {
                tracing::trace!(table = %self.name, file = %name, "commit metadata from memory");
                return Ok(meta.clone());
            }
        }
        let path = Self::hoodie(&self.base)
            .clone()
            .join(file.file_name.as_str());
        let bytes = read_object(&self.store, &self.name, &path).await?;
        let meta: CommitMetadata =
            serde_json::from_slice(&bytes).map_err(|source| HudiError::CommitJson {
                table: self.name.clone(),
                instant: file.instant.to_string(),
                source,
            })?;
        if let Ok(mut last) = self.last_read.lock() {
            *last = Some((file.file_name.clone(), meta.clone()));
        }
        Ok(meta)
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

    /// The newest completed commit that carries `key` in its `extraMetadata` (HoodieStreamer scans back the
    /// same way: commits of other writers carry no checkpoint and are skipped), with that value.
    pub async fn latest_with(&self, key: &str) -> Result<Option<(Instant, String)>, HudiError> {
        for (instant, file) in self.timeline.completed_writes().into_iter().rev() {
            let meta = self.commit_metadata(file).await?;
            if let Some(v) = meta.extra_metadata.get(key).filter(|v| !v.is_empty()) {
                return Ok(Some((instant.clone(), v.clone())));
            }
        }
        Ok(None)
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

    async fn view(&mut self, with_index: bool) -> Result<&mut FileView, HudiError> {
        let view = match self.view.take() {
            Some(v) => v,
            None => {
                FileView::load(&self.store, &self.name, &self.base, &self.timeline, false).await?
            }
        };
        let view = self.view.insert(view);
        if with_index && !view.indexed {
            view.read_footers(&self.store, &self.name).await?;
        }
        Ok(view)
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
        let located = match locate(&self.store, &self.name, &view.indexed_groups(), &rows).await {
            Ok(l) => l,
            Err(e) => {
                self.view = Some(view);
                return Err(e);
            }
        };
        let sizing = Sizing {
            max_file_size: layout.max_file_size,
            small_file_limit: layout.small_file_limit,
        };
        let (work, stale) = plan(&view, &rows, &located, sizing);
        if work.is_empty() {
            self.view = Some(view);
            return Ok(CommitSummary {
                stale,
                ..CommitSummary::default()
            });
        }
        let result = self
            .write_commit(schema, &rows, layout, extra, view, work)
            .await;
        // Freeing a large commit's rows takes a while: not on the way to the next commit, and on a thread
        // of its own (the runtime waits for its blocking pool when it shuts down; an exiting process need
        // not wait for this).
        if rows.len() >= 4096 {
            let freeing = std::thread::Builder::new().name("lakefold-free".into());
            // Should no thread start, the rows are freed here when the closure is dropped.
            let _ = freeing.spawn(move || drop(rows));
        }
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
