//! SQL Server CDC read directly (no Debezium, no Kafka): [`SqlServerSource`] asks a [`CdcDatabase`] —
//! SQL Server over TDS ([`tds::TdsCdc`], tiberius) or a recorded [`history::History`] in memory — for
//! bounded LSN windows of every capture instance and merges them into log order, positions numbered as
//! Debezium numbers them. [`fixture`] is a TDS server over a history file for tests.

pub mod cdc;
pub mod fixture;
pub mod history;
pub mod rows;
pub mod source;
pub mod sql_type;
pub mod statements;
pub mod tds;
pub mod tds_values;

pub use cdc::{CdcDatabase, CdcError, MemoryCdc};
pub use source::{CdcOptions, GapPolicy, SnapshotMode, SqlServerSource};
