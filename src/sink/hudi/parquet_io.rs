//! Reading and writing base files through `object_store`.

use super::error::HudiError;
use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::{ArrowWriter, ProjectionMask};
use parquet::basic::{Compression, GzipLevel, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use std::sync::Arc;

/// Reads a whole object.
pub async fn read_object(
    store: &Arc<dyn ObjectStore>,
    table: &str,
    path: &Path,
) -> Result<Bytes, HudiError> {
    let storage = |source| HudiError::Storage {
        table: table.to_string(),
        path: path.to_string(),
        source,
    };
    store
        .get(path)
        .await
        .map_err(storage)?
        .bytes()
        .await
        .map_err(storage)
}

/// Reads a parquet file, optionally only the named columns.
pub async fn read_parquet(
    store: &Arc<dyn ObjectStore>,
    table: &str,
    path: &Path,
    columns: Option<&[&str]>,
) -> Result<Vec<RecordBatch>, HudiError> {
    let bytes = read_object(store, table, path).await?;
    let pq = |source| HudiError::Parquet {
        table: table.to_string(),
        path: path.to_string(),
        source,
    };
    let mut builder = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .map_err(pq)?
        .with_batch_size(8192);
    if let Some(cols) = columns {
        let schema = builder.parquet_schema();
        let leaves: Vec<usize> = (0..schema.num_columns())
            .filter(|i| cols.contains(&schema.column(*i).name()))
            .collect();
        let mask = ProjectionMask::leaves(schema, leaves);
        builder = builder.with_projection(mask);
    }
    let reader = builder.build().map_err(pq)?;
    reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| HudiError::Arrow {
            table: table.to_string(),
            context: format!("reading {path}"),
            source,
        })
}

/// Parquet codec for a route's `compression`.
pub fn codec(c: crate::config::Compression) -> Compression {
    match c {
        crate::config::Compression::Snappy => Compression::SNAPPY,
        crate::config::Compression::Gzip => Compression::GZIP(GzipLevel::default()),
        crate::config::Compression::Zstd => Compression::ZSTD(ZstdLevel::default()),
        crate::config::Compression::None => Compression::UNCOMPRESSED,
    }
}

/// Encodes `batch` as a parquet file with Hudi's footer keys.
pub fn encode_parquet(
    table: &str,
    path: &Path,
    schema: SchemaRef,
    batch: &RecordBatch,
    compression: Compression,
    footer: Vec<(String, String)>,
) -> Result<Vec<u8>, HudiError> {
    let pq = |source| HudiError::Parquet {
        table: table.to_string(),
        path: path.to_string(),
        source,
    };
    let props = WriterProperties::builder()
        .set_compression(compression)
        .set_key_value_metadata(Some(
            footer
                .into_iter()
                .map(|(k, v)| KeyValue::new(k, v))
                .collect(),
        ))
        .build();
    let mut writer = ArrowWriter::try_new(Vec::new(), schema, Some(props)).map_err(pq)?;
    writer.write(batch).map_err(pq)?;
    writer.into_inner().map_err(pq)
}

/// Writes an object (whole-object PUT).
pub async fn put_object(
    store: &Arc<dyn ObjectStore>,
    table: &str,
    path: &Path,
    bytes: Vec<u8>,
) -> Result<(), HudiError> {
    store
        .put(path, PutPayload::from(bytes))
        .await
        .map(|_| ())
        .map_err(|source| HudiError::Storage {
            table: table.to_string(),
            path: path.to_string(),
            source,
        })
}
