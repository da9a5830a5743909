//! Where a Delta table keeps lakefold's source checkpoints, so that they survive Delta checkpoints and
//! log cleanup and commit atomically with the rows:
//!
//! - the full checkpoints (the same JSON a Hudi commit carries) in the table configuration, key
//!   `lakefold.checkpoint`, updated by every lakefold commit: the configuration is part of the `metaData`
//!   action, which Delta checkpoints keep. delta-rs 1.1 cannot write the `domainMetadata` table
//!   feature, and commit infos are dropped by checkpoints and log cleanup;
//! - `txn` actions (Delta's application transactions, also kept by checkpoints): `lakefold-<source>`
//!   with a version that grows by one per commit, and for Kafka sources one per topic partition,
//!   `lakefold-<source>-<topic>-<partition>`, with the next offset (as kafka-delta-ingest does). Two
//!   writers committing the same source's `txn` conflict in Delta's own conflict checker.

use crate::sink::SourceCheckpoints;
use deltalake::kernel::Transaction;
use lakefold_api::Checkpoint;
use std::collections::HashMap;

/// Table-configuration key of the full checkpoints (JSON).
pub const CHECKPOINT_PROPERTY: &str = "lakefold.checkpoint";
/// Table-configuration key of the record key columns (comma-separated), for `show` and other writers.
pub const KEY_PROPERTY: &str = "lakefold.recordKey";

/// The `txn` application id of a source.
pub fn app_id(source: &str) -> String {
    format!("lakefold-{source}")
}

/// The checkpoints stored in a table configuration; empty when none are.
pub fn stored(configuration: &HashMap<String, String>) -> Result<SourceCheckpoints, String> {
    match configuration.get(CHECKPOINT_PROPERTY) {
        None => Ok(SourceCheckpoints::new()),
        Some(text) => serde_json::from_str(text).map_err(|e| {
            format!("the table property {CHECKPOINT_PROPERTY} is unreadable: {e}: {text}")
        }),
    }
}

/// The checkpoints as the table property holds them.
pub fn property_text(checkpoints: &SourceCheckpoints) -> String {
    serde_json::to_string(checkpoints).unwrap_or_default()
}

/// The `txn` actions of a commit of `checkpoints`; `previous` gives a source's last version.
pub fn transactions(
    checkpoints: &SourceCheckpoints,
    previous: impl Fn(&str) -> Option<i64>,
    now_ms: i64,
) -> Vec<Transaction> {
    let mut out = Vec::new();
    for (source, cp) in checkpoints {
        let id = app_id(source);
        let version = previous(&id).map_or(0, |v| v + 1);
        out.push(Transaction::new_with_last_update(id, version, Some(now_ms)));
        if let Checkpoint::DebeziumKafka(k) = cp {
            for (topic, partitions) in &k.offsets {
                for (partition, offset) in partitions {
                    let id = format!("{}-{topic}-{partition}", app_id(source));
                    out.push(Transaction::new_with_last_update(id, *offset, Some(now_ms)));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use lakefold_api::{FileCheckpoint, KafkaCheckpoint};
    use std::collections::BTreeMap;

    #[test]
    fn every_commit_moves_the_source_version_on_and_kafka_partitions_carry_their_offsets() {
        let kafka = KafkaCheckpoint {
            offsets: BTreeMap::from([("t".to_string(), BTreeMap::from([(0, 42), (1, 7)]))]),
        };
        let cps = SourceCheckpoints::from([
            ("k".to_string(), Checkpoint::DebeziumKafka(kafka)),
            (
                "f".to_string(),
                Checkpoint::DebeziumFile(FileCheckpoint {
                    path: "a.jsonl".into(),
                    line: 3,
                    offset: 90,
                }),
            ),
        ]);
        let txns = transactions(&cps, |id| (id == "lakefold-f").then_some(4), 1);
        let got: Vec<(&str, i64)> = txns
            .iter()
            .map(|t| (t.app_id.as_str(), t.version))
            .collect();
        assert_eq!(
            got,
            [
                ("lakefold-f", 5),
                ("lakefold-k", 0),
                ("lakefold-k-t-0", 42),
                ("lakefold-k-t-1", 7)
            ]
        );
        let text = property_text(&cps);
        let config = HashMap::from([(CHECKPOINT_PROPERTY.to_string(), text)]);
        assert_eq!(stored(&config).unwrap(), cps);
        assert!(stored(&HashMap::new()).unwrap().is_empty());
    }
}
