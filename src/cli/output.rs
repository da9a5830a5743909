//! Text output of `show`, `history` and the run summary.

use crate::pipeline::{PipelineError, RunSummary};
use crate::schema::POSITION_COLUMN;
use crate::sink::hudi::{Action, CommitMetadata, HudiError, Instant, CHECKPOINT_KEY};
use arrow::array::{Array, AsArray, BooleanArray, RecordBatch};
use arrow::compute::{
    cast, concat_batches, filter_record_batch, lexsort_to_indices, take_record_batch, SortColumn,
};
use arrow::datatypes::DataType;
use lakefold_api::Checkpoint;
use std::collections::BTreeMap;
use std::fmt::Write as _;

fn arrow_error(table: &str, context: &str) -> impl Fn(arrow::error::ArrowError) -> PipelineError {
    let (table, context) = (table.to_string(), context.to_string());
    move |source| {
        PipelineError::Sink(HudiError::Arrow {
            table: table.clone(),
            context: context.clone(),
            source,
        })
    }
}

/// The rows of a snapshot as a text table, sorted by the record key columns.
pub fn rows(
    table: &str,
    batches: Vec<RecordBatch>,
    keys: &[String],
    filters: &[String],
    limit: usize,
    meta: bool,
) -> Result<String, PipelineError> {
    let Some(first) = batches.first() else {
        return Ok(format!("(table `{table}` has no rows)"));
    };
    let schema = first.schema();
    let mut all = concat_batches(&schema, &batches).map_err(arrow_error(table, "reading rows"))?;
    for f in filters {
        let Some((col, val)) = f.split_once('=') else {
            return Err(PipelineError::Sink(HudiError::Data {
                table: table.into(),
                message: format!("--where `{f}`: expected COL=VAL"),
            }));
        };
        let Some(column) = all.column_by_name(col) else {
            return Err(PipelineError::Sink(HudiError::Data {
                table: table.into(),
                message: format!("--where: no column `{col}`"),
            }));
        };
        let text = cast(column, &DataType::Utf8).map_err(arrow_error(table, "filtering"))?;
        let text = text.as_string::<i32>();
        let mask: BooleanArray = (0..text.len())
            .map(|i| Some(text.is_valid(i) && text.value(i) == val))
            .collect();
        all = filter_record_batch(&all, &mask).map_err(arrow_error(table, "filtering"))?;
    }
    let sort: Vec<SortColumn> = keys
        .iter()
        .filter_map(|k| {
            all.column_by_name(k).map(|c| SortColumn {
                values: c.clone(),
                options: None,
            })
        })
        .collect();
    if !sort.is_empty() && all.num_rows() > 0 {
        let idx = lexsort_to_indices(&sort, None).map_err(arrow_error(table, "sorting"))?;
        all = take_record_batch(&all, &idx).map_err(arrow_error(table, "sorting"))?;
    }
    let total = all.num_rows();
    let shown = all.slice(0, limit.min(total));
    let keep: Vec<usize> = shown
        .schema()
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| meta || !(f.name().starts_with("_hoodie_") || f.name() == POSITION_COLUMN))
        .map(|(i, _)| i)
        .collect();
    let shown = shown
        .project(&keep)
        .map_err(arrow_error(table, "projecting"))?;
    let mut out = arrow::util::pretty::pretty_format_batches(&[shown])
        .map_err(arrow_error(table, "formatting"))?
        .to_string();
    let _ = write!(
        out,
        "\n{} of {total} row{}",
        limit.min(total),
        if total == 1 { "" } else { "s" }
    );
    Ok(out)
}

/// The commits of a table as a text table.
pub fn history(entries: &[(Instant, Action, CommitMetadata)]) -> String {
    let mut rows = vec![[
        "instant",
        "action",
        "operation",
        "inserted",
        "updated",
        "deleted",
        "files",
        "checkpoint",
    ]
    .map(String::from)
    .to_vec()];
    for (instant, action, meta) in entries {
        let (ins, upd, del) = meta.stats().fold((0, 0, 0), |(i, u, d), s| {
            (
                i + s.num_inserts,
                u + s.num_update_writes,
                d + s.num_deletes,
            )
        });
        let checkpoint = checkpoints(meta);
        let action = match action {
            Action::Commit => "commit",
            Action::ReplaceCommit => "replacecommit",
            Action::DeltaCommit => "deltacommit",
            _ => "other",
        };
        rows.push(vec![
            instant.to_string(),
            action.into(),
            meta.operation_type.clone(),
            ins.to_string(),
            upd.to_string(),
            del.to_string(),
            meta.stats().count().to_string(),
            checkpoint,
        ]);
    }
    table(&rows)
}

