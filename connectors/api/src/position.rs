//! Source positions: what orders change events ("last value" means greatest position, never arrival order).

use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// A SQL Server log sequence number: 10 bytes, written by SQL Server and Debezium as
/// `VVVVVVVV:BBBBBBBB:SSSS` (VLF sequence, log block, slot; hexadecimal).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lsn(pub u128);

/// Text that is not an LSN.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{text}` is not a SQL Server LSN (expected hex `VVVVVVVV:BBBBBBBB:SSSS` or 20 hex digits)"
)]
pub struct LsnParseError {
    pub text: String,
}

impl FromStr for Lsn {
    type Err = LsnParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || LsnParseError {
            text: s.to_string(),
        };
        let s = s.trim();
        let s = s
            .strip_prefix("0x")
            .or_else(|| s.strip_prefix("0X"))
            .unwrap_or(s);
        let mut parts = s.split(':');
        let (vlf, block, slot) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(v), Some(b), Some(sl), None) => (v, b, sl),
            (Some(whole), None, None, None) if whole.len() == 20 => {
                match (whole.get(0..8), whole.get(8..16), whole.get(16..20)) {
                    (Some(v), Some(b), Some(sl)) => (v, b, sl),
                    _ => return Err(err()),
                }
            }
            _ => return Err(err()),
        };
        let hex = |t: &str, max_len: usize| -> Result<u128, LsnParseError> {
            if t.is_empty() || t.len() > max_len {
                return Err(err());
            }
            u128::from_str_radix(t, 16).map_err(|_| err())
        };
        Ok(Lsn((hex(vlf, 8)? << 48)
            | (hex(block, 8)? << 16)
            | hex(slot, 4)?))
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.0;
        write!(
            f,
            "{:08x}:{:08x}:{:04x}",
            (v >> 48) & 0xffff_ffff,
            (v >> 16) & 0xffff_ffff,
            v & 0xffff
        )
    }
}

/// The Debezium SQL Server ordering triple: the transaction's commit LSN, the change's LSN inside it, and
/// the serial number that orders the events of one change (an update's before/after).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LsnPosition {
    #[serde(with = "lsn_text")]
    pub commit_lsn: Lsn,
    #[serde(with = "opt_lsn_text", default)]
    pub change_lsn: Option<Lsn>,
    #[serde(default)]
    pub event_serial_no: Option<i64>,
}

/// Where a record sits in its transport. Ordered as [`Position::order_key`] orders it: lines by number;
/// Kafka records by (partition, offset, topic) — only the order within one partition means anything, the
/// rest just makes the order total.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StreamPosition {
    /// A line of a JSON-lines file: 1-based line number and the byte offset just after the line.
    Line { line: u64, end_offset: u64 },
    /// A Kafka record.
    Kafka {
        topic: String,
        partition: i32,
        offset: i64,
    },
    /// A change read from a SQL Server change table: everything that orders it is in the LSN triple.
    Cdc,
    /// A row of an initial snapshot: the capture instance and the row's place in its key order (1-based).
    Snapshot { instance: String, row: u64 },
}

impl StreamPosition {
    fn sort_key(&self) -> (u8, i64, i64, &str) {
        match self {
            StreamPosition::Line { line, .. } => (0, 0, *line as i64, ""),
            StreamPosition::Kafka {
                topic,
                partition,
                offset,
            } => (1, *partition as i64, *offset, topic.as_str()),
            StreamPosition::Cdc => (2, 0, 0, ""),
            StreamPosition::Snapshot { instance, row } => (3, 0, *row as i64, instance.as_str()),
        }
    }
}

impl Ord for StreamPosition {
    fn cmp(&self, other: &Self) -> Ordering {
        self.sort_key().cmp(&other.sort_key())
    }
}

impl PartialOrd for StreamPosition {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The position of one record. Ordered by the LSN triple when the record has one, then by its place in the
/// transport (line, or offset within a partition). A record without LSNs sorts before any record with them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Position {
    pub lsn: Option<LsnPosition>,
    pub stream: StreamPosition,
}

impl Ord for Position {
    fn cmp(&self, other: &Self) -> Ordering {
        self.lsn
            .cmp(&other.lsn)
            .then_with(|| self.stream.cmp(&other.stream))
    }
}

impl PartialOrd for Position {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.stream {
            StreamPosition::Line { line, .. } => write!(f, "line {line}")?,
            StreamPosition::Kafka {
                topic,
                partition,
                offset,
            } => write!(f, "{topic}/{partition}/{offset}")?,
            StreamPosition::Cdc => f.write_str("change")?,
            StreamPosition::Snapshot { instance, row } => {
                write!(f, "snapshot of {instance} row {row}")?
            }
        }
        if let Some(l) = &self.lsn {
            write!(f, " (commit_lsn {}", l.commit_lsn)?;
            if let Some(c) = l.change_lsn {
                write!(f, ", change_lsn {c}")?;
            }
            if let Some(s) = l.event_serial_no {
                write!(f, ", event_serial_no {s}")?;
            }
            f.write_str(")")?;
        }
        Ok(())
    }
}

