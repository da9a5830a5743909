//! The record index, as Hudi's global BLOOM index does it: every base file's footer holds its min and max
//! record key and a bloom filter of its keys; an incoming key's candidate files are those whose range and
//! filter admit it, and only candidates that need it (a key admitted by two files, or a key that changes
//! partition) have their key column read to find where the key really is. Nothing per stored key is held
//! in memory and start-up reads only footers.

use super::bloom::{DynamicBloomFilter, BLOOM_FILTER_KEY};
use super::error::HudiError;
use super::parquet_io::StoreReader;
use super::view::{BaseFile, GroupId};
use crate::schema::POSITION_COLUMN;
use crate::sink::StagedRow;
use arrow::array::{Array, AsArray};
use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStore;
use parquet::arrow::async_reader::ParquetRecordBatchStreamBuilder;
use parquet::arrow::ProjectionMask;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Footer key of a base file's smallest record key.
pub const MIN_KEY: &str = "hoodie_min_record_key";
/// Footer key of a base file's largest record key.
pub const MAX_KEY: &str = "hoodie_max_record_key";
/// Bytes read from the end of a file to get its footer in one request (a Hudi footer carries the bloom
/// filter, 300-900 KB).
const FOOTER_HINT: usize = 1 << 20;
/// Candidate files whose keys are read at the same time.
const LOOKUPS_IN_FLIGHT: usize = 4;

/// What a base file's footer says about its keys.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FileKeys {
    /// The key range; `None` when the writer did not record it (the file is a candidate for any key).
    pub range: Option<(String, String)>,
    /// The file's bloom filter; `None` when absent or unreadable (a candidate for any key in range).
    pub bloom: Option<DynamicBloomFilter>,
}

impl FileKeys {
    /// False when the file certainly does not hold `key`.
    pub fn may_contain(&self, key: &str) -> bool {
        if let Some((min, max)) = &self.range {
            if key < min.as_str() || key > max.as_str() {
                return false;
            }
        }
        self.bloom.as_ref().is_none_or(|b| b.might_contain(key))
    }
}

/// Opens a base file for ranged reads: its footer is read (one request when it fits the hint).
async fn open_file(
    store: &Arc<dyn ObjectStore>,
    table: &str,
    file: &BaseFile,
) -> Result<ParquetRecordBatchStreamBuilder<StoreReader>, HudiError> {
    let reader = StoreReader::new(store, &file.path, file.size, FOOTER_HINT);
    ParquetRecordBatchStreamBuilder::new(reader)
        .await
        .map_err(|source| HudiError::Parquet {
            table: table.to_string(),
            path: file.path.to_string(),
            source,
        })
}

/// Reads a base file's footer: its row count and what it says about its keys.
pub async fn read_footer(
    store: &Arc<dyn ObjectStore>,
    table: &str,
    file: &BaseFile,
) -> Result<(u64, FileKeys), HudiError> {
    let builder = open_file(store, table, file).await?;
    let meta = builder.metadata().file_metadata();
    Ok((
        meta.num_rows().max(0) as u64,
        footer_keys(meta, table, &file.path),
    ))
}

/// What a base file's footer says about its keys (`path` names the file in a warning when its bloom
/// filter cannot be read: it is then a candidate for every key in its range).
pub fn footer_keys(
    meta: &parquet::file::metadata::FileMetaData,
    table: &str,
    path: &object_store::path::Path,
) -> FileKeys {
    let footer: HashMap<&str, &str> = meta
        .key_value_metadata()
        .map(|kvs| {
            kvs.iter()
                .filter_map(|kv| kv.value.as_deref().map(|v| (kv.key.as_str(), v)))
                .collect()
        })
        .unwrap_or_default();
    let range = match (footer.get(MIN_KEY), footer.get(MAX_KEY)) {
        (Some(min), Some(max)) => Some((min.to_string(), max.to_string())),
        _ => None,
    };
    let bloom = footer
        .get(BLOOM_FILTER_KEY)
        .and_then(|text| match DynamicBloomFilter::deserialize(text) {
            Ok(b) => Some(b),
            Err(e) => {
                tracing::warn!(table, file = %path, error = %e, "unreadable bloom filter: the file is a candidate for every key in its range");
                None
            }
        });
    FileKeys { range, bloom }
}

/// The incoming rows by record key.
type Wanted = HashMap<String, usize, foldhash::fast::RandomState>;

/// Where an incoming row's key is stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Located {
    pub group: GroupId,
    /// The stored row's position (`_lakefold_position`), when the file's keys were read.
    pub position: Option<Box<str>>,
}

/// A file group as the index sees it.
pub struct IndexedGroup<'a> {
    pub id: &'a GroupId,
    pub file: &'a BaseFile,
    pub keys: &'a FileKeys,
}

