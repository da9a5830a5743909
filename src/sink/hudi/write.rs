//! Copy-on-write upsert: tag incoming rows against the key index, bin inserts into small files and new file
//! groups, and rewrite every touched file group into a new file slice.

use super::avro_schema::{avro_schema, META_COLUMNS};
use super::commit_metadata::{RuntimeStats, WriteStat};
use super::error::HudiError;
use super::file_name::BaseFileName;
use super::index::{FileKeys, Located};
use super::instant::Instant;
use super::merge::{KeyChange, KeyMap, Merge, Merged};
use super::parquet_io::{put_object, read_object, writer_options};
use super::view::{BaseFile, FileView, GroupId};
use crate::schema::TableSchema;
use crate::sink::{RowChange, StagedRow};
use arrow::array::{ArrayRef, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use lakefold_api::compare_order_keys;
use lakefold_api::Value;
use object_store::path::Path;
use object_store::ObjectStore;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// A change to a row that lives in an existing file group.
#[derive(Debug, Clone, Copy)]
struct Change {
    row: usize,
    /// The key moved to another partition: remove it here (it is inserted there).
    moved_out: bool,
}

/// Work for one file group in one commit.
#[derive(Debug, Default)]
pub(super) struct GroupWork {
    pub existing: Option<BaseFile>,
    changes: HashMap<String, Change>,
    inserts: Vec<usize>,
}

/// File sizing, from the route.
#[derive(Debug, Clone, Copy)]
pub(super) struct Sizing {
    pub max_file_size: u64,
    pub small_file_limit: u64,
}

/// Assigns every row to a file group (Hudi's UpsertPartitioner, with a global index: a key that changes
/// partition is removed from its old file group and inserted in the new partition). Returns the work and
/// the number of incoming rows dropped because the stored row is newer (checked here for rows that change
/// partition; for the others while merging, against the row itself).
pub(super) fn plan(
    view: &FileView,
    rows: &[StagedRow],
    located: &[Option<Located>],
    sizing: Sizing,
) -> (BTreeMap<GroupId, GroupWork>, u64) {
    let mut work: BTreeMap<GroupId, GroupWork> = BTreeMap::new();
    let mut inserts_by_partition: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let mut stale = 0u64;
    for (i, (row, at)) in rows.iter().zip(located).enumerate() {
        match (at, &row.change) {
            (Some(at), RowChange::Upsert(_)) if at.group.0 != row.partition_path => {
                let stored = at.position.as_deref().unwrap_or("");
                if compare_order_keys(stored, &row.position) == std::cmp::Ordering::Greater {
                    stale += 1;
                    continue;
                }
                work.entry(at.group.clone()).or_default().changes.insert(
                    row.record_key.clone(),
                    Change {
                        row: i,
                        moved_out: true,
                    },
                );
                inserts_by_partition
                    .entry(row.partition_path.clone())
                    .or_default()
                    .push(i);
            }
            (Some(at), _) => {
                work.entry(at.group.clone()).or_default().changes.insert(
                    row.record_key.clone(),
                    Change {
                        row: i,
                        moved_out: false,
                    },
                );
            }
            (None, RowChange::Upsert(_)) => inserts_by_partition
                .entry(row.partition_path.clone())
                .or_default()
                .push(i),
            (None, RowChange::Delete) => {}
        }
    }
    let avg = view.average_record_size();
    let per_file = (sizing.max_file_size / avg).max(1) as usize;
    for (partition, mut pending) in inserts_by_partition {
        // Fill small files first, smallest first.
        let mut small: Vec<_> = view
            .groups
            .iter()
            .filter(|(id, g)| id.0 == partition && g.latest.size < sizing.small_file_limit)
            .map(|(id, g)| (g.latest.size, id.clone()))
            .collect();
        small.sort();
        for (size, id) in small {
            if pending.is_empty() {
                break;
            }
            let room = (sizing.max_file_size.saturating_sub(size) / avg) as usize;
            let take = room.min(pending.len());
            if take > 0 {
                work.entry(id)
                    .or_default()
                    .inserts
                    .extend(pending.drain(..take));
            }
        }
        while !pending.is_empty() {
            let take = per_file.min(pending.len());
            let id = (partition.clone(), BaseFileName::new_file_id());
            work.entry(id)
                .or_default()
                .inserts
                .extend(pending.drain(..take));
        }
    }
    for (id, w) in work.iter_mut() {
        w.existing = view.groups.get(id).map(|g| g.latest.clone());
    }
    (work, stale)
}

/// The arrow schema of a base file: the five meta columns, then the data columns.
pub(super) fn file_schema(schema: &TableSchema) -> SchemaRef {
    let mut fields: Vec<Field> = META_COLUMNS
        .iter()
        .map(|m| Field::new(*m, DataType::Utf8, true))
        .collect();
    fields.extend(schema.arrow_fields());
    Arc::new(Schema::new(fields))
}

/// The result of rewriting one file group.
pub(super) struct GroupResult {
    pub stat: WriteStat,
    pub file: BaseFile,
    pub rows: u64,
    /// The new file's key range and bloom filter (the index of the next commit).
    pub keys: FileKeys,
    /// Incoming rows that were older than the stored row and so were not applied.
    pub stale: u64,
}

/// Inputs shared by every file group of one commit.
pub(super) struct CommitContext<'a> {
    pub store: &'a Arc<dyn ObjectStore>,
    pub table: &'a str,
    pub base: &'a Path,
    pub instant: &'a Instant,
    /// The random middle of this commit's write tokens.
    pub stage: u32,
    pub schema: &'a TableSchema,
    pub file_schema: SchemaRef,
    pub compression: parquet::basic::Compression,
    pub rows: &'a [StagedRow],
}

