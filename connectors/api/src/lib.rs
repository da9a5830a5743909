//! The source contract of lakefold.
//!
//! Every source (Debezium JSON lines, Debezium on Kafka, SQL Server CDC) turns what it reads into
//! [`SourceRecord`]s: a [`Position`] that orders it, the raw bytes (kept for the dead-letter table) and the
//! decoded [`ChangeEvent`] or the reason it could not be decoded. Sources hand records over in
//! [`ChangeBatch`]es that end with the [`Checkpoint`] to store in the table commits that cover them.
//!
//! This crate has no dependency on any sink: sinks and sources meet only through these types.

mod checkpoint;
mod error;
mod event;
mod order_key;
pub use order_key::compare_order_keys;
mod position;
mod source;
mod text;
mod types;
mod value;

pub use checkpoint::{
    Checkpoint, FileCheckpoint, KafkaCheckpoint, SnapshotCursor, SnapshotProgress,
    SqlServerCheckpoint,
};
pub use error::{ErrorClass, SourceError};
pub use event::{ChangeEvent, Field, Op, Row, TableId};
pub use position::{Lsn, LsnParseError, LsnPosition, Position, StreamPosition};
pub use source::{BatchLimits, ChangeBatch, Decoded, Lag, LagUnit, Source, SourceRecord};
pub use text::{decimal_from_text, parse_timestamp_micros, unscaled_from_text};
pub use types::{LogicalType, TimeUnit, TypeParseError};
pub use value::{format_decimal, Value};