/// Finds, for every incoming row, the file group that stores its key (`None`: a new key).
pub async fn locate(
    store: &Arc<dyn ObjectStore>,
    table: &str,
    groups: &[IndexedGroup<'_>],
    rows: &[StagedRow],
) -> Result<Vec<Option<Located>>, HudiError> {
    let candidates: Vec<Vec<usize>> = rows
        .iter()
        .map(|row| {
            (0..groups.len())
                .filter(|&g| groups[g].keys.may_contain(&row.record_key))
                .collect()
        })
        .collect();
    // Read a candidate's keys when a key has several candidates, or would leave the candidate's partition
    // (the stored position decides whether the move happens).
    let mut lookups: BTreeMap<usize, bool> = BTreeMap::new();
    for (row, cands) in rows.iter().zip(&candidates) {
        for &g in cands {
            let moved = groups[g].id.0 != row.partition_path;
            if cands.len() > 1 || moved {
                *lookups.entry(g).or_default() |= moved;
            }
        }
    }
    // Only the keys some lookup can find (a first commit, or inserts only, reads no file: none).
    let wanted: Arc<Wanted> = Arc::new(
        rows.iter()
            .zip(&candidates)
            .enumerate()
            .filter(|(_, (_, cands))| cands.iter().any(|g| lookups.contains_key(g)))
            .map(|(i, (r, _))| (r.record_key.clone(), i))
            .collect(),
    );
    // Each lookup on a task of its own: candidates' key columns are decoded on every core.
    let reads: Vec<_> = lookups
        .iter()
        .map(|(&g, &with_positions)| {
            let (store, file, wanted) = (store.clone(), groups[g].file.clone(), wanted.clone());
            let name = table.to_string();
            async move {
                let task = tokio::spawn(async move {
                    read_matching_keys(&store, &name, &file, &wanted, with_positions).await
                });
                let hits = task.await.map_err(|e| HudiError::Data {
                    table: table.to_string(),
                    message: format!("a key lookup stopped: {e}"),
                })??;
                Ok::<_, HudiError>((g, hits))
            }
        })
        .collect();
    let found: Vec<_> = futures::stream::iter(reads)
        .buffer_unordered(LOOKUPS_IN_FLIGHT)
        .try_collect()
        .await?;
    let mut hits: Vec<Vec<(usize, Option<Box<str>>)>> = vec![Vec::new(); rows.len()];
    for (g, matches) in found {
        for (row, position) in matches {
            hits[row].push((g, position));
        }
    }
    Ok(candidates
        .into_iter()
        .zip(hits)
        .enumerate()
        .map(|(i, (cands, mut hit))| {
            if hit.len() > 1 {
                tracing::warn!(table, key = %rows[i].record_key, files = hit.len(), "a record key is stored in several file groups; updating the first");
            }
            let only_unread = cands.len() == 1 && !lookups.contains_key(&cands[0]);
            if only_unread {
                hit.push((cands[0], None));
            }
            hit.into_iter().next().map(|(g, position)| Located {
                group: groups[g].id.clone(),
                position,
            })
        })
        .collect())
}

/// The incoming rows whose key `file` holds, with the stored position when `with_positions`.
async fn read_matching_keys(
    store: &Arc<dyn ObjectStore>,
    table: &str,
    file: &BaseFile,
    wanted: &Wanted,
    with_positions: bool,
) -> Result<Vec<(usize, Option<Box<str>>)>, HudiError> {
    let pq = |source| HudiError::Parquet {
        table: table.to_string(),
        path: file.path.to_string(),
        source,
    };
    let builder = open_file(store, table, file).await?;
    let schema = builder.parquet_schema();
    let leaves: Vec<usize> = (0..schema.num_columns())
        .filter(|&i| {
            let column = schema.column(i);
            let name = column.name();
            name == "_hoodie_record_key" || (with_positions && name == POSITION_COLUMN)
        })
        .collect();
    let mask = ProjectionMask::leaves(schema, leaves);
    let mut stream = builder
        .with_projection(mask)
        .with_batch_size(8192)
        .build()
        .map_err(pq)?;
    let mut out = Vec::new();
    while let Some(batch) = stream.try_next().await.map_err(pq)? {
        let Some(keys) = batch
            .column_by_name("_hoodie_record_key")
            .and_then(|c| c.as_string_opt::<i32>())
        else {
            return Err(HudiError::Data {
                table: table.to_string(),
                message: format!("{} has no string _hoodie_record_key column", file.path),
            });
        };
        let positions = batch
            .column_by_name(POSITION_COLUMN)
            .and_then(|c| c.as_string_opt::<i32>());
        for r in 0..keys.len() {
            if !keys.is_valid(r) {
                continue;
            }
            if let Some(&row) = wanted.get(keys.value(r)) {
                let position = with_positions.then(|| {
                    positions
                        .filter(|p| p.is_valid(r))
                        .map_or("", |p| p.value(r))
                        .into()
                });
                out.push((row, position));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::ObjectStoreExt;

    fn keys_of(keys: &[&str]) -> FileKeys {
        let mut bloom = DynamicBloomFilter::with_defaults();
        for k in keys {
            bloom.add(k);
        }
        FileKeys {
            range: Some((
                keys.iter().min().unwrap().to_string(),
                keys.iter().max().unwrap().to_string(),
            )),
            bloom: Some(bloom),
        }
    }

    #[test]
    fn a_file_admits_its_own_keys_and_rejects_keys_outside_its_range_or_filter() {
        let f = keys_of(&["b", "c", "d"]);
        assert!(f.may_contain("b") && f.may_contain("c") && f.may_contain("d"));
        assert!(!f.may_contain("a"), "below the range");
        assert!(!f.may_contain("e"), "above the range");
        assert!(!f.may_contain("cc"), "in range, not in the filter");
    }

    #[test]
    fn a_file_without_footer_facts_is_a_candidate_for_every_key() {
        assert!(FileKeys::default().may_contain("anything"));
    }

    async fn put_keys(store: &Arc<dyn ObjectStore>, name: &str, keys: &[(&str, &str)]) -> BaseFile {
        use arrow::array::{RecordBatch, StringArray};
        use arrow::datatypes::{DataType, Field, Schema};
        let schema = Arc::new(Schema::new(vec![
            Field::new("_hoodie_record_key", DataType::Utf8, true),
            Field::new(POSITION_COLUMN, DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from_iter_values(keys.iter().map(|k| k.0))),
                Arc::new(StringArray::from_iter_values(keys.iter().map(|k| k.1))),
            ],
        )
        .unwrap();
        let mut w = parquet::arrow::ArrowWriter::try_new(Vec::new(), schema, None).unwrap();
        w.write(&batch).unwrap();
        let bytes = w.into_inner().unwrap();
        let file = format!("{name}_0-1-0_20260101000000000.parquet");
        let path = object_store::path::Path::from(format!("t/{file}"));
        let size = bytes.len() as u64;
        store.put(&path, bytes.into()).await.unwrap();
        BaseFile {
            name: super::super::file_name::BaseFileName::parse(&file).unwrap(),
            path,
            size,
        }
    }

    fn row(key: &str, partition: &str) -> StagedRow {
        StagedRow {
            record_key: key.into(),
            partition_path: partition.into(),
            position: "p9".into(),
            change: crate::sink::RowChange::Delete,
        }
    }

    #[tokio::test]
    async fn keys_admitted_by_several_files_are_found_by_reading_those_files() {
        let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
        let a = put_keys(&store, "aaaa", &[("k1", "p1"), ("k2", "p1")]).await;
        let b = put_keys(&store, "bbbb", &[("k3", "p2"), ("k4", "p3")]).await;
        let (ida, idb) = (
            (String::new(), "aaaa".into()),
            ("x=1".into(), "bbbb".into()),
        );
        let footer_a = keys_of(&["k1", "k2"]);
        let no_footer = FileKeys::default();
        let groups = [
            IndexedGroup {
                id: &ida,
                file: &a,
                keys: &footer_a,
            },
            IndexedGroup {
                id: &idb,
                file: &b,
                keys: &no_footer,
            },
        ];
        let rows = [
            row("k1", ""),
            row("k3", "x=1"),
            row("k9", ""),
            row("k4", ""),
        ];
        let located = locate(&store, "t", &groups, &rows).await.unwrap();
        // k1: admitted by a (filter) and b (no footer): b's keys are read, k1 is in a.
        assert_eq!(located[0].as_ref().map(|l| &l.group), Some(&ida));
        // k3 in its own partition's file; k4 arriving for another partition: found with its stored
        // position (the move is decided against it).
        assert_eq!(located[1].as_ref().map(|l| &l.group), Some(&idb));
        assert_eq!(
            located[3],
            Some(Located {
                group: idb.clone(),
                position: Some("p3".into())
            })
        );
        // k9: only b admits it, but b was read and does not hold it: a new key.
        assert_eq!(located[2], None);
    }

    #[tokio::test]
    async fn a_key_only_one_file_admits_is_located_there_without_reading_it() {
        let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
        let a = put_keys(&store, "aaaa", &[("k1", "p1")]).await;
        store.delete(&a.path).await.unwrap();
        let ida = (String::new(), "aaaa".to_string());
        let keys = keys_of(&["k1"]);
        let groups = [IndexedGroup {
            id: &ida,
            file: &a,
            keys: &keys,
        }];
        let located = locate(&store, "t", &groups, &[row("k1", ""), row("k2", "")])
            .await
            .unwrap();
        assert_eq!(
            located[0],
            Some(Located {
                group: ida,
                position: None
            })
        );
        assert_eq!(located[1], None);
    }
}
