//! Parsing of the text forms of values: decimals and ISO-8601 timestamps.

use crate::value::Value;

/// Parses decimal text (`-12.5`, `1e3`) into an unscaled value at `scale`; refuses to drop digits.
pub fn decimal_from_text(text: &str, precision: u8, scale: i8) -> Result<Value, String> {
    let unscaled = unscaled_from_text(text, scale)?;
    let limit = 10i128.checked_pow(precision as u32).unwrap_or(i128::MAX);
    if unscaled.abs() >= limit {
        return Err(format!(
            "`{text}` does not fit decimal({precision},{scale})"
        ));
    }
    Ok(Value::Decimal {
        unscaled,
        precision,
        scale,
    })
}

pub fn unscaled_from_text(text: &str, scale: i8) -> Result<i128, String> {
    let bad = || format!("`{text}` is not a decimal number");
    let t = text.trim();
    let (mantissa, exp) = match t.find(['e', 'E']) {
        Some(i) => (&t[..i], t[i + 1..].parse::<i32>().map_err(|_| bad())?),
        None => (t, 0),
    };
    let (negative, digits) = match mantissa.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, mantissa.strip_prefix('+').unwrap_or(mantissa)),
    };
    let (int_part, frac_part) = digits.split_once('.').unwrap_or((digits, ""));
    if (int_part.is_empty() && frac_part.is_empty())
        || !int_part.bytes().all(|b| b.is_ascii_digit())
        || !frac_part.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    // value = int_part.frac_part * 10^exp; we want value * 10^scale as an integer.
    let all_digits = format!("{int_part}{frac_part}");
    let shift = scale as i32 + exp - frac_part.len() as i32;
    let mut unscaled: i128 = if all_digits.is_empty() {
        0
    } else {
        all_digits.parse().map_err(|_| bad())?
    };
    if shift >= 0 {
        for _ in 0..shift {
            unscaled = unscaled.checked_mul(10).ok_or_else(bad)?;
        }
    } else {
        for _ in 0..(-shift) {
            if unscaled % 10 != 0 {
                return Err(format!(
                    "`{text}` has more than {scale} digits after the point"
                ));
            }
            unscaled /= 10;
        }
    }
    Ok(if negative { -unscaled } else { unscaled })
}

/// Parses an ISO-8601 / RFC 3339 timestamp (with an offset, or without one meaning UTC) to epoch µs.
pub fn parse_timestamp_micros(text: &str) -> Result<i64, String> {
    let t = text.trim();
    if let Ok(dt) = chrono::DateTime::parse_from_rfc3339(t) {
        return Ok(dt.timestamp_micros());
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S",
    ] {
        if let Ok(naive) = chrono::NaiveDateTime::parse_from_str(t, fmt) {
            return Ok(naive.and_utc().timestamp_micros());
        }
    }
    Err(format!("`{text}` is not an ISO-8601 timestamp"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_text_keeps_every_digit_or_refuses() {
        assert_eq!(unscaled_from_text("1234.5", 4).unwrap(), 12_345_000);
        assert_eq!(unscaled_from_text("-0.0001", 4).unwrap(), -1);
        assert_eq!(unscaled_from_text("1.5e2", 1).unwrap(), 1500);
        assert_eq!(unscaled_from_text("12.30000", 2).unwrap(), 1230);
        assert!(unscaled_from_text("1.23456", 4).is_err());
        assert!(unscaled_from_text("abc", 2).is_err());
        assert!(unscaled_from_text("", 2).is_err());
        assert!(decimal_from_text("123456", 5, 2).is_err());
    }
}
