//! A single decoded column value.

use crate::types::{LogicalType, TimeUnit};
use std::fmt;

/// A column value as a source decoded it. Values keep their logical meaning (a decimal keeps its scale, a
/// timestamp its unit) so sinks can store them without guessing.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i32),
    Bigint(i64),
    Float(f32),
    Double(f64),
    /// `unscaled * 10^-scale`.
    Decimal {
        unscaled: i128,
        precision: u8,
        scale: i8,
    },
    String(String),
    Binary(Vec<u8>),
    /// Days since 1970-01-01.
    Date(i32),
    /// Since the Unix epoch, UTC.
    Timestamp {
        value: i64,
        unit: TimeUnit,
    },
}

impl Value {
    /// Bytes this value holds on the heap (its text or bytes).
    pub fn heap_bytes(&self) -> usize {
        match self {
            Value::String(s) => s.capacity(),
            Value::Binary(b) => b.capacity(),
            _ => 0,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The type this value would have if nothing declared one (JSON inference and schema-less rows).
    pub fn natural_type(&self) -> Option<LogicalType> {
        Some(match self {
            Value::Null => return None,
            Value::Bool(_) => LogicalType::Boolean,
            Value::Int(_) => LogicalType::Int,
            Value::Bigint(_) => LogicalType::Bigint,
            Value::Float(_) => LogicalType::Float,
            Value::Double(_) => LogicalType::Double,
            Value::Decimal {
                precision, scale, ..
            } => LogicalType::Decimal {
                precision: *precision,
                scale: *scale,
            },
            Value::String(_) => LogicalType::String,
            Value::Binary(_) => LogicalType::Binary,
            Value::Date(_) => LogicalType::Date,
            Value::Timestamp { unit, .. } => LogicalType::Timestamp(*unit),
        })
    }

    /// A short name of the value's kind, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Int(_) => "int",
            Value::Bigint(_) => "bigint",
            Value::Float(_) => "float",
            Value::Double(_) => "double",
            Value::Decimal { .. } => "decimal",
            Value::String(_) => "string",
            Value::Binary(_) => "binary",
            Value::Date(_) => "date",
            Value::Timestamp { .. } => "timestamp",
        }
    }
}

/// Formats a decimal's unscaled value with its scale, e.g. `(1234500, 4)` → `123.4500`.
pub fn format_decimal(unscaled: i128, scale: i8) -> String {
    if scale <= 0 {
        let mut s = unscaled.to_string();
        for _ in 0..(-(scale as i32)) {
            s.push('0');
        }
        return s;
    }
    let scale = scale as usize;
    let negative = unscaled < 0;
    let digits = unscaled.unsigned_abs().to_string();
    let padded = if digits.len() <= scale {
        format!("{}{}", "0".repeat(scale + 1 - digits.len()), digits)
    } else {
        digits
    };
    let (int_part, frac_part) = padded.split_at(padded.len() - scale);
    format!(
        "{}{}.{}",
        if negative { "-" } else { "" },
        int_part,
        frac_part
    )
}

impl fmt::Display for Value {
    /// The text form used for record keys and partition paths (Hudi's key generators use the plain value).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Bool(v) => write!(f, "{v}"),
            Value::Int(v) => write!(f, "{v}"),
            Value::Bigint(v) => write!(f, "{v}"),
            Value::Float(v) => write!(f, "{v}"),
            Value::Double(v) => write!(f, "{v}"),
            Value::Decimal {
                unscaled, scale, ..
            } => f.write_str(&format_decimal(*unscaled, *scale)),
            Value::String(v) => f.write_str(v),
            Value::Binary(v) => {
                for b in v {
                    write!(f, "{b:02x}")?;
                }
                Ok(())
            }
            Value::Date(days) => match chrono_free_date(*days) {
                Some((y, m, d)) => write!(f, "{y:04}-{m:02}-{d:02}"),
                None => write!(f, "{days}"),
            },
            Value::Timestamp { value, .. } => write!(f, "{value}"),
        }
    }
}

/// Civil date from days since the epoch (Howard Hinnant's algorithm), without pulling a date crate into the
/// contract crate.
fn chrono_free_date(days: i32) -> Option<(i64, u32, u32)> {
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    Some((if m <= 2 { y + 1 } else { y }, m, d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_print_with_their_scale() {
        assert_eq!(format_decimal(1_234_500, 4), "123.4500");
        assert_eq!(format_decimal(-5, 2), "-0.05");
        assert_eq!(format_decimal(7, 0), "7");
        assert_eq!(format_decimal(7, -2), "700");
    }

    #[test]
    fn dates_print_as_iso() {
        assert_eq!(Value::Date(0).to_string(), "1970-01-01");
        assert_eq!(Value::Date(19_723).to_string(), "2024-01-01");
        assert_eq!(Value::Date(-1).to_string(), "1969-12-31");
    }
}
