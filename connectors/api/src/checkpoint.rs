//! Checkpoints: how far a source has been consumed, stored inside each table commit.

use crate::position::{Lsn, LsnPosition, Position, StreamPosition};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How far a JSON-lines file has been read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileCheckpoint {
    /// The file, as configured.
    pub path: String,
    /// The last line consumed (1-based; 0 = nothing yet).
    pub line: u64,
    /// The byte offset just after that line, where reading resumes.
    pub offset: u64,
}

/// How far Kafka topics have been read: topic → partition → the next offset to read (Kafka's committed
/// offset convention). A partition that is absent has not been read at all.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct KafkaCheckpoint {
    #[serde(with = "partition_offsets")]
    pub offsets: BTreeMap<String, BTreeMap<i32, i64>>,
}

/// JSON object keys are strings; partitions are numbers. (Serde's internally tagged enums buffer their
/// content, which loses the string-to-integer key conversion, so this is done by hand.)
mod partition_offsets {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::collections::BTreeMap;

    type Offsets = BTreeMap<String, BTreeMap<i32, i64>>;

    pub fn serialize<S: Serializer>(offsets: &Offsets, s: S) -> Result<S::Ok, S::Error> {
        let text: BTreeMap<&String, BTreeMap<String, i64>> = offsets
            .iter()
            .map(|(t, parts)| (t, parts.iter().map(|(p, o)| (p.to_string(), *o)).collect()))
            .collect();
        text.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Offsets, D::Error> {
        let text = BTreeMap::<String, BTreeMap<String, i64>>::deserialize(d)?;
        let mut out = Offsets::new();
        for (topic, parts) in text {
            let mut m = BTreeMap::new();
            for (p, o) in parts {
                let partition = p.parse::<i32>().map_err(|_| {
                    serde::de::Error::custom(format!(
                        "partition `{p}` of topic `{topic}` is not a number"
                    ))
                })?;
                m.insert(partition, o);
            }
            out.insert(topic, m);
        }
        Ok(out)
    }
}

impl KafkaCheckpoint {
    pub fn next_offset(&self, topic: &str, partition: i32) -> Option<i64> {
        self.offsets
            .get(topic)
            .and_then(|p| p.get(&partition))
            .copied()
    }

    /// HoodieStreamer's checkpoint text for one topic: `topic,0:100,1:200`.
    pub fn streamer_text(&self, topic: &str) -> Option<String> {
        let parts = self.offsets.get(topic)?;
        let offsets: Vec<String> = parts.iter().map(|(p, o)| format!("{p}:{o}")).collect();
        Some(format!("{topic},{}", offsets.join(",")))
    }
}

/// How far SQL Server CDC has been read: the last change consumed (Debezium's `commit_lsn`, `change_lsn`,
/// `event_serial_no`), and while an initial snapshot is under way, how far it got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SqlServerCheckpoint {
    /// The database read.
    pub database: String,
    /// The position of the last change consumed; `None` before anything was streamed.
    #[serde(default)]
    pub lsn: Option<LsnPosition>,
    /// Present while a snapshot is not finished: the initial one (`lsn` is `None`), or the re-snapshot of
    /// a table whose changes were cleaned up before they were read (`on_gap = "resnapshot"`; `lsn` stays
    /// where streaming resumes afterwards).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<SnapshotProgress>,
    /// Capture instances re-snapshotted at an LSN the checkpoint has not reached yet: their changes up to
    /// that LSN are covered by the snapshot and skipped while streaming catches up.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty", with = "lsn_map")]
    pub resnapshotted: BTreeMap<String, Lsn>,
}

/// How far an initial snapshot got: the tables are read at `lsn`, one capture instance after another in
/// name order, each in key order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotProgress {
    /// `sys.fn_cdc_get_max_lsn()` when the snapshot began; streaming starts after it.
    #[serde(with = "lsn_hex")]
    pub lsn: Lsn,
    /// Capture instances whose table has been read completely.
    pub done: Vec<String>,
    /// The instance being read, the rows of it consumed, and the key of the last one (JSON values).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<SnapshotCursor>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotCursor {
    pub instance: String,
    pub rows: u64,
    pub last_key: Vec<serde_json::Value>,
}

impl SnapshotProgress {
    fn covers(&self, instance: &str, row: u64) -> bool {
        self.done.iter().any(|d| d == instance)
            || self
                .current
                .as_ref()
                .is_some_and(|c| c.instance == instance && row <= c.rows)
    }

    /// How far along: tables done, then rows of the current one.
    fn progress(&self) -> (usize, u64) {
        (
            self.done.len(),
            self.current.as_ref().map(|c| c.rows).unwrap_or(0),
        )
    }
}

