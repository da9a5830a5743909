//! Debezium change events in Avro (Confluent wire format: magic byte 0, 4-byte big-endian schema id, Avro
//! binary datum), sans-io: the writer schema is passed in, fetching it is the caller's business.
//!
//! The datum is turned into the JSON shape Debezium's JsonConverter would have written, and the Avro writer
//! schema into the equivalent Connect schema (`connect.name`, `connect.parameters`, logical types), so
//! both formats go through one decoder with one set of type rules.

use crate::connect::ConnectSchema;
use crate::envelope::{decode_value, Decoding};
use apache_avro::types::Value as Avro;
use apache_avro::Schema;
use base64::Engine;
use serde_json::{json, Map, Value as Json};
use std::collections::HashMap;

/// A writer schema from the Schema Registry, parsed once and cached by id.
#[derive(Debug)]
pub struct WriterSchema {
    pub id: u32,
    avro: Schema,
    connect: Option<ConnectSchema>,
}

impl WriterSchema {
    /// Parses the schema text the registry returns for `id`.
    pub fn parse(id: u32, text: &str) -> Result<WriterSchema, String> {
        let avro = Schema::parse_str(text)
            .map_err(|e| format!("schema id {id} is not a valid Avro schema: {e}"))?;
        let json: Json = serde_json::from_str(text).map_err(|e| format!("schema id {id}: {e}"))?;
        let mut names = HashMap::new();
        let connect = connect_from_avro(&json, None, None, &mut names);
        Ok(WriterSchema { id, avro, connect })
    }
}

/// The schema id of a Confluent-framed message.
pub fn confluent_schema_id(bytes: &[u8]) -> Result<u32, String> {
    match bytes {
        [0, a, b, c, d, ..] => Ok(u32::from_be_bytes([*a, *b, *c, *d])),
        [] => Err("empty message".into()),
        [magic, ..] if *magic != 0 => Err(format!(
            "not Confluent Avro: magic byte {magic}, expected 0"
        )),
        _ => Err(format!(
            "not Confluent Avro: {} bytes, shorter than the 5-byte header",
            bytes.len()
        )),
    }
}

/// Decodes one Confluent-framed Avro message with its writer schema.
pub fn decode_confluent_avro(bytes: &[u8], schema: &WriterSchema) -> Decoding {
    let Some(mut body) = bytes.get(5..) else {
        return Decoding::failed("message shorter than the 5-byte Confluent header");
    };
    let reader = match apache_avro::reader::datum::GenericDatumReader::builder(&schema.avro).build()
    {
        Ok(r) => r,
        Err(e) => return Decoding::failed(format!("writer schema {}: {e}", schema.id)),
    };
    let datum = match reader.read_value(&mut body) {
        Ok(v) => v,
        Err(e) => {
            return Decoding::failed(format!(
                "Avro datum does not match writer schema {}: {e}",
                schema.id
            ))
        }
    };
    decode_value(avro_to_json(datum), schema.connect.as_ref())
}

/// The JSON JsonConverter would write for this Avro value (bytes and decimals as base64).
fn avro_to_json(v: Avro) -> Json {
    let b64 = |b: &[u8]| Json::String(base64::engine::general_purpose::STANDARD.encode(b));
    match v {
        Avro::Null => Json::Null,
        Avro::Boolean(b) => Json::Bool(b),
        Avro::Int(i) | Avro::Date(i) | Avro::TimeMillis(i) => json!(i),
        Avro::Long(l)
        | Avro::TimeMicros(l)
        | Avro::TimestampMillis(l)
        | Avro::TimestampMicros(l)
        | Avro::TimestampNanos(l)
        | Avro::LocalTimestampMillis(l)
        | Avro::LocalTimestampMicros(l)
        | Avro::LocalTimestampNanos(l) => json!(l),
        Avro::Float(f) => json!(f as f64),
        Avro::Double(d) => json!(d),
        Avro::Bytes(b) | Avro::Fixed(_, b) => b64(&b),
        Avro::String(s) | Avro::Enum(_, s) => Json::String(s),
        Avro::Union(_, inner) => avro_to_json(*inner),
        Avro::Array(items) => Json::Array(items.into_iter().map(avro_to_json).collect()),
        Avro::Map(m) => Json::Object(m.into_iter().map(|(k, v)| (k, avro_to_json(v))).collect()),
        Avro::Record(fields) => Json::Object(
            fields
                .into_iter()
                .map(|(k, v)| (k, avro_to_json(v)))
                .collect(),
        ),
        Avro::Decimal(d) => match <Vec<u8>>::try_from(&d) {
            Ok(bytes) => b64(&bytes),
            Err(_) => Json::Null,
        },
        Avro::BigDecimal(d) => Json::String(d.to_string()),
        Avro::Uuid(u) => Json::String(u.to_string()),
        Avro::Duration(d) => Json::String(format!("{d:?}")),
    }
}

