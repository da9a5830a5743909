//! The Delta table as a [`TableSink`]: checkpoints in the table configuration and `txn` actions (see
//! [`super::checkpoint`]); Delta checkpoints and log cleanup run as the commit's post-commit hook.

use super::checkpoint;
use super::error::DeltaError;
use super::table::DeltaSinkTable;
use crate::schema::TableSchema;
use crate::sink::{
    CatalogState, CommitSummary, ServiceReport, SinkError, SourceCheckpoints, StagedRow,
    TableLayout, TableServicePolicy, TableSink,
};
use deltalake::kernel::transaction::CommitProperties;
use deltalake::kernel::Action;
use deltalake::protocol::DeltaOperation;
use std::collections::{BTreeSet, HashMap};

impl DeltaSinkTable {
    /// The checkpoints the latest version stores; empty before the first commit.
    pub fn stored_checkpoints(&self) -> Result<SourceCheckpoints, DeltaError> {
        let Ok(state) = self.table.snapshot() else {
            return Ok(SourceCheckpoints::new());
        };
        checkpoint::stored(state.metadata().configuration()).map_err(|m| self.data_error(m))
    }

    /// Commits `checkpoints` without data; `None` when the table has no version yet (it is created
    /// with its first rows, whose schema it needs).
    pub async fn commit_checkpoint(
        &mut self,
        checkpoints: &SourceCheckpoints,
    ) -> Result<Option<u64>, DeltaError> {
        let Some(schema) = self.schema()? else {
            return Ok(None);
        };
        let metadata = self.next_metadata(&schema, checkpoints)?;
        let txns = self.transactions(checkpoints).await?;
        let properties = CommitProperties::default().with_application_transactions(txns);
        let operation = DeltaOperation::SetTableProperties {
            properties: HashMap::from([(
                checkpoint::CHECKPOINT_PROPERTY.to_string(),
                checkpoint::property_text(checkpoints),
            )]),
        };
        let version = self
            .commit_with(vec![Action::Metadata(metadata)], properties, operation)
            .await?;
        Ok(Some(version))
    }

    /// The partition texts of the live files.
    fn partitions(&self) -> Vec<String> {
        let Ok(state) = self.table.snapshot() else {
            return Vec::new();
        };
        let set: BTreeSet<String> = state
            .log_data()
            .iter()
            .map(|f| {
                let values = f.partition_values_map();
                self.partition_by
                    .iter()
                    .map(|c| {
                        let v = values.get(c).cloned().flatten();
                        format!(
                            "{c}={}",
                            v.as_deref().unwrap_or(crate::fold::HIVE_DEFAULT_PARTITION)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("/")
            })
            .collect();
        set.into_iter().collect()
    }
}

#[async_trait::async_trait]
impl TableSink for DeltaSinkTable {
    fn name(&self) -> &str {
        DeltaSinkTable::name(self)
    }

    fn format(&self) -> crate::config::LakeFormat {
        crate::config::LakeFormat::Delta
    }

    fn latest_version(&self) -> Option<String> {
        self.table.version().map(|v| v.to_string())
    }

    async fn checkpoints(&self) -> Result<SourceCheckpoints, SinkError> {
        Ok(self.stored_checkpoints()?)
    }

    async fn schema(&self) -> Result<Option<TableSchema>, SinkError> {
        Ok(DeltaSinkTable::schema(self)?)
    }

    async fn commit(
        &mut self,
        schema: &TableSchema,
        rows: Vec<StagedRow>,
        layout: TableLayout,
        checkpoints: &SourceCheckpoints,
    ) -> Result<CommitSummary, SinkError> {
        Ok(self.upsert(schema, rows, layout, checkpoints).await?)
    }

    async fn commit_checkpoint(
        &mut self,
        checkpoints: &SourceCheckpoints,
    ) -> Result<Option<String>, SinkError> {
        let version = DeltaSinkTable::commit_checkpoint(self, checkpoints).await?;
        Ok(version.map(|v| v.to_string()))
    }

    async fn run_services(
        &mut self,
        policy: &TableServicePolicy,
    ) -> Result<ServiceReport, SinkError> {
        // Delta checkpoints (every `delta.checkpointInterval` commits) and expired-log cleanup run in
        // each commit's post-commit hook; VACUUM here.
        let files_cleaned = self.vacuum(policy).await?;
        Ok(ServiceReport {
            files_cleaned,
            ..ServiceReport::default()
        })
    }

    async fn catalog_state(&mut self) -> Result<Option<CatalogState>, SinkError> {
        let Some(version) = self.latest_version() else {
            return Ok(None);
        };
        Ok(Some(CatalogState {
            version,
            partitions: self.partitions(),
        }))
    }
}
