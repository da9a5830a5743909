//! The file-system view: for every file group its latest committed base file and, for the index, what its
//! footer says about its keys (see `index.rs`).

use super::commit_metadata::CommitMetadata;
use super::error::HudiError;
use super::file_name::BaseFileName;
use super::index::{read_footer, FileKeys, IndexedGroup};
use super::instant::{Action, Instant};
use super::parquet_io::read_object;
use super::timeline::Timeline;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::ObjectStore;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

/// Name of the per-partition metadata file.
pub const PARTITION_METADATA: &str = ".hoodie_partition_metadata";

/// A base file of a file group.
#[derive(Debug, Clone, PartialEq)]
pub struct BaseFile {
    pub name: BaseFileName,
    pub path: Path,
    pub size: u64,
}

/// A file group and its latest committed slice.
#[derive(Debug, Clone, PartialEq)]
pub struct FileGroup {
    pub partition: String,
    pub file_id: String,
    pub latest: BaseFile,
    /// Rows in the latest base file (known once its footer was read).
    pub rows: u64,
    /// What the latest base file's footer says about its keys.
    pub keys: FileKeys,
}

/// Identifies a file group: (partition path, file id).
pub type GroupId = (String, String);

/// Footers read at the same time when the view is indexed.
const FOOTERS_IN_FLIGHT: usize = 8;

/// What readers see: the latest committed slice of every file group.
#[derive(Debug, Clone, Default)]
pub struct FileView {
    pub groups: BTreeMap<GroupId, FileGroup>,
    /// Every group's footer was read (`rows` and `keys` are known).
    pub indexed: bool,
    /// Partitions that have their `.hoodie_partition_metadata`.
    pub partitions: BTreeSet<String>,
}

/// Every committed base file of a table, by file group, and the file groups replaced by a
/// `replacecommit` (with the instant that replaced them).
#[derive(Debug, Clone, Default)]
pub struct Slices {
    /// Committed slices of each file group, oldest first.
    pub groups: BTreeMap<GroupId, Vec<BaseFile>>,
    pub replaced: HashMap<GroupId, Instant>,
    /// Partitions that have their `.hoodie_partition_metadata`.
    pub partitions: BTreeSet<String>,
}

impl Slices {
    /// Lists the table: every base file whose instant readers treat as committed (a completed write, or
    /// older than the first completed write), grouped by file group.
    pub async fn list(
        store: &Arc<dyn ObjectStore>,
        table: &str,
        base: &Path,
        timeline: &Timeline,
    ) -> Result<Slices, HudiError> {
        let mut out = Slices::default();
        for (instant, file) in timeline.completed_writes() {
            if file.action == Action::ReplaceCommit {
                let path = base
                    .clone()
                    .join(".hoodie")
                    .clone()
                    .join(file.file_name.as_str());
                let bytes = read_object(store, table, &path).await?;
                let meta: CommitMetadata =
                    serde_json::from_slice(&bytes).map_err(|source| HudiError::CommitJson {
                        table: table.to_string(),
                        instant: instant.to_string(),
                        source,
                    })?;
                for (partition, ids) in meta.partition_to_replace_file_ids.unwrap_or_default() {
                    for id in ids {
                        out.replaced
                            .insert((partition.clone(), id), instant.clone());
                    }
                }
            }
        }
        let first = timeline.first_completed_write().cloned();
        let visible = |instant: &Instant| {
            timeline.is_completed_write(instant) || first.as_ref().is_some_and(|f| instant < f)
        };
        let objects: Vec<_> = store
            .list(Some(base))
            .try_collect()
            .await
            .map_err(|source| HudiError::Storage {
                table: table.to_string(),
                path: base.to_string(),
                source,
            })?;
        for meta in objects {
            let Some(parts) = meta.location.prefix_match(base) else {
                continue;
            };
            let parts: Vec<String> = parts.map(|p| p.as_ref().to_string()).collect();
            let Some((file, dirs)) = parts.split_last() else {
                continue;
            };
            if dirs.first().is_some_and(|d| d.starts_with('.')) {
                continue;
            }
            let partition = dirs.join("/");
            if file == PARTITION_METADATA {
                out.partitions.insert(partition);
                continue;
            }
            let Some(name) = BaseFileName::parse(file) else {
                continue;
            };
            if !visible(&name.instant) {
                continue;
            }
            out.groups
                .entry((partition, name.file_id.clone()))
                .or_default()
                .push(BaseFile {
                    name,
                    path: meta.location.clone(),
                    size: meta.size,
                });
        }
        for slices in out.groups.values_mut() {
            slices.sort_by(|a, b| a.name.instant.cmp(&b.name.instant));
        }
        Ok(out)
    }
}

impl FileView {
    /// Lists the table and builds the view (and, with `with_index`, reads every latest file's footer).
    pub async fn load(
        store: &Arc<dyn ObjectStore>,
        table: &str,
        base: &Path,
        timeline: &Timeline,
        with_index: bool,
    ) -> Result<FileView, HudiError> {
        let slices = Slices::list(store, table, base, timeline).await?;
        let mut view = FileView {
            partitions: slices.partitions,
            ..FileView::default()
        };
        for (id, files) in slices.groups {
            if slices.replaced.contains_key(&id) {
                continue;
            }
            let Some(latest) = files.into_iter().next_back() else {
                continue;
            };
            view.groups.insert(
                id.clone(),
                FileGroup {
                    partition: id.0.clone(),
                    file_id: id.1.clone(),
                    latest,
                    rows: 0,
                    keys: FileKeys::default(),
                },
            );
        }
        if with_index {
            view.read_footers(store, table).await?;
        }
        Ok(view)
    }

    /// Reads the footer of every group's latest file (row count, key range, bloom filter).
    pub async fn read_footers(
        &mut self,
        store: &Arc<dyn ObjectStore>,
        table: &str,
    ) -> Result<(), HudiError> {
        let reads: Vec<_> = self
            .groups
            .iter()
            .map(|(id, g)| {
                let (id, file) = (id.clone(), &g.latest);
                async move { read_footer(store, table, file).await.map(|f| (id, f)) }
            })
            .collect();
        let footers: Vec<(GroupId, (u64, FileKeys))> = futures::stream::iter(reads)
            .buffer_unordered(FOOTERS_IN_FLIGHT)
            .try_collect()
            .await?;
        for (id, (rows, keys)) in footers {
            if let Some(g) = self.groups.get_mut(&id) {
                g.rows = rows;
                g.keys = keys;
            }
        }
        self.indexed = true;
        Ok(())
    }

    /// The groups as the index sees them.
    pub fn indexed_groups(&self) -> Vec<IndexedGroup<'_>> {
        self.groups
            .iter()
            .map(|(id, g)| IndexedGroup {
                id,
                file: &g.latest,
                keys: &g.keys,
            })
            .collect()
    }

    /// Average bytes per row over the latest base files, or Hudi's default estimate (1024).
    pub fn average_record_size(&self) -> u64 {
        let (bytes, rows) = self
            .groups
            .values()
            .filter(|g| g.rows > 0)
            .fold((0u64, 0u64), |(b, r), g| (b + g.latest.size, r + g.rows));
        if rows == 0 {
            1024
        } else {
            (bytes / rows).max(1)
        }
    }
}
