//! Table schemas shared by the sinks: data columns with logical types, their arrow form, the coercion of
//! source values to a column's type, and building arrow arrays from rows.

use arrow::array::{
    new_null_array, Array, ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder,
    Decimal128Builder, Float32Builder, Float64Builder, Int32Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder, TimestampMillisecondBuilder,
};
use arrow::datatypes::{DataType, Field, TimeUnit as ArrowTimeUnit};
use lakefold_api as conv;
use lakefold_api::{LogicalType, TimeUnit, Value};
use std::sync::Arc;

/// Name of the column holding each row's source position (the Hudi precombine field).
pub const POSITION_COLUMN: &str = "_lakefold_position";
/// Name of the soft-delete marker column (routes with `on_delete = "soft"`).
pub const DELETED_COLUMN: &str = "_lakefold_deleted";

/// One data column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub ty: LogicalType,
}

/// The data columns of a table, in order (without format-specific meta columns).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TableSchema {
    pub columns: Vec<Column>,
}

impl TableSchema {
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// Arrow fields of the data columns (all nullable).
    pub fn arrow_fields(&self) -> Vec<Field> {
        self.columns
            .iter()
            .map(|c| Field::new(&c.name, arrow_type(c.ty), true))
            .collect()
    }

    /// Builds one arrow array per column from rows whose values are already coerced to the column types.
    pub fn build_arrays<'a>(
        &self,
        rows: impl Iterator<Item = &'a [Value]> + Clone,
    ) -> Result<Vec<ArrayRef>, String> {
        self.columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                build_array(
                    c,
                    rows.clone().map(move |r| r.get(i).unwrap_or(&Value::Null)),
                )
            })
            .collect()
    }
}

/// The arrow type a logical type is stored as.
pub fn arrow_type(ty: LogicalType) -> DataType {
    match ty {
        LogicalType::Boolean => DataType::Boolean,
        LogicalType::Int => DataType::Int32,
        LogicalType::Bigint => DataType::Int64,
        LogicalType::Float => DataType::Float32,
        LogicalType::Double => DataType::Float64,
        LogicalType::Decimal { precision, scale } => DataType::Decimal128(precision, scale),
        LogicalType::String => DataType::Utf8,
        LogicalType::Binary => DataType::Binary,
        LogicalType::Date => DataType::Date32,
        LogicalType::Timestamp(TimeUnit::Millisecond) => {
            DataType::Timestamp(ArrowTimeUnit::Millisecond, Some("UTC".into()))
        }
        LogicalType::Timestamp(TimeUnit::Microsecond) => {
            DataType::Timestamp(ArrowTimeUnit::Microsecond, Some("UTC".into()))
        }
    }
}

/// The logical type of an arrow type lakefold writes; `None` for types it does not write.
pub fn logical_type(dt: &DataType) -> Option<LogicalType> {
    Some(match dt {
        DataType::Boolean => LogicalType::Boolean,
        DataType::Int8 | DataType::Int16 | DataType::Int32 => LogicalType::Int,
        DataType::Int64 => LogicalType::Bigint,
        DataType::Float32 => LogicalType::Float,
        DataType::Float64 => LogicalType::Double,
        DataType::Decimal128(p, s) => LogicalType::Decimal {
            precision: *p,
            scale: *s,
        },
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => LogicalType::String,
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => LogicalType::Binary,
        DataType::Date32 => LogicalType::Date,
        DataType::Timestamp(ArrowTimeUnit::Millisecond, _) => {
            LogicalType::Timestamp(TimeUnit::Millisecond)
        }
        DataType::Timestamp(ArrowTimeUnit::Microsecond, _) => {
            LogicalType::Timestamp(TimeUnit::Microsecond)
        }
        _ => return None,
    })
}

