//! `HoodieCommitMetadata` and `HoodieWriteStat` as Hudi 0.14 writes them (JSON, field by field as in the
//! golden tables).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Key of lakefold's source checkpoint inside `extraMetadata`.
pub const CHECKPOINT_KEY: &str = "lakefold.checkpoint";
/// Key of the writer schema (Avro JSON of the data columns) inside `extraMetadata`, as Hudi names it.
pub const SCHEMA_KEY: &str = "schema";

/// Contents of a `.commit` (and of an `.inflight`, with planned stats).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommitMetadata {
    #[serde(default)]
    pub partition_to_write_stats: BTreeMap<String, Vec<WriteStat>>,
    #[serde(default)]
    pub compacted: bool,
    #[serde(default)]
    pub extra_metadata: BTreeMap<String, String>,
    #[serde(default = "upsert")]
    pub operation_type: String,
    /// Only in `.replacecommit`: file groups this instant replaces, by partition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_to_replace_file_ids: Option<BTreeMap<String, Vec<String>>>,
}

fn upsert() -> String {
    "UPSERT".to_string()
}

/// Runtime figures of one file write.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeStats {
    pub total_scan_time: u64,
    pub total_upsert_time: u64,
    pub total_create_time: u64,
}

/// One file written by a commit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct WriteStat {
    pub file_id: String,
    /// Path relative to the table base; `null` in an `.inflight`'s planned stats.
    pub path: Option<String>,
    pub cdc_stats: Option<serde_json::Value>,
    /// The instant of the slice this one replaces; the string `"null"` for a new file group.
    pub prev_commit: String,
    pub num_writes: u64,
    pub num_deletes: u64,
    pub num_update_writes: u64,
    pub num_inserts: u64,
    pub total_write_bytes: u64,
    pub total_write_errors: u64,
    pub temp_path: Option<String>,
    pub partition_path: Option<String>,
    pub total_log_records: u64,
    pub total_log_files_compacted: u64,
    pub total_log_size_compacted: u64,
    pub total_updated_records_compacted: u64,
    pub total_log_blocks: u64,
    pub total_corrupt_log_block: u64,
    pub total_rollback_blocks: u64,
    pub file_size_in_bytes: u64,
    pub min_event_time: Option<i64>,
    pub max_event_time: Option<i64>,
    #[serde(default)]
    pub runtime_stats: Option<RuntimeStats>,
}

impl CommitMetadata {
    /// An UPSERT commit without write stats yet, carrying `extra` in `extraMetadata`.
    pub fn upsert(extra: BTreeMap<String, String>) -> CommitMetadata {
        CommitMetadata {
            partition_to_write_stats: BTreeMap::new(),
            compacted: false,
            extra_metadata: extra,
            operation_type: upsert(),
            partition_to_replace_file_ids: None,
        }
    }

    pub fn stats(&self) -> impl Iterator<Item = &WriteStat> {
        self.partition_to_write_stats.values().flatten()
    }

    pub fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec_pretty(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_golden_commit_and_writes_the_same_field_names() {
        let golden = r#"{
  "partitionToWriteStats" : { "" : [ { "fileId" : "a079-0", "path" : "a079-0_0-203-274_20240418173551906.parquet",
      "cdcStats" : null, "prevCommit" : "20240418173550988", "numWrites" : 4, "numDeletes" : 0, "numUpdateWrites" : 1,
      "numInserts" : 1, "totalWriteBytes" : 441520, "totalWriteErrors" : 0, "tempPath" : null, "partitionPath" : "",
      "totalLogRecords" : 0, "totalLogFilesCompacted" : 0, "totalLogSizeCompacted" : 0, "totalUpdatedRecordsCompacted" : 0,
      "totalLogBlocks" : 0, "totalCorruptLogBlock" : 0, "totalRollbackBlocks" : 0, "fileSizeInBytes" : 441520,
      "minEventTime" : null, "maxEventTime" : null,
      "runtimeStats" : { "totalScanTime" : 0, "totalUpsertTime" : 105, "totalCreateTime" : 0 } } ] },
  "compacted" : false, "extraMetadata" : { "schema" : "{}" }, "operationType" : "UPSERT" }"#;
        let meta: CommitMetadata = serde_json::from_str(golden).unwrap();
        let stat = meta.stats().next().unwrap();
        assert_eq!(stat.num_writes, 4);
        assert_eq!(stat.prev_commit, "20240418173550988");
        let ours: serde_json::Value = serde_json::from_slice(&meta.to_json().unwrap()).unwrap();
        let theirs: serde_json::Value = serde_json::from_str(golden).unwrap();
        assert_eq!(ours, theirs);
    }
}
