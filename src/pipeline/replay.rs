//! `lakefold replay`: dead letters re-run through the current routes (after a config fix), exactly once.
//!
//! Never beside a daemon: it is refused while a process answers on `[metrics] listen` or holds a live
//! lease on the tables (`lease.rs`), and holds one itself, which a starting daemon waits for.
//!
//! Each letter not yet replayed is decoded again from its raw bytes as its source decodes them, at the
//! position it had (read back from its `_lakefold_position`), and projected into the route that rejected
//! it (or, when it could not be decoded at all, every route of its source). A route's rows are committed
//! with the route's stored checkpoint unchanged; the table keeps whatever version of a key is newest by
//! source position, so a letter older than what the table holds changes nothing. Then the letters are
//! marked (`replayed_at`) or their error is updated. A replay cut short before the marks is run again:
//! its rows carry the same positions, so committing them again changes nothing.

use super::catalog_sync::{open_catalog, registers_dead_letters, sync_catalog, sync_dead_letters};
use super::commit_round::{commit_route, DEAD_LETTER_LAYOUT};
use super::dead_letter::{DeadLetter, DEAD_LETTER_TABLE};
use super::error::PipelineError;
use super::lake::Lake;
use super::lease::{Lease, LeaseInfo};
use super::sources::RecordDecoder;
use super::state::{open_route, DeadLetterState, RouteState};
use super::tables::open_route_table;
use crate::config::{Config, OnDelete};
use crate::fold::{project, Projected};
use crate::schema::POSITION_COLUMN;
use crate::sink::hudi::{HudiError, HudiTable};
use crate::sink::{CommitSummary, TableSink};
use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Int64Type};
use base64::Engine;
use bytes::Bytes;
use lakefold_api::{Decoded, Position};
use std::collections::BTreeMap;
use std::time::Duration;

/// What a replay did.
#[derive(Debug, Default)]
pub struct ReplayReport {
    /// Letters that went through their routes and are now marked.
    pub replayed: usize,
    /// Letters that failed again: id and the new error (stored in the letter).
    pub failed: Vec<(String, String)>,
    /// Letters left as they were: id and why (their source cannot decode them on its own, no route).
    pub left: Vec<(String, String)>,
    /// Letters marked by an earlier replay.
    pub already_replayed: usize,
    /// Per route table: its commit.
    pub tables: BTreeMap<String, CommitSummary>,
    /// What the operator should check.
    pub warnings: Vec<String>,
}

/// One stored dead letter.
struct Stored {
    letter: DeadLetter,
    recorded_at_us: i64,
    replayed: bool,
}

/// What became of one letter.
enum Outcome {
    Replayed,
    Failed(String),
    Left(String),
}

/// Replays the dead letters (of `table` only, when given).
pub async fn replay(config: &Config, table: Option<&str>) -> Result<ReplayReport, PipelineError> {
    if let Some(t) = table {
        if !config.routes.iter().any(|r| r.table == t) {
            return Err(PipelineError::UnknownTable(t.to_string()));
        }
    }
    refuse_if_a_daemon_answers(config).await?;
    let lake = Lake::open(config).await?;
    if HudiTable::open(
        lake.store.clone(),
        lake.table_path(DEAD_LETTER_TABLE),
        DEAD_LETTER_TABLE,
    )
    .await?
    .is_none()
    {
        return Ok(ReplayReport::default());
    }
    let mut tables: Vec<String> = config.routes.iter().map(|r| r.table.clone()).collect();
    tables.push(DEAD_LETTER_TABLE.into());
    let lease = Lease::take(&lake, LeaseInfo::of_this_process("replay", None, tables)).await?;
    let result = match holders(&lease).await {
        Ok(()) => replay_leased(config, &lake, &lease, table).await,
        Err(e) => Err(e),
    };
    lease.release().await;
    result
}

/// Refuses when another process holds a live lease on these tables.
async fn holders(lease: &Lease) -> Result<(), PipelineError> {
    let others = lease.others().await?;
    if others.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = others
        .iter()
        .map(|h| format!("{}, seen {} s ago", h.info.describe(), h.age.as_secs()))
        .collect();
    Err(PipelineError::Busy {
        message: format!(
            "refusing to replay: another lakefold writes these tables ({}); stop it first, replay, then start it again",
            list.join("; ")
        ),
    })
}

/// Refuses when something answers on `[metrics] listen`: the daemon of this config runs.
async fn refuse_if_a_daemon_answers(config: &Config) -> Result<(), PipelineError> {
    let Some(m) = &config.metrics else {
        return Ok(());
    };
    let connect = tokio::net::TcpStream::connect(m.listen.as_str());
    if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(1), connect).await {
        return Err(PipelineError::Busy {
            message: format!(
                "refusing to replay: a lakefold daemon answers on {} ([metrics] listen) and owns these tables; stop it first, replay, then start it again",
                m.listen
            ),
        });
    }
    Ok(())
}

