//! A parquet writer that encodes and compresses the columns of a file on several threads (arrow-rs's
//! `ArrowColumnWriter`s, one set per row group, split between workers by size), so one large file group
//! uses every core. Rows arrive in batches from the merge; the file is the same as `ArrowWriter` writes.
//! A row group can also take some of its column chunks as they are from an old file (spliced: the bytes
//! copied, the offsets rebased), when a rewrite leaves those columns unchanged.

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::SchemaRef;
use bytes::Bytes;
use parquet::arrow::arrow_writer::{
    compute_leaves, ArrowColumnChunk, ArrowColumnWriter, ArrowRowGroupWriterFactory,
    ArrowWriterOptions,
};
use parquet::arrow::ArrowWriter;
use parquet::column::writer::ColumnCloseResult;
use parquet::errors::{ParquetError, Result};
use parquet::file::metadata::KeyValue;
use parquet::file::writer::SerializedFileWriter;
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Rows per row group (`ArrowWriter`'s default).
const ROW_GROUP_ROWS: usize = 1024 * 1024;
/// Batches queued per worker.
const QUEUE: usize = 2;

type Chunks = Vec<(usize, ArrowColumnChunk)>;
/// The columns of some rows, by column index (a spliced column's entry is not read).
type Columns = Arc<Vec<ArrayRef>>;

/// One worker: its queue and the columns it encodes.
struct Worker {
    queue: SyncSender<Columns>,
    done: JoinHandle<Result<Chunks>>,
}

/// A column chunk of an old file, taken as it is: the file's bytes and the chunk's metadata and page
/// indexes.
pub struct CopiedChunk {
    pub source: Bytes,
    pub close: ColumnCloseResult,
}

/// Writes a parquet file with its columns encoded in parallel.
pub struct ParallelWriter {
    file: SerializedFileWriter<Vec<u8>>,
    factory: ArrowRowGroupWriterFactory,
    schema: SchemaRef,
    threads: usize,
    workers: Vec<Worker>,
    rows_in_group: usize,
    row_groups: usize,
    /// The current row group's spliced chunks (by column), when it takes some.
    spliced: Option<Vec<Option<CopiedChunk>>>,
}

impl ParallelWriter {
    /// A writer of `schema` with `options`, encoding on `threads` threads.
    pub fn new(schema: SchemaRef, options: ArrowWriterOptions, threads: usize) -> Result<Self> {
        let (file, factory) =
            ArrowWriter::try_new_with_options(Vec::new(), schema.clone(), options)?
                .into_serialized_writer()?;
        Ok(ParallelWriter {
            file,
            factory,
            schema,
            threads: threads.max(1),
            workers: Vec::new(),
            rows_in_group: 0,
            row_groups: 0,
            spliced: None,
        })
    }

    /// The parquet schema the file is written with.
    pub fn schema_descr(&self) -> &parquet::schema::types::SchemaDescriptor {
        self.file.schema_descr()
    }

    /// The writer properties (codec per column).
    pub fn properties(&self) -> &parquet::file::properties::WriterPropertiesPtr {
        self.file.properties()
    }

    /// Starts a row group whose columns with `Some` in `copied` are spliced from an old file; the others
    /// are encoded from [`Self::write_columns`] until [`Self::finish_spliced_row_group`]. `weights` (bytes
    /// per column) share the encoded columns out between the threads.
    pub fn start_spliced_row_group(
        &mut self,
        copied: Vec<Option<CopiedChunk>>,
        weights: &[usize],
    ) -> Result<()> {
        if !self.workers.is_empty() || self.spliced.is_some() {
            self.finish_row_group()?;
        }
        let weights = copied
            .iter()
            .zip(weights)
            .map(|(c, w)| c.is_none().then_some(*w))
            .collect();
        self.start_row_group(weights)?;
        self.spliced = Some(copied);
        Ok(())
    }

    /// Writes rows of the encoded columns of a spliced row group (`columns` by column index).
    pub fn write_columns(&mut self, columns: Vec<ArrayRef>, rows: usize) -> Result<()> {
        self.send(Arc::new(columns))?;
        self.rows_in_group += rows;
        Ok(())
    }

    /// Closes a spliced row group.
    pub fn finish_spliced_row_group(&mut self) -> Result<()> {
        self.finish_row_group()
    }

    fn send(&mut self, columns: Columns) -> Result<()> {
        for w in 0..self.workers.len() {
            if self.workers[w].queue.send(columns.clone()).is_err() {
                // The worker stopped on an error: its result says which.
                return self
                    .finish_row_group()
                    .and(Err(ParquetError::General("a column writer stopped".into())));
            }
        }
        Ok(())
    }

    /// Writes `batch` (starting a new row group when the current one is full).
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let mut offset = 0;
        while offset < batch.num_rows() {
            if self.spliced.is_some() {
                self.finish_row_group()?;
            }
            if self.workers.is_empty() {
                let weights = batch
                    .columns()
                    .iter()
                    .map(|c| Some(c.get_buffer_memory_size()))
                    .collect();
                self.start_row_group(weights)?;
            }
            let take = (ROW_GROUP_ROWS - self.rows_in_group).min(batch.num_rows() - offset);
            self.send(Arc::new(batch.slice(offset, take).columns().to_vec()))?;
            self.rows_in_group += take;
            offset += take;
            if self.rows_in_group >= ROW_GROUP_ROWS {
                self.finish_row_group()?;
            }
        }
        Ok(())
    }

    /// Starts a row group: the writers of the columns with a weight, split between workers so each gets
    /// a similar share of the bytes (weights: the first batch's column sizes, or the old chunks' sizes).
    fn start_row_group(&mut self, weights: Vec<Option<usize>>) -> Result<()> {
        let writers = self.factory.create_column_writers(self.row_groups)?;
        if writers.len() != self.schema.fields().len() {
            return Err(ParquetError::General(format!(
                "{} column writers for {} fields: nested columns are not supported",
                writers.len(),
                self.schema.fields().len()
            )));
        }
        let mut shares: Vec<(usize, Vec<(usize, ArrowColumnWriter)>)> =
            (0..self.threads).map(|_| (0, Vec::new())).collect();
        let mut by_size: Vec<(usize, ArrowColumnWriter)> = writers
            .into_iter()
            .enumerate()
            .filter(|(i, _)| weights.get(*i).is_some_and(|w| w.is_some()))
            .collect();
        let size = |i: usize| weights.get(i).copied().flatten().unwrap_or(0);
        by_size.sort_by_key(|(i, _)| std::cmp::Reverse(size(*i)));
        for (i, w) in by_size {
            if let Some(lightest) = shares.iter_mut().min_by_key(|s| s.0) {
                lightest.0 += size(i) + 1;
                lightest.1.push((i, w));
            }
        }
        for (_, share) in shares.into_iter().filter(|s| !s.1.is_empty()) {
            self.workers.push(spawn_worker(self.schema.clone(), share));
        }
        Ok(())
    }

    /// Closes the current row group: every worker's column chunks, in column order.
    fn finish_row_group(&mut self) -> Result<()> {
        let mut chunks: Chunks = Vec::new();
        let mut failure = None;
        for w in std::mem::take(&mut self.workers) {
            drop(w.queue);
            match w.done.join() {
                Ok(Ok(c)) => chunks.extend(c),
                Ok(Err(e)) => failure = failure.or(Some(e)),
                Err(_) => {
                    failure = failure.or(Some(ParquetError::General(
                        "a column writer thread panicked".into(),
                    )))
                }
            }
        }
        if let Some(e) = failure {
            return Err(e);
        }
        chunks.sort_by_key(|(i, _)| *i);
        let mut encoded = chunks.into_iter().peekable();
        let mut copied = self.spliced.take().unwrap_or_default();
        let mut row_group = self.file.next_row_group()?;
        for i in 0..self.schema.fields().len() {
            if let Some(chunk) = copied.get_mut(i).and_then(Option::take) {
                row_group.append_column(&chunk.source, chunk.close)?;
            } else if let Some((_, chunk)) = encoded.next_if(|(j, _)| *j == i) {
                chunk.append_to_row_group(&mut row_group)?;
            } else {
                return Err(ParquetError::General(format!("column {i} has no chunk")));
            }
        }
        row_group.close()?;
        self.rows_in_group = 0;
        self.row_groups += 1;
        Ok(())
    }

    /// Adds a footer key-value pair (in call order, after arrow's schema entry).
    pub fn append_key_value_metadata(&mut self, kv: KeyValue) {
        self.file.append_key_value_metadata(kv);
    }

    /// Flushes the last row group and returns the file's bytes.
    pub fn into_inner(mut self) -> Result<Vec<u8>> {
        if !self.workers.is_empty() || self.spliced.is_some() {
            self.finish_row_group()?;
        }
        self.file.into_inner()
    }
}

/// A thread that encodes `columns` of every batch it receives until its queue closes.
fn spawn_worker(schema: SchemaRef, mut columns: Vec<(usize, ArrowColumnWriter)>) -> Worker {
    let (queue, batches) = sync_channel::<Columns>(QUEUE);
    let done = std::thread::spawn(move || -> Result<Chunks> {
        for batch in batches {
            for (i, writer) in columns.iter_mut() {
                let field = schema.field(*i);
                let Some(column) = batch.get(*i) else {
                    return Err(ParquetError::General(format!("no array for column {i}")));
                };
                for leaf in compute_leaves(field, column)? {
                    writer.write(&leaf)?;
                }
            }
        }
        columns
            .into_iter()
            .map(|(i, w)| w.close().map(|c| (i, c)))
            .collect()
    });
    Worker { queue, done }
}
