//! The Hudi table as a [`TableSink`]: the source checkpoints travel in each commit's `extraMetadata`
//! (`lakefold.checkpoint`, plus HoodieStreamer's `deltastreamer.checkpoint.key` for one Kafka topic), and
//! the table services are Hudi's cleaner and archival plus lakefold's own bookkeeping.

use super::commit_metadata::CHECKPOINT_KEY;
use super::error::HudiError;
use super::table::HudiTable;
use crate::schema::TableSchema;
use crate::sink::{
    CatalogState, CommitSummary, ServiceReport, SinkError, SourceCheckpoints, StagedRow,
    TableLayout, TableServicePolicy, TableSink,
};
use lakefold_api::Checkpoint;
use std::collections::BTreeMap;

/// HoodieStreamer's checkpoint key (`topic,partition:offset,...`).
pub const STREAMER_CHECKPOINT_KEY: &str = "deltastreamer.checkpoint.key";

/// The `extraMetadata` entries that carry `checkpoints`.
pub fn checkpoint_metadata(checkpoints: &SourceCheckpoints) -> BTreeMap<String, String> {
    let json = serde_json::to_string(checkpoints).unwrap_or_default();
    let mut extra = BTreeMap::from([(CHECKPOINT_KEY.to_string(), json)]);
    if let [Checkpoint::DebeziumKafka(k)] = checkpoints.values().collect::<Vec<_>>()[..] {
        if k.offsets.len() == 1 {
            if let Some(text) = k.offsets.keys().next().and_then(|t| k.streamer_text(t)) {
                extra.insert(STREAMER_CHECKPOINT_KEY.to_string(), text);
            }
        }
    }
    extra
}

impl HudiTable {
    /// The checkpoints of the newest commit that carries lakefold's checkpoint.
    pub async fn stored_checkpoints(&self) -> Result<SourceCheckpoints, HudiError> {
        let Some((instant, text)) = self.latest_with(CHECKPOINT_KEY).await? else {
            return Ok(SourceCheckpoints::new());
        };
        serde_json::from_str(&text).map_err(|e| {
            self.data_error(format!(
                "commit {instant} holds an unreadable checkpoint: {e}: {text}"
            ))
        })
    }
}

#[async_trait::async_trait]
impl TableSink for HudiTable {
    fn name(&self) -> &str {
        HudiTable::name(self)
    }

    fn format(&self) -> crate::config::LakeFormat {
        crate::config::LakeFormat::Hudi
    }

    fn latest_version(&self) -> Option<String> {
        self.timeline()
            .completed_writes()
            .last()
            .map(|(instant, _)| instant.to_string())
    }

    async fn checkpoints(&self) -> Result<SourceCheckpoints, SinkError> {
        Ok(self.stored_checkpoints().await?)
    }

    async fn schema(&self) -> Result<Option<TableSchema>, SinkError> {
        Ok(HudiTable::schema(self).await?)
    }

    async fn commit(
        &mut self,
        schema: &TableSchema,
        rows: Vec<StagedRow>,
        layout: TableLayout,
        checkpoints: &SourceCheckpoints,
    ) -> Result<CommitSummary, SinkError> {
        let extra = checkpoint_metadata(checkpoints);
        Ok(self.upsert(schema, rows, layout, extra).await?)
    }

    async fn commit_checkpoint(
        &mut self,
        checkpoints: &SourceCheckpoints,
    ) -> Result<Option<String>, SinkError> {
        let instant = HudiTable::commit_checkpoint(self, checkpoint_metadata(checkpoints)).await?;
        Ok(Some(instant.to_string()))
    }

    async fn run_services(
        &mut self,
        policy: &TableServicePolicy,
    ) -> Result<ServiceReport, SinkError> {
        let cleaned = self.clean(policy).await?;
        let archived = self.archive(policy).await?;
        let leftovers = self.prune_leftovers().await?;
        Ok(ServiceReport {
            files_cleaned: cleaned.as_ref().map(|(_, n)| *n).unwrap_or(0),
            clean_instant: cleaned.map(|(i, _)| i.to_string()),
            instants_archived: archived,
            leftovers_removed: leftovers,
        })
    }

    async fn catalog_state(&mut self) -> Result<Option<CatalogState>, SinkError> {
        let Some(version) = self.newest_completed() else {
            return Ok(None);
        };
        Ok(Some(CatalogState {
            version: version.to_string(),
            partitions: self.partitions().await?,
        }))
    }
}
