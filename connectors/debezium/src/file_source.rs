//! The Debezium JSON-lines file source: each line is one Kafka message value as Debezium's JsonConverter
//! writes it. Reads append-only: the checkpoint is the last line consumed and the byte offset after it.

use crate::decoder::JsonDecoder;
use crate::envelope::Decoding;
use bytes::Bytes;
use lakefold_api::{
    BatchLimits, ChangeBatch, Checkpoint, FileCheckpoint, Lag, LagUnit, Position, SourceError,
    SourceRecord, StreamPosition,
};
use std::path::PathBuf;
use tokio::io::{AsyncBufReadExt, AsyncSeekExt, BufReader};

/// Reads a JSON-lines file from a checkpoint onwards.
pub struct FileSource {
    /// The path as configured (stored in checkpoints).
    configured: String,
    path: PathBuf,
    reader: BufReader<tokio::fs::File>,
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

impl FileSource {
    /// Opens `path` and positions it after `resume` (the earliest checkpoint of the routes reading it).
    pub async fn open(
        configured: &str,
        path: PathBuf,
        resume: Option<&Checkpoint>,
        follow: bool,
    ) -> Result<FileSource, SourceError> {
        let file = tokio::fs::File::open(&path)
            .await
            .map_err(|source| SourceError::Open {
                path: path.clone(),
                source,
            })?;
        let len = file
            .metadata()
            .await
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
        let mut reader = BufReader::with_capacity(1 << 20, file);
        reader
            .seek(std::io::SeekFrom::Start(offset))
            .await
            .map_err(|source| SourceError::Read {
                path: path.clone(),
                offset,
                source,
            })?;
        Ok(FileSource {
            configured: configured.to_string(),
            path,
            reader,
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
    /// are read into one buffer (each record's raw bytes are a slice of it) and decoded on every core,
    /// in line order.
    pub async fn poll(&mut self, limits: BatchLimits) -> Result<ChangeBatch, SourceError> {
        let mut buf = self.buffer(
            (self.last_poll_bytes + self.last_poll_bytes / 8 + (64 << 10)).min(limits.max_bytes),
        );
        let mut lines: Vec<(u64, u64, std::ops::Range<usize>)> =
            Vec::with_capacity(limits.max_records.min(1 << 16));
        let mut caught_up = false;
        while lines.len() < limits.max_records && buf.len() < limits.max_bytes {
            let start = buf.len();
            let n = self
                .reader
                .read_until(b'\n', &mut buf)
                .await
                .map_err(|source| SourceError::Read {
                    path: self.path.clone(),
                    offset: self.offset,
                    source,
                })?;
            if n == 0 {
                caught_up = true;
                break;
            }
            if buf.last() != Some(&b'\n') && (self.follow || self.still_growing().await) {
                // An unfinished last line (its writer may still be at it): rewind and leave it for later.
                buf.truncate(start);
                self.reader
                    .seek(std::io::SeekFrom::Start(self.offset))
                    .await
                    .map_err(|source| SourceError::Read {
                        path: self.path.clone(),
                        offset: self.offset,
                        source,
                    })?;
                caught_up = true;
                break;
            }
            self.line += 1;
            self.offset += n as u64;
            let end = start + trim_line_end(&buf[start..]).len();
            lines.push((self.line, self.offset, start..end));
        }
        self.last_poll_bytes = buf.len();
        let buf = Bytes::from(buf);
        self.spent.push_back(buf.clone());
        // Decoding is CPU work: on the blocking pool, so the caller can fold the previous batch meanwhile.
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
        let records = lines
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
            .collect();
        let checkpoint = (self.line > 0).then(|| self.checkpoint());
        Ok(ChangeBatch {
            records,
            checkpoint,
            caught_up,
        })
    }
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
