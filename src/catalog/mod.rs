//! Catalogs a table is registered in after each commit (Glue, or none). A catalog failure never rolls data
//! back: the commit stands, the sync is retried, and the next commit syncs again.

mod delta_table;
mod glue;
mod hive_types;

pub use glue::GlueCatalog;
pub use hive_types::{hive_type, spark_schema_json};

use crate::config::LakeFormat;
use crate::schema::TableSchema;

/// An error talking to a catalog.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("glue database `{database}`: {message}")]
    Database { database: String, message: String },
    #[error("glue table `{database}.{table}`: {operation}: {message}")]
    Table {
        database: String,
        table: String,
        operation: &'static str,
        message: String,
    },
}

/// What a catalog needs to know about a table after a commit.
#[derive(Debug, Clone)]
pub struct TableRegistration<'a> {
    pub table: &'a str,
    /// `s3://bucket/prefix/table` (or a local path).
    pub location: String,
    /// Data columns in file order (partition columns included; the catalog splits them off).
    pub schema: &'a TableSchema,
    pub partition_fields: &'a [String],
    /// Partition paths written by the commit (`ProjectId=3`), to register if new.
    pub partitions: &'a [String],
    /// The commit's instant (Hudi `last_commit_time_sync`) or Delta version.
    pub instant: &'a str,
    /// The table's format: Hudi and Delta tables are registered differently.
    pub format: LakeFormat,
}

/// Where tables are registered.
pub enum Catalog {
    None,
    Glue(Box<GlueCatalog>),
}

impl Catalog {
    /// Registers or updates the table, retrying transient failures a few times.
    pub async fn sync(&self, reg: &TableRegistration<'_>) -> Result<(), CatalogError> {
        match self {
            Catalog::None => Ok(()),
            Catalog::Glue(g) => {
                let mut backoff = std::time::Duration::from_millis(500);
                let mut attempt = 1;
                loop {
                    match g.sync(reg).await {
                        Ok(()) => return Ok(()),
                        Err(e) if attempt < 4 => {
                            tracing::warn!(table = reg.table, error = %e, attempt, "glue sync failed; retrying");
                            tokio::time::sleep(backoff).await;
                            backoff *= 2;
                            attempt += 1;
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
        }
    }
}
