//! What a source hands to the pipeline.

use crate::checkpoint::Checkpoint;
use crate::event::ChangeEvent;
use crate::position::Position;
use bytes::Bytes;

/// The decoded form of one record.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    /// A change to fold into the routes' tables.
    Event(ChangeEvent),
    /// Nothing to do: a tombstone, a truncate (`t`), a blank line, a heartbeat. The reason is for logs.
    Skipped(&'static str),
    /// The record could not be decoded; it goes to the dead-letter table with this error.
    Failed(String),
}

/// One record read from a source.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceRecord {
    pub position: Position,
    /// The bytes as read, kept for the dead-letter table.
    pub raw: Bytes,
    pub decoded: Decoded,
}

/// Records read in one go, with the checkpoint that covers them.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeBatch {
    pub records: Vec<SourceRecord>,
    /// Where the source resumes after these records (None: nothing consumed yet).
    pub checkpoint: Option<Checkpoint>,
    /// True when the source had nothing more to read right now (end of file, high watermark reached).
    pub caught_up: bool,
}

/// How much one poll may return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    pub max_records: usize,
    pub max_bytes: usize,
}

/// A source the pipeline reads: bounded polls, a hook around each table commit, and a last call when
/// the run ends. A source owns its checkpoint's meaning: the checkpoints it puts in its batches are what
/// the tables store, and [`Checkpoint::covers`] / [`Checkpoint::earliest`] say what one covers and how
/// two merge (checkpoints are stored data, read back before any source is opened, so they stay a closed
/// set of serialisable kinds in this crate).
#[async_trait::async_trait]
pub trait Source: Send {
    /// Reads at most `limits` records; `caught_up` when nothing more is available right now.
    async fn poll(&mut self, limits: BatchLimits) -> Result<ChangeBatch, crate::SourceError>;

    /// The tables are about to be committed: stop fetching ahead (bounded memory).
    fn before_commit(&mut self) {}

    /// The tables are committed up to `checkpoint`: resume, acknowledge upstream if the source can.
    fn after_commit(&mut self, _checkpoint: Option<&Checkpoint>) {}

    /// The run ends after the last table commit at `checkpoint`.
    async fn finish(self: Box<Self>, _checkpoint: Option<Checkpoint>) {}

    /// Where a record is, for people (dead letters, logs): `sales.jsonl line 17`, `topic/2/1044`.
    fn locate(&self, position: &Position) -> String {
        position.to_string()
    }

    /// How far behind the source's end the reader is, where the source can tell (asked after polls, at
    /// most every few seconds).
    async fn lag(&mut self) -> Vec<Lag> {
        Vec::new()
    }
}

/// How far a reader is behind its source's end.
#[derive(Debug, Clone, PartialEq)]
pub struct Lag {
    /// The Kafka partition; `None` for a source with one stream.
    pub partition: Option<i32>,
    pub value: f64,
    pub unit: LagUnit,
}

/// What a [`Lag`] counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LagUnit {
    /// Bytes of a file not read yet.
    Bytes,
    /// Messages between the position and the high watermark.
    Messages,
    /// Seconds between the last change read and the newest change in the database.
    Seconds,
}
