//! The records of a batch through the routes of their source: skipped, folded into each route they fit,
//! or rejected. Rejections are returned rather than written, so a batch can be folded while the source
//! reads the next one (`run.rs`); [`dead_letters`] then files them with where they came from.

use super::dead_letter::DeadLetter;
use super::state::{DeadLetterState, RouteState, RunSummary, SourceState};
use crate::metrics::events::{BatchRead, DeadLettered};
use crate::sink::SourceCheckpoints;
use lakefold_api::{Decoded, SourceRecord};

/// A record that could not be decoded (`table` None) or does not fit a route.
pub(super) struct Reject<'a> {
    record: &'a SourceRecord,
    table: Option<String>,
    error: String,
}

/// Folds `records` (of the source `source`, read by `source_routes`) into the routes.
pub(super) fn dispatch<'a>(
    records: &'a [SourceRecord],
    source: &str,
    source_routes: &[usize],
    routes: &mut [RouteState],
    dead: &SourceCheckpoints,
    summary: &mut RunSummary,
) -> Vec<Reject<'a>> {
    let mut rejects = Vec::new();
    let before = (summary.records, summary.events, summary.skipped);
    for record in records {
        summary.records += 1;
        let dl_covers = dead
            .get(source)
            .is_some_and(|cp| cp.covers(&record.position));
        let mut reject = |table: Option<String>, error: String| {
            if !dl_covers {
                rejects.push(Reject {
                    record,
                    table,
                    error,
                });
            }
        };
        let event = match &record.decoded {
            Decoded::Event(e) => e,
            Decoded::Skipped(_) => {
                summary.skipped += 1;
                continue;
            }
            Decoded::Failed(error) => {
                reject(None, error.clone());
                continue;
            }
        };
        summary.events += 1;
        for &i in source_routes {
            let route = &mut routes[i];
            if route
                .checkpoint
                .as_ref()
                .is_some_and(|cp| cp.covers(&record.position))
            {
                continue;
            }
            if event
                .table
                .as_ref()
                .is_some_and(|t| !route.spec.from.matches(t))
            {
                continue;
            }
            match route
                .fold
                .fold_event(&mut route.spec, event, &record.position)
            {
                Ok(true) => {
                    if let Some(ts) = event.source_ts_ms {
                        route.newest_change_ms =
                            Some(route.newest_change_ms.map_or(ts, |t| t.max(ts)));
                    }
                }
                Ok(false) => {}
                Err(error) => reject(Some(route.spec.table.clone()), error),
            }
        }
    }
    BatchRead {
        source,
        records: summary.records - before.0,
        events: summary.events - before.1,
        skipped: summary.skipped - before.2,
    }
    .emit();
    rejects
}

/// Files rejected records in the dead-letter table's pending rows, with their source location.
pub(super) fn dead_letters(
    rejects: Vec<Reject<'_>>,
    source: &SourceState,
    dead: &mut DeadLetterState,
    summary: &mut RunSummary,
) {
    for r in rejects {
        let location = source.reader.locate(&r.record.position);
        DeadLettered {
            source: &source.name,
            table: r.table.as_deref(),
            location: &location,
            error: &r.error,
        }
        .emit();
        summary.dead_letters += 1;
        let letter = DeadLetter {
            source: source.name.clone(),
            table: r.table,
            position: r.record.position.clone(),
            location,
            raw: r.record.raw.clone(),
            error: r.error,
        };
        dead.pending
            .push(letter.staged(chrono::Utc::now().timestamp_micros()));
    }
}
