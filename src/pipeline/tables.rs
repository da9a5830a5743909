//! Opening route tables (the one place that knows the table format) and reading their checkpoints.

use super::error::PipelineError;
use super::lake::Lake;
use crate::config::{LakeFormat, RouteConfig};
use crate::schema::POSITION_COLUMN;
use crate::sink::delta::DeltaSinkTable;
use crate::sink::hudi::{HudiError, HudiTable};
use crate::sink::{SourceCheckpoints, TableSink};

/// Opens a route's table in its format (the route's `format`, else the lake's).
pub async fn open_route_sink(
    lake: &Lake,
    route: &RouteConfig,
    key: &[String],
    partition_by: &[String],
) -> Result<Box<dyn TableSink>, PipelineError> {
    Ok(match route.format.unwrap_or(lake.format) {
        LakeFormat::Hudi => {
            Box::new(open_route_table(lake, &route.table, key, partition_by).await?)
        }
        LakeFormat::Delta => {
            let table = DeltaSinkTable::open(lake, &route.table, key, partition_by)
                .await
                .map_err(crate::sink::SinkError::from)?;
            Box::new(table)
        }
    })
}

/// Opens `table`, creating it with these key and partition fields when it does not exist, and rolls back
/// any write that never completed.
pub async fn open_route_table(
    lake: &Lake,
    table: &str,
    key: &[String],
    partition_by: &[String],
) -> Result<HudiTable, PipelineError> {
    let base = lake.table_path(table);
    let mut t = match HudiTable::open(lake.store.clone(), base.clone(), table).await? {
        Some(t) => t,
        None => match HudiTable::create(
            lake.store.clone(),
            base.clone(),
            table,
            &lake.database,
            key,
            POSITION_COLUMN,
            partition_by,
        )
        .await
        {
            Ok(t) => t,
            // Another process created it a moment ago: use theirs.
            Err(HudiError::AlreadyExists { .. }) => {
                HudiTable::open(lake.store.clone(), base.clone(), table)
                    .await?
                    .ok_or_else(|| HudiError::NotFound {
                        table: table.to_string(),
                        path: base.to_string(),
                    })?
            }
            Err(e) => return Err(e.into()),
        },
    };
    t.set_location(&lake.table_uri(table));
    t.rollback_pending().await?;
    Ok(t)
}

/// The source checkpoints (by source name) of the newest commit that carries them.
pub async fn read_checkpoints(table: &dyn TableSink) -> Result<SourceCheckpoints, PipelineError> {
    Ok(table.checkpoints().await?)
}
