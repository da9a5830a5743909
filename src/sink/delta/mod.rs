//! Delta Lake tables through the `deltalake` crate (delta-rs 1.1, on the same arrow, parquet and
//! object_store as the Hudi writer). lakefold plans the upsert itself (copy-on-write: the files holding
//! changed keys are rewritten) and commits `add`/`remove` actions through delta-rs's transaction API,
//! whose conflict checker detects a second writer; the source checkpoints travel in the same commit.

mod checkpoint;
mod commit;
mod error;
mod files;
mod plan;
mod read;
mod rewrite;
mod sink;
mod table;
mod upsert;
mod vacuum;

pub use checkpoint::{app_id, CHECKPOINT_PROPERTY, KEY_PROPERTY};
pub use commit::CHECKPOINT_INTERVAL;
pub use error::DeltaError;
pub use read::{DeltaCommit, COUNT_KEYS};
pub use table::DeltaSinkTable;