mod lsn_text {
    use super::Lsn;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(lsn: &Lsn, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(lsn)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Lsn, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

mod opt_lsn_text {
    use super::Lsn;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(lsn: &Option<Lsn>, s: S) -> Result<S::Ok, S::Error> {
        match lsn {
            Some(l) => s.collect_str(l),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Lsn>, D::Error> {
        let text = Option::<String>::deserialize(d)?;
        text.map(|t| t.parse().map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lsn(s: &str) -> Lsn {
        s.parse().unwrap()
    }

    fn pos(commit: &str, change: Option<&str>, serial: Option<i64>, line: u64) -> Position {
        Position {
            lsn: Some(LsnPosition {
                commit_lsn: lsn(commit),
                change_lsn: change.map(lsn),
                event_serial_no: serial,
            }),
            stream: StreamPosition::Line {
                line,
                end_offset: 0,
            },
        }
    }

    #[test]
    fn lsn_round_trips_through_debezium_text() {
        for text in [
            "0000002b:00000ab8:0003",
            "00000000:00000000:0000",
            "ffffffff:ffffffff:ffff",
        ] {
            assert_eq!(lsn(text).to_string(), text);
        }
        assert_eq!(lsn("0000002B00000AB80003"), lsn("0000002b:00000ab8:0003"));
        assert!("zz:00:00".parse::<Lsn>().is_err());
        assert!("1:2".parse::<Lsn>().is_err());
        assert!("1:2:3:4".parse::<Lsn>().is_err());
        // Twenty bytes whose character boundaries are not at 8 and 16: an error, not a panic.
        assert!("0000000é0000000000".parse::<Lsn>().is_err());
    }

    #[test]
    fn lsn_order_is_numeric_not_textual() {
        assert!(lsn("00000002:00000000:0000") > lsn("00000001:ffffffff:ffff"));
        assert!(lsn("00000001:00000001:0000") > lsn("00000001:00000000:ffff"));
    }

    #[test]
    fn positions_order_by_lsn_before_arrival() {
        let early_lsn_late_line = pos(
            "00000010:00000001:0001",
            Some("00000010:00000001:0001"),
            Some(1),
            99,
        );
        let late_lsn_early_line = pos(
            "00000011:00000001:0001",
            Some("00000011:00000001:0001"),
            Some(1),
            1,
        );
        assert!(late_lsn_early_line > early_lsn_late_line);
        let serial1 = pos(
            "00000010:00000001:0001",
            Some("00000010:00000001:0002"),
            Some(1),
            5,
        );
        let serial2 = pos(
            "00000010:00000001:0001",
            Some("00000010:00000001:0002"),
            Some(2),
            4,
        );
        assert!(serial2 > serial1);
    }

    #[test]
    fn order_key_sorts_like_positions() {
        let mut ps = vec![
            pos(
                "00000010:00000001:0001",
                Some("00000010:00000001:0001"),
                Some(2),
                3,
            ),
            pos(
                "00000010:00000001:0001",
                Some("00000010:00000001:0001"),
                Some(1),
                4,
            ),
            pos("0000000f:ffffffff:ffff", None, None, 7),
            Position {
                lsn: None,
                stream: StreamPosition::Line {
                    line: 1000,
                    end_offset: 0,
                },
            },
            Position {
                lsn: None,
                stream: StreamPosition::Line {
                    line: 2,
                    end_offset: 0,
                },
            },
            pos(
                "00000100:00000001:0001",
                Some("00000100:00000001:0001"),
                Some(1),
                1,
            ),
        ];
        let mut by_key = ps.clone();
        ps.sort();
        by_key.sort_by_key(|p| p.order_key());
        assert_eq!(ps, by_key);

        let k = |topic: &str, partition, offset| Position {
            lsn: None,
            stream: StreamPosition::Kafka {
                topic: topic.into(),
                partition,
                offset,
            },
        };
        let mut ks = vec![
            k("a-b", 0, 5),
            k("a", 0, 5),
            k("a", 2, 1),
            k("a", 0, 10),
            k("b", 1, 0),
            k("a.b", 0, 5),
        ];
        let mut by_key = ks.clone();
        ks.sort();
        by_key.sort_by_key(|p| p.order_key());
        assert_eq!(ks, by_key);
    }
}
