//! Kafka Connect schemas as Debezium's JsonConverter writes them, and conversion of JSON values by them.

use base64::Engine;
use lakefold_api::{
    decimal_from_text, parse_timestamp_micros, Field, LogicalType, TimeUnit, Value,
};
use serde_json::Value as Json;

/// A Connect schema node (`{"type": "...", "name": "...", "parameters": {...}, "fields": [...]}`).
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectSchema {
    pub ty: String,
    pub name: Option<String>,
    pub field: Option<String>,
    pub parameters: serde_json::Map<String, Json>,
    pub fields: Vec<ConnectSchema>,
}

impl ConnectSchema {
    /// Reads a schema node; `None` when `json` is not one.
    pub fn parse(json: &Json) -> Option<ConnectSchema> {
        let obj = json.as_object()?;
        let ty = obj.get("type")?.as_str()?.to_string();
        let fields = obj
            .get("fields")
            .and_then(Json::as_array)
            .map(|fs| fs.iter().filter_map(ConnectSchema::parse).collect())
            .unwrap_or_default();
        Some(ConnectSchema {
            ty,
            name: obj.get("name").and_then(Json::as_str).map(str::to_string),
            field: obj.get("field").and_then(Json::as_str).map(str::to_string),
            parameters: obj
                .get("parameters")
                .and_then(Json::as_object)
                .cloned()
                .unwrap_or_default(),
            fields,
        })
    }

    /// The child field called `name`.
    pub fn child(&self, name: &str) -> Option<&ConnectSchema> {
        self.fields
            .iter()
            .find(|f| f.field.as_deref() == Some(name))
    }

    /// How values of this schema are converted.
    pub fn kind(&self) -> ConnectKind {
        let param = |k: &str| {
            self.parameters
                .get(k)
                .and_then(|v| v.as_str().map(str::to_string).or(Some(v.to_string())))
        };
        match (self.name.as_deref(), self.ty.as_str()) {
            (Some("org.apache.kafka.connect.data.Decimal"), _) => {
                let scale = param("scale").and_then(|s| s.parse().ok()).unwrap_or(0);
                let precision = param("connect.decimal.precision")
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(LogicalType::MAX_DECIMAL_PRECISION);
                ConnectKind::Decimal { precision, scale }
            }
            (Some("io.debezium.data.VariableScaleDecimal"), _) => ConnectKind::VariableScaleDecimal,
            (Some("io.debezium.time.Date" | "org.apache.kafka.connect.data.Date"), _) => {
                ConnectKind::Date
            }
            (Some("io.debezium.time.Timestamp" | "org.apache.kafka.connect.data.Timestamp"), _) => {
                ConnectKind::Timestamp {
                    divisor: 1,
                    unit: TimeUnit::Millisecond,
                }
            }
            (Some("io.debezium.time.MicroTimestamp"), _) => ConnectKind::Timestamp {
                divisor: 1,
                unit: TimeUnit::Microsecond,
            },
            (Some("io.debezium.time.NanoTimestamp"), _) => ConnectKind::Timestamp {
                divisor: 1000,
                unit: TimeUnit::Microsecond,
            },
            (Some("io.debezium.time.ZonedTimestamp"), _) => ConnectKind::ZonedTimestamp,
            (_, "int8" | "int16" | "int32") => ConnectKind::Int,
            (_, "int64") => ConnectKind::Bigint,
            (_, "float" | "float32") => ConnectKind::Float,
            (_, "double" | "float64") => ConnectKind::Double,
            (_, "boolean") => ConnectKind::Boolean,
            (_, "string") => ConnectKind::String,
            (_, "bytes") => ConnectKind::Bytes,
            _ => ConnectKind::Json,
        }
    }

    /// The row layout of a struct schema (a `before`/`after` image).
    pub fn row_fields(&self) -> Vec<(Field, ConnectKind)> {
        self.fields
            .iter()
            .filter_map(|f| {
                let kind = f.kind();
                Some((
                    Field {
                        name: f.field.clone()?,
                        ty: kind.logical_type(),
                    },
                    kind,
                ))
            })
            .collect()
    }
}

/// The conversions lakefold applies to Connect-typed JSON values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ConnectKind {
    Int,
    Bigint,
    Float,
    Double,
    Boolean,
    String,
    /// Base64 in JSON.
    Bytes,
    /// `org.apache.kafka.connect.data.Decimal`: base64 big-endian two's-complement unscaled value.
    Decimal {
        precision: u8,
        scale: i8,
    },
    /// `{"scale": n, "value": base64}`.
    VariableScaleDecimal,
    /// Days since the epoch.
    Date,
    /// Epoch count; divide by `divisor` to get `unit`.
    Timestamp {
        divisor: i64,
        unit: TimeUnit,
    },
    /// ISO-8601 text with an offset.
    ZonedTimestamp,
    /// Structs, arrays, maps and unknown types: stored as JSON text.
    Json,
}

