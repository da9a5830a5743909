//! Table sinks: the [`TableSink`] trait every table format implements, the neutral row and change types
//! the fold produces, and the table services a sink runs after its commits. Hudi (table version 6,
//! copy-on-write) is the default format; Delta
//! Lake the second.

pub mod delta;
pub mod hudi;
mod row;
mod table_sink;

pub use row::{CommitSummary, RowChange, StagedRow, TableLayout};
/// Crash tests: `LAKEFOLD_FAILPOINT=<table>:<point>` makes the process abort at that point of that table's
/// next commit, like a `kill -9` there. Hudi: `after-data` (files and `.inflight` written, nothing
/// decided), `after-fate` (commit decided, `.commit` not yet published); Delta: `after-data` (data files
/// written, no log entry). Unset in production.
pub(crate) fn failpoint(table: &str, point: &str) {
    static TARGET: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let target = TARGET.get_or_init(|| std::env::var("LAKEFOLD_FAILPOINT").ok());
    if target.as_deref() == Some(format!("{table}:{point}").as_str()) {
        eprintln!("lakefold: failpoint {table}:{point} reached, aborting");
        std::process::abort();
    }
}

pub use table_sink::{
    CatalogState, ServiceReport, SinkError, SourceCheckpoints, TableServicePolicy, TableSink,
};
