//! The Debezium JSON-lines file source: each line is one Kafka message value as Debezium's JsonConverter
//! writes it. Reads append-only: the checkpoint is the last line consumed and the byte offset after it.

use crate::decoder::JsonDecoder;
use crate::envelope::Decoding;
use bytes::Bytes;
use lakefold_api::{
    BatchLimits, ChangeBatch, Checkpoint, FileCheckpoint, Lag, LagUnit, Position, SourceError,
    SourceRecord, StreamPosition,
};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

/// Reads a JSON-lines file from a checkpoint onwards.
pub struct FileSource {
    /// The path as configured (stored in checkpoints).
    configured: String,
    path: PathBuf,
    /// Read at explicit offsets (`pread`), in bulk, on the blocking pool.
    file: Arc<std::fs::File>,
    line: u64,
    offset: u64,
    /// When following (`tail -f`), a last line without its newline is left for later: the writer may not
    /// have finished it. When draining (`--once`), it is read.
    follow: bool,
    decoder: std::sync::Arc<JsonDecoder>,
    /// The bytes the last poll read: the next poll's buffer starts that large, so it is not grown (and
    /// copied) line after line.
    last_poll_bytes: usize,
    /// The buffers of the last polls: once their records are gone, the oldest is read into again rather
    /// than a new one allocated (whose pages the kernel would have to zero).
    spent: std::collections::VecDeque<Bytes>,
}

/// Buffers of earlier polls kept for reuse (the one being folded, and the one before it).
const SPENT_BUFFERS: usize = 2;

/// Below this many lines a batch is decoded on the calling thread.
const PARALLEL_DECODE_MIN: usize = 512;

/// Bytes asked of the file per read once a poll's first estimate is used up.
const READ_CHUNK: usize = 1 << 20;

impl FileSource {
    /// Opens `path` and positions it after `resume` (the earliest checkpoint of the routes reading it).
    pub async fn open(
        configured: &str,
        path: PathBuf,
        resume: Option<&Checkpoint>,
        follow: bool,
    ) -> Result<FileSource, SourceError> {
        let file = std::fs::File::open(&path).map_err(|source| SourceError::Open {
            path: path.clone(),
            source,
        })?;
        let len = file
            .metadata()
            .map_err(|source| SourceError::Open {
                path: path.clone(),
                source,
            })?
            .len();
        let (line, offset) = match resume {
            None => (0, 0),
            Some(Checkpoint::DebeziumFile(cp)) if cp.path != configured => {
                return Err(SourceError::CheckpointForOtherFile {
                    stored: cp.path.clone(),
                    configured: configured.to_string(),
                })
            }
            Some(Checkpoint::DebeziumFile(cp)) => (cp.line, cp.offset),
            Some(other) => {
                return Err(SourceError::CheckpointMismatch {
                    found: other.describe(),
                    source_type: "debezium-file",
                })
            }
        };
        if offset > len {
            return Err(SourceError::Truncated {
                path,
                len,
                offset,
                line,
            });
        }
        Ok(FileSource {
            configured: configured.to_string(),
            path,
            file: Arc::new(file),
            line,
            offset,
            follow,
            decoder: std::sync::Arc::new(JsonDecoder::new()),
            last_poll_bytes: 0,
            spent: std::collections::VecDeque::new(),
        })
    }

    /// An empty buffer of at least `capacity` bytes: the oldest spent one if nothing else holds it any
    /// more (a dead letter may keep its record's bytes), else a new one.
    fn buffer(&mut self, capacity: usize) -> Vec<u8> {
        if self.spent.len() >= SPENT_BUFFERS {
            if let Some(Ok(reused)) = self.spent.pop_front().map(Bytes::try_into_mut) {
                let mut reused = Vec::from(reused);
                reused.clear();
                reused.reserve_exact(capacity);
                return reused;
            }
        }
        Vec::with_capacity(capacity)
    }

    /// True when the file grows within a short wait: a line without its newline is still being written.
    /// (A file that stays put with a last line lacking its newline is read as it is, in `--once`.)
    async fn still_growing(&self) -> bool {
        let before = tokio::fs::metadata(&self.path).await.map(|m| m.len()).ok();
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let after = tokio::fs::metadata(&self.path).await.map(|m| m.len()).ok();
        before != after
    }

    /// Where the next read starts.
    pub fn checkpoint(&self) -> Checkpoint {
        Checkpoint::DebeziumFile(FileCheckpoint {
            path: self.configured.clone(),
            line: self.line,
            offset: self.offset,
        })
    }

