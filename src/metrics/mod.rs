//! Metric names (`lakefold_*`, base units, `_total` counters) and the typed events that emit them next to
//! their log lines ([`events`], Vector's `internal_events` style); the Prometheus recorder.
//!
//! Without an installed recorder (no `[metrics]`), the `metrics` macros do nothing.

pub mod events;

use ::metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const SOURCE_RECORDS: &str = "lakefold_source_records_total";
pub const SOURCE_EVENTS: &str = "lakefold_source_events_total";
pub const SOURCE_SKIPPED: &str = "lakefold_source_skipped_total";
pub const DEAD_LETTERS: &str = "lakefold_dead_letters_total";
pub const SOURCE_LAG_BYTES: &str = "lakefold_source_lag_bytes";
pub const SOURCE_LAG_MESSAGES: &str = "lakefold_source_lag_messages";
pub const SOURCE_LAG_SECONDS: &str = "lakefold_source_lag_seconds";
pub const TABLE_ROWS_INSERTED: &str = "lakefold_table_rows_inserted_total";
pub const TABLE_ROWS_UPDATED: &str = "lakefold_table_rows_updated_total";
pub const TABLE_ROWS_DELETED: &str = "lakefold_table_rows_deleted_total";
pub const TABLE_BYTES_WRITTEN: &str = "lakefold_table_bytes_written_total";
pub const TABLE_COMMITS: &str = "lakefold_table_commits_total";
pub const TABLE_COMMIT_DURATION: &str = "lakefold_table_commit_duration_seconds";
pub const TABLE_FRESHNESS: &str = "lakefold_table_freshness_seconds";
pub const TABLE_LAST_COMMIT: &str = "lakefold_table_last_commit_timestamp_seconds";
pub const CATALOG_SYNC_FAILURES: &str = "lakefold_catalog_sync_failures_total";
pub const FOLD_BYTES: &str = "lakefold_fold_bytes";
pub const PROCESS_RSS: &str = "lakefold_process_resident_memory_bytes";
pub const UP: &str = "lakefold_up";
pub const DEGRADED: &str = "lakefold_degraded";
pub const OUTAGE_RETRIES: &str = "lakefold_outage_retries_total";

/// Commit durations: 10 ms to 5 min.
const COMMIT_BUCKETS: [f64; 12] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 300.0,
];

/// Installs the process's Prometheus recorder; the handle renders `GET /metrics`.
pub fn install() -> Result<PrometheusHandle, String> {
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(TABLE_COMMIT_DURATION.to_string()),
            &COMMIT_BUCKETS,
        )
        .map_err(|e| e.to_string())?
        .build_recorder();
    let handle = recorder.handle();
    ::metrics::set_global_recorder(recorder).map_err(|e| e.to_string())?;
    describe();
    ::metrics::gauge!(UP).set(1.0);
    ::metrics::gauge!(DEGRADED).set(0.0);
    ::metrics::counter!(OUTAGE_RETRIES).increment(0);
    Ok(handle)
}

fn describe() {
    describe_counter!(
        SOURCE_RECORDS,
        Unit::Count,
        "Records read from the source (lines, messages, changes), decoded or not."
    );
    describe_counter!(
        SOURCE_EVENTS,
        Unit::Count,
        "Change events among the records read."
    );
    describe_counter!(
        SOURCE_SKIPPED,
        Unit::Count,
        "Records with nothing to do: tombstones, truncates, blank lines."
    );
    describe_counter!(
        DEAD_LETTERS,
        Unit::Count,
        "Records filed in the dead-letter table (undecodable, or not fitting a route)."
    );
    describe_gauge!(
        SOURCE_LAG_BYTES,
        Unit::Bytes,
        "File source: bytes of the file not read yet."
    );
    describe_gauge!(
        SOURCE_LAG_MESSAGES,
        Unit::Count,
        "Kafka source: high watermark minus the position, per partition."
    );
    describe_gauge!(
        SOURCE_LAG_SECONDS,
        Unit::Seconds,
        "SQL Server source: time between the last change read and the newest change."
    );
    describe_counter!(
        TABLE_ROWS_INSERTED,
        Unit::Count,
        "Rows inserted into the table."
    );
    describe_counter!(
        TABLE_ROWS_UPDATED,
        Unit::Count,
        "Rows of the table updated."
    );
    describe_counter!(
        TABLE_ROWS_DELETED,
        Unit::Count,
        "Rows deleted from the table."
    );
    describe_counter!(
        TABLE_BYTES_WRITTEN,
        Unit::Bytes,
        "Bytes of data files written for the table."
    );
    describe_counter!(
        TABLE_COMMITS,
        Unit::Count,
        "Commits of the table (with rows, or its checkpoint alone)."
    );
    describe_histogram!(
        TABLE_COMMIT_DURATION,
        Unit::Seconds,
        "Time to commit the table (write files, publish the instant)."
    );
    describe_gauge!(TABLE_FRESHNESS, Unit::Seconds, "Seconds from the source commit of the newest change in the table's last commit to that commit.");
    describe_gauge!(
        TABLE_LAST_COMMIT,
        Unit::Seconds,
        "Unix time of the table's last commit."
    );
    describe_counter!(
        CATALOG_SYNC_FAILURES,
        Unit::Count,
        "Catalog (Glue) registrations that failed (retried after the next commit)."
    );
    describe_gauge!(
        FOLD_BYTES,
        Unit::Bytes,
        "Bytes the fold holds for the next commit."
    );
    describe_gauge!(PROCESS_RSS, Unit::Bytes, "Resident memory of the process.");
    describe_gauge!(UP, Unit::Count, "1 while the process runs.");
    describe_gauge!(
        DEGRADED,
        Unit::Count,
        "1 while an outage is ridden out (the run is being reopened)."
    );
    describe_counter!(
        OUTAGE_RETRIES,
        Unit::Count,
        "Times the run was reopened after a transient error."
    );
}

/// Process gauges read at scrape time.
pub fn update_process_gauges() {
    if let Some(rss) = resident_bytes() {
        ::metrics::gauge!(PROCESS_RSS).set(rss as f64);
    }
}

/// Resident set size from `/proc/self/statm` (Linux).
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions; _SC_PAGESIZE is always valid.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok()?)
}
