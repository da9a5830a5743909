//! A recorded CDC history: capture instances, their change rows and `cdc.lsn_time_mapping`, in the JSON
//! form the fixture server loads (`lakefold-mssql-fixture --data FILE`). It is also the in-memory CDC
//! model the poller's tests run against ([`crate::memory::MemoryCdc`]).

use crate::sql_type::SqlType;
use lakefold_api::{parse_timestamp_micros, Lsn, Value};
use serde::Deserialize;
use std::collections::BTreeMap;

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryFile {
    pub database: String,
    pub capture_instances: Vec<InstanceFile>,
    #[serde(default)]
    pub lsn_time_mapping: Vec<TransactionFile>,
    /// What `sys.fn_cdc_get_min_lsn(instance)` returns; default the instance's `start_lsn`.
    #[serde(default)]
    pub min_lsn: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceFile {
    pub name: String,
    pub source_schema: String,
    pub source_table: String,
    pub start_lsn: String,
    pub columns: Vec<ColumnFile>,
    #[serde(default)]
    pub changes: Vec<ChangeFile>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnFile {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: String,
    #[serde(default = "yes")]
    pub nullable: bool,
    #[serde(default)]
    pub key: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeFile {
    pub start_lsn: String,
    pub seqval: String,
    pub operation: i32,
    #[serde(default)]
    pub values: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransactionFile {
    pub start_lsn: String,
    #[serde(default)]
    pub tran_begin_time: Option<String>,
    #[serde(default)]
    pub tran_end_time: Option<String>,
}

/// A column of a capture instance.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub ty: SqlType,
    pub nullable: bool,
    pub key: bool,
}

/// One row of a change table (`cdc.<instance>_CT`).
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeRow {
    pub start_lsn: Lsn,
    pub seqval: Lsn,
    /// 1 delete, 2 insert, 3 update (before), 4 update (after).
    pub operation: i32,
    /// One value per column of the instance, in column order.
    pub values: Vec<Value>,
}

/// A capture instance with its change rows ordered by (start_lsn, seqval, operation).
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    pub name: String,
    pub source_schema: String,
    pub source_table: String,
    pub start_lsn: Lsn,
    pub min_lsn: Lsn,
    pub columns: Vec<Column>,
    pub changes: Vec<ChangeRow>,
}

/// A transaction of `cdc.lsn_time_mapping`.
#[derive(Debug, Clone, PartialEq)]
pub struct Transaction {
    pub start_lsn: Lsn,
    pub begin_micros: Option<i64>,
    pub end_micros: Option<i64>,
}

/// A loaded, validated history.
#[derive(Debug, Clone, PartialEq)]
pub struct History {
    pub database: String,
    pub instances: Vec<Instance>,
    /// Ordered by start LSN.
    pub transactions: Vec<Transaction>,
}

/// Why a history file cannot be used, with where.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{at}: {message}")]
pub struct HistoryError {
    pub at: String,
    pub message: String,
}

fn bad(at: impl Into<String>, message: impl Into<String>) -> HistoryError {
    HistoryError {
        at: at.into(),
        message: message.into(),
    }
}

/// Parses `0x` + 20 hex digits (binary(10)).
pub fn parse_lsn(text: &str, at: &str) -> Result<Lsn, HistoryError> {
    let hex = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .ok_or_else(|| {
            bad(
                at,
                format!("`{text}` is not an LSN (expected 0x + 20 hex digits)"),
            )
        })?;
    if hex.len() != 20 {
        return Err(bad(
            at,
            format!("`{text}` is not an LSN (expected 0x + 20 hex digits)"),
        ));
    }
    hex.parse::<Lsn>().map_err(|e| bad(at, e.to_string()))
}

impl History {
    /// Parses and validates the JSON text of a history file.
    pub fn parse(text: &str) -> Result<History, HistoryError> {
        let file: HistoryFile =
            serde_json::from_str(text).map_err(|e| bad("history file", e.to_string()))?;
        History::from_file(file)
    }

    pub fn from_file(file: HistoryFile) -> Result<History, HistoryError> {
        let mut instances = Vec::with_capacity(file.capture_instances.len());
        for inst in &file.capture_instances {
            instances.push(load_instance(inst, &file.min_lsn)?);
        }
        let mut transactions = Vec::with_capacity(file.lsn_time_mapping.len());
        for (i, t) in file.lsn_time_mapping.iter().enumerate() {
            let at = format!("lsn_time_mapping[{i}]");
            let micros = |v: &Option<String>| -> Result<Option<i64>, HistoryError> {
                v.as_deref()
                    .map(|s| parse_timestamp_micros(s).map_err(|e| bad(&at, e)))
                    .transpose()
            };
            transactions.push(Transaction {
                start_lsn: parse_lsn(&t.start_lsn, &at)?,
                begin_micros: micros(&t.tran_begin_time)?,
                end_micros: micros(&t.tran_end_time)?,
            });
        }
        transactions.sort_by_key(|t| t.start_lsn);
        transactions.dedup_by_key(|t| t.start_lsn);
        Ok(History {
            database: file.database,
            instances,
            transactions,
        })
    }

    /// `sys.fn_cdc_get_max_lsn()`: the greatest transaction LSN (zero when there is none).
    pub fn max_lsn(&self) -> Lsn {
        self.transactions
            .last()
            .map(|t| t.start_lsn)
            .unwrap_or_default()
    }

    pub fn instance(&self, name: &str) -> Option<&Instance> {
        self.instances
            .iter()
            .find(|i| i.name.eq_ignore_ascii_case(name))
    }

    /// The instance capturing `schema.table` that started last (the current one).
    pub fn instance_for_table(&self, schema: &str, table: &str) -> Option<&Instance> {
        self.instances
            .iter()
            .filter(|i| {
                i.source_schema.eq_ignore_ascii_case(schema)
                    && i.source_table.eq_ignore_ascii_case(table)
            })
            .max_by_key(|i| i.start_lsn)
    }
}

impl Instance {
    /// The table's rows as of `lsn`: the changes up to it replayed in order (inserts and update images
    /// set a row, deletes remove it), keyed by the key columns, in key order.
    /// Where the key columns are among the columns.
    pub fn key_indexes(&self) -> Vec<usize> {
        self.columns
            .iter()
            .enumerate()
            .filter(|(_, c)| c.key)
            .map(|(i, _)| i)
            .collect()
    }

    pub fn state_at(&self, lsn: Lsn) -> Vec<Vec<Value>> {
        let keys = self.key_indexes();
        let mut rows: Vec<(Vec<Value>, Vec<Value>)> = Vec::new();
        for change in self.changes.iter().filter(|c| c.start_lsn <= lsn) {
            let key: Vec<Value> = keys.iter().map(|&k| change.values[k].clone()).collect();
            let found = rows.iter().position(|(k, _)| *k == key);
            match (change.operation, found) {
                (1, Some(i)) => {
                    rows.remove(i);
                }
                (2 | 4, Some(i)) => rows[i].1 = change.values.clone(),
                (2 | 4, None) => rows.push((key, change.values.clone())),
                _ => {}
            }
        }
        rows.sort_by(|a, b| compare_keys(&a.0, &b.0));
        rows.into_iter().map(|(_, v)| v).collect()
    }
}

/// Orders key tuples as SQL Server orders them (numbers by value, text by code point).
pub fn compare_keys(a: &[Value], b: &[Value]) -> std::cmp::Ordering {
    for (x, y) in a.iter().zip(b) {
        let o = compare_values(x, y);
        if o != std::cmp::Ordering::Equal {
            return o;
        }
    }
    a.len().cmp(&b.len())
}

fn compare_values(a: &Value, b: &Value) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let num = |v: &Value| -> Option<i128> {
        match v {
            Value::Int(i) => Some(*i as i128),
            Value::Bigint(i) => Some(*i as i128),
            _ => None,
        }
    };
    match (a, b) {
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Less,
        (_, Value::Null) => Ordering::Greater,
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Binary(x), Value::Binary(y)) => x.cmp(y),
        (Value::Decimal { unscaled: x, .. }, Value::Decimal { unscaled: y, .. }) => x.cmp(y),
        (Value::Date(x), Value::Date(y)) => x.cmp(y),
        (Value::Timestamp { value: x, .. }, Value::Timestamp { value: y, .. }) => x.cmp(y),
        (Value::Double(x), Value::Double(y)) => x.total_cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        _ => match (num(a), num(b)) {
            (Some(x), Some(y)) => x.cmp(&y),
            _ => Ordering::Equal,
        },
    }
}

