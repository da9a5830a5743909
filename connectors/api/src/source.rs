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
