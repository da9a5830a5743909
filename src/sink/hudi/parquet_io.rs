//! Reading and writing base files through `object_store`.

use super::error::HudiError;
use crate::schema::POSITION_COLUMN;
use arrow::array::RecordBatch;
use bytes::Bytes;
use futures::future::BoxFuture;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use parquet::arrow::arrow_reader::ArrowReaderOptions;
use parquet::arrow::arrow_writer::ArrowWriterOptions;
use parquet::arrow::async_reader::AsyncFileReader;
use parquet::arrow::ArrowSchemaConverter;
use parquet::basic::{Compression, Encoding, GzipLevel, ZstdLevel};
use parquet::basic::{LogicalType as ParquetLogicalType, Type as PhysicalType};
use parquet::errors::ParquetError;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use parquet::schema::types::{SchemaDescriptor, Type};
use std::ops::Range;
use std::sync::Arc;

/// Reads a whole object.
pub async fn read_object(
    store: &Arc<dyn ObjectStore>,
    table: &str,
    path: &Path,
) -> Result<Bytes, HudiError> {
    crate::storage::read_whole(store, path)
        .await
        .map_err(|source| HudiError::Storage {
            table: table.to_string(),
            path: path.to_string(),
            source,
        })
}

/// Reads a parquet file, optionally only the named columns.
pub async fn read_parquet(
    store: &Arc<dyn ObjectStore>,
    table: &str,
    path: &Path,
    columns: Option<&[&str]>,
) -> Result<Vec<RecordBatch>, HudiError> {
    let bytes = read_object(store, table, path).await?;
    crate::storage::parquet_read::decode(bytes, columns).map_err(|source| HudiError::Parquet {
        table: table.to_string(),
        path: path.to_string(),
        source,
    })
}

/// A parquet file in an object store, read by ranges (footer first, then only the column chunks a
/// projection needs).
pub struct StoreReader {
    store: Arc<dyn ObjectStore>,
    path: Path,
    size: u64,
    footer_hint: usize,
}

impl StoreReader {
    /// `footer_hint`: bytes read from the end at once (a footer that fits costs one request).
    pub fn new(store: &Arc<dyn ObjectStore>, path: &Path, size: u64, footer_hint: usize) -> Self {
        StoreReader {
            store: store.clone(),
            path: path.clone(),
            size,
            footer_hint: footer_hint.min(size as usize),
        }
    }
}

impl AsyncFileReader for StoreReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        Box::pin(async move {
            self.store
                .get_range(&self.path, range)
                .await
                .map_err(|e| ParquetError::External(Box::new(e)))
        })
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<Range<u64>>,
    ) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        Box::pin(async move {
            self.store
                .get_ranges(&self.path, &ranges)
                .await
                .map_err(|e| ParquetError::External(Box::new(e)))
        })
    }

    fn get_metadata<'a>(
        &'a mut self,
        _options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        Box::pin(async move {
            let size = self.size;
            let reader = ParquetMetaDataReader::new().with_prefetch_hint(Some(self.footer_hint));
            Ok(Arc::new(reader.load_and_finish(self, size).await?))
        })
    }
}

/// The gzip level: 4, not zlib's default 6. Measured on the 1M-row upsert (`benches/README.md`): files
/// 0.6 % larger, the commit 13 % faster (level 6 spends a third of the rewrite in deflate's match search);
/// level 2 would be 25 % faster for 6.8 % larger files.
fn gzip_level() -> GzipLevel {
    GzipLevel::try_new(4).unwrap_or_default()
}

/// Gzip level of the delta-encoded columns (sequence numbers, positions): what is left of their text
/// after the shared prefixes compresses nearly as well at level 2, and an in-place upsert spends most of
/// its codec time on them. Measured on the 1M-row upsert (alternating, 4 runs): level 4 → 2 cut the CPU
/// 0.58 → 0.50 s, the wall time 0.40 → 0.36 s, for 0.6 % more bytes in the table (64.28 → 64.68 MB).
fn prefixed_gzip() -> Compression {
    Compression::GZIP(GzipLevel::try_new(2).unwrap_or_default())
}

/// Parquet codec for a route's `compression`.
pub fn codec(c: crate::config::Compression) -> Compression {
    match c {
        crate::config::Compression::Snappy => Compression::SNAPPY,
        crate::config::Compression::Gzip => Compression::GZIP(gzip_level()),
        crate::config::Compression::Zstd => Compression::ZSTD(ZstdLevel::default()),
        crate::config::Compression::None => Compression::UNCOMPRESSED,
    }
}

/// The parquet schema Spark Hudi writes for `schema`: root `hoodie.<table>.<table>_record`, decimals as
/// FIXED_LEN_BYTE_ARRAY of Spark's minimal length (arrow-rs would pick INT32/INT64 for small precisions,
/// which older Hive-based readers do not take).
fn spark_parquet_schema(
    table: &str,
    schema: &arrow::datatypes::Schema,
) -> parquet::errors::Result<SchemaDescriptor> {
    let converted = ArrowSchemaConverter::new().convert(schema)?;
    let mut fields = Vec::with_capacity(converted.root_schema().get_fields().len());
    for field in converted.root_schema().get_fields() {
        let info = field.get_basic_info();
        let decimal = match info.logical_type_ref() {
            Some(ParquetLogicalType::Decimal(d)) if field.is_primitive() => {
                Some((d.scale, d.precision))
            }
            _ => None,
        };
        match decimal {
            Some((scale, precision))
                if field.get_physical_type() != PhysicalType::FIXED_LEN_BYTE_ARRAY =>
            {
                let length = super::avro_schema::decimal_fixed_size(precision as u8) as i32;
                let t =
                    Type::primitive_type_builder(field.name(), PhysicalType::FIXED_LEN_BYTE_ARRAY)
                        .with_repetition(info.repetition())
                        .with_length(length)
                        .with_logical_type(Some(ParquetLogicalType::decimal(scale, precision)))
                        .with_precision(precision)
                        .with_scale(scale)
                        .build()?;
                fields.push(Arc::new(t));
            }
            _ => fields.push(field.clone()),
        }
    }
    let root = Type::group_type_builder(&format!("hoodie.{table}.{table}_record"))
        .with_fields(fields)
        .build()?;
    Ok(SchemaDescriptor::new(Arc::new(root)))
}

