//! A route compiled for folding: projection, key and partition columns, type overrides, delete handling,
//! and the column types the table has (or will have).

use crate::config::{OnDelete, RouteConfig};
use crate::schema::{Column, TableSchema, DELETED_COLUMN, POSITION_COLUMN};
use lakefold_api::{Field, LogicalType, Row, TableId};
use std::sync::Arc;

/// Hive's name for the partition of null values (what Hudi writes for a null partition column).
pub const HIVE_DEFAULT_PARTITION: &str = "__HIVE_DEFAULT_PARTITION__";

/// A route ready to project events.
#[derive(Debug, Clone)]
pub struct RouteSpec {
    pub table: String,
    pub source: String,
    pub from: TableId,
    /// `(output, input)` column names in output order.
    pub projection: Vec<(String, String)>,
    /// Indices into `projection` of the key columns, in key order.
    pub key: Vec<usize>,
    /// Indices into `projection` of the partition columns.
    pub partition_by: Vec<usize>,
    /// Declared type of each output column (override or table schema); `None` = decided by the first value.
    pub types: Vec<Option<LogicalType>>,
    pub on_delete: OnDelete,
    /// Record keys read `col:value,...` (Hudi ComplexKeyGenerator: several key columns, or several
    /// partition columns) rather than the bare value.
    pub complex_keys: bool,
    /// The last row field list seen and where each projected column is in it (rows decoded with the same
    /// schema share their field list, so the names are looked up once).
    lookup: Option<(Arc<Vec<Field>>, Arc<[Option<usize>]>)>,
}

impl RouteSpec {
    /// Compiles a (validated) route; `existing` is the table's current schema, whose types win over
    /// inference so a table keeps its types across runs.
    pub fn new(route: &RouteConfig, existing: Option<&TableSchema>) -> RouteSpec {
        let projection = route.projection();
        let index = |name: &String| projection.iter().position(|(out, _)| out == name);
        let types = projection
            .iter()
            .map(|(out, _)| {
                route
                    .types
                    .get(out)
                    .and_then(|t| t.parse().ok())
                    .or_else(|| existing.and_then(|s| s.index_of(out).map(|i| s.columns[i].ty)))
            })
            .collect();
        RouteSpec {
            lookup: None,
            complex_keys: crate::sink::hudi::uses_complex_keys(
                route.key.len(),
                route.partition_by.len(),
            ),
            table: route.table.clone(),
            source: route.source.clone(),
            from: TableId::parse(&route.from),
            key: route.key.iter().filter_map(index).collect(),
            partition_by: route.partition_by.iter().filter_map(index).collect(),
            projection,
            types,
            on_delete: route.on_delete,
        }
    }

    /// Makes [`RouteSpec::positions`] those of rows with `fields` ([`Row::position_of`]); looked up
    /// again only when the field list changes.
    pub fn look_up_columns(&mut self, fields: &Arc<Vec<Field>>) {
        if let Some((known, _)) = &self.lookup {
            if Arc::ptr_eq(known, fields) {
                return;
            }
        }
        let positions: Arc<[Option<usize>]> = self
            .projection
            .iter()
            .map(|(_, input)| Row::position_of(fields, input))
            .collect();
        self.lookup = Some((fields.clone(), positions));
    }

    /// Where each projected input column is in the rows last given to [`RouteSpec::look_up_columns`].
    pub fn positions(&self) -> &[Option<usize>] {
        self.lookup.as_ref().map_or(&[], |(_, p)| p)
    }

    /// Output names of the key columns.
    pub fn key_names(&self) -> Vec<String> {
        self.key
            .iter()
            .map(|&i| self.projection[i].0.clone())
            .collect()
    }

    pub fn partition_names(&self) -> Vec<String> {
        self.partition_by
            .iter()
            .map(|&i| self.projection[i].0.clone())
            .collect()
    }

    /// The table schema for the next commit: projected columns (undecided types become string), the
    /// position (precombine) column, and the soft-delete marker for `on_delete = "soft"`.
    ///
    /// Undecided types become string and stay string from now on, so every file of the table agrees.
    pub fn table_schema(&mut self) -> TableSchema {
        for ty in self.types.iter_mut() {
            ty.get_or_insert(LogicalType::String);
        }
        let mut columns: Vec<Column> = self
            .projection
            .iter()
            .zip(&self.types)
            .map(|((out, _), ty)| Column {
                name: out.clone(),
                ty: ty.unwrap_or(LogicalType::String),
            })
            .collect();
        columns.push(Column {
            name: POSITION_COLUMN.into(),
            ty: LogicalType::String,
        });
        if self.on_delete == OnDelete::Soft {
            columns.push(Column {
                name: DELETED_COLUMN.into(),
                ty: LogicalType::Boolean,
            });
        }
        TableSchema { columns }
    }
}