fn build_array<'a>(
    column: &Column,
    values: impl Iterator<Item = &'a Value>,
) -> Result<ArrayRef, String> {
    let wrong = |v: &Value| {
        format!(
            "column `{}` of type {} got a {} value",
            column.name,
            column.ty,
            v.kind()
        )
    };
    macro_rules! build {
        ($builder:expr, $pat:pat => $val:expr) => {{
            let mut b = $builder;
            for v in values {
                match v {
                    Value::Null => b.append_null(),
                    $pat => b.append_value($val),
                    other => return Err(wrong(other)),
                }
            }
            Arc::new(b.finish()) as ArrayRef
        }};
    }
    Ok(match column.ty {
        LogicalType::Boolean => build!(BooleanBuilder::new(), Value::Bool(x) => *x),
        LogicalType::Int => build!(Int32Builder::new(), Value::Int(x) => *x),
        LogicalType::Bigint => build!(Int64Builder::new(), Value::Bigint(x) => *x),
        LogicalType::Float => build!(Float32Builder::new(), Value::Float(x) => *x),
        LogicalType::Double => build!(Float64Builder::new(), Value::Double(x) => *x),
        LogicalType::Decimal { precision, scale } => {
            let b = Decimal128Builder::new()
                .with_precision_and_scale(precision, scale)
                .map_err(|e| e.to_string())?;
            build!(b, Value::Decimal { unscaled, .. } => *unscaled)
        }
        LogicalType::String => build!(StringBuilder::new(), Value::String(x) => x),
        LogicalType::Binary => build!(BinaryBuilder::new(), Value::Binary(x) => x),
        LogicalType::Date => build!(Date32Builder::new(), Value::Date(x) => *x),
        LogicalType::Timestamp(TimeUnit::Millisecond) => {
            build!(TimestampMillisecondBuilder::new().with_timezone("UTC"), Value::Timestamp { value, .. } => *value)
        }
        LogicalType::Timestamp(TimeUnit::Microsecond) => {
            build!(TimestampMicrosecondBuilder::new().with_timezone("UTC"), Value::Timestamp { value, .. } => *value)
        }
    })
}

/// The value at `row` of an array of a type lakefold writes (other types read as null).
pub fn value_at(array: &dyn Array, row: usize) -> Value {
    use arrow::array::AsArray;
    use arrow::datatypes as t;
    if array.is_null(row) {
        return Value::Null;
    }
    match array.data_type() {
        DataType::Boolean => Value::Bool(array.as_boolean().value(row)),
        DataType::Int32 => Value::Int(array.as_primitive::<t::Int32Type>().value(row)),
        DataType::Int64 => Value::Bigint(array.as_primitive::<t::Int64Type>().value(row)),
        DataType::Float32 => Value::Float(array.as_primitive::<t::Float32Type>().value(row)),
        DataType::Float64 => Value::Double(array.as_primitive::<t::Float64Type>().value(row)),
        DataType::Decimal128(precision, scale) => Value::Decimal {
            unscaled: array.as_primitive::<t::Decimal128Type>().value(row),
            precision: *precision,
            scale: *scale,
        },
        DataType::Utf8 => Value::String(array.as_string::<i32>().value(row).to_string()),
        DataType::Binary => Value::Binary(array.as_binary::<i32>().value(row).to_vec()),
        DataType::Date32 => Value::Date(array.as_primitive::<t::Date32Type>().value(row)),
        DataType::Timestamp(ArrowTimeUnit::Millisecond, _) => Value::Timestamp {
            value: array
                .as_primitive::<t::TimestampMillisecondType>()
                .value(row),
            unit: TimeUnit::Millisecond,
        },
        DataType::Timestamp(ArrowTimeUnit::Microsecond, _) => Value::Timestamp {
            value: array
                .as_primitive::<t::TimestampMicrosecondType>()
                .value(row),
            unit: TimeUnit::Microsecond,
        },
        _ => Value::Null,
    }
}

/// A column of nulls of a column's type (for columns added to a table later).
pub fn null_column(ty: LogicalType, len: usize) -> ArrayRef {
    new_null_array(&arrow_type(ty), len)
}

/// [`coerce`] of a borrowed value: a decimal's text is read where it is, not copied first.
pub fn coerce_ref(value: &Value, ty: LogicalType) -> Result<Value, String> {
    match (value, ty) {
        (Value::String(s), LogicalType::Decimal { precision, scale }) => {
            conv::decimal_from_text(s, precision, scale)
        }
        _ => coerce(value.clone(), ty),
    }
}

