//! Table sinks: the [`TableSink`] trait every table format implements, the neutral row and change types
//! the fold produces, and the table services a sink runs after its commits. Hudi (table version 6,
//! copy-on-write) is the default format.

pub mod hudi;
mod row;
mod table_sink;

pub use row::{CommitSummary, RowChange, StagedRow, TableLayout};
pub use table_sink::{
    CatalogState, ServiceReport, SinkError, SourceCheckpoints, TableServicePolicy, TableSink,
};