/// The commits of a Delta table as a text table.
pub fn delta_history(entries: &[crate::sink::delta::DeltaCommit]) -> String {
    let mut rows = vec![[
        "version",
        "time",
        "operation",
        "inserted",
        "updated",
        "deleted",
        "files",
        "checkpoint",
    ]
    .map(String::from)
    .to_vec()];
    for e in entries {
        let count = |i: usize| e.counts.map_or("-".to_string(), |c| c[i].to_string());
        let time = epoch_ms_text(e.timestamp);
        let checkpoint = e
            .checkpoint
            .as_deref()
            .and_then(|t| serde_json::from_str::<BTreeMap<String, Checkpoint>>(t).ok())
            .map_or("-".to_string(), |m| describe(&m));
        rows.push(vec![
            e.version.to_string(),
            time,
            e.operation.clone(),
            count(0),
            count(1),
            count(2),
            count(3),
            checkpoint,
        ]);
    }
    table(&rows)
}

/// A time in ms since the epoch as `2026-12-03T12:15:01.234Z`, or `-`.
pub fn epoch_ms_text(ms: Option<i64>) -> String {
    ms.and_then(chrono::DateTime::from_timestamp_millis)
        .map_or("-".to_string(), |t| {
            t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
        })
}

/// Source checkpoints for people: `erp: sales.jsonl line 1200; …`.
pub fn describe(checkpoints: &BTreeMap<String, Checkpoint>) -> String {
    checkpoints
        .iter()
        .map(|(s, c)| format!("{s}: {}", c.describe()))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The source checkpoints a commit stores, for people (`erp: sales.jsonl line 1200`), or `-`.
pub fn checkpoints(meta: &CommitMetadata) -> String {
    meta.extra_metadata
        .get(CHECKPOINT_KEY)
        .and_then(|t| serde_json::from_str::<BTreeMap<String, Checkpoint>>(t).ok())
        .map(|m| describe(&m))
        .unwrap_or_else(|| "-".into())
}

/// Rows as aligned columns, the first row a header.
pub fn table(rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for (i, r) in rows.iter().enumerate() {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(v, w)| format!("{v:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
        if i == 0 {
            let _ = writeln!(
                out,
                "{}",
                widths
                    .iter()
                    .map(|w| "-".repeat(*w))
                    .collect::<Vec<_>>()
                    .join("  ")
            );
        }
    }
    out.trim_end().to_string()
}

/// The object-store requests of the run, by kind (`object store: 57 requests (put 20, get 12, ...)`).
pub fn store_requests(counts: &[(crate::storage::counting::Request, u64)]) -> String {
    let total: u64 = counts.iter().map(|(_, n)| n).sum();
    let parts: Vec<String> = counts
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| format!("{} {n}", k.name()))
        .collect();
    format!("object store: {total} requests ({})", parts.join(", "))
}

/// The summary printed at the end of `run`.
pub fn run_summary(s: &RunSummary) -> String {
    let mut out = format!(
        "run summary: {} records read, {} change events, {} skipped (tombstones, truncates, blank lines), {} dead letters",
        s.records, s.events, s.skipped, s.dead_letters
    );
    for (table, t) in &s.tables {
        let _ = write!(
            out,
            "\n  {table}: {} commit{}, {} inserted, {} updated, {} deleted{}",
            t.commits,
            if t.commits == 1 { "" } else { "s" },
            t.inserts,
            t.updates,
            t.deletes,
            if t.stale > 0 {
                format!(", {} older than the table (ignored)", t.stale)
            } else {
                String::new()
            }
        );
    }
    out
}
