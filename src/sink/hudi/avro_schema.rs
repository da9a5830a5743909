//! The Avro schema Hudi keeps in commit metadata (`extraMetadata.schema`) and in parquet footers
//! (`parquet.avro.schema`), written from a table schema and read back.

use crate::schema::{Column, TableSchema};
use lakefold_api::{LogicalType, TimeUnit};
use serde_json::{json, Value as Json};

/// The five meta columns, in file order.
pub const META_COLUMNS: [&str; 5] = [
    "_hoodie_commit_time",
    "_hoodie_commit_seqno",
    "_hoodie_record_key",
    "_hoodie_partition_path",
    "_hoodie_file_name",
];

/// Avro schema JSON of the data columns (`with_meta`: the five meta columns first, as in parquet footers).
pub fn avro_schema(table: &str, schema: &TableSchema, with_meta: bool) -> String {
    let record = format!("{table}_record");
    let namespace = format!("hoodie.{table}");
    let mut fields: Vec<Json> = Vec::new();
    if with_meta {
        for m in META_COLUMNS {
            fields.push(json!({"name": m, "type": ["null", "string"], "doc": "", "default": null}));
        }
    }
    for c in &schema.columns {
        fields.push(json!({"name": c.name, "type": ["null", avro_type(c, &format!("{namespace}.{record}"))], "default": null}));
    }
    json!({"type": "record", "name": record, "namespace": namespace, "fields": fields}).to_string()
}

fn avro_type(c: &Column, record_namespace: &str) -> Json {
    match c.ty {
        LogicalType::Boolean => json!("boolean"),
        LogicalType::Int => json!("int"),
        LogicalType::Bigint => json!("long"),
        LogicalType::Float => json!("float"),
        LogicalType::Double => json!("double"),
        LogicalType::String => json!("string"),
        LogicalType::Binary => json!("bytes"),
        LogicalType::Date => json!({"type": "int", "logicalType": "date"}),
        LogicalType::Timestamp(TimeUnit::Millisecond) => {
            json!({"type": "long", "logicalType": "timestamp-millis"})
        }
        LogicalType::Timestamp(TimeUnit::Microsecond) => {
            json!({"type": "long", "logicalType": "timestamp-micros"})
        }
        LogicalType::Decimal { precision, scale } => json!({
            "type": "fixed", "name": "fixed", "namespace": format!("{record_namespace}.{}", c.name),
            "size": decimal_fixed_size(precision), "logicalType": "decimal", "precision": precision, "scale": scale
        }),
    }
}

/// Fewest bytes whose two's complement holds every `precision`-digit number (Hudi/Spark's rule).
pub fn decimal_fixed_size(precision: u8) -> usize {
    let mut bytes = 1usize;
    while (8 * bytes - 1) as f64 * std::f64::consts::LOG10_2 < precision as f64 {
        bytes += 1;
    }
    bytes
}

/// Reads the data columns back from an Avro record schema (meta columns skipped); `None` when the text
/// is not a record schema or uses a type lakefold does not write.
pub fn parse_avro_schema(text: &str) -> Option<TableSchema> {
    let json: Json = serde_json::from_str(text).ok()?;
    let fields = json.get("fields")?.as_array()?;
    let mut columns = Vec::new();
    for f in fields {
        let name = f.get("name")?.as_str()?;
        if META_COLUMNS.contains(&name) {
            continue;
        }
        let ty = match f.get("type")? {
            Json::Array(union) => union.iter().find(|t| t.as_str() != Some("null"))?,
            other => other,
        };
        columns.push(Column {
            name: name.to_string(),
            ty: logical_from_avro(ty)?,
        });
    }
    Some(TableSchema { columns })
}

fn logical_from_avro(ty: &Json) -> Option<LogicalType> {
    if let Some(name) = ty.as_str() {
        return Some(match name {
            "boolean" => LogicalType::Boolean,
            "int" => LogicalType::Int,
            "long" => LogicalType::Bigint,
            "float" => LogicalType::Float,
            "double" => LogicalType::Double,
            "string" => LogicalType::String,
            "bytes" => LogicalType::Binary,
            _ => return None,
        });
    }
    let logical = ty.get("logicalType").and_then(Json::as_str);
    let base = ty.get("type").and_then(Json::as_str)?;
    Some(match (logical, base) {
        (Some("date"), _) => LogicalType::Date,
        (Some("timestamp-millis"), _) => LogicalType::Timestamp(TimeUnit::Millisecond),
        (Some("timestamp-micros"), _) => LogicalType::Timestamp(TimeUnit::Microsecond),
        (Some("decimal"), _) => LogicalType::Decimal {
            precision: u8::try_from(ty.get("precision")?.as_u64()?).ok()?,
            scale: i8::try_from(ty.get("scale").and_then(Json::as_u64).unwrap_or(0)).ok()?,
        },
        (None, other) => logical_from_avro(&json!(other))?,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> TableSchema {
        TableSchema {
            columns: vec![
                Column {
                    name: "SaleId".into(),
                    ty: LogicalType::Int,
                },
                Column {
                    name: "ContractSubtotal".into(),
                    ty: LogicalType::Decimal {
                        precision: 18,
                        scale: 4,
                    },
                },
                Column {
                    name: "ContractSigningDate".into(),
                    ty: LogicalType::Timestamp(TimeUnit::Millisecond),
                },
                Column {
                    name: "Day".into(),
                    ty: LogicalType::Date,
                },
                Column {
                    name: "_lakefold_position".into(),
                    ty: LogicalType::String,
                },
            ],
        }
    }

    #[test]
    fn writes_hudi_style_nullable_unions_and_reads_them_back() {
        let text = avro_schema("sales", &schema(), false);
        let json: Json = serde_json::from_str(&text).unwrap();
        assert_eq!(json["name"], "sales_record");
        assert_eq!(json["namespace"], "hoodie.sales");
        assert_eq!(json["fields"][0]["type"], json!(["null", "int"]));
        assert_eq!(json["fields"][1]["type"][1]["size"], 8);
        assert_eq!(parse_avro_schema(&text).unwrap(), schema());
        let with_meta = avro_schema("sales", &schema(), true);
        assert_eq!(
            serde_json::from_str::<Json>(&with_meta).unwrap()["fields"][0]["name"],
            "_hoodie_commit_time"
        );
        assert_eq!(parse_avro_schema(&with_meta).unwrap(), schema());
    }

    #[test]
    fn decimal_sizes_match_spark() {
        // Spark's minBytesForPrecision: 10 → 5 (golden decimalField DECIMAL(10,5) has size 5), 18 → 8, 38 → 16.
        assert_eq!(decimal_fixed_size(10), 5);
        assert_eq!(decimal_fixed_size(18), 8);
        assert_eq!(decimal_fixed_size(38), 16);
        assert_eq!(decimal_fixed_size(9), 4);
    }
}
