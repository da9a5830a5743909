//! Apache Hudi table version 6, copy-on-write: what Athena (Hudi 0.14/0.15) reads. lakefold writes the
//! format itself; the facts it follows are in `shared/hudi-v6-cow.md` and the Spark-written golden tables.

pub(crate) mod avro_schema;
mod claim;
mod commit;
mod commit_metadata;
mod error;
mod file_name;
mod instant;
mod parquet_io;
mod properties;
mod rollback;
mod table;
mod timeline;
mod view;
mod write;

pub use avro_schema::{avro_schema, parse_avro_schema, META_COLUMNS};
pub use commit_metadata::{CommitMetadata, WriteStat, CHECKPOINT_KEY, SCHEMA_KEY};
pub use error::HudiError;
pub use file_name::BaseFileName;
pub use instant::{Action, Instant, State, TimelineFile};
pub use properties::{checksum, key_generator_class, TableKey, TableProperties};
pub use table::{CommitSummary, HudiTable, TableLayout};
pub use timeline::Timeline;
pub use write::{RowChange, StagedRow};