/// Converts `value` to `ty` without losing information, or says why it cannot.
///
/// Lossless widenings are allowed (int → bigint/double/decimal, float → double, decimal to a larger scale,
/// timestamp ms → µs), as are the text forms Debezium produces under `decimal.handling.mode=string` and
/// `time.precision.mode=connect`/ISO strings (text → decimal, date, timestamp), and epoch numbers into
/// declared dates and timestamps. Everything else is an error (the record goes to the dead-letter table).
pub fn coerce(value: Value, ty: LogicalType) -> Result<Value, String> {
    use LogicalType as T;
    if value.is_null() {
        return Ok(Value::Null);
    }
    let fail = |v: &Value| Err(format!("cannot store {} value `{v}` as {ty}", v.kind()));
    match (value, ty) {
        (v @ Value::Bool(_), T::Boolean) => Ok(v),
        (v @ Value::Int(_), T::Int) => Ok(v),
        (Value::Bigint(x), T::Int) => i32::try_from(x)
            .map(Value::Int)
            .map_err(|_| format!("{x} does not fit int")),
        (Value::Int(x), T::Bigint) => Ok(Value::Bigint(x as i64)),
        (v @ Value::Bigint(_), T::Bigint) => Ok(v),
        (v @ Value::Float(_), T::Float) => Ok(v),
        (Value::Double(x), T::Float) if (x as f32) as f64 == x || x.is_nan() => {
            Ok(Value::Float(x as f32))
        }
        (Value::Float(x), T::Double) => Ok(Value::Double(x as f64)),
        (v @ Value::Double(_), T::Double) => Ok(v),
        (Value::Int(x), T::Double) => Ok(Value::Double(x as f64)),
        (Value::Bigint(x), T::Double) if x.unsigned_abs() < (1u64 << 53) => {
            Ok(Value::Double(x as f64))
        }
        (Value::Int(x), T::Decimal { precision, scale }) => rescale(x as i128, 0, precision, scale),
        (Value::Bigint(x), T::Decimal { precision, scale }) => {
            rescale(x as i128, 0, precision, scale)
        }
        (
            Value::Decimal {
                unscaled,
                scale: from,
                ..
            },
            T::Decimal { precision, scale },
        ) => rescale(unscaled, from, precision, scale),
        (Value::Double(x), T::Decimal { precision, scale }) if x.is_finite() => {
            conv::decimal_from_text(&format!("{x}"), precision, scale)
        }
        (Value::String(s), T::Decimal { precision, scale }) => {
            conv::decimal_from_text(&s, precision, scale)
        }
        (v @ Value::String(_), T::String) => Ok(v),
        // A column first seen only as nulls became a string column; numbers keep their exact text there.
        (
            v @ (Value::Bool(_) | Value::Int(_) | Value::Bigint(_) | Value::Decimal { .. }),
            T::String,
        ) => Ok(Value::String(v.to_string())),
        (v @ Value::Binary(_), T::Binary) => Ok(v),
        (Value::String(s), T::Binary) => Ok(Value::Binary(s.into_bytes())),
        (v @ Value::Date(_), T::Date) => Ok(v),
        (Value::Int(d), T::Date) => Ok(Value::Date(d)),
        (Value::Bigint(d), T::Date) => i32::try_from(d)
            .map(Value::Date)
            .map_err(|_| format!("{d} is not a date")),
        (Value::String(s), T::Date) => chrono::NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
            .map(|d| Value::Date((d - chrono::NaiveDate::default()).num_days() as i32))
            .map_err(|_| format!("`{s}` is not a date (YYYY-MM-DD)")),
        (Value::Timestamp { value, unit }, T::Timestamp(target)) => Ok(Value::Timestamp {
            value: convert_time(value, unit, target),
            unit: target,
        }),
        (Value::Bigint(x), T::Timestamp(unit)) => Ok(Value::Timestamp { value: x, unit }),
        (Value::Int(x), T::Timestamp(unit)) => Ok(Value::Timestamp {
            value: x as i64,
            unit,
        }),
        (Value::Date(d), T::Timestamp(unit)) => Ok(Value::Timestamp {
            value: convert_time(d as i64 * 86_400_000, TimeUnit::Millisecond, unit),
            unit,
        }),
        (Value::String(s), T::Timestamp(unit)) => {
            conv::parse_timestamp_micros(&s).map(|us| Value::Timestamp {
                value: convert_time(us, TimeUnit::Microsecond, unit),
                unit,
            })
        }
        (v, _) => fail(&v),
    }
}

