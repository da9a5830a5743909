//! Logical column types shared by sources (what a Debezium schema declares) and sinks (what a table stores).

use std::fmt;
use std::str::FromStr;

/// Resolution of a timestamp, always counted from the Unix epoch in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeUnit {
    Millisecond,
    Microsecond,
}

impl TimeUnit {
    /// `value` in this unit as microseconds.
    pub fn micros(self, value: i64) -> i64 {
        match self {
            TimeUnit::Millisecond => value * 1000,
            TimeUnit::Microsecond => value,
        }
    }
}

/// The type of a column, as declared by a source schema or by a route's `types` override.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LogicalType {
    Boolean,
    /// 32-bit integer (Connect int8, int16, int32; SQL tinyint, smallint, int).
    Int,
    /// 64-bit integer (Connect int64; SQL bigint).
    Bigint,
    Float,
    Double,
    /// Fixed-point decimal with `precision` digits, `scale` of them after the point.
    Decimal {
        precision: u8,
        scale: i8,
    },
    String,
    Binary,
    /// Days since 1970-01-01.
    Date,
    Timestamp(TimeUnit),
}

/// A type name in a route's `types` table that lakefold does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown type `{name}`: expected one of boolean, int, bigint, float, double, decimal(p,s), string, binary, date, timestamp_ms, timestamp_us")]
pub struct TypeParseError {
    pub name: String,
}

impl LogicalType {
    /// The widest decimal lakefold stores (arrow Decimal128).
    pub const MAX_DECIMAL_PRECISION: u8 = 38;
}

impl FromStr for LogicalType {
    type Err = TypeParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        let err = || TypeParseError {
            name: s.to_string(),
        };
        let ty = match lower.as_str() {
            "boolean" | "bool" => LogicalType::Boolean,
            "int" | "integer" | "int32" => LogicalType::Int,
            "bigint" | "long" | "int64" => LogicalType::Bigint,
            "float" | "float32" | "real" => LogicalType::Float,
            "double" | "float64" => LogicalType::Double,
            "string" | "varchar" | "text" => LogicalType::String,
            "binary" | "bytes" => LogicalType::Binary,
            "date" => LogicalType::Date,
            "timestamp_ms" | "timestamp(3)" => LogicalType::Timestamp(TimeUnit::Millisecond),
            "timestamp" | "timestamp_us" | "timestamp(6)" => {
                LogicalType::Timestamp(TimeUnit::Microsecond)
            }
            other => {
                let inner = other
                    .strip_prefix("decimal(")
                    .and_then(|r| r.strip_suffix(')'))
                    .ok_or_else(err)?;
                let (p, s) = inner.split_once(',').ok_or_else(err)?;
                let precision: u8 = p.trim().parse().map_err(|_| err())?;
                let scale: i8 = s.trim().parse().map_err(|_| err())?;
                if precision == 0
                    || precision > Self::MAX_DECIMAL_PRECISION
                    || scale < 0
                    || scale as u8 > precision
                {
                    return Err(err());
                }
                LogicalType::Decimal { precision, scale }
            }
        };
        Ok(ty)
    }
}

impl fmt::Display for LogicalType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogicalType::Boolean => f.write_str("boolean"),
            LogicalType::Int => f.write_str("int"),
            LogicalType::Bigint => f.write_str("bigint"),
            LogicalType::Float => f.write_str("float"),
            LogicalType::Double => f.write_str("double"),
            LogicalType::Decimal { precision, scale } => write!(f, "decimal({precision},{scale})"),
            LogicalType::String => f.write_str("string"),
            LogicalType::Binary => f.write_str("binary"),
            LogicalType::Date => f.write_str("date"),
            LogicalType::Timestamp(TimeUnit::Millisecond) => f.write_str("timestamp_ms"),
            LogicalType::Timestamp(TimeUnit::Microsecond) => f.write_str("timestamp_us"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_every_type_name() {
        for name in [
            "boolean",
            "int",
            "bigint",
            "float",
            "double",
            "decimal(18,4)",
            "string",
            "binary",
            "date",
            "timestamp_ms",
            "timestamp_us",
        ] {
            let ty: LogicalType = name.parse().unwrap();
            assert_eq!(ty.to_string(), name);
        }
    }

    #[test]
    fn rejects_bad_decimals_and_unknown_names() {
        for bad in [
            "decimal(0,0)",
            "decimal(39,2)",
            "decimal(5,6)",
            "decimal(5)",
            "varchar2",
            "decimal(a,b)",
        ] {
            assert!(
                bad.parse::<LogicalType>().is_err(),
                "{bad} should not parse"
            );
        }
    }
}
