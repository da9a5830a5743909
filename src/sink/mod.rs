//! Table sinks. Hudi (table version 6, copy-on-write) is the default format.

pub mod hudi;
