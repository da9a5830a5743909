//! Opening route tables and reading the checkpoints stored in their last commit.

use super::error::PipelineError;
use super::lake::Lake;
use crate::schema::POSITION_COLUMN;
use crate::sink::hudi::{HudiError, HudiTable, CHECKPOINT_KEY};
use lakefold_api::Checkpoint;
use std::collections::BTreeMap;

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
    t.rollback_pending().await?;
    Ok(t)
}

/// The source checkpoints (by source name) of the table's last completed commit.
pub async fn read_checkpoints(
    table: &HudiTable,
) -> Result<BTreeMap<String, Checkpoint>, PipelineError> {
    let Some((_, meta)) = table.last_commit().await? else {
        return Ok(BTreeMap::new());
    };
    match meta.extra_metadata.get(CHECKPOINT_KEY) {
        None => Ok(BTreeMap::new()),
        Some(text) => serde_json::from_str(text).map_err(|e| PipelineError::Checkpoint {
            table: table.name().to_string(),
            message: format!("{e}: {text}"),
        }),
    }
}