mod lsn_map {
    use crate::position::Lsn;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::collections::BTreeMap;

    pub fn serialize<S: Serializer>(map: &BTreeMap<String, Lsn>, s: S) -> Result<S::Ok, S::Error> {
        let text: BTreeMap<&String, String> = map.iter().map(|(k, v)| (k, v.to_string())).collect();
        text.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, Lsn>, D::Error> {
        let text = BTreeMap::<String, String>::deserialize(d)?;
        text.into_iter()
            .map(|(k, v)| v.parse().map(|l| (k, l)).map_err(serde::de::Error::custom))
            .collect()
    }
}

mod lsn_hex {
    use crate::position::Lsn;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(lsn: &Lsn, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(lsn)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Lsn, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A source checkpoint. It is written as JSON into the commit metadata of every table the batch touched
/// (Hudi `extraMetadata`), atomically with the data, and read back on start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Checkpoint {
    /// A Debezium JSON-lines file.
    DebeziumFile(FileCheckpoint),
    /// Debezium events on Kafka.
    DebeziumKafka(KafkaCheckpoint),
    /// SQL Server CDC read directly.
    SqlserverCdc(SqlServerCheckpoint),
}

impl Checkpoint {
    /// True when the record at `position` was already consumed by whoever stored this checkpoint.
    pub fn covers(&self, position: &Position) -> bool {
        match (self, &position.stream) {
            (Checkpoint::DebeziumFile(cp), StreamPosition::Line { line, .. }) => *line <= cp.line,
            (
                Checkpoint::DebeziumKafka(cp),
                StreamPosition::Kafka {
                    topic,
                    partition,
                    offset,
                },
            ) => cp
                .next_offset(topic, *partition)
                .is_some_and(|next| *offset < next),
            (Checkpoint::SqlserverCdc(cp), StreamPosition::Snapshot { instance, row }) => {
                // A finished snapshot at S is stored as a position after every change of S; one that
                // began after the stored position (a re-snapshot) is not covered by it.
                match (&cp.snapshot, &cp.lsn, &position.lsn) {
                    (Some(s), _, _) => s.covers(instance, *row),
                    (None, Some(stored), Some(at)) => at <= stored,
                    (None, Some(_), None) => true,
                    (None, None, _) => false,
                }
            }
            (Checkpoint::SqlserverCdc(cp), StreamPosition::Cdc) => match (&cp.lsn, &position.lsn) {
                (Some(stored), Some(at)) => at <= stored,
                _ => false,
            },
            _ => false,
        }
    }

    /// Where a source must resume so that both holders of these checkpoints get what they have not yet
    /// committed: the earlier line; per Kafka partition the smaller next offset (a partition one of them
    /// never read stays unread). Checkpoints of different kinds cannot be merged (`None`).
    pub fn earliest(&self, other: &Checkpoint) -> Option<Checkpoint> {
        match (self, other) {
            (Checkpoint::DebeziumFile(a), Checkpoint::DebeziumFile(b)) => {
                Some(if a.line <= b.line {
                    self.clone()
                } else {
                    other.clone()
                })
            }
            (Checkpoint::DebeziumKafka(a), Checkpoint::DebeziumKafka(b)) => {
                let mut offsets: BTreeMap<String, BTreeMap<i32, i64>> = BTreeMap::new();
                for (topic, parts) in &a.offsets {
                    for (p, o) in parts {
                        if let Some(other) = b.next_offset(topic, *p) {
                            offsets
                                .entry(topic.clone())
                                .or_default()
                                .insert(*p, (*o).min(other));
                        }
                    }
                }
                Some(Checkpoint::DebeziumKafka(KafkaCheckpoint { offsets }))
            }
            (Checkpoint::SqlserverCdc(a), Checkpoint::SqlserverCdc(b)) => {
                if a.database != b.database {
                    return None;
                }
                let behind = match (&a.snapshot, &b.snapshot) {
                    (Some(x), Some(y)) => x.progress() <= y.progress(),
                    (Some(_), None) => true,
                    (None, Some(_)) => false,
                    (None, None) => a.lsn <= b.lsn,
                };
                Some(if behind { self.clone() } else { other.clone() })
            }
            _ => None,
        }
    }

