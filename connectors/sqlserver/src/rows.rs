//! Change rows and snapshot rows as source records: positions as Debezium assigns them, row images with
//! the captured columns' logical types, and the raw form kept for the dead-letter table.

use crate::cdc::CaptureTable;
use crate::history::{lsn_bytes, ChangeRow};
use crate::sql_type::SqlType;
use bytes::Bytes;
use lakefold_api::{
    ChangeEvent, Decoded, Field, Lsn, LsnPosition, Op, Position, Row, SourceRecord, StreamPosition,
    TableId, TimeUnit, Value,
};
use std::sync::Arc;

/// One capture instance as the source reads it.
#[derive(Debug, Clone)]
pub struct Capture {
    pub table: CaptureTable,
    pub id: TableId,
    pub fields: Arc<Vec<Field>>,
    /// Changes at or after this LSN belong to a newer capture instance of the same table.
    pub stop_lsn: Option<Lsn>,
}

impl Capture {
    pub fn new(table: CaptureTable) -> Capture {
        let fields = table
            .columns
            .iter()
            .map(|c| Field {
                name: c.name.clone(),
                ty: Some(c.ty.logical()),
            })
            .collect();
        Capture {
            id: TableId {
                schema: Some(table.change_table.schema.clone()),
                table: table.change_table.table.clone(),
            },
            fields: Arc::new(fields),
            table,
            stop_lsn: None,
        }
    }

    pub fn instance(&self) -> &str {
        &self.table.change_table.instance
    }

    fn row(&self, values: Vec<Value>) -> Row {
        Row {
            fields: self.fields.clone(),
            values,
        }
    }

    /// The key of a row, as JSON values (what a snapshot checkpoint stores).
    pub fn key_json(&self, values: &[Value]) -> Vec<serde_json::Value> {
        self.table
            .columns
            .iter()
            .zip(values)
            .filter(|(c, _)| c.key)
            .map(|(c, v)| value_to_json(v, c.ty))
            .collect()
    }

    /// A stored key back as values of the key columns.
    pub fn key_values(&self, key: &[serde_json::Value]) -> Result<Vec<Value>, String> {
        let keys: Vec<_> = self.table.columns.iter().filter(|c| c.key).collect();
        if keys.len() != key.len() {
            return Err(format!(
                "the stored snapshot key of {} has {} values, the table has {} key columns",
                self.instance(),
                key.len(),
                keys.len()
            ));
        }
        keys.iter()
            .zip(key)
            .map(|(c, v)| crate::history::value_from_json(v, c.ty))
            .collect()
    }

    /// The raw form of a row: an entry of the fixture's history format.
    fn raw(&self, row: Option<&ChangeRow>, values: &[Value]) -> Bytes {
        let mut obj = serde_json::Map::new();
        obj.insert("capture_instance".into(), self.instance().into());
        if let Some(r) = row {
            obj.insert("start_lsn".into(), lsn_hex(r.start_lsn).into());
            obj.insert("seqval".into(), lsn_hex(r.seqval).into());
            obj.insert("operation".into(), r.operation.into());
        }
        let vals: serde_json::Map<String, serde_json::Value> = self
            .table
            .columns
            .iter()
            .zip(values)
            .map(|(c, v)| (c.name.clone(), value_to_json(v, c.ty)))
            .collect();
        obj.insert("values".into(), vals.into());
        Bytes::from(serde_json::Value::Object(obj).to_string())
    }

    /// A snapshot row (`r`) read at `lsn`, the `row`-th of the table in key order.
    pub fn snapshot_record(&self, lsn: Lsn, row: u64, values: Vec<Value>) -> SourceRecord {
        let raw = self.raw(None, &values);
        SourceRecord {
            position: Position {
                lsn: Some(LsnPosition {
                    commit_lsn: lsn,
                    change_lsn: None,
                    event_serial_no: None,
                }),
                stream: StreamPosition::Snapshot {
                    instance: self.instance().to_string(),
                    row,
                },
            },
            raw,
            decoded: Decoded::Event(ChangeEvent {
                table: Some(self.id.clone()),
                op: Op::Read,
                before: None,
                after: Some(self.row(values)),
                source_ts_ms: None,
            }),
        }
    }