async fn replay_leased(
    config: &Config,
    lake: &Lake,
    lease: &Lease,
    table: Option<&str>,
) -> Result<ReplayReport, PipelineError> {
    let mut dl = open_route_table(lake, DEAD_LETTER_TABLE, &DeadLetter::key_fields(), &[]).await?;
    let stored = read_letters(&dl.snapshot().await?)?;
    let mut report = ReplayReport::default();
    let mut routes: Vec<RouteState> = Vec::new();
    for r in &config.routes {
        routes.push(open_route(lake, r).await?);
    }
    let mut decoders: BTreeMap<String, RecordDecoder> = BTreeMap::new();
    let mut outcomes: Vec<(&Stored, Outcome)> = Vec::new();
    for s in &stored {
        if s.replayed {
            report.already_replayed += 1;
            continue;
        }
        if table.is_some_and(|t| s.letter.table.as_deref() != Some(t)) {
            continue;
        }
        let outcome = replay_one(config, &s.letter, &mut routes, &mut decoders).await?;
        outcomes.push((s, outcome));
    }
    if !lease.is_fresh() {
        return Err(PipelineError::Busy {
            message: "the replay's lease could not be kept fresh (object store trouble); nothing was committed: replay again".into(),
        });
    }
    for route in routes.iter_mut().filter(|r| !r.fold.is_empty()) {
        let Some(cp) = route.checkpoint.clone() else {
            continue;
        };
        let summary = commit_route(route, &cp).await?;
        if route.spec.on_delete == OnDelete::Delete && summary.inserts > 0 {
            // A hard delete leaves no trace: a key deleted after its letter cannot be told from one
            // that never reached the table.
            report.warnings.push(format!(
                "{}: {} replayed keys were not in the table; any of them deleted at the source after its dead letter is back (on_delete = \"delete\" keeps no trace of deletes; \"soft\" does)",
                route.spec.table, summary.inserts
            ));
        }
        report.tables.insert(route.spec.table.clone(), summary);
    }
    sync_catalog(&open_catalog(config).await, lake, &mut routes).await;
    mark(config, lake, dl, &outcomes).await?;
    for (s, outcome) in outcomes {
        match outcome {
            Outcome::Replayed => report.replayed += 1,
            Outcome::Failed(e) => report.failed.push((s.letter.id(), e)),
            Outcome::Left(why) => report.left.push((s.letter.id(), why)),
        }
    }
    Ok(report)
}

/// Decodes one letter again and folds it into its routes.
async fn replay_one(
    config: &Config,
    letter: &DeadLetter,
    routes: &mut [RouteState],
    decoders: &mut BTreeMap<String, RecordDecoder>,
) -> Result<Outcome, PipelineError> {
    let Some(source) = config.sources.get(&letter.source) else {
        return Ok(Outcome::Left(format!(
            "its source `{}` is not configured any more",
            letter.source
        )));
    };
    if !decoders.contains_key(&letter.source) {
        let d = RecordDecoder::for_source(&letter.source, source)?;
        decoders.insert(letter.source.clone(), d);
    }
    let Some(decoder) = decoders.get_mut(&letter.source) else {
        return Ok(Outcome::Left("no decoder".into()));
    };
    if let RecordDecoder::NotReplayable(why) = decoder {
        return Ok(Outcome::Left(why.clone()));
    }
    let decoding = decoder.decode(&letter.source, &letter.raw).await?;
    let event = match decoding.decoded {
        Decoded::Event(e) => e,
        Decoded::Skipped(_) => return Ok(Outcome::Replayed),
        Decoded::Failed(e) => return Ok(Outcome::Failed(e)),
    };
    // A letter that could not be decoded was stored without the LSN its decoding now gives.
    let position = Position {
        lsn: letter.position.lsn.or(decoding.lsn),
        stream: letter.position.stream.clone(),
    };
    let targets: Vec<usize> = routes
        .iter()
        .enumerate()
        .filter(|(_, r)| r.spec.source == letter.source)
        .filter(|(_, r)| letter.table.as_ref().is_none_or(|t| &r.spec.table == t))
        .map(|(i, _)| i)
        .collect();
    if targets.is_empty() {
        return Ok(Outcome::Left(match &letter.table {
            Some(t) => format!("no route writes `{t}` any more"),
            None => format!("no route reads `{}` any more", letter.source),
        }));
    }
    if let Some(r) = targets
        .iter()
        .map(|&i| &routes[i])
        .find(|r| r.checkpoint.is_none())
    {
        return Ok(Outcome::Left(format!(
            "`{}` has no commit yet: run lakefold first",
            r.spec.table
        )));
    }
    // Into every target or none: a letter is marked only when all of its routes took it.
    let mut entries = Vec::new();
    for i in targets {
        let route = &mut routes[i];
        if event
            .table
            .as_ref()
            .is_some_and(|t| !route.spec.from.matches(t))
        {
            continue;
        }
        match project(&mut route.spec, &event, &position) {
            Ok(Projected::Entry(entry)) => entries.push((i, entry)),
            Ok(Projected::Ignored) => {}
            Err(e) => return Ok(Outcome::Failed(e)),
        }
    }
    for (i, entry) in entries {
        routes[i].fold.add(entry);
    }
    Ok(Outcome::Replayed)
}

