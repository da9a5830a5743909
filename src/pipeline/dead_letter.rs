//! The dead-letter table: records that could not be decoded or do not fit a route, kept with their raw
//! bytes, the error and where they came from. Keyed by source, position and route, so a replay rewrites
//! the same rows instead of adding copies.

use crate::schema::{Column, TableSchema, POSITION_COLUMN};
use crate::sink::{RowChange, StagedRow};
use base64::Engine;
use bytes::Bytes;
use lakefold_api::{LogicalType, Position, StreamPosition, TimeUnit, Value};

/// Name of the dead-letter table.
pub const DEAD_LETTER_TABLE: &str = "_lakefold_dead_letters";

/// One rejected record.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    pub source: String,
    /// The route's table when the record did not fit that route; `None` when it could not be decoded.
    pub table: Option<String>,
    pub position: Position,
    /// Where the record was, for people: `config/sample/sales.jsonl line 17`, `topic/partition/offset`.
    pub location: String,
    pub raw: Bytes,
    pub error: String,
}

impl DeadLetter {
    /// The table's columns.
    pub fn schema() -> TableSchema {
        let col = |name: &str, ty| Column {
            name: name.into(),
            ty,
        };
        TableSchema {
            columns: vec![
                col("id", LogicalType::String),
                col("source", LogicalType::String),
                col("table_name", LogicalType::String),
                col("location", LogicalType::String),
                col("line", LogicalType::Bigint),
                col("topic", LogicalType::String),
                col("partition", LogicalType::Int),
                col("offset", LogicalType::Bigint),
                col("error", LogicalType::String),
                col("raw_base64", LogicalType::String),
                col("recorded_at", LogicalType::Timestamp(TimeUnit::Microsecond)),
                col("replayed_at", LogicalType::Timestamp(TimeUnit::Microsecond)),
                col(POSITION_COLUMN, LogicalType::String),
            ],
        }
    }

    pub fn key_fields() -> Vec<String> {
        vec!["id".into()]
    }

    /// Its row's key: the source, the position and the route (`-` when it could not be decoded).
    pub fn id(&self) -> String {
        format!(
            "{}|{}|{}",
            self.source,
            self.position.order_key(),
            self.table.as_deref().unwrap_or("-")
        )
    }

    /// The row to write for a new dead letter.
    pub fn staged(&self, recorded_at_us: i64) -> StagedRow {
        self.row(recorded_at_us, None)
    }

    /// The row, recorded at `recorded_at_us` and replayed (through the routes, successfully) at
    /// `replayed_at_us`.
    pub fn row(&self, recorded_at_us: i64, replayed_at_us: Option<i64>) -> StagedRow {
        let order = self.position.order_key();
        let id = self.id();
        let (line, topic, partition, offset) = match &self.position.stream {
            StreamPosition::Line { line, .. } => (
                Value::Bigint(*line as i64),
                Value::Null,
                Value::Null,
                Value::Null,
            ),
            StreamPosition::Kafka {
                topic,
                partition,
                offset,
            } => (
                Value::Null,
                Value::String(topic.clone()),
                Value::Int(*partition),
                Value::Bigint(*offset),
            ),
            // SQL Server: the LSNs are in `location` and the position column.
            StreamPosition::Cdc | StreamPosition::Snapshot { .. } => {
                (Value::Null, Value::Null, Value::Null, Value::Null)
            }
        };
        let values = vec![
            Value::String(id.clone()),
            Value::String(self.source.clone()),
            self.table.clone().map(Value::String).unwrap_or(Value::Null),
            Value::String(self.location.clone()),
            line,
            topic,
            partition,
            offset,
            Value::String(self.error.clone()),
            Value::String(base64::engine::general_purpose::STANDARD.encode(&self.raw)),
            Value::Timestamp {
                value: recorded_at_us,
                unit: TimeUnit::Microsecond,
            },
            replayed_at_us.map_or(Value::Null, |value| Value::Timestamp {
                value,
                unit: TimeUnit::Microsecond,
            }),
            Value::String(order.clone()),
        ];
        StagedRow {
            record_key: id,
            partition_path: String::new(),
            position: order,
            change: RowChange::Upsert(values),
        }
    }
}
