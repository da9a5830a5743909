//! Checkpoints: how far a source has been consumed, stored inside each table commit.

use crate::position::{Position, StreamPosition};
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

/// A source checkpoint. It is written as JSON into the commit metadata of every table the batch touched
/// (Hudi `extraMetadata`), atomically with the data, and read back on start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Checkpoint {
    /// A Debezium JSON-lines file.
    DebeziumFile(FileCheckpoint),
    /// Debezium events on Kafka.
    DebeziumKafka(KafkaCheckpoint),
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
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
