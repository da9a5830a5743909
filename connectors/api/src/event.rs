//! Change events: one row image (or two) of one source table.

use crate::types::LogicalType;
use crate::value::Value;
use std::fmt;
use std::sync::Arc;

/// The source table an event belongs to, `schema.table` (Debezium `source.schema` / `source.table`, or the
/// table of a SQL Server capture instance).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TableId {
    pub schema: Option<String>,
    pub table: String,
}

impl TableId {
    /// Parses `schema.table` or a bare `table`.
    pub fn parse(s: &str) -> TableId {
        match s.split_once('.') {
            Some((schema, table)) => TableId {
                schema: Some(schema.to_string()),
                table: table.to_string(),
            },
            None => TableId {
                schema: None,
                table: s.to_string(),
            },
        }
    }

    /// True when `self` (what a route reads) names `other` (an event's table). SQL Server identifiers are
    /// case-insensitive, so the comparison is too; a route without a schema matches any schema.
    pub fn matches(&self, other: &TableId) -> bool {
        let schema_ok = match (&self.schema, &other.schema) {
            (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
            _ => true,
        };
        schema_ok && self.table.eq_ignore_ascii_case(&other.table)
    }
}

impl fmt::Display for TableId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.schema {
            Some(schema) => write!(f, "{schema}.{}", self.table),
            None => f.write_str(&self.table),
        }
    }
}

/// What happened to the row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Debezium `c`.
    Create,
    /// Debezium `u`.
    Update,
    /// Debezium `r`: a snapshot read.
    Read,
    /// Debezium `d`: the row image is `before`.
    Delete,
}

impl Op {
    pub fn is_delete(self) -> bool {
        matches!(self, Op::Delete)
    }

    pub fn code(self) -> &'static str {
        match self {
            Op::Create => "c",
            Op::Update => "u",
            Op::Read => "r",
            Op::Delete => "d",
        }
    }
}

/// A column of a row: its name and, when the source declared one, its type.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub name: String,
    pub ty: Option<LogicalType>,
}

/// A row image. The field list is shared by all rows decoded with the same schema.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub fields: Arc<Vec<Field>>,
    pub values: Vec<Value>,
}

impl Row {
    /// The column called `name`: exact match first, then ASCII case-insensitive (SQL Server names are).
    pub fn get(&self, name: &str) -> Option<(&Field, &Value)> {
        let idx = Row::position_of(&self.fields, name)?;
        Some((&self.fields[idx], self.values.get(idx)?))
    }

    /// Where [`Row::get`] finds `name` among `fields` (rows that share a field list share the answer).
    pub fn position_of(fields: &[Field], name: &str) -> Option<usize> {
        fields.iter().position(|f| f.name == name).or_else(|| {
            fields
                .iter()
                .position(|f| f.name.eq_ignore_ascii_case(name))
        })
    }

    /// The field and value at `idx`.
    pub fn at(&self, idx: usize) -> Option<(&Field, &Value)> {
        Some((self.fields.get(idx)?, self.values.get(idx)?))
    }
}

/// One change of one row.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeEvent {
    /// The table the row belongs to; `None` when the message carries no table identity (for example
    /// Debezium's flattened form without `__table`): such events belong to every route of their source.
    pub table: Option<TableId>,
    pub op: Op,
    pub before: Option<Row>,
    pub after: Option<Row>,
    /// When the change was committed in the source database, ms since the epoch (Debezium
    /// `source.ts_ms`, SQL Server `tran_end_time`), when the source says: what freshness is measured from.
    pub source_ts_ms: Option<i64>,
}

impl ChangeEvent {
    /// The image that carries the row's values: `before` for deletes, `after` otherwise.
    pub fn image(&self) -> Option<&Row> {
        if self.op.is_delete() {
            self.before.as_ref().or(self.after.as_ref())
        } else {
            self.after.as_ref()
        }
    }
}