impl ConnectKind {
    pub fn logical_type(self) -> Option<LogicalType> {
        Some(match self {
            ConnectKind::Int => LogicalType::Int,
            ConnectKind::Bigint => LogicalType::Bigint,
            ConnectKind::Float => LogicalType::Float,
            ConnectKind::Double => LogicalType::Double,
            ConnectKind::Boolean => LogicalType::Boolean,
            ConnectKind::String | ConnectKind::Json => LogicalType::String,
            ConnectKind::Bytes => LogicalType::Binary,
            ConnectKind::Decimal { precision, scale } => LogicalType::Decimal { precision, scale },
            ConnectKind::VariableScaleDecimal => return None,
            ConnectKind::Date => LogicalType::Date,
            ConnectKind::Timestamp { unit, .. } => LogicalType::Timestamp(unit),
            ConnectKind::ZonedTimestamp => LogicalType::Timestamp(TimeUnit::Microsecond),
        })
    }

    /// Converts one JSON value; the error says what was expected and what was found.
    pub fn convert(self, json: &Json) -> Result<Value, String> {
        if json.is_null() {
            return Ok(Value::Null);
        }
        let mismatch = |expected: &str| format!("expected {expected}, found {}", short(json));
        match self {
            ConnectKind::Int => {
                let v = json.as_i64().ok_or_else(|| mismatch("an integer"))?;
                i32::try_from(v)
                    .map(Value::Int)
                    .map_err(|_| mismatch("a 32-bit integer"))
            }
            ConnectKind::Bigint => json
                .as_i64()
                .map(Value::Bigint)
                .ok_or_else(|| mismatch("a 64-bit integer")),
            ConnectKind::Float => json
                .as_f64()
                .map(|v| Value::Float(v as f32))
                .ok_or_else(|| mismatch("a number")),
            ConnectKind::Double => json
                .as_f64()
                .map(Value::Double)
                .ok_or_else(|| mismatch("a number")),
            ConnectKind::Boolean => json
                .as_bool()
                .map(Value::Bool)
                .ok_or_else(|| mismatch("a boolean")),
            ConnectKind::String => json
                .as_str()
                .map(|s| Value::String(s.to_string()))
                .ok_or_else(|| mismatch("a string")),
            ConnectKind::Json => Ok(Value::String(match json {
                Json::String(s) => s.clone(),
                other => other.to_string(),
            })),
            ConnectKind::Bytes => {
                let text = json.as_str().ok_or_else(|| mismatch("base64 text"))?;
                base64_decode(text).map(Value::Binary)
            }
            ConnectKind::Decimal { precision, scale } => match json {
                Json::String(text) => {
                    let bytes = base64_decode(text)?;
                    let unscaled = unscaled_from_be_bytes(&bytes)?;
                    Ok(Value::Decimal {
                        unscaled,
                        precision,
                        scale,
                    })
                }
                Json::Number(n) => decimal_from_text(&n.to_string(), precision, scale),
                _ => Err(mismatch("a base64 decimal")),
            },
            ConnectKind::VariableScaleDecimal => {
                let scale = json
                    .get("scale")
                    .and_then(Json::as_i64)
                    .ok_or_else(|| mismatch("{scale, value}"))?;
                let text = json
                    .get("value")
                    .and_then(Json::as_str)
                    .ok_or_else(|| mismatch("{scale, value}"))?;
                let scale = i8::try_from(scale)
                    .map_err(|_| format!("decimal scale {scale} out of range"))?;
                let unscaled = unscaled_from_be_bytes(&base64_decode(text)?)?;
                Ok(Value::Decimal {
                    unscaled,
                    precision: LogicalType::MAX_DECIMAL_PRECISION,
                    scale,
                })
            }
            ConnectKind::Date => {
                let v = json
                    .as_i64()
                    .ok_or_else(|| mismatch("days since the epoch"))?;
                i32::try_from(v)
                    .map(Value::Date)
                    .map_err(|_| mismatch("a date"))
            }
            ConnectKind::Timestamp { divisor, unit } => {
                let v = json
                    .as_i64()
                    .ok_or_else(|| mismatch("an epoch timestamp"))?;
                Ok(Value::Timestamp {
                    value: v.div_euclid(divisor),
                    unit,
                })
            }
            ConnectKind::ZonedTimestamp => {
                let text = json
                    .as_str()
                    .ok_or_else(|| mismatch("an ISO-8601 timestamp"))?;
                parse_timestamp_micros(text).map(|value| Value::Timestamp {
                    value,
                    unit: TimeUnit::Microsecond,
                })
            }
        }
    }
}