fn convert_time(value: i64, from: TimeUnit, to: TimeUnit) -> i64 {
    match (from, to) {
        (TimeUnit::Millisecond, TimeUnit::Microsecond) => value.saturating_mul(1000),
        (TimeUnit::Microsecond, TimeUnit::Millisecond) => value.div_euclid(1000),
        _ => value,
    }
}

fn rescale(unscaled: i128, from: i8, precision: u8, scale: i8) -> Result<Value, String> {
    let diff = scale as i32 - from as i32;
    let mut v = unscaled;
    if diff >= 0 {
        for _ in 0..diff {
            v = v.checked_mul(10).ok_or("decimal overflow")?;
        }
    } else {
        for _ in 0..(-diff) {
            if v % 10 != 0 {
                return Err(format!(
                    "{} has more than {scale} digits after the point",
                    lakefold_api_format(unscaled, from)
                ));
            }
            v /= 10;
        }
    }
    let limit = 10i128.checked_pow(precision as u32).unwrap_or(i128::MAX);
    if v.abs() >= limit {
        return Err(format!(
            "{} does not fit decimal({precision},{scale})",
            lakefold_api_format(unscaled, from)
        ));
    }
    Ok(Value::Decimal {
        unscaled: v,
        precision,
        scale,
    })
}

fn lakefold_api_format(unscaled: i128, scale: i8) -> String {
    Value::Decimal {
        unscaled,
        precision: 38,
        scale,
    }
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coercion_widens_losslessly_and_refuses_the_rest() {
        let dec = LogicalType::Decimal {
            precision: 18,
            scale: 4,
        };
        assert_eq!(
            coerce(Value::String("1234.5".into()), dec).unwrap(),
            Value::Decimal {
                unscaled: 12_345_000,
                precision: 18,
                scale: 4
            }
        );
        assert_eq!(
            coerce(Value::Bigint(5), dec).unwrap(),
            Value::Decimal {
                unscaled: 50_000,
                precision: 18,
                scale: 4
            }
        );
        assert_eq!(
            coerce(Value::Int(7), LogicalType::Bigint).unwrap(),
            Value::Bigint(7)
        );
        assert_eq!(
            coerce(
                Value::Bigint(1_700_000_000_000),
                LogicalType::Timestamp(TimeUnit::Millisecond)
            )
            .unwrap(),
            Value::Timestamp {
                value: 1_700_000_000_000,
                unit: TimeUnit::Millisecond
            }
        );
        assert_eq!(
            coerce(Value::String("2024-01-01".into()), LogicalType::Date).unwrap(),
            Value::Date(19_723)
        );
        assert!(coerce(Value::String("abc".into()), LogicalType::Int).is_err());
        assert!(coerce(Value::Bigint(1 << 40), LogicalType::Int).is_err());
        assert!(coerce(Value::String("1.23456".into()), dec).is_err());
        assert_eq!(
            coerce(Value::Bigint(12), LogicalType::String).unwrap(),
            Value::String("12".into())
        );
        assert!(coerce(Value::Binary(vec![1]), LogicalType::String).is_err());
        assert_eq!(coerce(Value::Null, LogicalType::Int).unwrap(), Value::Null);
    }

    #[test]
    fn arrays_are_built_in_the_column_type() {
        let schema = TableSchema {
            columns: vec![
                Column {
                    name: "id".into(),
                    ty: LogicalType::Int,
                },
                Column {
                    name: "amount".into(),
                    ty: LogicalType::Decimal {
                        precision: 18,
                        scale: 4,
                    },
                },
            ],
        };
        let rows = [
            vec![
                Value::Int(1),
                Value::Decimal {
                    unscaled: 5,
                    precision: 18,
                    scale: 4,
                },
            ],
            vec![Value::Int(2), Value::Null],
        ];
        let arrays = schema
            .build_arrays(rows.iter().map(|r| r.as_slice()))
            .unwrap();
        assert_eq!(arrays[0].len(), 2);
        assert_eq!(arrays[1].null_count(), 1);
        assert_eq!(arrays[1].data_type(), &DataType::Decimal128(18, 4));
        let bad = [vec![Value::String("x".into()), Value::Null]];
        assert!(schema
            .build_arrays(bad.iter().map(|r| r.as_slice()))
            .is_err());
    }
}