    /// Reads up to `limits` records. `caught_up` is set when the end of the file was reached. The lines
    /// are read in bulk into one buffer (each record's raw bytes are a slice of it) and decoded on every
    /// core, in line order.
    pub async fn poll(&mut self, limits: BatchLimits) -> Result<ChangeBatch, SourceError> {
        let first_read =
            (self.last_poll_bytes + self.last_poll_bytes / 8 + (64 << 10)).min(limits.max_bytes);
        let buf = self.buffer(first_read);
        let (file, from) = (self.file.clone(), self.offset);
        let scan =
            tokio::task::spawn_blocking(move || scan_lines(&file, from, buf, first_read, limits))
                .await
                .map_err(|e| std::io::Error::other(format!("reading stopped: {e}")))
                .and_then(|scanned| scanned)
                .map_err(|source| SourceError::Read {
                    path: self.path.clone(),
                    offset: self.offset,
                    source,
                })?;
        let Scan {
            buf,
            mut lines,
            tail,
            eof,
        } = scan;
        // A last line without its newline (its writer may still be at it) is left for later unless the
        // file is drained and stays put.
        if let Some(tail) = tail {
            if !self.follow && !self.still_growing().await {
                lines.push((tail.end, trimmed(&buf, tail)));
            }
        }
        let lines: Vec<(u64, u64, Range<usize>)> = lines
            .into_iter()
            .map(|(end, range)| {
                self.line += 1;
                (self.line, from + end as u64, range)
            })
            .collect();
        if let Some((_, end_offset, _)) = lines.last() {
            self.offset = *end_offset;
        }
        self.last_poll_bytes = buf.len();
        let buf = Bytes::from(buf);
        self.spent.push_back(buf.clone());
        let records = self.decode(buf, lines).await?;
        let checkpoint = (self.line > 0).then(|| self.checkpoint());
        Ok(ChangeBatch {
            records,
            checkpoint,
            caught_up: eof,
        })
    }

    /// Decodes the lines of `buf`: CPU work, on the blocking pool, so the caller can fold the previous
    /// batch meanwhile.
    async fn decode(
        &self,
        buf: Bytes,
        lines: Vec<(u64, u64, Range<usize>)>,
    ) -> Result<Vec<SourceRecord>, SourceError> {
        let (decoder, shared) = (self.decoder.clone(), buf.clone());
        let (lines, decoded) = tokio::task::spawn_blocking(move || {
            let decoded = decode_all(&decoder, &shared, &lines);
            (lines, decoded)
        })
        .await
        .map_err(|e| SourceError::Read {
            path: self.path.clone(),
            offset: self.offset,
            source: std::io::Error::other(format!("decoding stopped: {e}")),
        })?;
        Ok(lines
            .into_iter()
            .zip(decoded)
            .map(|((line, end_offset, range), decoding)| SourceRecord {
                position: Position {
                    lsn: decoding.lsn,
                    stream: StreamPosition::Line { line, end_offset },
                },
                raw: buf.slice(range),
                decoded: decoding.decoded,
            })
            .collect())
    }
}

/// The lines one poll took from the file.
struct Scan {
    /// The bytes read, from the poll's start offset to the end of its last line (and of `tail`).
    buf: Vec<u8>,
    /// Each line's end in `buf` (after its newline) and its text (without `\n` or `\r\n`).
    lines: Vec<(usize, Range<usize>)>,
    /// A last line without its newline, where the file ended (and the limits allowed one more line).
    tail: Option<Range<usize>>,
    /// The end of the file was reached before the limits.
    eof: bool,
}

/// Reads whole lines from `from` on, in bulk (`first_read` bytes, then [`READ_CHUNK`]s), until `limits`
/// or the end of the file. A line is taken while fewer than `max_records` are and it starts below
/// `max_bytes` (so one longer line is still read whole); bytes read past the last line taken are
/// dropped, to be read again by the next poll.
fn scan_lines(
    file: &std::fs::File,
    from: u64,
    mut buf: Vec<u8>,
    first_read: usize,
    limits: BatchLimits,
) -> std::io::Result<Scan> {
    let mut lines = Vec::with_capacity(limits.max_records.min(1 << 16));
    let (mut line_start, mut scanned) = (0, 0);
    let mut want = first_read.max(1);
    let full = |lines: &Vec<_>, line_start: usize| {
        lines.len() >= limits.max_records || line_start >= limits.max_bytes
    };
    loop {
        let have = buf.len();
        buf.resize(have + want, 0);
        let n = read_at_most(file, &mut buf[have..], from + have as u64)?;
        buf.truncate(have + n);
        for newline in memchr::memchr_iter(b'\n', &buf[scanned..]) {
            if full(&lines, line_start) {
                break;
            }
            let end = scanned + newline + 1;
            lines.push((end, trimmed(&buf, line_start..end)));
            line_start = end;
        }
        scanned = buf.len();
        if full(&lines, line_start) {
            buf.truncate(line_start);
            return Ok(Scan {
                buf,
                lines,
                tail: None,
                eof: false,
            });
        }
        if n < want {
            let tail = (line_start < buf.len()).then_some(line_start..buf.len());
            return Ok(Scan {
                buf,
                lines,
                tail,
                eof: true,
            });
        }
        want = READ_CHUNK;
    }
}

