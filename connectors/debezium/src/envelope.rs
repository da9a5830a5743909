//! Decoding one Debezium message (a Kafka record value as Debezium's JsonConverter writes it).
//!
//! Accepted forms:
//! - the envelope with its Connect schema: `{"schema": {...}, "payload": {"before", "after", "source", "op"}}`;
//! - the envelope without schema (`schemas.enable=false`): `{"before", "after", "source", "op", ...}`;
//! - the ExtractNewRecordState ("unwrap") form: the row's columns at top level, with optional `__op`,
//!   `__deleted`, `__table`/`__source_table`, `__source_schema`, `__source_commit_lsn`, ... fields;
//! - `null` (a tombstone) and blank input, which are skipped.

use crate::connect::{infer, ConnectSchema};
pub(crate) use crate::decoder::{Layouts, RowLayout};
use lakefold_api::{ChangeEvent, Decoded, Field, Lsn, LsnPosition, Op, Row, TableId, Value};
use serde_json::{Map, Value as Json};
use std::sync::Arc;

/// The result of decoding one message: the record and, when the message carries them, its LSNs.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoding {
    pub decoded: Decoded,
    pub lsn: Option<LsnPosition>,
}

impl Decoding {
    pub(crate) fn failed(message: impl Into<String>) -> Decoding {
        Decoding {
            decoded: Decoded::Failed(message.into()),
            lsn: None,
        }
    }

    pub(crate) fn skipped(reason: &'static str) -> Decoding {
        Decoding {
            decoded: Decoded::Skipped(reason),
            lsn: None,
        }
    }
}

/// Decodes one message. Never panics; every problem becomes [`Decoded::Failed`] with a message that names
/// the field at fault. (A [`JsonDecoder`] does the same and parses each embedded schema only once.)
pub fn decode_json(bytes: &[u8]) -> Decoding {
    decode_json_uncached(bytes)
}

pub(crate) fn decode_json_uncached(bytes: &[u8]) -> Decoding {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Decoding::skipped("blank line");
    }
    let json: Json = match serde_json::from_slice(bytes) {
        Ok(j) => j,
        Err(e) => return Decoding::failed(format!("invalid JSON at column {}: {e}", e.column())),
    };
    match json {
        Json::Null => Decoding::skipped("tombstone"),
        Json::Object(obj) => decode_object(obj),
        other => Decoding::failed(format!("expected a JSON object, found {}", kind_of(&other))),
    }
}

/// Decodes an already-parsed payload (the envelope or the flattened row) described by `schema` (the Avro
/// path converts its datum and writer schema to these).
pub(crate) fn decode_value(payload: Json, schema: Option<&ConnectSchema>) -> Decoding {
    let layouts = schema.map(Layouts::of);
    match payload {
        Json::Null => Decoding::skipped("tombstone"),
        Json::Object(obj) => decode_payload(obj, layouts.as_ref()),
        other => Decoding::failed(format!("expected a record, found {}", kind_of(&other))),
    }
}

fn decode_object(mut obj: Map<String, Json>) -> Decoding {
    let with_schema = obj.contains_key("payload") && obj.contains_key("schema") && obj.len() == 2;
    if with_schema {
        let layouts = obj
            .get("schema")
            .and_then(ConnectSchema::parse)
            .map(|s| Layouts::of(&s));
        let payload = obj.remove("payload").unwrap_or(Json::Null);
        return match payload {
            Json::Null => Decoding::skipped("tombstone"),
            Json::Object(p) => decode_payload(p, layouts.as_ref()),
            other => Decoding::failed(format!(
                "`payload` must be an object, found {}",
                kind_of(&other)
            )),
        };
    }
    decode_payload(obj, None)
}

pub(crate) fn decode_payload(payload: Map<String, Json>, schema: Option<&Layouts>) -> Decoding {
    // ExtractNewRecordState's fields (`__op`, `__deleted`, `__source_*`, ...) mark a flattened row, even one
    // whose table has columns called `op`, `before` or `after`; otherwise an envelope has `op` and images.
    let flattened_markers = payload.keys().any(|k| k.starts_with("__"));
    let images = payload.contains_key("before") || payload.contains_key("after");
    let is_envelope = !flattened_markers
        && images
        && (payload.contains_key("op") || payload.contains_key("source"));
    if is_envelope {
        decode_envelope(payload, schema)
    } else {
        decode_flattened(payload, schema)
    }
}