/// Meta columns that hold a different value in every row.
const UNIQUE_COLUMNS: &[&str] = &[
    "_hoodie_commit_seqno",
    "_hoodie_record_key",
    POSITION_COLUMN,
];
/// Unique texts that share long prefixes from row to row (an instant, a source position): stored as
/// DELTA_BYTE_ARRAY (each value as the length of the prefix it shares with the previous one and the rest),
/// so the codec gets a fraction of the bytes.
const PREFIXED_COLUMNS: &[&str] = &["_hoodie_commit_seqno", POSITION_COLUMN];
/// Meta columns whose min/max statistics no reader uses: sequence numbers, file names and positions are
/// not filtered on, a file's partition path is the same in every row, and its record key range is in the
/// footer (`hoodie_min_record_key`/`hoodie_max_record_key`, what Hudi's bloom index reads). Statistics of
/// these strings cost two comparisons per row (perf: 15 % of an upsert's CPU).
const UNFILTERED_COLUMNS: &[&str] = &[
    "_hoodie_commit_seqno",
    "_hoodie_record_key",
    "_hoodie_partition_path",
    "_hoodie_file_name",
    POSITION_COLUMN,
];

/// Writer options for a base file: the codec and Spark Hudi's parquet schema (the footer's key-value
/// metadata is appended when the file is finished).
pub fn writer_options(
    table: &str,
    path: &Path,
    schema: &arrow::datatypes::Schema,
    compression: Compression,
) -> Result<ArrowWriterOptions, HudiError> {
    let mut props = WriterProperties::builder().set_compression(compression);
    // Columns unique per row gain nothing from a dictionary (the writer would build one, overflow it and
    // fall back to plain), and no query filters on sequence numbers, file names or positions: those skip
    // the work. Data columns, commit time and the record key keep dictionaries and statistics.
    for name in UNIQUE_COLUMNS {
        if schema.field_with_name(name).is_ok() {
            props = props.set_column_dictionary_enabled(ColumnPath::from(*name), false);
        }
    }
    for name in PREFIXED_COLUMNS {
        if schema.field_with_name(name).is_ok() {
            props = props.set_column_encoding(ColumnPath::from(*name), Encoding::DELTA_BYTE_ARRAY);
            if let Compression::GZIP(_) = compression {
                props = props.set_column_compression(ColumnPath::from(*name), prefixed_gzip());
            }
        }
    }
    for name in UNFILTERED_COLUMNS {
        if schema.field_with_name(name).is_ok() {
            props = props
                .set_column_statistics_enabled(ColumnPath::from(*name), EnabledStatistics::None);
        }
    }
    let props = props.build();
    let parquet_schema =
        spark_parquet_schema(table, schema).map_err(|source| HudiError::Parquet {
            table: table.to_string(),
            path: path.to_string(),
            source,
        })?;
    Ok(ArrowWriterOptions::new()
        .with_properties(props)
        .with_parquet_schema(parquet_schema))
}

/// Above this size a file is uploaded in parts (S3 multipart upload; a single PUT tops out at 5 GiB and
/// retries whole).
const MULTIPART_THRESHOLD: usize = 32 << 20;
const PART_SIZE: usize = 16 << 20;

/// Writes an object: one PUT, or a multipart upload for large files.
pub async fn put_object(
    store: &Arc<dyn ObjectStore>,
    table: &str,
    path: &Path,
    bytes: Vec<u8>,
) -> Result<(), HudiError> {
    let storage = |source| HudiError::Storage {
        table: table.to_string(),
        path: path.to_string(),
        source,
    };
    if bytes.len() <= MULTIPART_THRESHOLD {
        return store
            .put(path, PutPayload::from(bytes))
            .await
            .map(|_| ())
            .map_err(storage);
    }
    let upload = store.put_multipart(path).await.map_err(storage)?;
    let mut writer = object_store::WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
    writer.put(Bytes::from(bytes));
    writer.finish().await.map(|_| ()).map_err(storage)
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::local::LocalFileSystem;

    #[tokio::test]
    async fn large_files_go_up_in_parts_and_come_back_whole() {
        let dir = std::env::temp_dir().join(format!("lakefold-mpu-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(LocalFileSystem::new_with_prefix(&dir).unwrap());
        let size = MULTIPART_THRESHOLD + PART_SIZE + 12_345;
        let bytes: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        let path = Path::from("t/big.parquet");
        put_object(&store, "t", &path, bytes.clone()).await.unwrap();
        let back = read_object(&store, "t", &path).await.unwrap();
        assert_eq!(back.len(), size);
        assert!(back.as_ref() == bytes.as_slice());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
