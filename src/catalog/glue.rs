//! AWS Glue Data Catalog registration, as Hudi's own Glue sync (AWSGlueCatalogSyncClient) does it for a
//! copy-on-write table: EXTERNAL_TABLE, HoodieParquetInputFormat / MapredParquetOutputFormat /
//! ParquetHiveSerDe, `_hoodie_*` + data columns, partition columns as PartitionKeys, the Spark data-source
//! parameters, `last_commit_time_sync`, and partitions via BatchCreatePartition.

use super::hive_types::{hive_type, spark_schema_json};
use super::{CatalogError, TableRegistration};
use crate::config::{CatalogConfig, LakeFormat};
use crate::sink::hudi::META_COLUMNS;
use aws_sdk_glue::error::DisplayErrorContext;
use aws_sdk_glue::types::{Column, PartitionInput, SerDeInfo, StorageDescriptor, TableInput};
use std::collections::HashMap;

pub const INPUT_FORMAT: &str = "org.apache.hudi.hadoop.HoodieParquetInputFormat";
pub const OUTPUT_FORMAT: &str = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat";
pub const SERDE: &str = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe";
/// BatchCreatePartition takes at most this many partitions per call.
const PARTITION_BATCH: usize = 100;

/// A Glue database to register tables in.
pub struct GlueCatalog {
    client: aws_sdk_glue::Client,
    pub database: String,
}

impl GlueCatalog {
    /// A client from the standard AWS chain (environment, profile, web identity, ECS, IMDS), with the
    /// `[catalog]` region and endpoint on top.
    pub async fn new(config: &CatalogConfig) -> GlueCatalog {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if let Some(region) = &config.region {
            loader = loader.region(aws_config::Region::new(region.clone()));
        }
        if let Some(endpoint) = &config.endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        let sdk = loader.load().await;
        GlueCatalog {
            client: aws_sdk_glue::Client::new(&sdk),
            database: config.database.clone().unwrap_or_default(),
        }
    }