fn decode_envelope(payload: Map<String, Json>, schema: Option<&Layouts>) -> Decoding {
    let image = |name: &str| -> Result<Option<Row>, String> {
        match payload.get(name) {
            None | Some(Json::Null) => Ok(None),
            Some(Json::Object(row)) => {
                let layout = schema.and_then(|s| s.image(name));
                decode_row(row, layout)
                    .map(Some)
                    .map_err(|e| format!("`{name}`.{e}"))
            }
            Some(other) => Err(format!(
                "`{name}` must be an object, found {}",
                kind_of(other)
            )),
        }
    };
    let source = payload
        .get("source")
        .and_then(Json::as_object)
        .map(SourceInfo::of_map);
    envelope_event(
        payload.get("op"),
        source,
        || image("before"),
        || image("after"),
    )
}

/// What an envelope's `source` says about the event: its LSNs (or why they are unreadable), its table
/// and its commit time.
pub(crate) struct SourceInfo {
    pub lsn: Result<Option<LsnPosition>, String>,
    pub table: Option<TableId>,
    pub ts_ms: Option<i64>,
}

impl SourceInfo {
    fn of_map(s: &Map<String, Json>) -> SourceInfo {
        SourceInfo {
            lsn: lsn_from_source(s),
            table: s.get("table").and_then(Json::as_str).map(|table| TableId {
                schema: s.get("schema").and_then(Json::as_str).map(str::to_string),
                table: table.to_string(),
            }),
            ts_ms: s.get("ts_ms").and_then(Json::as_i64),
        }
    }
}

/// An envelope's event from its parts, checked in this order: the op, the source's LSNs, the images.
/// The `before` image is read for deletes only: a create, update or snapshot read folds its `after`
/// image, so a `before` it carries is neither decoded nor checked.
pub(crate) fn envelope_event(
    op: Option<&Json>,
    source: Option<SourceInfo>,
    before: impl FnOnce() -> Result<Option<Row>, String>,
    after: impl FnOnce() -> Result<Option<Row>, String>,
) -> Decoding {
    let op = match op {
        Some(Json::String(code)) => match code.as_str() {
            "c" => Op::Create,
            "u" => Op::Update,
            "r" => Op::Read,
            "d" => Op::Delete,
            "t" => return Decoding::skipped("truncate"),
            "m" => return Decoding::skipped("message"),
            other => {
                return Decoding::failed(format!("unknown op `{other}` (expected c, u, r, d, t)"))
            }
        },
        Some(other) => {
            return Decoding::failed(format!("`op` must be a string, found {}", kind_of(other)))
        }
        None => return Decoding::failed("missing `op`"),
    };
    let (lsn, table, source_ts_ms) = match source {
        Some(SourceInfo { lsn: Err(e), .. }) => return Decoding::failed(e),
        Some(SourceInfo {
            lsn: Ok(lsn),
            table,
            ts_ms,
        }) => (lsn, table, ts_ms),
        None => (None, None, None),
    };
    let before = match op {
        Op::Delete => match before() {
            Ok(r) => r,
            Err(e) => return Decoding::failed(e),
        },
        _ => None,
    };
    let after = match after() {
        Ok(r) => r,
        Err(e) => return Decoding::failed(e),
    };
    match op {
        Op::Delete if before.is_none() => {
            return Decoding::failed("delete (`op` = d) without a `before` image")
        }
        Op::Create | Op::Update | Op::Read if after.is_none() => {
            return Decoding::failed(format!("`op` = {} without an `after` image", op.code()))
        }
        _ => {}
    }
    Decoding {
        decoded: Decoded::Event(ChangeEvent {
            table,
            op,
            before,
            after,
            source_ts_ms,
        }),
        lsn,
    }
}

