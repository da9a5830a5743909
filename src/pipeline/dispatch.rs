//! One record through the routes of its source: skipped, folded into each route it fits, or rejected to
//! the dead-letter table with where it came from.

use super::dead_letter::DeadLetter;
use super::state::{DeadLetterState, RouteState, RunSummary, SourceState};
use crate::fold::{project, Projected};
use lakefold_api::{Decoded, SourceRecord};

pub(super) fn dispatch(
    record: &SourceRecord,
    source: &SourceState,
    routes: &mut [RouteState],
    dead: &mut DeadLetterState,
    summary: &mut RunSummary,
) {
    let dl_covers = dead
        .checkpoints
        .get(&source.name)
        .is_some_and(|cp| cp.covers(&record.position));
    let mut reject = |table: Option<String>, error: String| {
        if dl_covers {
            return;
        }
        let location = source.reader.locate(&record.position);
        tracing::warn!(source = %source.name, at = %location, table = table.as_deref().unwrap_or("-"), %error, "dead letter");
        summary.dead_letters += 1;
        let letter = DeadLetter {
            source: source.name.clone(),
            table,
            position: record.position.clone(),
            location,
            raw: record.raw.clone(),
            error,
        };
        dead.pending
            .push(letter.staged(chrono::Utc::now().timestamp_micros()));
    };
    let event = match &record.decoded {
        Decoded::Event(e) => e,
        Decoded::Skipped(_) => {
            summary.skipped += 1;
            return;
        }
        Decoded::Failed(error) => {
            reject(None, error.clone());
            return;
        }
    };
    summary.events += 1;
    for &i in &source.routes {
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
        match project(&mut route.spec, event, &record.position) {
            Ok(Projected::Entry(entry)) => route.fold.add(entry),
            Ok(Projected::Ignored) => {}
            Err(error) => reject(Some(route.spec.table.clone()), error),
        }
    }
}