/// Rewrites one file group: old rows kept or replaced in place (newest position wins), deleted rows
/// dropped, inserts appended; writes `<fileId>_<task>-<stage>-0_<instant>.parquet`.
pub(super) async fn write_group(
    ctx: &CommitContext<'_>,
    task: usize,
    id: &GroupId,
    work: &GroupWork,
) -> Result<GroupResult, HudiError> {
    // A rewrite holds the old file's bytes, one decoded batch and the new file: at most one per core at a
    // time, across all tables, so concurrency buys speed without multiplying peak memory.
    let _permit = rewrite_permits()
        .acquire()
        .await
        .map_err(|e| HudiError::Data {
            table: ctx.table.to_string(),
            message: format!("rewrite permits closed: {e}"),
        })?;
    let started = std::time::Instant::now();
    let file_name = BaseFileName::new(&id.1, task, ctx.stage, ctx.instant);
    let rel_path = relative_file_path(id, task, ctx.stage, ctx.instant);
    let path = Path::parse(format!("{}/{}", ctx.base, rel_path)).map_err(|e| HudiError::Data {
        table: ctx.table.to_string(),
        message: format!("bad file path {rel_path}: {e}"),
    })?;
    let old = match &work.existing {
        Some(f) => Some((
            f.path.clone(),
            read_object(ctx.store, ctx.table, &f.path).await?,
        )),
        None => None,
    };
    let merge = prepare_merge(ctx, task, &file_name.name(), &path, work, old)?;
    let mut merged = tokio::task::spawn_blocking(move || merge.run())
        .await
        .map_err(|e| HudiError::Data {
            table: ctx.table.to_string(),
            message: format!("rewriting {path} stopped: {e}"),
        })??;
    let bytes = std::mem::take(&mut merged.bytes);
    let size = bytes.len() as u64;
    put_object(ctx.store, ctx.table, &path, bytes).await?;
    let elapsed = started.elapsed().as_millis() as u64;
    let stat = write_stat(id, rel_path, work, size, elapsed, &merged);
    Ok(GroupResult {
        stat,
        file: BaseFile {
            name: file_name,
            path,
            size,
        },
        rows: merged.rows,
        keys: merged.keys,
        stale: merged.stale,
    })
}

/// The `HoodieWriteStat` of a rewritten file group.
fn write_stat(
    id: &GroupId,
    rel_path: String,
    work: &GroupWork,
    size: u64,
    elapsed: u64,
    merged: &Merged,
) -> WriteStat {
    WriteStat {
        file_id: id.1.clone(),
        path: Some(rel_path),
        prev_commit: work
            .existing
            .as_ref()
            .map(|f| f.name.instant.to_string())
            .unwrap_or_else(|| "null".to_string()),
        num_writes: merged.rows,
        num_deletes: merged.deletes,
        num_update_writes: merged.updates,
        num_inserts: merged.inserts,
        total_write_bytes: size,
        partition_path: Some(id.0.clone()),
        file_size_in_bytes: size,
        runtime_stats: Some(RuntimeStats {
            total_scan_time: 0,
            total_upsert_time: if work.existing.is_some() { elapsed } else { 0 },
            total_create_time: if work.existing.is_some() { 0 } else { elapsed },
        }),
        ..WriteStat::default()
    }
}

