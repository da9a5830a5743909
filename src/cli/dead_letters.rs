//! `lakefold dead-letters list|show`: what the dead-letter table holds, for an operator deciding what to
//! fix (the error, where the record was) and what the record was (its raw bytes).

use super::output;
use crate::config::Config;
use crate::pipeline::{Lake, PipelineError, DEAD_LETTER_TABLE};
use crate::sink::hudi::{HudiError, HudiTable};
use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use base64::Engine;

/// One dead letter, as text.
struct Letter {
    fields: Vec<(String, String)>,
}

impl Letter {
    fn get(&self, name: &str) -> &str {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }
}

/// Lists the dead letters, oldest first: id, source, route table, where, error.
pub async fn list(config: &Config, table: Option<&str>, limit: usize) -> Result<(), PipelineError> {
    let letters = read(config).await?;
    let mut rows = vec![[
        "id",
        "recorded at",
        "source",
        "table",
        "location",
        "replayed at",
        "error",
    ]
    .map(String::from)
    .to_vec()];
    let chosen: Vec<&Letter> = letters
        .iter()
        .filter(|l| table.is_none_or(|t| l.get("table_name") == t))
        .collect();
    for l in chosen.iter().take(limit) {
        let error: String = l.get("error").chars().take(80).collect();
        rows.push(vec![
            l.get("id").to_string(),
            l.get("recorded_at").to_string(),
            l.get("source").to_string(),
            match l.get("table_name") {
                "" => "(undecodable)".to_string(),
                t => t.to_string(),
            },
            l.get("location").to_string(),
            match l.get("replayed_at") {
                "" => "-".to_string(),
                t => t.to_string(),
            },
            error,
        ]);
    }
    println!("{}", output::table(&rows).trim_end());
    println!(
        "({} of {} dead letters{})",
        chosen.len().min(limit),
        chosen.len(),
        table.map(|t| format!(" of table {t}")).unwrap_or_default()
    );
    Ok(())
}

/// `lakefold replay`: replays, then says what became of the letters.
pub async fn replay(config: &Config, table: Option<&str>) -> Result<(), PipelineError> {
    let report = crate::pipeline::replay(config, table).await?;
    let attempted = report.replayed + report.failed.len() + report.left.len();
    println!(
        "replayed {} of {attempted} dead letters{}",
        report.replayed,
        table.map(|t| format!(" of table {t}")).unwrap_or_default()
    );
    for (t, s) in &report.tables {
        println!(
            "  {t}: {} inserted, {} updated, {} deleted, {} older than the table's rows (unchanged){}",
            s.inserts,
            s.updates,
            s.deletes,
            s.stale,
            s.instant
                .as_deref()
                .map(|i| format!(", commit {i}"))
                .unwrap_or_default()
        );
    }
    for w in &report.warnings {
        println!("warning: {w}");
    }
    for (id, e) in &report.failed {
        println!("failed again: {id}: {e}");
    }
    for (id, why) in &report.left {
        println!("left as it was: {id}: {why}");
    }
    if report.already_replayed > 0 {
        println!("({} replayed earlier)", report.already_replayed);
    }
    Ok(())
}

/// Prints one dead letter with every field and its raw record.
pub async fn show(config: &Config, id: &str) -> Result<(), PipelineError> {
    let letters = read(config).await?;
    let Some(l) = letters.iter().find(|l| l.get("id") == id) else {
        return Err(PipelineError::Sink(HudiError::Data {
            table: DEAD_LETTER_TABLE.into(),
            message: format!(
                "no dead letter with id `{id}` (lakefold dead-letters list shows them)"
            ),
        }));
    };
    for (k, v) in &l.fields {
        if k != "raw_base64" && !k.starts_with('_') && !v.is_empty() {
            println!("{k}: {v}");
        }
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(l.get("raw_base64"))
        .unwrap_or_default();
    println!(
        "raw ({} bytes):\n{}",
        raw.len(),
        String::from_utf8_lossy(&raw)
    );
    Ok(())
}

async fn read(config: &Config) -> Result<Vec<Letter>, PipelineError> {
    let lake = Lake::open(config).await?;
    let Some(mut t) = HudiTable::open(
        lake.store.clone(),
        lake.table_path(DEAD_LETTER_TABLE),
        DEAD_LETTER_TABLE,
    )
    .await?
    else {
        return Ok(Vec::new());
    };
    let batches = t.snapshot().await?;
    let mut letters = as_letters(&batches)?;
    letters.sort_by(|a, b| {
        (a.get("recorded_at"), a.get("id")).cmp(&(b.get("recorded_at"), b.get("id")))
    });
    Ok(letters)
}

/// The letters of every batch, each read by column name (files written before a column was added lack
/// it).
fn as_letters(batches: &[RecordBatch]) -> Result<Vec<Letter>, PipelineError> {
    let err = |e: arrow::error::ArrowError| {
        PipelineError::Sink(HudiError::Data {
            table: DEAD_LETTER_TABLE.into(),
            message: e.to_string(),
        })
    };
    let mut letters = Vec::new();
    for batch in batches {
        let schema = batch.schema();
        let mut columns = Vec::new();
        for (i, f) in schema.fields().iter().enumerate() {
            columns.push((
                f.name().clone(),
                cast(batch.column(i), &DataType::Utf8).map_err(err)?,
            ));
        }
        letters.extend((0..batch.num_rows()).map(|row| {
            Letter {
                fields: columns
                    .iter()
                    .map(|(name, col)| {
                        let text = col.as_string::<i32>();
                        let v = if text.is_valid(row) {
                            text.value(row)
                        } else {
                            ""
                        };
                        (name.clone(), v.to_string())
                    })
                    .collect(),
            }
        }));
    }
    Ok(letters)
}
