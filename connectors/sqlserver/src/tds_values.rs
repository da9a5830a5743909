//! TDS values (tiberius `ColumnData`) as logical values, and key values as statement parameters.

use crate::history::{guid_text, swap_guid_order};
use crate::sql_type::SqlType;
use lakefold_api::Value;
use tiberius::{ColumnData, ToSql};

const DAYS_0001_TO_1970: i64 = 719_162;
const DAYS_1900_TO_1970: i64 = 25_567;

fn micros_of_time(t: tiberius::time::Time) -> i64 {
    let inc = t.increments() as i64;
    let scale = t.scale() as u32;
    if scale >= 6 {
        inc / 10i64.pow(scale - 6)
    } else {
        inc * 10i64.pow(6 - scale)
    }
}

fn timestamp(micros: i64, ty: SqlType) -> Value {
    ty.timestamp_value(micros)
}

/// A TDS value as the column's logical value.
pub fn value_of(c: ColumnData<'static>, ty: SqlType) -> Result<Value, String> {
    let wrong = |c: &ColumnData<'static>| {
        let shown = format!("{c:?}");
        format!(
            "a {ty} value arrived as {}",
            shown.chars().take(60).collect::<String>()
        )
    };
    Ok(match c {
        ColumnData::U8(v) => v.map(|x| Value::Int(x as i32)).unwrap_or(Value::Null),
        ColumnData::I16(v) => v.map(|x| Value::Int(x as i32)).unwrap_or(Value::Null),
        ColumnData::I32(v) => v.map(Value::Int).unwrap_or(Value::Null),
        ColumnData::I64(v) => v.map(Value::Bigint).unwrap_or(Value::Null),
        ColumnData::Bit(v) => v.map(Value::Bool).unwrap_or(Value::Null),
        ColumnData::F32(v) => v.map(Value::Float).unwrap_or(Value::Null),
        ColumnData::F64(None) => Value::Null,
        ColumnData::F64(Some(f)) => match ty {
            // tiberius reads money as f64; it has exactly four decimals.
            SqlType::Money | SqlType::SmallMoney => Value::Decimal {
                unscaled: (f * 10_000.0).round() as i128,
                precision: if ty == SqlType::Money { 19 } else { 10 },
                scale: 4,
            },
            _ => Value::Double(f),
        },
        ColumnData::Numeric(None) => Value::Null,
        ColumnData::Numeric(Some(n)) => {
            let SqlType::Decimal { precision, scale } = ty else {
                return Err(wrong(&ColumnData::Numeric(Some(n))));
            };
            let mut unscaled = n.value();
            let have = n.scale() as i32;
            let want = scale as i32;
            if have < want {
                unscaled *= 10i128.pow((want - have) as u32);
            } else if have > want {
                unscaled /= 10i128.pow((have - want) as u32);
            }
            Value::Decimal {
                unscaled,
                precision,
                scale: scale as i8,
            }
        }
        ColumnData::String(v) => v
            .map(|s| Value::String(s.into_owned()))
            .unwrap_or(Value::Null),
        ColumnData::Guid(v) => v
            .map(|g| {
                let mut b = *g.as_bytes();
                // tiberius hands the GUID in RFC order; SQL Server prints the same text.
                swap_guid_order(&mut b);
                Value::String(guid_text(&b))
            })
            .unwrap_or(Value::Null),
        ColumnData::Binary(v) => v
            .map(|b| Value::Binary(b.into_owned()))
            .unwrap_or(Value::Null),
        ColumnData::Date(v) => v
            .map(|d| Value::Date((d.days() as i64 - DAYS_0001_TO_1970) as i32))
            .unwrap_or(Value::Null),
        ColumnData::DateTime(v) => v
            .map(|d| {
                let days = d.days() as i64 - DAYS_1900_TO_1970;
                // 1/300 s ticks, rounded to the millisecond as SQL Server prints them (.000/.003/.007).
                let ms = (d.seconds_fragments() as i64 * 10 + 1) / 3;
                timestamp(days * 86_400_000_000 + ms * 1000, ty)
            })
            .unwrap_or(Value::Null),
        ColumnData::SmallDateTime(v) => v
            .map(|d| {
                let days = d.days() as i64 - DAYS_1900_TO_1970;
                timestamp(
                    days * 86_400_000_000 + d.seconds_fragments() as i64 * 60_000_000,
                    ty,
                )
            })
            .unwrap_or(Value::Null),
        ColumnData::DateTime2(v) => v
            .map(|d| {
                let days = d.date().days() as i64 - DAYS_0001_TO_1970;
                timestamp(days * 86_400_000_000 + micros_of_time(d.time()), ty)
            })
            .unwrap_or(Value::Null),
        ColumnData::DateTimeOffset(v) => v
            .map(|d| {
                let dt = d.datetime2();
                let days = dt.date().days() as i64 - DAYS_0001_TO_1970;
                timestamp(days * 86_400_000_000 + micros_of_time(dt.time()), ty)
            })
            .unwrap_or(Value::Null),
        other => return Err(wrong(&other)),
    })
}

/// A key value as a statement parameter.
pub fn key_param(v: &Value) -> Result<Box<dyn ToSql>, String> {
    Ok(match v {
        Value::Int(i) => Box::new(*i),
        Value::Bigint(i) => Box::new(*i),
        Value::String(s) => Box::new(s.clone()),
        Value::Binary(b) => Box::new(b.clone()),
        Value::Bool(b) => Box::new(*b),
        Value::Double(f) => Box::new(*f),
        Value::Decimal {
            unscaled, scale, ..
        } if *scale >= 0 => Box::new(tiberius::numeric::Numeric::new_with_scale(
            *unscaled,
            *scale as u8,
        )),
        other => {
            return Err(format!(
                "a {} key cannot be a snapshot parameter yet",
                other.kind()
            ))
        }
    })
}