fn decode_flattened(mut payload: Map<String, Json>, schema: Option<&Layouts>) -> Decoding {
    let take_str = |payload: &mut Map<String, Json>, names: &[&str]| -> Option<String> {
        names.iter().find_map(|n| match payload.get(*n) {
            Some(Json::String(s)) => Some(s.clone()),
            Some(Json::Bool(b)) => Some(b.to_string()),
            Some(Json::Number(n)) => Some(n.to_string()),
            _ => None,
        })
    };
    let deleted =
        take_str(&mut payload, &["__deleted"]).is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let op = match take_str(&mut payload, &["__op"]).as_deref() {
        Some("c") => Op::Create,
        Some("u") => Op::Update,
        Some("r") | None => Op::Read,
        Some("d") => Op::Delete,
        Some("t") => return Decoding::skipped("truncate"),
        Some(other) => {
            return Decoding::failed(format!("unknown `__op` `{other}` (expected c, u, r, d, t)"))
        }
    };
    let op = if deleted { Op::Delete } else { op };
    let table = take_str(&mut payload, &["__source_table", "__table"]).map(|table| TableId {
        schema: take_str(&mut payload, &["__source_schema", "__schema"]),
        table,
    });
    let mut source = Map::new();
    for (flat, name) in [
        ("__source_commit_lsn", "commit_lsn"),
        ("__commit_lsn", "commit_lsn"),
        ("__source_change_lsn", "change_lsn"),
        ("__change_lsn", "change_lsn"),
        ("__source_event_serial_no", "event_serial_no"),
        ("__event_serial_no", "event_serial_no"),
    ] {
        if let Some(v) = payload.get(flat) {
            source.entry(name.to_string()).or_insert_with(|| v.clone());
        }
    }
    let lsn = match lsn_from_source(&source) {
        Ok(l) => l,
        Err(e) => return Decoding::failed(e),
    };
    let source_ts_ms = payload.get("__source_ts_ms").and_then(Json::as_i64);
    payload.retain(|k, _| !k.starts_with("__"));
    let row = match decode_row(&payload, schema.and_then(|s| s.flat.as_ref())) {
        Ok(r) => r,
        Err(e) => return Decoding::failed(e),
    };
    let (before, after) = if op.is_delete() {
        (Some(row), None)
    } else {
        (None, Some(row))
    };
    Decoding {
        decoded: Decoded::Event(ChangeEvent {
            table,
            op,
            before,
            after,
            source_ts_ms,
        }),
        lsn,
    }
}

/// Reads a row image; with a schema, fields come in schema order with their declared types.
fn decode_row(row: &Map<String, Json>, layout: Option<&RowLayout>) -> Result<Row, String> {
    match layout {
        Some(l) => {
            let mut values = Vec::with_capacity(l.kinds.len());
            for (field, kind) in l.fields.iter().zip(&l.kinds) {
                let json = row.get(&field.name).unwrap_or(&Json::Null);
                values.push(
                    kind.convert(json)
                        .map_err(|e| format!("{}: {e}", field.name))?,
                );
            }
            Ok(Row {
                fields: l.fields.clone(),
                values,
            })
        }
        None => {
            let fields = row
                .keys()
                .map(|name| Field {
                    name: name.clone(),
                    ty: None,
                })
                .collect();
            let values: Vec<Value> = row.values().map(infer).collect();
            Ok(Row {
                fields: Arc::new(fields),
                values,
            })
        }
    }
}

/// The SQL Server ordering triple from a Debezium `source` block; `None` without `commit_lsn`.
fn lsn_from_source(source: &Map<String, Json>) -> Result<Option<LsnPosition>, String> {
    let lsn_field = |name: &str| -> Result<Option<Lsn>, String> {
        match source.get(name) {
            None | Some(Json::Null) => Ok(None),
            Some(Json::String(s)) => s
                .parse()
                .map(Some)
                .map_err(|e| format!("source.{name}: {e}")),
            Some(other) => Err(format!(
                "source.{name} must be a string, found {}",
                kind_of(other)
            )),
        }
    };
    let Some(commit_lsn) = lsn_field("commit_lsn")? else {
        return Ok(None);
    };
    let change_lsn = lsn_field("change_lsn")?;
    let event_serial_no = match source.get("event_serial_no") {
        None | Some(Json::Null) => None,
        Some(Json::Number(n)) => Some(
            n.as_i64()
                .ok_or("source.event_serial_no must be an integer")?,
        ),
        Some(Json::String(s)) => Some(
            s.parse()
                .map_err(|_| format!("source.event_serial_no `{s}` is not an integer"))?,
        ),
        Some(other) => {
            return Err(format!(
                "source.event_serial_no must be an integer, found {}",
                kind_of(other)
            ))
        }
    };
    Ok(Some(LsnPosition {
        commit_lsn,
        change_lsn,
        event_serial_no,
    }))
}