fn load_instance(
    inst: &InstanceFile,
    min_lsn: &BTreeMap<String, String>,
) -> Result<Instance, HistoryError> {
    let at = format!("capture instance {}", inst.name);
    if !inst
        .name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(bad(
            &at,
            "a capture instance name is letters, digits and `_`",
        ));
    }
    let mut columns = Vec::with_capacity(inst.columns.len());
    for c in &inst.columns {
        let ty = SqlType::parse(&c.ty)
            .map_err(|e| bad(format!("{at} column {}", c.name), e.to_string()))?;
        columns.push(Column {
            name: c.name.clone(),
            ty,
            nullable: c.nullable,
            key: c.key,
        });
    }
    let start_lsn = parse_lsn(&inst.start_lsn, &at)?;
    let min = match min_lsn.get(&inst.name) {
        Some(text) => parse_lsn(text, &format!("min_lsn.{}", inst.name))?,
        None => start_lsn,
    };
    let mut changes = Vec::with_capacity(inst.changes.len());
    for (i, ch) in inst.changes.iter().enumerate() {
        let at = format!("{at} changes[{i}]");
        if !(1..=4).contains(&ch.operation) {
            return Err(bad(
                &at,
                format!("operation {} is not 1, 2, 3 or 4", ch.operation),
            ));
        }
        let mut values = Vec::with_capacity(columns.len());
        for col in &columns {
            let v = ch.values.get(&col.name).unwrap_or(&serde_json::Value::Null);
            values.push(
                value_from_json(v, col.ty).map_err(|e| bad(format!("{at} {}", col.name), e))?,
            );
        }
        if let Some(unknown) = ch
            .values
            .keys()
            .find(|k| !columns.iter().any(|c| &c.name == *k))
        {
            return Err(bad(
                &at,
                format!("`{unknown}` is not a column of the instance"),
            ));
        }
        changes.push(ChangeRow {
            start_lsn: parse_lsn(&ch.start_lsn, &at)?,
            seqval: parse_lsn(&ch.seqval, &at)?,
            operation: ch.operation,
            values,
        });
    }
    changes.sort_by_key(|c| (c.start_lsn, c.seqval, c.operation));
    Ok(Instance {
        name: inst.name.clone(),
        source_schema: inst.source_schema.clone(),
        source_table: inst.source_table.clone(),
        start_lsn,
        min_lsn: min,
        columns,
        changes,
    })
}

