//! SQL Server column types as `cdc.captured_columns` names them, and the logical types they become — the
//! same ones Debezium's SQL Server connector produces with its defaults (`decimal.handling.mode=precise`,
//! `time.precision.mode=adaptive`), so a route fed from SQL Server and one fed from Debezium fold alike.

use lakefold_api::{LogicalType, TimeUnit};
use std::fmt;

/// A column type: its family and the sizes that matter for decoding and for the logical type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlType {
    TinyInt,
    SmallInt,
    Int,
    BigInt,
    Bit,
    Decimal {
        precision: u8,
        scale: u8,
    },
    Money,
    SmallMoney,
    Float,
    Real,
    /// `char`/`varchar` (single-byte text); `len` in bytes, `None` for `max`.
    Char {
        len: Option<u16>,
        fixed: bool,
    },
    /// `nchar`/`nvarchar`; `len` in characters, `None` for `max`.
    NChar {
        len: Option<u16>,
        fixed: bool,
    },
    Binary {
        len: Option<u16>,
        fixed: bool,
    },
    UniqueIdentifier,
    Date,
    DateTime,
    SmallDateTime,
    /// `datetime2(scale)`: digits of fractional seconds, 0–7.
    DateTime2 {
        scale: u8,
    },
    DateTimeOffset {
        scale: u8,
    },
}

/// A type name lakefold does not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported SQL Server column type `{0}` (supported: int family, bit, decimal/numeric, money, float/real, char/varchar/nchar/nvarchar, binary/varbinary, uniqueidentifier, date, datetime, datetime2, smalldatetime, datetimeoffset)")]
pub struct UnsupportedType(pub String);

impl SqlType {
    /// Parses `int`, `decimal(18,4)`, `nvarchar(50)`, `varchar(max)`, `datetime2(3)`, …
    pub fn parse(text: &str) -> Result<SqlType, UnsupportedType> {
        let err = || UnsupportedType(text.to_string());
        let lower = text.trim().to_ascii_lowercase();
        let (name, args) = match lower.split_once('(') {
            Some((n, rest)) => (
                n.trim(),
                Some(rest.strip_suffix(')').ok_or_else(err)?.trim().to_string()),
            ),
            None => (lower.as_str(), None),
        };
        let nums = |a: &Option<String>| -> Result<Vec<u16>, UnsupportedType> {
            match a {
                None => Ok(Vec::new()),
                Some(a) => a
                    .split(',')
                    .map(|p| p.trim().parse::<u16>().map_err(|_| err()))
                    .collect(),
            }
        };
        let len = |a: &Option<String>| -> Result<Option<u16>, UnsupportedType> {
            match a.as_deref() {
                None => Ok(Some(1)),
                Some("max") => Ok(None),
                Some(n) => n.parse::<u16>().map(Some).map_err(|_| err()),
            }
        };
        let scale = |a: &Option<String>, default: u8| -> Result<u8, UnsupportedType> {
            let n = nums(a)?;
            let s = n.first().map(|v| *v as u8).unwrap_or(default);
            if s > 7 {
                return Err(err());
            }
            Ok(s)
        };
        Ok(match name {
            "tinyint" => SqlType::TinyInt,
            "smallint" => SqlType::SmallInt,
            "int" => SqlType::Int,
            "bigint" => SqlType::BigInt,
            "bit" => SqlType::Bit,
            "decimal" | "numeric" => {
                let n = nums(&args)?;
                let precision = n.first().copied().unwrap_or(18) as u8;
                let scale = n.get(1).copied().unwrap_or(0) as u8;
                if precision == 0 || precision > 38 || scale > precision {
                    return Err(err());
                }
                SqlType::Decimal { precision, scale }
            }
            "money" => SqlType::Money,
            "smallmoney" => SqlType::SmallMoney,
            "float" => SqlType::Float,
            "real" => SqlType::Real,
            "char" => SqlType::Char {
                len: len(&args)?,
                fixed: true,
            },
            "varchar" => SqlType::Char {
                len: len(&args)?,
                fixed: false,
            },
            "nchar" => SqlType::NChar {
                len: len(&args)?,
                fixed: true,
            },
            "nvarchar" => SqlType::NChar {
                len: len(&args)?,
                fixed: false,
            },
            "binary" => SqlType::Binary {
                len: len(&args)?,
                fixed: true,
            },
            "varbinary" => SqlType::Binary {
                len: len(&args)?,
                fixed: false,
            },
            "uniqueidentifier" => SqlType::UniqueIdentifier,
            "date" => SqlType::Date,
            "datetime" => SqlType::DateTime,
            "smalldatetime" => SqlType::SmallDateTime,
            "datetime2" => SqlType::DateTime2 {
                scale: scale(&args, 7)?,
            },
            "datetimeoffset" => SqlType::DateTimeOffset {
                scale: scale(&args, 7)?,
            },
            _ => return Err(err()),
        })
    }