pub(crate) fn kind_of(json: &Json) -> &'static str {
    match json {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lakefold_api::{LogicalType, TimeUnit};
    use serde_json::json;

    fn event(d: Decoding) -> ChangeEvent {
        match d.decoded {
            Decoded::Event(e) => e,
            other => panic!("expected an event, got {other:?}"),
        }
    }

    fn sales_schema() -> Json {
        let row = json!({"type": "struct", "optional": true, "name": "mssql.dbo.SALES.Value", "fields": [
            {"type": "int32", "optional": false, "field": "SaleId"},
            {"type": "string", "optional": true, "field": "AgentName"},
            {"type": "bytes", "optional": true, "name": "org.apache.kafka.connect.data.Decimal", "version": 1,
             "parameters": {"scale": "4", "connect.decimal.precision": "18"}, "field": "ContractSubtotal"},
            {"type": "int64", "optional": true, "name": "io.debezium.time.Timestamp", "version": 1, "field": "ContractSigningDate"}
        ]});
        let mut before = row.clone();
        before["field"] = json!("before");
        let mut after = row;
        after["field"] = json!("after");
        json!({"type": "struct", "name": "mssql.dbo.SALES.Envelope", "fields": [before, after,
            {"type": "struct", "field": "source", "fields": []}, {"type": "string", "field": "op"}]})
    }

    fn source() -> Json {
        json!({"connector": "sqlserver", "db": "MYCOMPANY", "schema": "dbo", "table": "SALES",
               "commit_lsn": "0000002b:00000ab8:0003", "change_lsn": "0000002b:00000ab8:0002", "event_serial_no": 2})
    }

    #[test]
    fn envelope_with_schema_uses_connect_types() {
        let msg = json!({"schema": sales_schema(), "payload": {"before": null, "after": {
            "SaleId": 7, "AgentName": "Ana", "ContractSubtotal": "ALxhTg==", "ContractSigningDate": 1_700_000_000_000i64},
            "source": source(), "op": "c", "ts_ms": 1}});
        let d = decode_json(msg.to_string().as_bytes());
        let lsn = d.lsn.unwrap();
        assert_eq!(lsn.commit_lsn.to_string(), "0000002b:00000ab8:0003");
        assert_eq!(lsn.event_serial_no, Some(2));
        let e = event(d);
        assert_eq!(e.op, Op::Create);
        assert_eq!(e.table, Some(TableId::parse("dbo.SALES")));
        let row = e.after.unwrap();
        assert_eq!(row.get("SaleId").unwrap().1, &Value::Int(7));
        assert_eq!(row.get("saleid").unwrap().0.ty, Some(LogicalType::Int));
        assert_eq!(
            row.get("ContractSubtotal").unwrap().1,
            &Value::Decimal {
                unscaled: 12_345_678,
                precision: 18,
                scale: 4
            }
        );
        assert_eq!(
            row.get("ContractSigningDate").unwrap().1,
            &Value::Timestamp {
                value: 1_700_000_000_000,
                unit: TimeUnit::Millisecond
            }
        );
    }

    #[test]
    fn null_values_keep_their_declared_type() {
        let msg = json!({"schema": sales_schema(), "payload": {"before": null, "after": {
            "SaleId": 7, "AgentName": null, "ContractSubtotal": null, "ContractSigningDate": null},
            "source": source(), "op": "r"}});
        let row = event(decode_json(msg.to_string().as_bytes()))
            .after
            .unwrap();
        let (field, value) = row.get("ContractSubtotal").unwrap();
        assert_eq!(value, &Value::Null);
        assert_eq!(
            field.ty,
            Some(LogicalType::Decimal {
                precision: 18,
                scale: 4
            })
        );
    }

    #[test]
    fn envelope_without_schema_infers_types() {
        let msg = json!({"before": {"SaleId": 7, "AgentName": "Ana"}, "after": null, "source": source(), "op": "d"});
        let e = event(decode_json(msg.to_string().as_bytes()));
        assert_eq!(e.op, Op::Delete);
        let image = e.image().unwrap();
        assert_eq!(image.get("SaleId").unwrap().1, &Value::Bigint(7));
        assert_eq!(image.get("SaleId").unwrap().0.ty, None);
    }

    #[test]
    fn tombstones_truncates_and_blank_lines_are_skipped() {
        for input in ["null", "  ", "", r#"{"schema": null, "payload": null}"#] {
            assert!(
                matches!(decode_json(input.as_bytes()).decoded, Decoded::Skipped(_)),
                "{input:?}"
            );
        }
        let t = json!({"before": null, "after": null, "source": source(), "op": "t"});
        assert_eq!(
            decode_json(t.to_string().as_bytes()).decoded,
            Decoded::Skipped("truncate")
        );
    }

    #[test]
    fn flattened_form_reads_op_deleted_and_table() {
        let up = json!({"SaleId": 1, "AgentName": "Bo", "__op": "u", "__source_table": "SALES", "__source_schema": "dbo",
                        "__source_commit_lsn": "00000001:00000002:0003"});
        let e = event(decode_json(up.to_string().as_bytes()));
        assert_eq!(e.op, Op::Update);
        assert_eq!(e.table, Some(TableId::parse("dbo.SALES")));
        assert_eq!(e.after.as_ref().unwrap().fields.len(), 2);
        let del = json!({"SaleId": 1, "AgentName": "Bo", "__deleted": "true"});
        let e = event(decode_json(del.to_string().as_bytes()));
        assert_eq!(e.op, Op::Delete);
        assert!(e.table.is_none());
        assert_eq!(
            e.image().unwrap().get("SaleId").unwrap().1,
            &Value::Bigint(1)
        );
    }

    #[test]
    fn a_flattened_row_with_an_op_column_is_not_an_envelope() {
        let row = json!({"id": 1, "op": "open", "after": "x", "__op": "c"});
        let e = event(decode_json(row.to_string().as_bytes()));
        assert_eq!(e.op, Op::Create);
        let after = e.after.unwrap();
        assert_eq!(after.get("op").unwrap().1, &Value::String("open".into()));
        assert_eq!(after.get("after").unwrap().1, &Value::String("x".into()));
    }

    #[test]
    fn malformed_messages_fail_with_a_reason() {
        let cases = [
            ("{not json", "invalid JSON"),
            ("[1,2]", "expected a JSON object"),
            (
                r#"{"op": "x", "after": {}, "source": {}}"#,
                "unknown op `x`",
            ),
            (
                r#"{"op": "d", "before": null, "after": null, "source": {}}"#,
                "without a `before`",
            ),
            (
                r#"{"op": "c", "after": {"a": 1}, "source": {"commit_lsn": "nope"}}"#,
                "source.commit_lsn",
            ),
        ];
        for (input, expected) in cases {
            match decode_json(input.as_bytes()).decoded {
                Decoded::Failed(msg) => assert!(msg.contains(expected), "{input}: {msg}"),
                other => panic!("{input}: expected failure, got {other:?}"),
            }
        }
        let wrong_type = json!({"schema": sales_schema(), "payload": {"before": null, "after": {
            "SaleId": "seven"}, "source": source(), "op": "c"}});
        match decode_json(wrong_type.to_string().as_bytes()).decoded {
            Decoded::Failed(msg) => assert!(msg.contains("`after`.SaleId"), "{msg}"),
            other => panic!("expected failure, got {other:?}"),
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let samples: [&[u8]; 5] = [
            b"\xff\xfe",
            b"{\"payload\":1,\"schema\":2}",
            b"{\"op\":1}",
            b"1e999999",
            b"\"str\"",
        ];
        for s in samples {
            let _ = decode_json(s);
        }
    }
}