/// A JSON value of the history format as the column's value: decimals and money as strings, float/real
/// numbers, bit true/false, uniqueidentifier strings, date/time ISO-8601 without zone (datetimeoffset with
/// its offset, kept as UTC), binary `0x` hex.
pub fn value_from_json(v: &serde_json::Value, ty: SqlType) -> Result<Value, String> {
    use serde_json::Value as J;
    if v.is_null() {
        return Ok(Value::Null);
    }
    let wrong = || format!("`{v}` is not a {ty} value");
    let int = || v.as_i64().ok_or_else(wrong);
    Ok(match ty {
        SqlType::TinyInt | SqlType::SmallInt | SqlType::Int => {
            Value::Int(i32::try_from(int()?).map_err(|_| wrong())?)
        }
        SqlType::BigInt => Value::Bigint(int()?),
        SqlType::Bit => Value::Bool(v.as_bool().ok_or_else(wrong)?),
        SqlType::Decimal { .. } | SqlType::Money | SqlType::SmallMoney => {
            let text = match v {
                J::String(s) => s.clone(),
                J::Number(n) => n.to_string(),
                _ => return Err(wrong()),
            };
            let lakefold_api::LogicalType::Decimal { precision, scale } = ty.logical() else {
                return Err(wrong());
            };
            lakefold_api::decimal_from_text(&text, precision, scale)?
        }
        SqlType::Float => Value::Double(v.as_f64().ok_or_else(wrong)?),
        SqlType::Real => Value::Float(v.as_f64().ok_or_else(wrong)? as f32),
        SqlType::Char { .. } | SqlType::NChar { .. } => {
            Value::String(v.as_str().ok_or_else(wrong)?.to_string())
        }
        SqlType::UniqueIdentifier => {
            let s = v.as_str().ok_or_else(wrong)?;
            guid_bytes(s).ok_or_else(wrong)?;
            Value::String(s.to_ascii_uppercase())
        }
        SqlType::Binary { .. } => {
            let s = v.as_str().ok_or_else(wrong)?;
            Value::Binary(hex_bytes(s).ok_or_else(wrong)?)
        }
        SqlType::Date => {
            let s = v.as_str().ok_or_else(wrong)?;
            let micros = parse_timestamp_micros(&format!("{s}T00:00:00")).map_err(|_| wrong())?;
            Value::Date(micros.div_euclid(86_400_000_000) as i32)
        }
        SqlType::DateTime
        | SqlType::SmallDateTime
        | SqlType::DateTime2 { .. }
        | SqlType::DateTimeOffset { .. } => {
            let s = v.as_str().ok_or_else(wrong)?;
            ty.timestamp_value(parse_timestamp_micros(s).map_err(|_| wrong())?)
        }
    })
}

