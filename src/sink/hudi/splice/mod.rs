//! Rewriting a base file's row groups in place. When no stored row leaves the file (a commit of updates
//! and inserts only), every old row group keeps its rows in their order, so a column whose values the
//! updates leave as they were is spliced from the old file as it is (its bytes copied, no decoding,
//! encoding or compression) and only the columns an update changes are encoded again; inserts follow in a
//! row group of their own. The file holds the same rows and values as the streamed merge writes.
//!
//! Per row group: the keys and positions are read to place each incoming row (as the streamed merge
//! does); the replaced rows are read in full (a row selection) and compared column by column with their
//! new images; then the changed columns are read, merged and encoded while the others are spliced. Commit
//! time and sequence number change with every replaced row; the file name column names the new file.

use super::column_writer::{CopiedChunk, ParallelWriter};
use super::error::HudiError;
use super::merge::{KeyMap, KeyStats, Merge, Merged, BATCH_ROWS};
use crate::schema::POSITION_COLUMN;
use arrow::array::{make_comparator, new_null_array, Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::{concat_batches, interleave, SortOptions};
use arrow::datatypes::DataType;
use bytes::Bytes;
use lakefold_api::compare_order_keys;
use object_store::path::Path;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder, RowSelection,
    RowSelector,
};
use parquet::arrow::ProjectionMask;
use parquet::column::writer::ColumnCloseResult;
use parquet::file::page_index::column_index::ColumnIndexMetaData;
use std::cmp::Ordering;

/// Columns every in-place rewrite encodes: commit time and sequence number (changed in replaced rows),
/// file name (changed in every row).
const COMMIT_TIME: usize = 0;
const SEQNO: usize = 1;
const FILE_NAME: usize = 4;
const RECORD_KEY: usize = 2;
const PARTITION_PATH: usize = 3;
/// A last row group smaller than this is merged with the inserts instead of spliced.
const MIN_SPLICED_ROWS: i64 = 128 * 1024;

/// The old base file of a rewrite: its path (for errors), bytes and parsed footer with page indexes.
pub struct OldFile<'a> {
    pub path: &'a Path,
    pub bytes: &'a Bytes,
    pub meta: ArrowReaderMetadata,
}

impl OldFile<'_> {
    fn reader(
        &self,
        merge: &Merge,
        group: usize,
        leaves: Option<Vec<usize>>,
        selection: Option<RowSelection>,
    ) -> Result<ParquetRecordBatchReader, HudiError> {
        let mut builder = ParquetRecordBatchReaderBuilder::new_with_metadata(
            self.bytes.clone(),
            self.meta.clone(),
        )
        .with_batch_size(BATCH_ROWS)
        .with_row_groups(vec![group]);
        if let Some(leaves) = leaves {
            let descr = self.meta.metadata().file_metadata().schema_descr();
            builder = builder.with_projection(ProjectionMask::leaves(descr, leaves));
        }
        if let Some(selection) = selection {
            builder = builder.with_row_selection(selection);
        }
        builder.build().map_err(merge.parquet(self.path))
    }

    /// Column `c` of row group `g` as it is in the file.
    fn chunk(&self, g: usize, c: usize) -> CopiedChunk {
        let meta = self.meta.metadata();
        let rg = meta.row_group(g);
        let metadata = rg.column(c).clone();
        let column_index = meta
            .column_index()
            .and_then(|ci| ci.get(g)?.get(c).cloned())
            .filter(|i| !matches!(i, ColumnIndexMetaData::NONE));
        let offset_index = meta
            .offset_index()
            .and_then(|oi| oi.get(g)?.get(c).cloned());
        CopiedChunk {
            source: self.bytes.clone(),
            close: ColumnCloseResult {
                bytes_written: metadata.compressed_size().max(0) as u64,
                rows_written: rg.num_rows().max(0) as u64,
                metadata,
                bloom_filter: None,
                column_index,
                offset_index,
            },
        }
    }
}

