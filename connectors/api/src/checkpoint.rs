//! Checkpoints: how far a source has been consumed, stored inside each table commit.

use crate::position::{Position, StreamPosition};
use serde::{Deserialize, Serialize};

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

/// A source checkpoint. It is written as JSON into the commit metadata of every table the batch touched
/// (Hudi `extraMetadata`), atomically with the data, and read back on start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Checkpoint {
    /// A Debezium JSON-lines file.
    DebeziumFile(FileCheckpoint),
}

impl Checkpoint {
    /// True when the record at `position` was already consumed by whoever stored this checkpoint.
    pub fn covers(&self, position: &Position) -> bool {
        match (self, &position.stream) {
            (Checkpoint::DebeziumFile(cp), StreamPosition::Line { line, .. }) => *line <= cp.line,
            (Checkpoint::DebeziumFile(_), StreamPosition::Kafka { .. }) => false,
        }
    }

    /// The earlier of two checkpoints of the same source (where a source must resume so that every table
    /// gets what it has not yet committed).
    pub fn earliest<'a>(&'a self, other: &'a Checkpoint) -> &'a Checkpoint {
        match (self, other) {
            (Checkpoint::DebeziumFile(a), Checkpoint::DebeziumFile(b)) => {
                if a.line <= b.line {
                    self
                } else {
                    other
                }
            }
        }
    }

    /// A one-line human form for `history` and logs.
    pub fn describe(&self) -> String {
        match self {
            Checkpoint::DebeziumFile(cp) => format!("{} line {}", cp.path, cp.line),
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
}
