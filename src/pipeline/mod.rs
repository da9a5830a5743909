//! The pipeline: sources → per-route fold → staged commits (data + checkpoint) → tables → catalog.
//!
//! `supervise` rides out outages by reopening the run, `run` holds the loop, `state` what a run keeps per route and source, `resume` where sources start,
//! `dispatch` one record through its routes, `commit_round` the commits and table services,
//! `catalog_sync` the catalog, `sources` and `tables` the one place each knows the configured kinds.

mod catalog_sync;
mod commit_round;
mod dead_letter;
mod dispatch;
mod error;
mod lake;
mod lease;
mod replay;
mod resume;
pub mod run;
pub mod sources;
mod state;
mod supervise;
mod tables;

pub use dead_letter::{DeadLetter, DEAD_LETTER_TABLE};
pub use error::PipelineError;
pub use lake::{local_path as lake_local_path, Lake};
pub use replay::{replay, ReplayReport};
pub use state::{RunOptions, RunSummary, TableTotals};
pub use supervise::run;
pub use tables::{open_route_table, read_checkpoints};