    /// A one-line human form for `history` and logs.
    pub fn describe(&self) -> String {
        match self {
            Checkpoint::DebeziumFile(cp) => format!("{} line {}", cp.path, cp.line),
            Checkpoint::DebeziumKafka(cp) => cp
                .offsets
                .iter()
                .map(|(t, parts)| {
                    let ps: Vec<String> = parts.iter().map(|(p, o)| format!("{p}:{o}")).collect();
                    format!("{t}[{}]", ps.join(","))
                })
                .collect::<Vec<_>>()
                .join(" "),
            Checkpoint::SqlserverCdc(cp) => match (&cp.snapshot, &cp.lsn) {
                (Some(s), _) => format!(
                    "{} snapshot at {} ({} tables done{})",
                    cp.database,
                    s.lsn,
                    s.done.len(),
                    s.current
                        .as_ref()
                        .map(|c| format!(", {} rows of {}", c.rows, c.instance))
                        .unwrap_or_default()
                ),
                (None, Some(l)) => format!("{} commit_lsn {}", cp.database, l.commit_lsn),
                (None, None) => format!("{} (nothing read)", cp.database),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resnapshot_after_the_stored_position_is_not_covered_by_it_and_round_trips_as_hex() {
        let at = |n: u128| LsnPosition {
            commit_lsn: Lsn(n),
            change_lsn: None,
            event_serial_no: None,
        };
        let snapshot_row = |n: u128| Position {
            lsn: Some(at(n)),
            stream: StreamPosition::Snapshot {
                instance: "dbo_T".into(),
                row: 1,
            },
        };
        let mut cp = SqlServerCheckpoint {
            database: "DB".into(),
            lsn: Some(at(100)),
            snapshot: None,
            resnapshotted: BTreeMap::new(),
        };
        cp.resnapshotted.insert("dbo_T".into(), Lsn(200));
        let stored = Checkpoint::SqlserverCdc(cp.clone());
        assert!(
            stored.covers(&snapshot_row(100)),
            "the initial snapshot, finished"
        );
        assert!(!stored.covers(&snapshot_row(200)), "a re-snapshot after it");
        let text = serde_json::to_string(&stored).unwrap();
        assert!(
            text.contains(r#""resnapshotted":{"dbo_T":"00000000:00000000:00c8"}"#),
            "{text}"
        );
        assert_eq!(serde_json::from_str::<Checkpoint>(&text).unwrap(), stored);
    }

    #[test]
    fn file_checkpoint_covers_lines_up_to_it() {
        let cp = Checkpoint::DebeziumFile(FileCheckpoint {
            path: "a.jsonl".into(),
            line: 10,
            offset: 500,
        });
        let at = |line| Position {
            lsn: None,
            stream: StreamPosition::Line {
                line,
                end_offset: 0,
            },
        };
        assert!(cp.covers(&at(10)));
        assert!(!cp.covers(&at(11)));
        let json = serde_json::to_string(&cp).unwrap();
        assert_eq!(
            json,
            r#"{"type":"debezium-file","path":"a.jsonl","line":10,"offset":500}"#
        );
        assert_eq!(serde_json::from_str::<Checkpoint>(&json).unwrap(), cp);
    }

    fn kafka(parts: &[(&str, i32, i64)]) -> Checkpoint {
        let mut cp = KafkaCheckpoint::default();
        for (t, p, o) in parts {
            cp.offsets.entry(t.to_string()).or_default().insert(*p, *o);
        }
        Checkpoint::DebeziumKafka(cp)
    }

    #[test]
    fn kafka_checkpoints_hold_next_offsets_per_partition() {
        let cp = kafka(&[("t", 0, 10), ("t", 1, 3)]);
        let at = |p, o| Position {
            lsn: None,
            stream: StreamPosition::Kafka {
                topic: "t".into(),
                partition: p,
                offset: o,
            },
        };
        assert!(cp.covers(&at(0, 9)));
        assert!(!cp.covers(&at(0, 10)));
        assert!(
            !cp.covers(&at(2, 0)),
            "a partition never read is not covered"
        );
        let json = serde_json::to_string(&cp).unwrap();
        assert_eq!(
            json,
            r#"{"type":"debezium-kafka","offsets":{"t":{"0":10,"1":3}}}"#
        );
        assert_eq!(serde_json::from_str::<Checkpoint>(&json).unwrap(), cp);
        match &cp {
            Checkpoint::DebeziumKafka(k) => assert_eq!(k.streamer_text("t").unwrap(), "t,0:10,1:3"),
            _ => unreachable!(),
        }
    }

    #[test]
    fn earliest_takes_the_smaller_offset_and_drops_partitions_either_never_read() {
        let a = kafka(&[("t", 0, 10), ("t", 1, 3), ("t", 2, 7)]);
        let b = kafka(&[("t", 0, 4), ("t", 1, 9)]);
        assert_eq!(a.earliest(&b).unwrap(), kafka(&[("t", 0, 4), ("t", 1, 3)]));
        let f = Checkpoint::DebeziumFile(FileCheckpoint {
            path: "x".into(),
            line: 1,
            offset: 1,
        });
        assert!(a.earliest(&f).is_none());
    }
}
