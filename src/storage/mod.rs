//! Object-store plumbing shared by the sinks.

pub mod counting;
pub mod parquet_read;