    /// The type from what `cdc.captured_columns` and `COLUMNPROPERTY` report: the bare type name, its
    /// `Precision` (digits, or characters/bytes for text and binary, -1 for `max`) and `Scale`.
    pub fn from_catalog(
        name: &str,
        precision: i32,
        scale: i32,
    ) -> Result<SqlType, UnsupportedType> {
        let lower = name.trim().to_ascii_lowercase();
        let sized = |n: i32| {
            if n < 0 {
                "max".to_string()
            } else {
                n.to_string()
            }
        };
        let text = match lower.as_str() {
            "decimal" | "numeric" => format!("decimal({precision},{scale})"),
            "datetime2" | "datetimeoffset" => format!("{lower}({scale})"),
            "char" | "varchar" | "nchar" | "nvarchar" | "binary" | "varbinary" => {
                format!("{lower}({})", sized(precision))
            }
            _ => lower,
        };
        SqlType::parse(&text)
    }

    /// What `COLUMNPROPERTY(…, 'Precision')` and `'Scale'` report for this type.
    pub fn catalog_precision_scale(&self) -> (i32, i32) {
        let sized = |len: Option<u16>| len.map(|l| l as i32).unwrap_or(-1);
        match *self {
            SqlType::TinyInt => (3, 0),
            SqlType::SmallInt => (5, 0),
            SqlType::Int => (10, 0),
            SqlType::BigInt => (19, 0),
            SqlType::Bit => (1, 0),
            SqlType::Decimal { precision, scale } => (precision as i32, scale as i32),
            SqlType::Money => (19, 4),
            SqlType::SmallMoney => (10, 4),
            SqlType::Float => (53, 0),
            SqlType::Real => (24, 0),
            SqlType::Char { len, .. }
            | SqlType::NChar { len, .. }
            | SqlType::Binary { len, .. } => (sized(len), 0),
            SqlType::UniqueIdentifier => (36, 0),
            SqlType::Date => (10, 0),
            SqlType::DateTime => (23, 3),
            SqlType::SmallDateTime => (16, 0),
            SqlType::DateTime2 { scale } => {
                (20 + scale as i32 + (scale > 0) as i32 - 1, scale as i32)
            }
            SqlType::DateTimeOffset { scale } => {
                (27 + scale as i32 + (scale > 0) as i32 - 1, scale as i32)
            }
        }
    }

    /// The bare name `cdc.captured_columns.column_type` holds.
    pub fn catalog_name(&self) -> &'static str {
        match self {
            SqlType::TinyInt => "tinyint",
            SqlType::SmallInt => "smallint",
            SqlType::Int => "int",
            SqlType::BigInt => "bigint",
            SqlType::Bit => "bit",
            SqlType::Decimal { .. } => "decimal",
            SqlType::Money => "money",
            SqlType::SmallMoney => "smallmoney",
            SqlType::Float => "float",
            SqlType::Real => "real",
            SqlType::Char { fixed: true, .. } => "char",
            SqlType::Char { fixed: false, .. } => "varchar",
            SqlType::NChar { fixed: true, .. } => "nchar",
            SqlType::NChar { fixed: false, .. } => "nvarchar",
            SqlType::Binary { fixed: true, .. } => "binary",
            SqlType::Binary { fixed: false, .. } => "varbinary",
            SqlType::UniqueIdentifier => "uniqueidentifier",
            SqlType::Date => "date",
            SqlType::DateTime => "datetime",
            SqlType::SmallDateTime => "smalldatetime",
            SqlType::DateTime2 { .. } => "datetime2",
            SqlType::DateTimeOffset { .. } => "datetimeoffset",
        }
    }

    /// The logical type Debezium gives this column: int16/int32 → int, bigint, boolean, Connect Decimal
    /// (money → decimal(19,4)), float64/float32, strings (uniqueidentifier too), bytes,
    /// `io.debezium.time.Date`, `Timestamp` (ms: datetime, smalldatetime, datetime2(0–3)),
    /// `MicroTimestamp` (datetime2(4–6)), `NanoTimestamp` (datetime2(7), kept in µs) and `ZonedTimestamp`
    /// (datetimeoffset, as UTC µs) — as lakefold's Debezium decoder maps those schemas.
    pub fn logical(&self) -> LogicalType {
        match *self {
            SqlType::TinyInt | SqlType::SmallInt | SqlType::Int => LogicalType::Int,
            SqlType::BigInt => LogicalType::Bigint,
            SqlType::Bit => LogicalType::Boolean,
            SqlType::Decimal { precision, scale } => LogicalType::Decimal {
                precision,
                scale: scale as i8,
            },
            SqlType::Money => LogicalType::Decimal {
                precision: 19,
                scale: 4,
            },
            SqlType::SmallMoney => LogicalType::Decimal {
                precision: 10,
                scale: 4,
            },
            SqlType::Float => LogicalType::Double,
            SqlType::Real => LogicalType::Float,
            SqlType::Char { .. } | SqlType::NChar { .. } | SqlType::UniqueIdentifier => {
                LogicalType::String
            }
            SqlType::Binary { .. } => LogicalType::Binary,
            SqlType::Date => LogicalType::Date,
            SqlType::DateTime | SqlType::SmallDateTime => {
                LogicalType::Timestamp(TimeUnit::Millisecond)
            }
            SqlType::DateTime2 { scale } if scale <= 3 => {
                LogicalType::Timestamp(TimeUnit::Millisecond)
            }
            SqlType::DateTime2 { .. } | SqlType::DateTimeOffset { .. } => {
                LogicalType::Timestamp(TimeUnit::Microsecond)
            }
        }
    }
}

