//! The Glue table of a Delta table, as Athena (engine v3) and Trino's Delta Lake connector read Delta
//! natively (both take the schema, partitions and files from the Delta log):
//!
//! - `spark.sql.sources.provider = delta`: what Trino checks (`HiveMetastoreBackedDeltaLakeMetastore`,
//!   case-insensitive) and Athena accepts (docs: "Synchronizing Delta Lake metadata");
//! - `table_type = DELTA`: what Athena's own `CREATE EXTERNAL TABLE … TBLPROPERTIES ('table_type'='DELTA')`
//!   writes; `EXTERNAL = TRUE`, as Trino writes it;
//! - the location twice: `StorageDescriptor.Location` (Athena, delta-rs's Glue catalog) and the SerDe
//!   parameter `path` (Trino reads only that);
//! - the storage format Trino and Databricks write for Delta tables (LazySimpleSerDe, sequence-file
//!   input/output formats), which nothing reads;
//! - the real columns (Athena's Lake Formation filters and views need the Glue schema to match the log)
//!   and the partition columns as `PartitionKeys`; no Glue partitions (both readers list files from the
//!   log).
//!
//! Trino caches a table's schema in `trino_last_transaction_version` / `trino_metadata_schema_string`;
//! lakefold drops those keys when it updates the table, so Trino re-reads the log.

use super::hive_types::hive_type;
use super::TableRegistration;
use aws_sdk_glue::types::{Column, SerDeInfo, StorageDescriptor, TableInput};
use std::collections::HashMap;

pub const INPUT_FORMAT: &str = "org.apache.hadoop.mapred.SequenceFileInputFormat";
pub const OUTPUT_FORMAT: &str = "org.apache.hadoop.hive.ql.io.HiveSequenceFileOutputFormat";
pub const SERDE: &str = "org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe";
/// Trino's cached-schema keys (dropped on update).
const TRINO_CACHE_KEYS: [&str; 2] = [
    "trino_last_transaction_version",
    "trino_metadata_schema_string",
];

/// The `TableInput` of a Delta table; `parameters` are the table's current ones (kept, except Trino's
/// schema cache).
pub fn table_input(
    reg: &TableRegistration<'_>,
    mut parameters: HashMap<String, String>,
) -> Result<TableInput, String> {
    for key in TRINO_CACHE_KEYS {
        parameters.remove(key);
    }
    parameters.extend(HashMap::<String, String>::from([
        ("EXTERNAL".into(), "TRUE".into()),
        ("spark.sql.sources.provider".into(), "delta".into()),
        ("table_type".into(), "DELTA".into()),
        (
            "lakefold.delta_version_sync".into(),
            reg.instant.to_string(),
        ),
    ]));
    let typed = |name: &str| -> Result<Column, String> {
        let ty = reg
            .schema
            .columns
            .iter()
            .find(|c| c.name == name)
            .map(|c| hive_type(c.ty))
            .unwrap_or_else(|| "string".into());
        Column::builder()
            .name(name)
            .r#type(ty)
            .build()
            .map_err(|e| e.to_string())
    };
    let columns = reg
        .schema
        .columns
        .iter()
        .filter(|c| !reg.partition_fields.contains(&c.name))
        .map(|c| typed(&c.name))
        .collect::<Result<Vec<_>, _>>()?;
    let partition_keys = reg
        .partition_fields
        .iter()
        .map(|p| typed(p))
        .collect::<Result<Vec<_>, _>>()?;
    let serde = SerDeInfo::builder()
        .serialization_library(SERDE)
        .parameters("serialization.format", "1")
        .parameters("path", reg.location.clone())
        .build();
    let storage = StorageDescriptor::builder()
        .set_columns(Some(columns))
        .location(reg.location.clone())
        .input_format(INPUT_FORMAT)
        .output_format(OUTPUT_FORMAT)
        .serde_info(serde)
        .build();
    TableInput::builder()
        .name(reg.table)
        .table_type("EXTERNAL_TABLE")
        .set_parameters(Some(parameters))
        .storage_descriptor(storage)
        .set_partition_keys(Some(partition_keys))
        .build()
        .map_err(|e| e.to_string())
}
