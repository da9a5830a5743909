//! lakefold: Debezium / SQL Server change events folded per key into Apache Hudi (and Delta) tables.

pub mod catalog;
pub mod cli;
pub mod config;
pub mod fold;
pub mod metrics;
pub mod pipeline;
pub mod schema;
pub mod service;
pub mod sink;
pub mod storage;