/// Converts a JSON value that no schema describes: integers → bigint, other numbers → double, strings,
/// booleans; objects and arrays are kept as JSON text.
pub fn infer(json: &Json) -> Value {
    match json {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Value::Bigint(i),
            None => Value::Double(n.as_f64().unwrap_or(f64::NAN)),
        },
        Json::String(s) => Value::String(s.clone()),
        other => Value::String(other.to_string()),
    }
}

fn short(json: &Json) -> String {
    let text = json.to_string();
    if text.len() > 40 {
        let mut cut = 40;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{}…", &text[..cut])
    } else {
        text
    }
}

fn base64_decode(text: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| {
            format!(
                "`{}` is not base64: {e}",
                short(&Json::String(text.to_string()))
            )
        })
}

/// Big-endian two's-complement bytes (Java `BigInteger.toByteArray`) to an i128.
pub fn unscaled_from_be_bytes(bytes: &[u8]) -> Result<i128, String> {
    if bytes.is_empty() {
        return Ok(0);
    }
    if bytes.len() > 16 {
        return Err(format!(
            "decimal of {} bytes does not fit 38 digits",
            bytes.len()
        ));
    }
    let fill = if bytes[0] & 0x80 != 0 { 0xff } else { 0x00 };
    let mut buf = [fill; 16];
    buf[16 - bytes.len()..].copy_from_slice(bytes);
    Ok(i128::from_be_bytes(buf))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn connect_decimal_decodes_base64_big_endian() {
        // 1234.5678 at scale 4 = 12345678 = 0x00BC614E
        let kind = ConnectKind::Decimal {
            precision: 18,
            scale: 4,
        };
        let b64 = base64::engine::general_purpose::STANDARD.encode([0x00, 0xBC, 0x61, 0x4E]);
        assert_eq!(
            kind.convert(&json!(b64)).unwrap(),
            Value::Decimal {
                unscaled: 12_345_678,
                precision: 18,
                scale: 4
            }
        );
        // -1 is 0xFF
        let neg = base64::engine::general_purpose::STANDARD.encode([0xFF]);
        assert_eq!(
            kind.convert(&json!(neg)).unwrap(),
            Value::Decimal {
                unscaled: -1,
                precision: 18,
                scale: 4
            }
        );
    }

    #[test]
    fn debezium_time_types_map_to_timestamps_and_dates() {
        let schema = |name: &str, ty: &str| {
            ConnectSchema::parse(&json!({"type": ty, "name": name}))
                .unwrap()
                .kind()
        };
        assert_eq!(
            schema("io.debezium.time.Timestamp", "int64")
                .convert(&json!(1_700_000_000_123i64))
                .unwrap(),
            Value::Timestamp {
                value: 1_700_000_000_123,
                unit: TimeUnit::Millisecond
            }
        );
        assert_eq!(
            schema("io.debezium.time.NanoTimestamp", "int64")
                .convert(&json!(1_000_000_123_456i64))
                .unwrap(),
            Value::Timestamp {
                value: 1_000_000_123,
                unit: TimeUnit::Microsecond
            }
        );
        assert_eq!(
            schema("io.debezium.time.Date", "int32")
                .convert(&json!(19_723))
                .unwrap(),
            Value::Date(19_723)
        );
        assert_eq!(
            schema("io.debezium.time.ZonedTimestamp", "string")
                .convert(&json!("2024-01-01T01:00:00+01:00"))
                .unwrap(),
            Value::Timestamp {
                value: 1_704_067_200_000_000,
                unit: TimeUnit::Microsecond
            }
        );
    }

    #[test]
    fn wrong_json_type_is_an_error_not_a_panic() {
        assert!(ConnectKind::Int.convert(&json!("seven")).is_err());
        assert!(ConnectKind::Int.convert(&json!(1i64 << 40)).is_err());
        assert!(ConnectKind::Decimal {
            precision: 5,
            scale: 2
        }
        .convert(&json!("not base64!"))
        .is_err());
        assert!(ConnectKind::Boolean.convert(&json!(1)).is_err());
    }
}