/// The Connect schema equivalent to an Avro schema node (Debezium's AvroConverter keeps the Connect
/// names in `connect.name` / `connect.parameters`).
fn connect_from_avro(
    json: &Json,
    field: Option<String>,
    namespace: Option<&str>,
    names: &mut HashMap<String, ConnectSchema>,
) -> Option<ConnectSchema> {
    let primitive = |ty: &str| -> Option<&'static str> {
        Some(match ty {
            "null" => "null",
            "boolean" => "boolean",
            "int" => "int32",
            "long" => "int64",
            "float" => "float",
            "double" => "double",
            "bytes" | "fixed" => "bytes",
            "string" | "enum" => "string",
            "array" => "array",
            "map" => "map",
            _ => return None,
        })
    };
    let leaf = |ty: &str,
                name: Option<String>,
                parameters: Map<String, Json>,
                field: Option<String>| ConnectSchema {
        ty: ty.to_string(),
        name,
        field,
        parameters,
        fields: Vec::new(),
    };
    match json {
        Json::String(t) => match primitive(t) {
            Some(ty) => Some(leaf(ty, None, Map::new(), field)),
            None => {
                let full = if t.contains('.') {
                    t.clone()
                } else {
                    namespace
                        .map(|n| format!("{n}.{t}"))
                        .unwrap_or_else(|| t.clone())
                };
                let mut found = names.get(&full).or_else(|| names.get(t)).cloned()?;
                found.field = field;
                Some(found)
            }
        },
        Json::Array(union) => union
            .iter()
            .find(|m| m.as_str() != Some("null"))
            .and_then(|m| connect_from_avro(m, field, namespace, names)),
        Json::Object(obj) => {
            let ty = obj.get("type")?;
            if ty.is_object() || ty.is_array() {
                return connect_from_avro(ty, field, namespace, names);
            }
            let ty = ty.as_str()?;
            let connect_name = obj
                .get("connect.name")
                .and_then(Json::as_str)
                .map(str::to_string);
            let mut parameters = obj
                .get("connect.parameters")
                .and_then(Json::as_object)
                .cloned()
                .unwrap_or_default();
            if ty == "record" {
                let name = obj.get("name").and_then(Json::as_str).unwrap_or("");
                let ns = obj.get("namespace").and_then(Json::as_str).or(namespace);
                let full = match ns {
                    Some(n) if !name.contains('.') => format!("{n}.{name}"),
                    _ => name.to_string(),
                };
                let mut fields = Vec::new();
                for f in obj
                    .get("fields")
                    .and_then(Json::as_array)
                    .into_iter()
                    .flatten()
                {
                    let fname = f.get("name").and_then(Json::as_str).map(str::to_string);
                    if let Some(child) = f
                        .get("type")
                        .and_then(|t| connect_from_avro(t, fname, ns, names))
                    {
                        fields.push(child);
                    }
                }
                let schema = ConnectSchema {
                    ty: "struct".into(),
                    name: connect_name.or(Some(full.clone())),
                    field: None,
                    parameters,
                    fields,
                };
                names.insert(full, schema.clone());
                names.insert(name.to_string(), schema.clone());
                return Some(ConnectSchema { field, ..schema });
            }
            let base = obj
                .get("connect.type")
                .and_then(Json::as_str)
                .or_else(|| primitive(ty))?;
            let logical = obj.get("logicalType").and_then(Json::as_str);
            let name = match (connect_name, logical) {
                (Some(n), _) => Some(n),
                (None, Some("decimal")) => {
                    Some("org.apache.kafka.connect.data.Decimal".to_string())
                }
                (None, Some("date")) => Some("io.debezium.time.Date".to_string()),
                (None, Some("timestamp-millis")) => {
                    Some("org.apache.kafka.connect.data.Timestamp".to_string())
                }
                (None, Some("timestamp-micros")) => {
                    Some("io.debezium.time.MicroTimestamp".to_string())
                }
                _ => None,
            };
            if logical == Some("decimal") {
                if let Some(scale) = obj.get("scale") {
                    parameters
                        .entry("scale")
                        .or_insert_with(|| Json::String(scale.to_string()));
                }
                if let Some(precision) = obj.get("precision") {
                    parameters
                        .entry("connect.decimal.precision")
                        .or_insert_with(|| Json::String(precision.to_string()));
                }
            }
            let schema = leaf(base, name, parameters, field);
            if let (Some(n), "fixed" | "enum") = (obj.get("name").and_then(Json::as_str), ty) {
                names.insert(
                    n.to_string(),
                    ConnectSchema {
                        field: None,
                        ..schema.clone()
                    },
                );
            }
            Some(schema)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use apache_avro::types::Record;
    use lakefold_api::{Decoded, LogicalType, Op, TimeUnit, Value};

    /// The envelope Debezium's AvroConverter registers for the SALES table (trimmed to four columns).
    fn envelope_schema() -> String {
        json!({
            "type": "record", "name": "Envelope", "namespace": "mssql.dbo.SALES", "connect.name": "mssql.dbo.SALES.Envelope",
            "fields": [
                {"name": "before", "default": null, "type": ["null", {"type": "record", "name": "Value", "connect.name": "mssql.dbo.SALES.Value",
                    "fields": [
                        {"name": "SaleId", "type": "int"},
                        {"name": "AgentName", "default": null, "type": ["null", "string"]},
                        {"name": "ContractSubtotal", "default": null, "type": ["null", {"type": "bytes", "scale": 4, "precision": 18,
                            "connect.version": 1, "connect.parameters": {"scale": "4", "connect.decimal.precision": "18"},
                            "connect.name": "org.apache.kafka.connect.data.Decimal", "logicalType": "decimal"}]},
                        {"name": "ContractSigningDate", "default": null, "type": ["null", {"type": "long", "connect.version": 1,
                            "connect.name": "io.debezium.time.Timestamp"}]}
                    ]}]},
                {"name": "after", "default": null, "type": ["null", "Value"]},
                {"name": "source", "type": {"type": "record", "name": "Source", "namespace": "io.debezium.connector.sqlserver",
                    "fields": [{"name": "schema", "type": "string"}, {"name": "table", "type": "string"},
                               {"name": "change_lsn", "default": null, "type": ["null", "string"]},
                               {"name": "commit_lsn", "default": null, "type": ["null", "string"]},
                               {"name": "event_serial_no", "default": null, "type": ["null", "long"]}]}},
                {"name": "op", "type": "string"},
                {"name": "ts_ms", "default": null, "type": ["null", "long"]}
            ]
        })
        .to_string()
    }

    fn encode(schema_text: &str, op: &str, sale: i32) -> Vec<u8> {
        let schema = Schema::parse_str(schema_text).unwrap();
        let Schema::Record(rs) = &schema else {
            panic!()
        };
        let value_schema = match &rs.fields[0].schema {
            Schema::Union(u) => u.variants()[1].clone(),
            _ => panic!(),
        };
        let mut row = Record::new(&value_schema).unwrap();
        row.put("SaleId", Avro::Int(sale));
        row.put(
            "AgentName",
            Avro::Union(1, Box::new(Avro::String("Ana".into()))),
        );
        row.put(
            "ContractSubtotal",
            Avro::Union(
                1,
                Box::new(Avro::Decimal(apache_avro::Decimal::from(vec![
                    0x00, 0xBC, 0x61, 0x4E,
                ]))),
            ),
        );
        row.put(
            "ContractSigningDate",
            Avro::Union(1, Box::new(Avro::Long(1_700_000_000_000))),
        );
        let mut source = Vec::new();
        for (k, v) in [("schema", "dbo"), ("table", "SALES")] {
            source.push((k.to_string(), Avro::String(v.into())));
        }
        source.push((
            "change_lsn".into(),
            Avro::Union(1, Box::new(Avro::String("00000001:00000002:0003".into()))),
        ));
        source.push((
            "commit_lsn".into(),
            Avro::Union(1, Box::new(Avro::String("00000001:00000002:0004".into()))),
        ));
        source.push((
            "event_serial_no".into(),
            Avro::Union(1, Box::new(Avro::Long(1))),
        ));
        let row_value: Avro = row.into();
        let (before, after) = if op == "d" {
            (
                Avro::Union(1, Box::new(row_value)),
                Avro::Union(0, Box::new(Avro::Null)),
            )
        } else {
            (
                Avro::Union(0, Box::new(Avro::Null)),
                Avro::Union(1, Box::new(row_value)),
            )
        };
        let envelope = Avro::Record(vec![
            ("before".into(), before),
            ("after".into(), after),
            ("source".into(), Avro::Record(source)),
            ("op".into(), Avro::String(op.into())),
            ("ts_ms".into(), Avro::Union(1, Box::new(Avro::Long(5)))),
        ]);
        let mut out = vec![0, 0, 0, 0, 7];
        #[allow(deprecated)]
        out.extend(apache_avro::to_avro_datum(&schema, envelope).unwrap());
        out
    }

    #[test]
    fn debezium_avro_decodes_like_json_with_connect_types() {
        let text = envelope_schema();
        let schema = WriterSchema::parse(7, &text).unwrap();
        let bytes = encode(&text, "c", 42);
        assert_eq!(confluent_schema_id(&bytes).unwrap(), 7);
        let d = decode_confluent_avro(&bytes, &schema);
        assert_eq!(
            d.lsn.unwrap().commit_lsn.to_string(),
            "00000001:00000002:0004"
        );
        let Decoded::Event(e) = d.decoded else {
            panic!("{:?}", d.decoded)
        };
        assert_eq!(e.op, Op::Create);
        assert_eq!(e.table.unwrap().to_string(), "dbo.SALES");
        let row = e.after.unwrap();
        assert_eq!(row.get("SaleId").unwrap().1, &Value::Int(42));
        assert_eq!(
            row.get("ContractSubtotal").unwrap().1,
            &Value::Decimal {
                unscaled: 12_345_678,
                precision: 18,
                scale: 4
            }
        );
        assert_eq!(
            row.get("ContractSubtotal").unwrap().0.ty,
            Some(LogicalType::Decimal {
                precision: 18,
                scale: 4
            })
        );
        assert_eq!(
            row.get("ContractSigningDate").unwrap().1,
            &Value::Timestamp {
                value: 1_700_000_000_000,
                unit: TimeUnit::Millisecond
            }
        );
        let d = decode_confluent_avro(&encode(&text, "d", 42), &schema);
        let Decoded::Event(e) = d.decoded else {
            panic!()
        };
        assert_eq!(e.op, Op::Delete);
        assert!(e.before.is_some());
    }

    #[test]
    fn bad_frames_and_data_are_errors_not_panics() {
        assert!(confluent_schema_id(&[]).is_err());
        assert!(confluent_schema_id(&[1, 0, 0, 0, 1])
            .unwrap_err()
            .contains("magic byte 1"));
        assert!(confluent_schema_id(&[0, 0]).is_err());
        let schema = WriterSchema::parse(7, &envelope_schema()).unwrap();
        let d = decode_confluent_avro(&[0, 0, 0, 0, 7, 0xff, 0xff, 0xff], &schema);
        assert!(matches!(d.decoded, Decoded::Failed(_)));
        assert!(WriterSchema::parse(1, "{not avro").is_err());
    }
}
