//! Registering committed tables in the catalog. Failures are logged and retried at the next round; they
//! never undo a data commit.

use super::dead_letter::{DeadLetter, DEAD_LETTER_TABLE};
use super::lake::Lake;
use super::state::{DeadLetterState, RouteState};
use crate::catalog::{Catalog, GlueCatalog, TableRegistration};
use crate::config::{CatalogKind, Config};

pub(super) async fn open_catalog(config: &Config) -> Catalog {
    match &config.catalog {
        Some(c) if c.kind == CatalogKind::Glue => {
            Catalog::Glue(Box::new(GlueCatalog::new(c).await))
        }
        _ => Catalog::None,
    }
}

/// Registers every table whose latest commit the catalog has not seen.
pub(super) async fn sync_catalog(catalog: &Catalog, lake: &Lake, routes: &mut [RouteState]) {
    if matches!(catalog, Catalog::None) {
        return;
    }
    for route in routes.iter_mut() {
        let Some((instant, partitions)) = route.sync_pending.clone() else {
            continue;
        };
        let Some(schema) = route.schema.clone() else {
            continue;
        };
        let partition_fields = route.spec.partition_names();
        let reg = TableRegistration {
            table: &route.spec.table,
            location: lake.table_location(&route.spec.table),
            schema: &schema,
            partition_fields: &partition_fields,
            partitions: &partitions,
            instant: &instant,
            format: route.table.format(),
        };
        match catalog.sync(&reg).await {
            Ok(()) => {
                tracing::info!(table = %route.spec.table, %instant, "catalog synced");
                route.sync_pending = None;
            }
            Err(e) => crate::metrics::events::CatalogSyncFailed {
                table: &route.spec.table,
                instant: &instant,
                error: &e.to_string(),
            }
            .emit(),
        }
    }
}

/// Registers the dead-letter table's latest commit, when `[catalog] register_dead_letters` asks for it.
pub(super) async fn sync_dead_letters(catalog: &Catalog, lake: &Lake, dead: &mut DeadLetterState) {
    let Some((instant, _)) = dead.sync_pending.clone() else {
        return;
    };
    let schema = DeadLetter::schema();
    let reg = TableRegistration {
        table: DEAD_LETTER_TABLE,
        location: lake.table_location(DEAD_LETTER_TABLE),
        schema: &schema,
        partition_fields: &[],
        partitions: &[],
        instant: &instant,
        format: dead.table.format(),
    };
    match catalog.sync(&reg).await {
        Ok(()) => {
            tracing::info!(table = DEAD_LETTER_TABLE, %instant, "catalog synced");
            dead.sync_pending = None;
        }
        Err(e) => crate::metrics::events::CatalogSyncFailed {
            table: DEAD_LETTER_TABLE,
            instant: &instant,
            error: &e.to_string(),
        }
        .emit(),
    }
}

/// Whether the dead-letter table is registered too.
pub(super) fn registers_dead_letters(config: &Config) -> bool {
    config
        .catalog
        .as_ref()
        .is_some_and(|c| c.kind == CatalogKind::Glue && c.register_dead_letters)
}

/// At start the catalog catches up with each table's latest commit (a sync that failed last time, or a
/// catalog configured after the fact), even when no new data arrives.
pub(super) async fn catch_up(
    catalog: &Catalog,
    routes: &mut [RouteState],
) -> Result<(), super::PipelineError> {
    if matches!(catalog, Catalog::None) {
        return Ok(());
    }
    for route in routes.iter_mut() {
        if let Some(state) = route.table.catalog_state().await? {
            route.sync_pending = Some((state.version, state.partitions));
        }
    }
    Ok(())
}
