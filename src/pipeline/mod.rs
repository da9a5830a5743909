//! The pipeline: sources → per-route fold → staged commits (data + checkpoint) → tables.

mod dead_letter;
mod error;
mod lake;
pub mod run;
pub mod sources;
mod tables;

pub use dead_letter::{DeadLetter, DEAD_LETTER_TABLE};
pub use error::PipelineError;
pub use lake::{local_path as lake_local_path, Lake};
pub use run::{run, RunOptions, RunSummary, TableTotals};
pub use tables::{open_route_table, read_checkpoints};
