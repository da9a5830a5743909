//! Committing an upsert: one Delta version with the removed and added files, the table metadata with
//! the new checkpoints (and any columns the schema gained) and the `txn` actions; the first commit
//! creates the table.

use super::checkpoint::{self, CHECKPOINT_PROPERTY, KEY_PROPERTY};
use super::error::DeltaError;
use super::table::{delta_field, DeltaSinkTable};
use crate::schema::TableSchema;
use crate::sink::SourceCheckpoints;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::kernel::{Action, Add, MetadataExt, Remove, StructType};
use deltalake::operations::create::CreateBuilder;
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::TableProperty;
use object_store::path::Path;
use std::collections::HashMap;

/// Every how many commits Delta writes a checkpoint (Spark's default; delta-rs defaults to 100).
pub const CHECKPOINT_INTERVAL: u32 = 10;

impl DeltaSinkTable {
    /// Commits the files and checkpoints: the table's first commit creates it.
    pub(super) async fn commit_actions(
        &mut self,
        schema: &TableSchema,
        adds: Vec<Add>,
        removes: Vec<Remove>,
        checkpoints: &SourceCheckpoints,
        counts: [u64; 4],
    ) -> Result<u64, DeltaError> {
        let txns = self.transactions(checkpoints).await?;
        let mut info = HashMap::from([(
            CHECKPOINT_PROPERTY.to_string(),
            serde_json::Value::String(checkpoint::property_text(checkpoints)),
        )]);
        for (key, n) in super::read::COUNT_KEYS.iter().zip(counts) {
            info.insert(key.to_string(), serde_json::Value::from(n));
        }
        let properties = CommitProperties::default()
            .with_application_transactions(txns)
            .with_metadata(info);
        let removed: Vec<Path> = removes
            .iter()
            .filter_map(|r| Path::from_url_path(&r.path).ok())
            .collect();
        let mut actions: Vec<Action> = removes.into_iter().map(Action::Remove).collect();
        actions.extend(adds.into_iter().map(Action::Add));
        if !self.exists() {
            return self.create(schema, actions, properties, checkpoints).await;
        }
        actions.push(Action::Metadata(self.next_metadata(schema, checkpoints)?));
        let operation = DeltaOperation::Merge {
            predicate: None,
            merge_predicate: Some(self.merge_predicate()),
            matched_predicates: vec![],
            not_matched_predicates: vec![],
            not_matched_by_source_predicates: vec![],
        };
        let version = self.commit_with(actions, properties, operation).await?;
        let now = chrono::Utc::now().timestamp_millis();
        self.vacuum.removed(version, now, removed);
        Ok(version)
    }

    /// Commits `actions` on the current snapshot and reads the new version's state.
    pub(super) async fn commit_with(
        &mut self,
        actions: Vec<Action>,
        properties: CommitProperties,
        operation: DeltaOperation,
    ) -> Result<u64, DeltaError> {
        let state = self
            .table
            .snapshot()
            .map_err(self.log_error("reading the snapshot"))?;
        let version = CommitBuilder::from(properties)
            .with_actions(actions)
            .build(Some(state), self.table.log_store(), operation)
            .await
            .map_err(|e| DeltaError::commit(&self.name, e))?
            .version();
        self.table
            .update_incremental(Some(version))
            .await
            .map_err(self.log_error("reading the new version"))?;
        Ok(version)
    }

    /// The table's metadata with the new checkpoints (and any columns the schema gained).
    pub(super) fn next_metadata(
        &self,
        schema: &TableSchema,
        checkpoints: &SourceCheckpoints,
    ) -> Result<deltalake::kernel::Metadata, DeltaError> {
        let state = self
            .table
            .snapshot()
            .map_err(self.log_error("reading the snapshot"))?;
        let mut metadata = state.metadata().clone();
        let current = state.schema();
        let missing: Vec<_> = schema
            .columns
            .iter()
            .filter(|c| current.field(&c.name).is_none())
            .collect();
        if !missing.is_empty() {
            let mut fields: Vec<_> = current.fields().cloned().collect();
            for c in missing {
                fields.push(delta_field(c).map_err(|m| self.data_error(m))?);
            }
            let evolved =
                StructType::try_new(fields).map_err(|e| self.data_error(e.to_string()))?;
            metadata = metadata
                .with_schema(&evolved)
                .map_err(|e| self.data_error(format!("evolving the schema: {e}")))?;
        }
        metadata
            .add_config_key(
                CHECKPOINT_PROPERTY.to_string(),
                checkpoint::property_text(checkpoints),
            )
            .map_err(|e| self.data_error(format!("storing the checkpoint: {e}")))
    }

    /// The table's first commit: protocol, metadata (schema, partitioning, checkpoints) and its files.
    pub(super) async fn create(
        &mut self,
        schema: &TableSchema,
        actions: Vec<Action>,
        properties: CommitProperties,
        checkpoints: &SourceCheckpoints,
    ) -> Result<u64, DeltaError> {
        let fields = schema
            .columns
            .iter()
            .map(delta_field)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|m| self.data_error(m))?;
        let created = CreateBuilder::new()
            .with_log_store(self.table.log_store())
            .with_table_name(self.name.clone())
            .with_columns(fields)
            .with_partition_columns(self.partition_by.clone())
            .with_raise_if_key_not_exists(false)
            .with_configuration_property(
                TableProperty::CheckpointInterval,
                Some(CHECKPOINT_INTERVAL.to_string()),
            )
            .with_configuration([
                (
                    CHECKPOINT_PROPERTY.to_string(),
                    Some(checkpoint::property_text(checkpoints)),
                ),
                (KEY_PROPERTY.to_string(), Some(self.key.join(","))),
            ])
            .with_save_mode(SaveMode::ErrorIfExists)
            .with_actions(actions)
            .with_commit_properties(properties)
            .await
            .map_err(|e| DeltaError::commit(&self.name, e))?;
        self.table = created;
        Ok(self.table.version().unwrap_or(0))
    }

    /// The `txn` actions of a commit of `checkpoints`.
    pub(super) async fn transactions(
        &self,
        checkpoints: &SourceCheckpoints,
    ) -> Result<Vec<deltalake::kernel::Transaction>, DeltaError> {
        let mut previous = HashMap::new();
        if let Ok(state) = self.table.snapshot() {
            for source in checkpoints.keys() {
                let id = checkpoint::app_id(source);
                let v = state
                    .transaction_version(self.table.log_store().as_ref(), &id)
                    .await
                    .map_err(self.log_error("reading the source's txn version"))?;
                if let Some(v) = v {
                    previous.insert(id, v);
                }
            }
        }
        let now = chrono::Utc::now().timestamp_millis();
        Ok(checkpoint::transactions(
            checkpoints,
            |id| previous.get(id).copied(),
            now,
        ))
    }

    pub(super) fn merge_predicate(&self) -> String {
        self.key
            .iter()
            .map(|k| format!("target.`{k}` = source.`{k}`"))
            .collect::<Vec<_>>()
            .join(" AND ")
    }
}