    /// A change (or an update's before/after pair) at `position`, committed at `committed_ms` (ms since
    /// the epoch) when known.
    pub fn change_record(
        &self,
        position: LsnPosition,
        first: ChangeRow,
        after: Option<ChangeRow>,
        committed_ms: Option<i64>,
    ) -> SourceRecord {
        let raw = match &after {
            Some(a) => {
                let mut text = self.raw(Some(&first), &first.values).to_vec();
                text.push(b'\n');
                text.extend_from_slice(&self.raw(Some(a), &a.values));
                Bytes::from(text)
            }
            None => self.raw(Some(&first), &first.values),
        };
        let decoded = match (first.operation, after) {
            (1, _) => Decoded::Event(ChangeEvent {
                table: Some(self.id.clone()),
                op: Op::Delete,
                before: Some(self.row(first.values)),
                after: None,
                source_ts_ms: committed_ms,
            }),
            (2, _) => Decoded::Event(ChangeEvent {
                table: Some(self.id.clone()),
                op: Op::Create,
                before: None,
                after: Some(self.row(first.values)),
                source_ts_ms: committed_ms,
            }),
            (3, Some(a)) => Decoded::Event(ChangeEvent {
                table: Some(self.id.clone()),
                op: Op::Update,
                before: Some(self.row(first.values)),
                after: Some(self.row(a.values)),
                source_ts_ms: committed_ms,
            }),
            (4, None) => Decoded::Event(ChangeEvent {
                table: Some(self.id.clone()),
                op: Op::Update,
                before: None,
                after: Some(self.row(first.values)),
                source_ts_ms: committed_ms,
            }),
            (op, _) => Decoded::Failed(format!(
                "capture instance {}: operation {op} at {} is not followed by its after image (4)",
                self.instance(),
                position.commit_lsn
            )),
        };
        SourceRecord {
            position: Position {
                lsn: Some(position),
                stream: StreamPosition::Cdc,
            },
            raw,
            decoded,
        }
    }
}

/// `0x` + 20 hex digits.
pub fn lsn_hex(lsn: Lsn) -> String {
    let mut s = String::with_capacity(22);
    s.push_str("0x");
    for b in lsn_bytes(lsn) {
        s.push_str(&format!("{b:02X}"));
    }
    s
}

/// A value in the history format's JSON form (the inverse of [`crate::history::value_from_json`]).
pub fn value_to_json(v: &Value, ty: SqlType) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Value::Null => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Int(i) => (*i).into(),
        Value::Bigint(i) => (*i).into(),
        Value::Float(f) => serde_json::Number::from_f64(*f as f64)
            .map(J::Number)
            .unwrap_or(J::Null),
        Value::Double(f) => serde_json::Number::from_f64(*f)
            .map(J::Number)
            .unwrap_or(J::Null),
        Value::Decimal {
            unscaled, scale, ..
        } => J::String(lakefold_api::format_decimal(*unscaled, *scale)),
        Value::String(s) => J::String(s.clone()),
        Value::Binary(b) => {
            let hex: String = b.iter().map(|x| format!("{x:02X}")).collect();
            J::String(format!("0x{hex}"))
        }
        Value::Date(d) => J::String(date_text(*d)),
        Value::Timestamp { value, unit } => {
            let micros = match unit {
                TimeUnit::Millisecond => value.saturating_mul(1000),
                TimeUnit::Microsecond => *value,
            };
            let digits = match ty {
                SqlType::DateTime2 { scale } | SqlType::DateTimeOffset { scale } => scale.min(6),
                SqlType::DateTime => 3,
                _ => 0,
            };
            J::String(timestamp_text(micros, digits))
        }
    }
}

/// Days since the epoch as `YYYY-MM-DD`.
pub fn date_text(days: i32) -> String {
    Value::Date(days).to_string()
}

fn timestamp_text(micros: i64, digits: u8) -> String {
    let days = micros.div_euclid(86_400_000_000);
    let rem = micros.rem_euclid(86_400_000_000);
    let (h, mi, s, us) = (
        rem / 3_600_000_000,
        rem / 60_000_000 % 60,
        rem / 1_000_000 % 60,
        rem % 1_000_000,
    );
    let mut out = format!("{}T{h:02}:{mi:02}:{s:02}", date_text(days as i32));
    if digits > 0 {
        let frac = format!("{us:06}");
        out.push('.');
        out.push_str(&frac[..digits as usize]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::value_from_json;

    #[test]
    fn values_survive_the_json_round_trip_of_the_history_format() {
        let cases = [
            ("decimal(18,4)", serde_json::json!("70940.8467")),
            ("decimal(18,4)", serde_json::json!("-0.0400")),
            ("datetime2(3)", serde_json::json!("2024-03-11T08:40:58.120")),
            ("datetime", serde_json::json!("1999-12-31T23:59:59.997")),
            ("date", serde_json::json!("2024-02-29")),
            ("varbinary(4)", serde_json::json!("0x00FF10")),
            ("int", serde_json::json!(-7)),
            ("bit", serde_json::json!(true)),
            ("nvarchar(20)", serde_json::json!("Zoë")),
        ];
        for (ty, json) in cases {
            let t = SqlType::parse(ty).unwrap();
            let v = value_from_json(&json, t).unwrap();
            assert_eq!(value_to_json(&v, t), json, "{ty}");
        }
    }
}