impl Merge {
    /// True when the old file's row groups can be rewritten in place: no stored row leaves the file, and
    /// the file has the new file's parquet schema, arrow types, codecs and page offset indexes.
    pub(super) fn can_splice(
        &self,
        old: &ParquetRecordBatchReaderBuilder<Bytes>,
        writer: &ParallelWriter,
    ) -> bool {
        let meta = old.metadata();
        let descr = meta.file_metadata().schema_descr();
        let ours = writer.schema_descr();
        let same_columns = descr.num_columns() == ours.num_columns()
            && (0..ours.num_columns()).all(|c| descr.column(c) == ours.column(c));
        let same_types = old.schema().fields().len() == self.file_schema.fields().len()
            && old
                .schema()
                .fields()
                .iter()
                .zip(self.file_schema.fields())
                .all(|(a, b)| a.name() == b.name() && a.data_type() == b.data_type());
        let same_codecs = meta.row_groups().iter().all(|rg| {
            rg.columns().iter().all(|c| {
                let ours = writer.properties().compression(c.column_path());
                std::mem::discriminant(&c.compression()) == std::mem::discriminant(&ours)
            })
        });
        let indexed = meta.offset_index().is_some_and(|oi| {
            oi.len() == meta.num_row_groups() && oi.iter().all(|g| g.len() == ours.num_columns())
        });
        self.keeps_every_stored_key()
            && same_columns
            && same_types
            && same_codecs
            && indexed
            && self.file_schema.fields().len() > FILE_NAME
    }

    /// Rewrites every row group of `old` in place (see the module). `keys` gathers the footer's key facts
    /// when they could not be taken from the old footer.
    pub(super) fn rewrite_in_place(
        &self,
        writer: &mut ParallelWriter,
        old: &OldFile<'_>,
        mut keys: Option<&mut KeyStats>,
        applied: &mut KeyMap<()>,
        out: &mut Merged,
    ) -> Result<(), HudiError> {
        let groups = old.meta.metadata().num_row_groups();
        for g in 0..groups {
            let rows = old.meta.metadata().row_group(g).num_rows();
            if g + 1 == groups && !self.inserts.is_empty() && rows < MIN_SPLICED_ROWS {
                // A small last group takes the inserts in: files filled by many small commits do not
                // end up with a row group per commit.
                self.stream_group(writer, old, g, keys.as_deref_mut(), applied, out)?;
                continue;
            }
            let picks = self.place_rows(old, g, keys.as_deref_mut(), applied, out)?;
            let encode = self.changed_columns(old, g, &picks)?;
            self.write_group(writer, old, g, &picks, &encode, out)?;
        }
        Ok(())
    }

    /// Row group `g` merged row by row, as the streamed merge does (the row group stays open for the
    /// inserts).
    fn stream_group(
        &self,
        writer: &mut ParallelWriter,
        old: &OldFile<'_>,
        g: usize,
        mut keys: Option<&mut KeyStats>,
        applied: &mut KeyMap<()>,
        out: &mut Merged,
    ) -> Result<(), HudiError> {
        for batch in old.reader(self, g, None, None)? {
            let batch = batch.map_err(self.arrow("reading the old file of"))?;
            self.merge_old_batch(writer, &batch, keys.as_deref_mut(), applied, out)?;
        }
        Ok(())
    }

    /// What becomes of each row of row group `g` (`(0, r)`: keep row `r` of the group; `(1, j)`: new row
    /// `j`), from its keys: a stored row whose key has an update is replaced, until `keep_newer` finds
    /// its stored position newer.
    fn place_rows(
        &self,
        old: &OldFile<'_>,
        g: usize,
        mut keys: Option<&mut KeyStats>,
        applied: &mut KeyMap<()>,
        out: &mut Merged,
    ) -> Result<Vec<(usize, usize)>, HudiError> {
        let rows = old.meta.metadata().row_group(g).num_rows().max(0) as usize;
        let mut picks = Vec::with_capacity(rows);
        for batch in old.reader(self, g, Some(vec![RECORD_KEY]), None)? {
            let batch = batch.map_err(self.arrow("reading the keys of the old file of"))?;
            let Some(record_keys) = batch.column(0).as_string_opt::<i32>() else {
                return Err(self.bad_file("its record key column is not text"));
            };
            let offset = picks.len();
            // Positions are compared when the position column is read for writing (`keep_newer`).
            for (src, r) in self.pick(record_keys, None, applied, out) {
                picks.push(if src == 0 { (0, offset + r) } else { (1, r) });
            }
            if let Some(stats) = keys.as_deref_mut() {
                record_keys.iter().flatten().for_each(|k| stats.add(k));
            }
        }
        if picks.len() != rows {
            return Err(self.bad_file("a row group's rows did not all stay in place"));
        }
        Ok(picks)
    }