/// `0x…` hex text as bytes.
pub fn hex_bytes(s: &str) -> Option<Vec<u8>> {
    let h = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X"))?;
    if h.len() % 2 != 0 {
        return None;
    }
    (0..h.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(h.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The 16 bytes of a GUID in text form, in SQL Server's storage order (first three groups
/// little-endian).
pub fn guid_bytes(s: &str) -> Option<[u8; 16]> {
    let hex: String = s.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 || s.len() != 36 {
        return None;
    }
    let mut b = [0u8; 16];
    for (i, byte) in b.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    swap_guid_order(&mut b);
    Some(b)
}

/// Between RFC 4122 byte order and SQL Server's (first three groups little-endian); its own inverse.
pub fn swap_guid_order(b: &mut [u8; 16]) {
    b[0..4].reverse();
    b[4..6].reverse();
    b[6..8].reverse();
}

/// GUID text (upper case, as SQL Server prints it) from its storage bytes.
pub fn guid_text(b: &[u8; 16]) -> String {
    let mut v = *b;
    swap_guid_order(&mut v);
    let h: Vec<String> = v.iter().map(|x| format!("{x:02X}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        h[0..4].concat(),
        h[4..6].concat(),
        h[6..8].concat(),
        h[8..10].concat(),
        h[10..16].concat()
    )
}

/// An LSN as binary(10).
pub fn lsn_bytes(lsn: Lsn) -> [u8; 10] {
    let be = lsn.0.to_be_bytes();
    let mut out = [0u8; 10];
    out.copy_from_slice(&be[6..16]);
    out
}

/// binary(10) as an LSN.
pub fn lsn_from_bytes(b: &[u8]) -> Option<Lsn> {
    if b.len() != 10 {
        return None;
    }
    let mut be = [0u8; 16];
    be[6..16].copy_from_slice(b);
    Some(Lsn(u128::from_be_bytes(be)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use lakefold_api::TimeUnit;

    const SAMPLE: &str = r#"{"database": "MYCOMPANY",
      "capture_instances": [{"name": "dbo_SALES", "source_schema": "dbo", "source_table": "SALES",
        "start_lsn": "0x0000002B00000E0D0005",
        "columns": [{"name": "SaleId", "type": "int", "nullable": false, "key": true},
                    {"name": "ContractSubtotal", "type": "decimal(18,4)", "nullable": true, "key": false},
                    {"name": "ContractSigningDate", "type": "datetime2(3)", "nullable": true, "key": false}],
        "changes": [
          {"start_lsn": "0x0000002B00000E100003", "seqval": "0x0000002B00000E100002", "operation": 1,
           "values": {"SaleId": 1000, "ContractSubtotal": "1.5"}},
          {"start_lsn": "0x0000002B00000E0D0005", "seqval": "0x0000002B00000E0D0002", "operation": 2,
           "values": {"SaleId": 1000, "ContractSubtotal": "70940.8467",
                      "ContractSigningDate": "2024-03-11T08:40:58.000"}}]}],
      "lsn_time_mapping": [{"start_lsn": "0x0000002B00000E0D0005", "tran_begin_time": "2024-03-15T10:30:00.020",
                            "tran_end_time": "2024-03-15T10:30:00.020"},
                           {"start_lsn": "0x0000002B00000E100003"}]}"#;

    #[test]
    fn the_documented_format_loads_ordered_and_typed() {
        let h = History::parse(SAMPLE).unwrap();
        let inst = h.instance("DBO_SALES").unwrap();
        assert_eq!(inst.min_lsn, inst.start_lsn);
        assert_eq!(inst.changes[0].operation, 2, "changes are ordered by LSN");
        assert_eq!(
            inst.changes[0].values[1],
            Value::Decimal {
                unscaled: 709_408_467,
                precision: 18,
                scale: 4
            }
        );
        assert_eq!(
            inst.changes[0].values[2],
            Value::Timestamp {
                value: 1_710_146_458_000,
                unit: TimeUnit::Millisecond
            }
        );
        assert_eq!(h.max_lsn().to_string(), "0000002b:00000e10:0003");
        let lsn = parse_lsn("0x0000002B00000E0D0005", "t").unwrap();
        assert_eq!(inst.state_at(lsn).len(), 1);
        assert!(
            inst.state_at(h.max_lsn()).is_empty(),
            "deleted by the second change"
        );
        assert_eq!(lsn_from_bytes(&lsn_bytes(lsn)), Some(lsn));
    }

    #[test]
    fn bad_values_are_named_with_instance_change_and_column() {
        let text = SAMPLE.replace("\"70940.8467\"", "\"seventy\"");
        let err = History::parse(&text).unwrap_err();
        assert!(
            err.at.contains("dbo_SALES")
                && err.at.contains("changes[1]")
                && err.at.contains("ContractSubtotal"),
            "{err}"
        );
    }

    #[test]
    fn guids_round_trip_in_storage_order() {
        let text = "6F9619FF-8B86-D011-B42D-00C04FC964FF";
        let b = guid_bytes(text).unwrap();
        assert_eq!(b[0], 0xFF);
        assert_eq!(guid_text(&b), text);
    }
}
