//! Column types as Hive/Glue and Spark name them.

use crate::schema::TableSchema;
use lakefold_api::{LogicalType, TimeUnit};
use serde_json::json;

/// The Hive type of a column (what Glue stores and Athena reads).
pub fn hive_type(ty: LogicalType) -> String {
    match ty {
        LogicalType::Boolean => "boolean".into(),
        LogicalType::Int => "int".into(),
        LogicalType::Bigint => "bigint".into(),
        LogicalType::Float => "float".into(),
        LogicalType::Double => "double".into(),
        LogicalType::Decimal { precision, scale } => format!("decimal({precision},{scale})"),
        LogicalType::String => "string".into(),
        LogicalType::Binary => "binary".into(),
        LogicalType::Date => "date".into(),
        LogicalType::Timestamp(_) => "timestamp".into(),
    }
}

fn spark_type(ty: LogicalType) -> serde_json::Value {
    match ty {
        LogicalType::Boolean => json!("boolean"),
        LogicalType::Int => json!("integer"),
        LogicalType::Bigint => json!("long"),
        LogicalType::Float => json!("float"),
        LogicalType::Double => json!("double"),
        LogicalType::Decimal { precision, scale } => json!(format!("decimal({precision},{scale})")),
        LogicalType::String => json!("string"),
        LogicalType::Binary => json!("binary"),
        LogicalType::Date => json!("date"),
        LogicalType::Timestamp(TimeUnit::Millisecond | TimeUnit::Microsecond) => json!("timestamp"),
    }
}

/// The Spark `StructType` JSON Hudi's sync stores in `spark.sql.sources.schema.part.0`: meta columns, data
/// columns, then partition columns (Spark's order for a partitioned data source table).
pub fn spark_schema_json(schema: &TableSchema, partition_fields: &[String]) -> String {
    let field = |name: &str, ty: serde_json::Value| json!({"name": name, "type": ty, "nullable": true, "metadata": {}});
    let mut fields: Vec<serde_json::Value> = crate::sink::hudi::META_COLUMNS
        .iter()
        .map(|m| field(m, json!("string")))
        .collect();
    for c in schema
        .columns
        .iter()
        .filter(|c| !partition_fields.contains(&c.name))
    {
        fields.push(field(&c.name, spark_type(c.ty)));
    }
    for p in partition_fields {
        if let Some(c) = schema.columns.iter().find(|c| &c.name == p) {
            fields.push(field(&c.name, spark_type(c.ty)));
        }
    }
    json!({"type": "struct", "fields": fields}).to_string()
}