    /// Which columns of row group `g` must be encoded again: the data columns where a replaced row's new
    /// image differs from the stored one (only the replaced rows are read), commit time, sequence number
    /// and position when a row is replaced, and the file name.
    fn changed_columns(
        &self,
        old: &OldFile<'_>,
        g: usize,
        picks: &[(usize, usize)],
    ) -> Result<Vec<bool>, HudiError> {
        let columns = self.file_schema.fields().len();
        let mut encode = vec![false; columns];
        encode[FILE_NAME] = true;
        let replaced: Vec<(usize, usize)> = picks
            .iter()
            .enumerate()
            .filter(|(_, p)| p.0 == 1)
            .map(|(row, p)| (row, p.1))
            .collect();
        if replaced.is_empty() {
            return Ok(encode);
        }
        encode[COMMIT_TIME] = true;
        encode[SEQNO] = true;
        // A replaced row has a newer (or the same) position: that column is encoded without comparing.
        // The record key and partition path of a replaced row are its stored ones.
        let position = self.file_schema.index_of(POSITION_COLUMN).ok();
        if let Some(p) = position {
            encode[p] = true;
        }
        let compared: Vec<usize> = (0..columns)
            .filter(|&c| !encode[c] && c != RECORD_KEY && c != PARTITION_PATH)
            .collect();
        if compared.is_empty() {
            return Ok(encode);
        }
        let selection = select_rows(replaced.iter().map(|r| r.0), picks.len());
        let batches = old
            .reader(self, g, Some(compared.clone()), Some(selection))?
            .collect::<Result<Vec<RecordBatch>, _>>()
            .map_err(self.arrow("reading the replaced rows of"))?;
        let Some(schema) = batches.first().map(|b| b.schema()) else {
            return Err(self.bad_file("the replaced rows were not found"));
        };
        let stored = concat_batches(&schema, &batches)
            .map_err(self.arrow("gathering the replaced rows of"))?;
        for (k, &c) in compared.iter().enumerate() {
            let compare = make_comparator(
                stored.column(k).as_ref(),
                self.new_rows.column(c).as_ref(),
                SortOptions::default(),
            )
            .map_err(self.arrow("comparing the replaced rows of"))?;
            encode[c] = replaced
                .iter()
                .enumerate()
                .any(|(i, &(_, j))| compare(i, j) != Ordering::Equal);
        }
        Ok(encode)
    }