/// The owned inputs of one group's merge: its incoming rows as arrow (updates in row order, then
/// inserts), what happens to each stored key, the footer schema and the writer settings.
fn prepare_merge(
    ctx: &CommitContext<'_>,
    task: usize,
    name: &str,
    path: &Path,
    work: &GroupWork,
    old: Option<(Path, bytes::Bytes)>,
) -> Result<Merge, HudiError> {
    let mut updates: Vec<(&String, &Change)> = work.changes.iter().collect();
    updates.sort_unstable_by_key(|(_, c)| c.row);
    let mut new_rows: Vec<usize> = Vec::with_capacity(updates.len() + work.inserts.len());
    let mut changes: KeyMap<KeyChange> = KeyMap::default();
    for (key, change) in updates {
        let row = &ctx.rows[change.row];
        let kc = match (&row.change, change.moved_out) {
            (_, true) => KeyChange::MovedOut,
            (RowChange::Delete, false) => KeyChange::Delete {
                position: row.position.clone(),
            },
            (RowChange::Upsert(_), false) => {
                new_rows.push(change.row);
                KeyChange::Update {
                    new: new_rows.len() - 1,
                    position: row.position.clone(),
                }
            }
        };
        changes.insert(key.clone(), kc);
    }
    let first_insert = new_rows.len();
    new_rows.extend(work.inserts.iter().copied());
    let inserts = (first_insert..new_rows.len()).collect();
    Ok(Merge {
        table: ctx.table.to_string(),
        path: path.clone(),
        old,
        file_schema: ctx.file_schema.clone(),
        new_rows: incoming_batch(ctx, &new_rows, name)?,
        changes,
        inserts,
        seqno_prefix: format!("{}_{}", ctx.instant, task),
        file_name: name.to_string(),
        writer: writer_options(ctx.table, path, &ctx.file_schema, ctx.compression)?,
        avro: avro_schema(ctx.table, ctx.schema, true),
        threads: cores(),
    })
}

/// Incoming rows as a batch of the file schema (sequence numbers are set when the rows are placed).
fn incoming_batch(
    ctx: &CommitContext<'_>,
    rows: &[usize],
    file_name: &str,
) -> Result<RecordBatch, HudiError> {
    let empty: Vec<Value> = Vec::new();
    let values = rows.iter().map(|&i| match &ctx.rows[i].change {
        RowChange::Upsert(v) => v.as_slice(),
        RowChange::Delete => empty.as_slice(),
    });
    let n = rows.len();
    let text = |f: fn(&StagedRow) -> &str| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|&i| f(&ctx.rows[i])),
        ))
    };
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec![ctx.instant.as_str(); n])),
        Arc::new(StringArray::from(vec![""; n])),
        text(|r| r.record_key.as_str()),
        text(|r| r.partition_path.as_str()),
        Arc::new(StringArray::from(vec![file_name; n])),
    ];
    let data = ctx
        .schema
        .build_arrays(values)
        .map_err(|message| HudiError::Data {
            table: ctx.table.to_string(),
            message,
        })?;
    columns.extend(data);
    RecordBatch::try_new(ctx.file_schema.clone(), columns).map_err(|source| HudiError::Arrow {
        table: ctx.table.to_string(),
        context: "building incoming rows".into(),
        source,
    })
}

/// The process-wide bound on concurrent file-group rewrites: one per core.
fn rewrite_permits() -> &'static tokio::sync::Semaphore {
    static PERMITS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    PERMITS.get_or_init(|| tokio::sync::Semaphore::new(cores()))
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The path, relative to the table base, of the file task `task` writes for file group `id`.
pub(super) fn relative_file_path(
    id: &GroupId,
    task: usize,
    stage: u32,
    instant: &Instant,
) -> String {
    let name = BaseFileName::new(&id.1, task, stage, instant).name();
    if id.0.is_empty() {
        name
    } else {
        format!("{}/{}", id.0, name)
    }
}