    /// Checks the database exists (for `validate`).
    pub async fn check_database(&self) -> Result<(), CatalogError> {
        self.client
            .get_database()
            .name(&self.database)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| CatalogError::Database {
                database: self.database.clone(),
                message: DisplayErrorContext(&e).to_string(),
            })
    }

    fn table_error(&self, table: &str, operation: &'static str, message: String) -> CatalogError {
        CatalogError::Table {
            database: self.database.clone(),
            table: table.to_string(),
            operation,
            message,
        }
    }

    fn storage_descriptor(
        &self,
        reg: &TableRegistration<'_>,
        location: &str,
    ) -> Result<StorageDescriptor, CatalogError> {
        let mut columns = Vec::new();
        for m in META_COLUMNS {
            columns.push(
                column(m, "string")
                    .map_err(|e| self.table_error(reg.table, "building columns", e))?,
            );
        }
        for c in reg
            .schema
            .columns
            .iter()
            .filter(|c| !reg.partition_fields.contains(&c.name))
        {
            columns.push(
                column(&c.name, &hive_type(c.ty))
                    .map_err(|e| self.table_error(reg.table, "building columns", e))?,
            );
        }
        let serde = SerDeInfo::builder()
            .serialization_library(SERDE)
            .parameters("serialization.format", "1")
            .parameters("path", reg.location.clone())
            .build();
        Ok(StorageDescriptor::builder()
            .set_columns(Some(columns))
            .location(location)
            .input_format(INPUT_FORMAT)
            .output_format(OUTPUT_FORMAT)
            .serde_info(serde)
            .build())
    }

    fn table_input(
        &self,
        reg: &TableRegistration<'_>,
        mut parameters: HashMap<String, String>,
    ) -> Result<TableInput, CatalogError> {
        let mut partition_keys = Vec::new();
        for p in reg.partition_fields {
            let ty = reg
                .schema
                .columns
                .iter()
                .find(|c| &c.name == p)
                .map(|c| hive_type(c.ty))
                .unwrap_or_else(|| "string".into());
            partition_keys.push(
                column(p, &ty)
                    .map_err(|e| self.table_error(reg.table, "building partition keys", e))?,
            );
        }
        parameters.extend(HashMap::<String, String>::from([
            ("EXTERNAL".into(), "TRUE".into()),
            ("spark.sql.sources.provider".into(), "hudi".into()),
            ("last_commit_time_sync".into(), reg.instant.to_string()),
            ("spark.sql.sources.schema.numParts".into(), "1".into()),
            (
                "spark.sql.sources.schema.part.0".into(),
                spark_schema_json(reg.schema, reg.partition_fields),
            ),
        ]));
        if !reg.partition_fields.is_empty() {
            parameters.insert(
                "spark.sql.sources.schema.numPartCols".into(),
                reg.partition_fields.len().to_string(),
            );
            for (i, p) in reg.partition_fields.iter().enumerate() {
                parameters.insert(format!("spark.sql.sources.schema.partCol.{i}"), p.clone());
            }
        }
        TableInput::builder()
            .name(reg.table)
            .table_type("EXTERNAL_TABLE")
            .set_parameters(Some(parameters))
            .storage_descriptor(self.storage_descriptor(reg, &reg.location)?)
            .set_partition_keys(Some(partition_keys))
            .build()
            .map_err(|e| self.table_error(reg.table, "building the table input", e.to_string()))
    }

    /// Creates the table, or updates it (columns, `last_commit_time_sync`), then adds new partitions.
    pub async fn sync(&self, reg: &TableRegistration<'_>) -> Result<(), CatalogError> {
        let existing = match self
            .client
            .get_table()
            .database_name(&self.database)
            .name(reg.table)
            .send()
            .await
        {
            Ok(out) => Some(out.table.and_then(|t| t.parameters).unwrap_or_default()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_entity_not_found_exception()) =>
            {
                None
            }
            Err(e) => {
                return Err(self.table_error(
                    reg.table,
                    "GetTable",
                    DisplayErrorContext(&e).to_string(),
                ))
            }
        };
        // Like Hudi's sync: keep parameters others set on the table (Lake Formation, Athena, users) and
        // overwrite only ours.
        let parameters = existing.clone().unwrap_or_default();
        let input = match reg.format {
            LakeFormat::Hudi => self.table_input(reg, parameters)?,
            LakeFormat::Delta => super::delta_table::table_input(reg, parameters)
                .map_err(|e| self.table_error(reg.table, "building the table input", e))?,
        };
        if existing.is_some() {
            self.client
                .update_table()
                .database_name(&self.database)
                // One Glue table version per commit would exhaust Glue's version quota.
                .skip_archive(true)
                .table_input(input)
                .send()
                .await
                .map_err(|e| {
                    self.table_error(
                        reg.table,
                        "UpdateTable",
                        DisplayErrorContext(&e).to_string(),
                    )
                })?;
        } else {
            self.client
                .create_table()
                .database_name(&self.database)
                .table_input(input)
                .send()
                .await
                .map_err(|e| {
                    self.table_error(
                        reg.table,
                        "CreateTable",
                        DisplayErrorContext(&e).to_string(),
                    )
                })?;
        }
        self.add_partitions(reg).await
    }

    /// Registers new partitions of a Hudi table (Delta readers take partitions from the log).
    async fn add_partitions(&self, reg: &TableRegistration<'_>) -> Result<(), CatalogError> {
        if reg.format == LakeFormat::Delta
            || reg.partition_fields.is_empty()
            || reg.partitions.is_empty()
        {
            return Ok(());
        }
        let mut inputs = Vec::new();
        for path in reg.partitions {
            let values: Vec<String> = path
                .split('/')
                .map(|seg| {
                    seg.split_once('=')
                        .map(|(_, v)| v)
                        .unwrap_or(seg)
                        .to_string()
                })
                .collect();
            let location = format!("{}/{}", reg.location.trim_end_matches('/'), path);
            inputs.push(
                PartitionInput::builder()
                    .set_values(Some(values))
                    .storage_descriptor(self.storage_descriptor(reg, &location)?)
                    .build(),
            );
        }
        for chunk in inputs.chunks(PARTITION_BATCH) {
            let out = self
                .client
                .batch_create_partition()
                .database_name(&self.database)
                .table_name(reg.table)
                .set_partition_input_list(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| {
                    self.table_error(
                        reg.table,
                        "BatchCreatePartition",
                        DisplayErrorContext(&e).to_string(),
                    )
                })?;
            let failures: Vec<String> = out
                .errors()
                .iter()
                .filter_map(|err| {
                    let detail = err.error_detail()?;
                    (detail.error_code() != Some("AlreadyExistsException")).then(|| {
                        format!(
                            "{:?}: {}",
                            err.partition_values(),
                            detail.error_message().unwrap_or_default()
                        )
                    })
                })
                .collect();
            if !failures.is_empty() {
                return Err(self.table_error(
                    reg.table,
                    "BatchCreatePartition",
                    failures.join("; "),
                ));
            }
        }
        Ok(())
    }
}

fn column(name: &str, ty: &str) -> Result<Column, String> {
    Column::builder()
        .name(name)
        .r#type(ty)
        .build()
        .map_err(|e| e.to_string())
}
