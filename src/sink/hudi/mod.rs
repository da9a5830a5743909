//! Apache Hudi table version 6, copy-on-write: what Athena (Hudi 0.14/0.15) reads. lakefold writes the
//! format itself; the facts it follows are in `shared/hudi-v6-cow.md` and the Spark-written golden tables.

mod archive;
pub(crate) mod avro_schema;
pub mod bloom;
mod claim;
mod clean;
mod column_writer;
mod commit;
mod commit_metadata;
mod error;
mod file_name;
mod index;
mod instant;
mod markers;
mod merge;
mod parquet_io;
mod properties;
mod rollback;
mod sink;
mod splice;
mod table;
mod timeline;
mod timeline_avro;
mod view;
mod write;

/// The neutral row types, re-exported where the Hudi writer's users have always found them.
pub use crate::sink::{CommitSummary, RowChange, StagedRow, TableLayout};
pub use avro_schema::{avro_schema, parse_avro_schema, META_COLUMNS};
pub use clean::KEEP_LATEST_COMMITS;
pub use commit_metadata::{CommitMetadata, WriteStat, CHECKPOINT_KEY, SCHEMA_KEY};
pub use error::HudiError;
pub use file_name::BaseFileName;
pub use instant::{Action, Instant, State, TimelineFile};
pub use markers::MARKER_TYPE;
pub(crate) use parquet_io::codec;
pub use properties::{
    checksum, key_generator_class, uses_complex_keys, TableKey, TableProperties,
    COMPLEX_KEY_GENERATOR,
};
pub use sink::{checkpoint_metadata, STREAMER_CHECKPOINT_KEY};
pub use table::HudiTable;
pub use timeline::Timeline;
