//! Copy-on-write upsert: tag incoming rows against the key index, bin inserts into small files and new file
//! groups, and rewrite every touched file group into a new file slice.

use super::avro_schema::{avro_schema, META_COLUMNS};
use super::bloom::{DynamicBloomFilter, BLOOM_FILTER_KEY, BLOOM_TYPE_CODE_KEY, DYNAMIC_V0};
use super::commit_metadata::{RuntimeStats, WriteStat};
use super::error::HudiError;
use super::file_name::BaseFileName;
use super::instant::Instant;
use super::parquet_io::{encode_parquet, put_object, read_parquet};
use super::view::{BaseFile, FileView, GroupId};
use crate::schema::{TableSchema, POSITION_COLUMN};
use crate::sink::{RowChange, StagedRow};
use arrow::array::{new_null_array, Array, ArrayRef, AsArray, RecordBatch, StringArray};
use arrow::compute::{cast, interleave_record_batch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
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
    sizing: Sizing,
) -> (BTreeMap<GroupId, GroupWork>, u64) {
    let mut work: BTreeMap<GroupId, GroupWork> = BTreeMap::new();
    let mut inserts_by_partition: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let mut stale = 0u64;
    for (i, row) in rows.iter().enumerate() {
        match (view.keys.get(&row.record_key), &row.change) {
            (Some(entry), RowChange::Upsert(_)) if entry.group.0 != row.partition_path => {
                if *entry.position > *row.position {
                    stale += 1;
                    continue;
                }
                let gid = (*entry.group).clone();
                work.entry(gid).or_default().changes.insert(
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
            (Some(entry), _) => {
                let gid = (*entry.group).clone();
                work.entry(gid).or_default().changes.insert(
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
    /// Keys written from incoming rows (updated or inserted here) with their positions, and keys that left.
    pub written_keys: Vec<(String, String)>,
    pub removed_keys: Vec<String>,
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

enum Source {
    Old(usize, usize),
    New(usize),
}

/// Rewrites one file group: old rows kept or replaced in place (newest position wins), deleted rows
/// dropped, inserts appended; writes `<fileId>_<task>-0-0_<instant>.parquet`.
pub(super) async fn write_group(
    ctx: &CommitContext<'_>,
    task: usize,
    id: &GroupId,
    work: &GroupWork,
) -> Result<GroupResult, HudiError> {
    // A rewrite holds a whole file group (old rows, merged rows, encoded file) in memory: at most one per
    // core at a time, across all tables, so concurrency buys speed without multiplying peak memory.
    let _permit = rewrite_permits()
        .acquire()
        .await
        .map_err(|e| HudiError::Data {
            table: ctx.table.to_string(),
            message: format!("rewrite permits closed: {e}"),
        })?;
    let started = std::time::Instant::now();
    let table = ctx.table;
    let arrow_err = |context: String| {
        move |source| HudiError::Arrow {
            table: table.to_string(),
            context,
            source,
        }
    };
    let file_name = BaseFileName::new(&id.1, task, ctx.stage, ctx.instant);
    let name = file_name.name();
    let rel_path = relative_file_path(id, task, ctx.stage, ctx.instant);
    let path = Path::parse(format!("{}/{}", ctx.base, rel_path)).map_err(|e| HudiError::Data {
        table: table.to_string(),
        message: format!("bad file path {rel_path}: {e}"),
    })?;

    let old_batches = match &work.existing {
        Some(f) => {
            let batches = read_parquet(ctx.store, table, &f.path, None).await?;
            batches
                .iter()
                .map(|b| align(b, &ctx.file_schema))
                .collect::<Result<Vec<_>, _>>()
                .map_err(arrow_err(format!(
                    "aligning {} to the table schema",
                    f.path
                )))?
        }
        None => Vec::new(),
    };

    let mut order: Vec<Source> = Vec::new();
    let mut new_rows: Vec<usize> = Vec::new();
    let (mut updates, mut deletes, mut stale) = (0u64, 0u64, 0u64);
    let mut removed_keys = Vec::new();
    let mut written_keys = Vec::new();
    let mut applied: HashMap<&str, bool> = HashMap::new();
    for (b, batch) in old_batches.iter().enumerate() {
        let keys = batch.column(2).as_string::<i32>();
        let positions = batch
            .column_by_name(POSITION_COLUMN)
            .and_then(|c| c.as_string_opt::<i32>());
        for r in 0..batch.num_rows() {
            let key = keys.value(r);
            let Some(change) = work.changes.get(key) else {
                order.push(Source::Old(b, r));
                continue;
            };
            let incoming = &ctx.rows[change.row];
            let old_pos = positions
                .filter(|p| p.is_valid(r))
                .map(|p| p.value(r))
                .unwrap_or("");
            applied.insert(key, true);
            if !change.moved_out && old_pos > incoming.position.as_str() {
                stale += 1;
                order.push(Source::Old(b, r));
                continue;
            }
            match (&incoming.change, change.moved_out) {
                (RowChange::Upsert(_), false) => {
                    updates += 1;
                    written_keys.push((key.to_string(), incoming.position.clone()));
                    new_rows.push(change.row);
                    order.push(Source::New(new_rows.len() - 1));
                }
                (RowChange::Delete, _) | (RowChange::Upsert(_), true) => {
                    // A key moving to another partition is a delete here (as Hudi's global index counts it).
                    deletes += 1;
                    removed_keys.push(key.to_string());
                }
            }
        }
    }
    // Changes whose key the file did not hold (an index that was behind): upserts become inserts.
    let mut inserts = 0u64;
    let mut missing: Vec<usize> = work
        .changes
        .iter()
        .filter(|(k, c)| {
            !c.moved_out
                && !applied.contains_key(k.as_str())
                && matches!(ctx.rows[c.row].change, RowChange::Upsert(_))
        })
        .map(|(_, c)| c.row)
        .collect();
    missing.sort_unstable();
    for row in missing.into_iter().chain(work.inserts.iter().copied()) {
        inserts += 1;
        written_keys.push((
            ctx.rows[row].record_key.clone(),
            ctx.rows[row].position.clone(),
        ));
        new_rows.push(row);
        order.push(Source::New(new_rows.len() - 1));
    }

    // The incoming rows of this file, with their meta columns.
    let total = order.len();
    let mut seqno = vec![String::new(); new_rows.len()];
    for (out_idx, src) in order.iter().enumerate() {
        if let Source::New(j) = src {
            seqno[*j] = format!("{}_{}_{}", ctx.instant, task, out_idx);
        }
    }
    let empty: Vec<Value> = Vec::new();
    let values: Vec<&[Value]> = new_rows
        .iter()
        .map(|&i| match &ctx.rows[i].change {
            RowChange::Upsert(v) => v.as_slice(),
            RowChange::Delete => empty.as_slice(),
        })
        .collect();
    let n = new_rows.len();
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec![ctx.instant.as_str(); n])),
        Arc::new(StringArray::from(seqno)),
        Arc::new(StringArray::from(
            new_rows
                .iter()
                .map(|&i| ctx.rows[i].record_key.as_str())
                .collect::<Vec<_>>(),
        )),
        Arc::new(StringArray::from(
            new_rows
                .iter()
                .map(|&i| ctx.rows[i].partition_path.as_str())
                .collect::<Vec<_>>(),
        )),
        Arc::new(StringArray::from(vec![name.as_str(); n])),
    ];
    columns.extend(
        ctx.schema
            .build_arrays(values.iter().copied())
            .map_err(|message| HudiError::Data {
                table: table.to_string(),
                message,
            })?,
    );
    let new_batch = RecordBatch::try_new(ctx.file_schema.clone(), columns)
        .map_err(arrow_err("building new rows".into()))?;

    let mut sources: Vec<&RecordBatch> = old_batches.iter().collect();
    sources.push(&new_batch);
    let new_idx = old_batches.len();
    let indices: Vec<(usize, usize)> = order
        .iter()
        .map(|s| match s {
            Source::Old(b, r) => (*b, *r),
            Source::New(j) => (new_idx, *j),
        })
        .collect();
    let merged =
        interleave_record_batch(&sources, &indices).map_err(arrow_err("merging rows".into()))?;
    let mut cols = merged.columns().to_vec();
    cols[4] = Arc::new(StringArray::from(vec![name.as_str(); total]));
    let merged = RecordBatch::try_new(ctx.file_schema.clone(), cols)
        .map_err(arrow_err("setting file names".into()))?;

    // Footer and encoding are CPU work: off the async threads, so the file groups and tables of a commit
    // round encode on every core while others wait on storage.
    let avro = avro_schema(table, ctx.schema, true);
    let (owned_table, owned_path) = (table.to_string(), path.clone());
    let (file_schema, compression) = (ctx.file_schema.clone(), ctx.compression);
    let bytes = tokio::task::spawn_blocking(move || {
        encode_base_file(
            &owned_table,
            &owned_path,
            file_schema,
            &merged,
            compression,
            avro,
        )
    })
    .await
    .map_err(|e| HudiError::Data {
        table: table.to_string(),
        message: format!("encoding {path} stopped: {e}"),
    })??;
    let size = bytes.len() as u64;
    put_object(ctx.store, table, &path, bytes).await?;

    let elapsed = started.elapsed().as_millis() as u64;
    let stat = WriteStat {
        file_id: id.1.clone(),
        path: Some(rel_path),
        prev_commit: work
            .existing
            .as_ref()
            .map(|f| f.name.instant.to_string())
            .unwrap_or_else(|| "null".to_string()),
        num_writes: total as u64,
        num_deletes: deletes,
        num_update_writes: updates,
        num_inserts: inserts,
        total_write_bytes: size,
        partition_path: Some(id.0.clone()),
        file_size_in_bytes: size,
        runtime_stats: Some(RuntimeStats {
            total_scan_time: 0,
            total_upsert_time: if work.existing.is_some() { elapsed } else { 0 },
            total_create_time: if work.existing.is_some() { 0 } else { elapsed },
        }),
        ..WriteStat::default()
    };
    Ok(GroupResult {
        stat,
        file: BaseFile {
            name: file_name,
            path,
            size,
        },
        rows: total as u64,
        written_keys,
        removed_keys,
        stale,
    })
}

/// The process-wide bound on concurrent file-group rewrites: one per core.
fn rewrite_permits() -> &'static tokio::sync::Semaphore {
    static PERMITS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    PERMITS.get_or_init(|| {
        tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(1, |n| n.get()))
    })
}

/// Encodes a base file with the footer Spark's Hudi writer puts there, in its order: min/max record keys,
/// the bloom filter of every key, and the Avro schema.
fn encode_base_file(
    table: &str,
    path: &Path,
    file_schema: SchemaRef,
    merged: &RecordBatch,
    compression: parquet::basic::Compression,
    avro: String,
) -> Result<Vec<u8>, HudiError> {
    let keys = merged.column(2).as_string::<i32>();
    let min_key = keys.iter().flatten().min().unwrap_or("").to_string();
    let max_key = keys.iter().flatten().max().unwrap_or("").to_string();
    let mut bloom = DynamicBloomFilter::with_defaults();
    for key in keys.iter().flatten() {
        bloom.add(key);
    }
    let footer = vec![
        ("hoodie_min_record_key".to_string(), min_key),
        (BLOOM_FILTER_KEY.to_string(), bloom.serialize()),
        ("hoodie_max_record_key".to_string(), max_key),
        (BLOOM_TYPE_CODE_KEY.to_string(), DYNAMIC_V0.to_string()),
        ("writer.model.name".to_string(), "avro".to_string()),
        ("parquet.avro.schema".to_string(), avro),
    ];
    encode_parquet(table, path, file_schema, merged, compression, footer)
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

/// Casts/fills an old file's batch to the current file schema (columns added later read as null).
fn align(batch: &RecordBatch, target: &SchemaRef) -> Result<RecordBatch, arrow::error::ArrowError> {
    let columns = target
        .fields()
        .iter()
        .map(|f| match batch.column_by_name(f.name()) {
            Some(c) if c.data_type() == f.data_type() => Ok(c.clone()),
            Some(c) => cast(c, f.data_type()),
            None => Ok(new_null_array(f.data_type(), batch.num_rows())),
        })
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new(target.clone(), columns)
}