/// Fills `out` from `offset` on; fewer bytes only at the end of the file.
fn read_at_most(file: &std::fs::File, out: &mut [u8], offset: u64) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < out.len() {
        match file.read_at(&mut out[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// `range` of `buf` without its line end.
fn trimmed(buf: &[u8], range: Range<usize>) -> Range<usize> {
    range.start..range.start + trim_line_end(&buf[range]).len()
}

/// Decodes the lines of one batch, split over the available cores; results in line order.
fn decode_all(
    decoder: &JsonDecoder,
    buf: &[u8],
    lines: &[(u64, u64, std::ops::Range<usize>)],
) -> Vec<Decoding> {
    let decode = |chunk: &[(u64, u64, std::ops::Range<usize>)]| -> Vec<Decoding> {
        chunk
            .iter()
            .map(|(_, _, r)| decoder.decode(&buf[r.clone()]))
            .collect()
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if threads < 2 || lines.len() < PARALLEL_DECODE_MIN {
        return decode(lines);
    }
    let per = lines.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let mut chunks = lines.chunks(per);
        let first = chunks.next().unwrap_or(&[]);
        let others: Vec<_> = chunks.map(|c| scope.spawn(move || decode(c))).collect();
        let mut out = decode(first);
        for handle in others {
            match handle.join() {
                Ok(part) => out.extend(part),
                // A decoder never panics; if one did, re-raise it here rather than lose its lines.
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        out
    })
}

fn trim_line_end(line: &[u8]) -> &[u8] {
    let mut end = line.len();
    while end > 0 && (line[end - 1] == b'\n' || line[end - 1] == b'\r') {
        end -= 1;
    }
    &line[..end]
}

#[async_trait::async_trait]
impl lakefold_api::Source for FileSource {
    async fn poll(&mut self, limits: BatchLimits) -> Result<ChangeBatch, SourceError> {
        FileSource::poll(self, limits).await
    }

    fn locate(&self, position: &Position) -> String {
        format!("{} {position}", self.configured)
    }

    async fn lag(&mut self) -> Vec<Lag> {
        match tokio::fs::metadata(&self.path).await {
            Ok(m) => vec![Lag {
                partition: None,
                value: m.len().saturating_sub(self.offset) as f64,
                unit: LagUnit::Bytes,
            }],
            Err(_) => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lakefold_api::Decoded;
    use std::io::Write;

    const LIMITS: BatchLimits = BatchLimits {
        max_records: 1000,
        max_bytes: 1 << 20,
    };

    fn write_file(text: &str) -> (tempdir::Dir, PathBuf) {
        let dir = tempdir::Dir::new();
        let path = dir.0.join("events.jsonl");
        std::fs::File::create(&path)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        (dir, path)
    }

    mod tempdir {
        pub struct Dir(pub std::path::PathBuf);
        impl Dir {
            pub fn new() -> Dir {
                let p = std::env::temp_dir().join(format!(
                    "lakefold-fs-{}-{}",
                    std::process::id(),
                    rand_suffix()
                ));
                std::fs::create_dir_all(&p).unwrap();
                Dir(p)
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
        fn rand_suffix() -> u128 {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        }
    }

    #[tokio::test]
    async fn reads_lines_with_numbers_and_resumes_after_checkpoint() {
        let (_d, path) = write_file("{\"a\":1}\n\nnull\n{bad\n{\"b\":2}\n");
        let mut src = FileSource::open("events.jsonl", path.clone(), None, false)
            .await
            .unwrap();
        let batch = src.poll(LIMITS).await.unwrap();
        assert!(batch.caught_up);
        assert_eq!(batch.records.len(), 5);
        assert!(matches!(
            batch.records[1].decoded,
            Decoded::Skipped("blank line")
        ));
        assert!(matches!(
            batch.records[2].decoded,
            Decoded::Skipped("tombstone")
        ));
        assert!(matches!(batch.records[3].decoded, Decoded::Failed(_)));
        assert_eq!(batch.records[3].raw.as_ref(), b"{bad");
        assert_eq!(
            batch.records[4].position.stream,
            StreamPosition::Line {
                line: 5,
                end_offset: 27
            }
        );

        let mid = Checkpoint::DebeziumFile(FileCheckpoint {
            path: "events.jsonl".into(),
            line: 3,
            offset: 14,
        });
        let mut again = FileSource::open("events.jsonl", path, Some(&mid), false)
            .await
            .unwrap();
        let batch = again.poll(LIMITS).await.unwrap();
        assert_eq!(batch.records.len(), 2);
        assert_eq!(
            batch.records[0].position.stream,
            StreamPosition::Line {
                line: 4,
                end_offset: 19
            }
        );
    }

    #[tokio::test]
    async fn following_leaves_an_unfinished_last_line_for_later() {
        let (_d, path) = write_file("{\"a\":1}\n{\"b\":");
        let mut src = FileSource::open("e", path.clone(), None, true)
            .await
            .unwrap();
        assert_eq!(src.poll(LIMITS).await.unwrap().records.len(), 1);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"2}\n")
            .unwrap();
        let batch = src.poll(LIMITS).await.unwrap();
        assert_eq!(batch.records.len(), 1);
        assert_eq!(batch.records[0].raw.as_ref(), b"{\"b\":2}");
    }

    #[tokio::test]
    async fn a_truncated_file_is_reported_not_misread() {
        let (_d, path) = write_file("{}\n");
        let cp = Checkpoint::DebeziumFile(FileCheckpoint {
            path: "e".into(),
            line: 9,
            offset: 900,
        });
        let err = FileSource::open("e", path, Some(&cp), false)
            .await
            .err()
            .unwrap();
        assert!(
            matches!(
                err,
                SourceError::Truncated {
                    len: 3,
                    offset: 900,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[tokio::test]
    async fn batches_respect_the_record_limit() {
        let (_d, path) = write_file(&"null\n".repeat(10));
        let mut src = FileSource::open("e", path, None, false).await.unwrap();
        let limits = BatchLimits {
            max_records: 4,
            max_bytes: 1 << 20,
        };
        let sizes: Vec<usize> = [(); 4].iter().map(|_| 0).collect();
        let mut got = Vec::new();
        for _ in sizes {
            got.push(src.poll(limits).await.unwrap().records.len());
        }
        assert_eq!(got, vec![4, 4, 2, 0]);
    }

    #[tokio::test]
    async fn lines_read_in_bulk_stay_whole_across_reads_and_byte_limits() {
        // A line longer than one read, CRLF endings, and a last line without its newline.
        let long = format!("{{\"pad\":\"{}\"}}", "x".repeat(READ_CHUNK * 2 + 17));
        let text = format!("{{\"a\":1}}\r\n{long}\n{{\"b\":2}}\n{{\"c\":3}}");
        let (_d, path) = write_file(&text);
        let mut src = FileSource::open("e", path, None, false).await.unwrap();
        // The second line starts below the byte limit: it is read whole, and nothing after it is.
        let limits = BatchLimits {
            max_records: 100,
            max_bytes: 4,
        };
        let first = src.poll(limits).await.unwrap();
        let raws: Vec<&[u8]> = first.records.iter().map(|r| r.raw.as_ref()).collect();
        assert_eq!(raws, vec![&b"{\"a\":1}"[..]]);
        assert!(!first.caught_up);
        let second = src.poll(limits).await.unwrap();
        assert_eq!(second.records.len(), 1);
        assert_eq!(second.records[0].raw.as_ref(), long.as_bytes());
        assert_eq!(
            second.records[0].position.stream,
            StreamPosition::Line {
                line: 2,
                end_offset: (9 + long.len() + 1) as u64
            }
        );
        let rest = src.poll(LIMITS).await.unwrap();
        let raws: Vec<&[u8]> = rest.records.iter().map(|r| r.raw.as_ref()).collect();
        assert_eq!(raws, vec![&b"{\"b\":2}"[..], &b"{\"c\":3}"[..]]);
        assert!(rest.caught_up);
        assert_eq!(
            src.offset,
            text.len() as u64,
            "the unterminated last line is read"
        );
        assert_eq!(src.line, 4);
        assert!(src.poll(LIMITS).await.unwrap().records.is_empty());
    }

    #[tokio::test]
    async fn a_spent_buffer_is_read_into_again_only_once_nothing_holds_it() {
        let text: String = (10..50).map(|i| format!("{{\"line\":{i}}}\n")).collect();
        let (_d, path) = write_file(&text);
        let mut src = FileSource::open("e", path, None, false).await.unwrap();
        let limits = BatchLimits {
            max_records: 4,
            max_bytes: 1 << 20,
        };
        let start = |b: &ChangeBatch| b.records[0].raw.as_ptr();
        // A record held (as a dead letter holds its bytes): its buffer is not reused.
        let held = src.poll(limits).await.unwrap().records.remove(0);
        let second = src.poll(limits).await.unwrap();
        let second_at = start(&second);
        drop(second);
        let mut starts = Vec::new();
        for _ in 0..4 {
            let batch = src.poll(limits).await.unwrap();
            starts.push(start(&batch));
        }
        assert_eq!(
            &held.raw[..],
            b"{\"line\":10}",
            "a held record keeps its bytes"
        );
        assert!(!starts.contains(&held.raw.as_ptr()));
        assert_eq!(
            starts[1], second_at,
            "the second poll's buffer, once free, is reused"
        );
    }
}