impl SqlType {
    /// A point in time (µs since the epoch, UTC) as this column's timestamp value, in its unit.
    pub fn timestamp_value(&self, micros: i64) -> lakefold_api::Value {
        match self.logical() {
            LogicalType::Timestamp(TimeUnit::Millisecond) => lakefold_api::Value::Timestamp {
                value: micros.div_euclid(1000),
                unit: TimeUnit::Millisecond,
            },
            _ => lakefold_api::Value::Timestamp {
                value: micros,
                unit: TimeUnit::Microsecond,
            },
        }
    }
}

impl fmt::Display for SqlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sized = |len: Option<u16>| len.map(|l| l.to_string()).unwrap_or_else(|| "max".into());
        match *self {
            SqlType::Decimal { precision, scale } => write!(f, "decimal({precision},{scale})"),
            SqlType::Char { len, .. }
            | SqlType::NChar { len, .. }
            | SqlType::Binary { len, .. } => {
                write!(f, "{}({})", self.catalog_name(), sized(len))
            }
            SqlType::DateTime2 { scale } | SqlType::DateTimeOffset { scale } => {
                write!(f, "{}({scale})", self.catalog_name())
            }
            _ => f.write_str(self.catalog_name()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_text_round_trips_through_the_catalog_form() {
        for text in [
            "int",
            "tinyint",
            "bigint",
            "bit",
            "decimal(18,4)",
            "money",
            "float",
            "real",
            "varchar(50)",
            "nvarchar(max)",
            "nchar(3)",
            "varbinary(16)",
            "uniqueidentifier",
            "date",
            "datetime",
            "smalldatetime",
            "datetime2(3)",
            "datetime2(7)",
            "datetimeoffset(7)",
        ] {
            let ty = SqlType::parse(text).unwrap();
            assert_eq!(ty.to_string(), text);
            let (p, s) = ty.catalog_precision_scale();
            assert_eq!(
                SqlType::from_catalog(ty.catalog_name(), p, s).unwrap(),
                ty,
                "{text}"
            );
        }
        assert!(SqlType::parse("geography").is_err());
        assert!(SqlType::parse("decimal(40,2)").is_err());
    }

    #[test]
    fn logical_types_are_debeziums_adaptive_mapping() {
        let l = |t: &str| SqlType::parse(t).unwrap().logical();
        assert_eq!(l("smallint"), LogicalType::Int);
        assert_eq!(
            l("money"),
            LogicalType::Decimal {
                precision: 19,
                scale: 4
            }
        );
        assert_eq!(l("datetime"), LogicalType::Timestamp(TimeUnit::Millisecond));
        assert_eq!(
            l("datetime2(3)"),
            LogicalType::Timestamp(TimeUnit::Millisecond)
        );
        assert_eq!(
            l("datetime2(6)"),
            LogicalType::Timestamp(TimeUnit::Microsecond)
        );
        assert_eq!(l("uniqueidentifier"), LogicalType::String);
        assert_eq!(l("float"), LogicalType::Double);
        assert_eq!(l("real"), LogicalType::Float);
    }
}