/// Marks the replayed letters and stores the new error of those that failed again, in one commit of
/// the dead-letter table (its source checkpoints unchanged).
async fn mark(
    config: &Config,
    lake: &Lake,
    dl: HudiTable,
    outcomes: &[(&Stored, Outcome)],
) -> Result<(), PipelineError> {
    let now = chrono::Utc::now().timestamp_micros();
    let mut rows = Vec::new();
    for (s, outcome) in outcomes {
        match outcome {
            Outcome::Replayed => rows.push(s.letter.row(s.recorded_at_us, Some(now))),
            Outcome::Failed(e) if *e != s.letter.error => {
                let mut again = s.letter.clone();
                again.error = e.clone();
                rows.push(again.row(s.recorded_at_us, None));
            }
            Outcome::Failed(_) | Outcome::Left(_) => {}
        }
    }
    if rows.is_empty() {
        return Ok(());
    }
    rows.sort_by(|a, b| a.record_key.cmp(&b.record_key));
    let mut dead = DeadLetterState {
        checkpoints: dl.checkpoints().await?,
        table: Box::new(dl),
        pending: Vec::new(),
        sync_pending: None,
    };
    let result = dead
        .table
        .commit(
            &DeadLetter::schema(),
            rows,
            DEAD_LETTER_LAYOUT,
            &dead.checkpoints,
        )
        .await?;
    if let (Some(instant), true) = (result.instant, registers_dead_letters(config)) {
        dead.sync_pending = Some((instant, Vec::new()));
        sync_dead_letters(&open_catalog(config).await, lake, &mut dead).await;
    }
    Ok(())
}

/// The stored letters, as they were written. Files written before a column was added lack it (each
/// batch is read by column name).
fn read_letters(batches: &[RecordBatch]) -> Result<Vec<Stored>, PipelineError> {
    let mut out = Vec::new();
    for batch in batches {
        letters_of(batch, &mut out)?;
    }
    out.sort_by(|a, b| a.letter.position.cmp(&b.letter.position));
    Ok(out)
}

/// Column `name` cast to `ty`, row by row (all null when the batch's file predates the column).
fn column<T>(
    batch: &RecordBatch,
    name: &str,
    ty: &DataType,
    at: impl Fn(&dyn Array, usize) -> T,
) -> Result<Vec<Option<T>>, arrow::error::ArrowError> {
    let Some(col) = batch.column_by_name(name) else {
        return Ok((0..batch.num_rows()).map(|_| None).collect());
    };
    let col = cast(col, ty)?;
    Ok((0..col.len())
        .map(|i| col.is_valid(i).then(|| at(col.as_ref(), i)))
        .collect())
}

fn letters_of(batch: &RecordBatch, out: &mut Vec<Stored>) -> Result<(), PipelineError> {
    let err = |message: String| {
        PipelineError::Sink(HudiError::Data {
            table: DEAD_LETTER_TABLE.into(),
            message,
        })
    };
    let text = |name: &str| {
        column(batch, name, &DataType::Utf8, |a, i| {
            a.as_string::<i32>().value(i).to_string()
        })
        .map_err(|e| err(e.to_string()))
    };
    let micros = |name: &str| {
        column(batch, name, &DataType::Int64, |a, i| {
            a.as_primitive::<Int64Type>().value(i)
        })
        .map_err(|e| err(e.to_string()))
    };
    let (source, table, location) = (text("source")?, text("table_name")?, text("location")?);
    let (error, raw, position) = (text("error")?, text("raw_base64")?, text(POSITION_COLUMN)?);
    let (recorded, replayed) = (micros("recorded_at")?, micros("replayed_at")?);
    for i in 0..batch.num_rows() {
        let key = position[i].clone().unwrap_or_default();
        let Some(pos) = Position::from_order_key(&key) else {
            return Err(err(format!(
                "row {i}: `{POSITION_COLUMN}` `{key}` is not a position"
            )));
        };
        let raw_bytes = base64::engine::general_purpose::STANDARD
            .decode(raw[i].as_deref().unwrap_or(""))
            .map_err(|e| err(format!("row {i}: raw_base64: {e}")))?;
        out.push(Stored {
            letter: DeadLetter {
                source: source[i].clone().unwrap_or_default(),
                table: table[i].clone(),
                position: pos,
                location: location[i].clone().unwrap_or_default(),
                raw: Bytes::from(raw_bytes),
                error: error[i].clone().unwrap_or_default(),
            },
            recorded_at_us: recorded[i].unwrap_or_default(),
            replayed: replayed[i].is_some(),
        });
    }
    Ok(())
}
