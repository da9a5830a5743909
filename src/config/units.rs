//! Human-friendly units in the configuration: durations (`"60s"`, `"500ms"`) and sizes (`"256MiB"`).

use serde::{Deserialize, Deserializer};
use std::time::Duration;

/// A duration written as text with a unit, e.g. `"60s"`, `"1m 30s"`, `"250ms"` (humantime syntax).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurationText(pub Duration);

impl<'de> Deserialize<'de> for DurationText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text)
            .map(DurationText)
            .map_err(|e| {
                serde::de::Error::custom(format!(
                    "`{text}` is not a duration (e.g. \"60s\", \"500ms\"): {e}"
                ))
            })
    }
}

/// A size in bytes, written as text with a unit (`"256MiB"`, `"1GB"`) or as a plain integer of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Int(n) => Ok(ByteSize(n)),
            Raw::Text(text) => text
                .trim()
                .parse::<bytesize::ByteSize>()
                .map(|b| ByteSize(b.as_u64()))
                .map_err(|e| {
                    serde::de::Error::custom(format!(
                        "`{text}` is not a size (e.g. \"256MiB\"): {e}"
                    ))
                }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_parse_with_units() {
        #[derive(Deserialize)]
        struct T {
            s: ByteSize,
            n: ByteSize,
            d: DurationText,
        }
        let t: T = toml::from_str("s = \"256MiB\"\nn = 1000\nd = \"1m 30s\"").unwrap();
        assert_eq!(t.s, ByteSize(256 * 1024 * 1024));
        assert_eq!(t.n, ByteSize(1000));
        assert_eq!(t.d, DurationText(Duration::from_secs(90)));
        assert!(toml::from_str::<T>("s = \"lots\"\nn = 1\nd = \"1s\"").is_err());
    }
}