    /// Writes row group `g`: the columns in `encode` merged from the old file and the new rows, the others
    /// spliced.
    fn write_group(
        &self,
        writer: &mut ParallelWriter,
        old: &OldFile<'_>,
        g: usize,
        picks: &[(usize, usize)],
        encode: &[bool],
        out: &mut Merged,
    ) -> Result<(), HudiError> {
        let rg = old.meta.metadata().row_group(g);
        let copied = (0..encode.len())
            .map(|c| (!encode[c]).then(|| old.chunk(g, c)))
            .collect();
        let weights: Vec<usize> = rg
            .columns()
            .iter()
            .map(|c| c.uncompressed_size().max(0) as usize)
            .collect();
        let parquet = self.parquet(&self.path);
        writer
            .start_spliced_row_group(copied, &weights)
            .map_err(&parquet)?;
        let read: Vec<usize> = (0..encode.len())
            .filter(|&c| encode[c] && c != FILE_NAME)
            .collect();
        let placeholder = new_null_array(&DataType::Null, 0);
        let names = self.file_names(BATCH_ROWS);
        let position = self.file_schema.index_of(POSITION_COLUMN).ok();
        let stored_position = read.iter().position(|&c| Some(c) == position);
        let mut at = 0;
        let mut write = |batch: Option<RecordBatch>, n: usize| -> Result<(), HudiError> {
            let mut local: Vec<(usize, usize)> = picks[at..at + n]
                .iter()
                .map(|&(src, r)| if src == 0 { (0, r - at) } else { (1, r) })
                .collect();
            if let (Some(batch), Some(k)) = (&batch, stored_position) {
                self.keep_newer(batch.column(k), &mut local, out)?;
            }
            let mut columns: Vec<ArrayRef> = vec![placeholder.clone(); encode.len()];
            for (k, &c) in read.iter().enumerate() {
                let stored = batch
                    .as_ref()
                    .map(|b| b.column(k).clone())
                    .ok_or_else(|| self.bad_file("a changed column was not read"))?;
                columns[c] = self.merged_column(c, &stored, &local, out.rows as usize)?;
            }
            columns[FILE_NAME] = if n <= BATCH_ROWS {
                names.slice(0, n)
            } else {
                self.file_names(n)
            };
            writer.write_columns(columns, n).map_err(&parquet)?;
            out.rows += n as u64;
            at += n;
            Ok(())
        };
        if read.is_empty() {
            for start in (0..picks.len()).step_by(BATCH_ROWS) {
                write(None, BATCH_ROWS.min(picks.len() - start))?;
            }
        } else {
            for batch in old.reader(self, g, Some(read.clone()), None)? {
                let batch = batch.map_err(self.arrow("reading the old file of"))?;
                let n = batch.num_rows();
                write(Some(batch), n)?;
            }
        }
        writer.finish_spliced_row_group().map_err(&parquet)
    }

    /// Keeps the stored row wherever its position (`stored`, the batch's rows) is newer than the update's
    /// (the check the streamed merge makes while picking).
    fn keep_newer(
        &self,
        stored: &ArrayRef,
        picks: &mut [(usize, usize)],
        out: &mut Merged,
    ) -> Result<(), HudiError> {
        let Some(p) = self.file_schema.index_of(POSITION_COLUMN).ok() else {
            return Ok(());
        };
        let (Some(stored), Some(new)) = (
            stored.as_string_opt::<i32>(),
            self.new_rows.column(p).as_string_opt::<i32>(),
        ) else {
            return Err(self.bad_file("its position column is not text"));
        };
        for (r, pick) in picks.iter_mut().enumerate() {
            if pick.0 == 1
                && stored.is_valid(r)
                && compare_order_keys(stored.value(r), new.value(pick.1)) == Ordering::Greater
            {
                *pick = (0, r);
                out.updates -= 1;
                out.stale += 1;
            }
        }
        Ok(())
    }

    /// Column `c` of the picked rows (`stored`: the old rows' column `c`).
    fn merged_column(
        &self,
        c: usize,
        stored: &ArrayRef,
        picks: &[(usize, usize)],
        first_row: usize,
    ) -> Result<ArrayRef, HudiError> {
        if c == SEQNO {
            let Some(seqnos) = stored.as_string_opt::<i32>() else {
                return Err(self.bad_file("its sequence number column is not text"));
            };
            return Ok(self.seqnos(seqnos, picks, first_row));
        }
        interleave(&[stored.as_ref(), self.new_rows.column(c).as_ref()], picks)
            .map_err(self.arrow("merging rows of"))
    }

    fn bad_file(&self, what: &str) -> HudiError {
        HudiError::Data {
            table: self.table.clone(),
            message: format!("rewriting {} in place: {what}", self.path),
        }
    }
}

/// A selection of the (ascending) `rows` out of `total`.
fn select_rows(rows: impl Iterator<Item = usize>, total: usize) -> RowSelection {
    let mut selectors = Vec::new();
    let mut at = 0;
    for r in rows {
        if r > at {
            selectors.push(RowSelector::skip(r - at));
        }
        selectors.push(RowSelector::select(1));
        at = r + 1;
    }
    if total > at {
        selectors.push(RowSelector::skip(total - at));
    }
    RowSelection::from(selectors)
}

#[cfg(test)]
mod tests;
