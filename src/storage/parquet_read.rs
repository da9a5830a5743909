//! Decoding a Parquet file held in memory into arrow batches (both sinks read whole files this way).

use arrow::array::RecordBatch;
use bytes::Bytes;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;
use parquet::errors::ParquetError;

/// Rows per decoded batch.
pub const BATCH_ROWS: usize = 8192;

/// Decodes `bytes`, only the columns named in `columns` when given. A decoding error of the rows comes
/// back as [`ParquetError::ArrowError`].
pub fn decode(bytes: Bytes, columns: Option<&[&str]>) -> Result<Vec<RecordBatch>, ParquetError> {
    let mut builder = ParquetRecordBatchReaderBuilder::try_new(bytes)?.with_batch_size(BATCH_ROWS);
    if let Some(cols) = columns {
        let schema = builder.parquet_schema();
        let leaves: Vec<usize> = (0..schema.num_columns())
            .filter(|i| cols.contains(&schema.column(*i).name()))
            .collect();
        let mask = ProjectionMask::leaves(schema, leaves);
        builder = builder.with_projection(mask);
    }
    builder
        .build()?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ParquetError::ArrowError(e.to_string()))
}
