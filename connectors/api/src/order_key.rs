//! The order key: a text form of a [`Position`] whose byte order is the position order (lakefold's Hudi
//! precombine column, `_lakefold_position`), its reading back, and the comparison of two keys written by
//! different lakefold versions.
//!
//! Version 2 (written now): `2`, `0`/`1` (without/with the LSN triple), then each number as one length
//! letter (`a` + its count of hex digits) and its hex digits without leading zeros: commit LSN, change LSN,
//! serial (only with the triple), then the stream part (`L` line; `K` partition, offset, topic; `C`;
//! `S` row, instance). A longer number has a later length letter, so comparing texts compares the numbers
//! field by field. The SALES stream's positions take 40 bytes instead of version 1's 93: that column was
//! 60 % of a base file's bytes before compression.
//!
//! Version 1 (read, and compared with version 2 by value): `<0|1>:<commit>:<change>:<serial 19
//! digits>:<stream>`, fixed-width.

use crate::position::{Lsn, LsnPosition, Position, StreamPosition};
use std::cmp::Ordering;

/// The largest number of hex digits a number takes (an LSN is 80 bits; larger values saturate).
const MAX_DIGITS: u32 = 25;

impl Position {
    /// The version 2 order key: a text whose byte order equals the position order. It is what lakefold
    /// stores in the Hudi precombine column, so readers and later writes can compare row versions without
    /// lakefold. Built digit by digit (no `format!`): it is computed for every surviving row.
    pub fn order_key(&self) -> String {
        let mut out = String::with_capacity(48);
        out.push('2');
        match &self.lsn {
            Some(l) => {
                out.push('1');
                push_number(&mut out, l.commit_lsn.0);
                push_number(&mut out, l.change_lsn.unwrap_or_default().0);
                push_number(&mut out, l.event_serial_no.unwrap_or(0).max(0) as u128);
            }
            None => out.push('0'),
        }
        match &self.stream {
            StreamPosition::Line { line, .. } => {
                out.push('L');
                push_number(&mut out, *line as u128);
            }
            StreamPosition::Kafka {
                topic,
                partition,
                offset,
            } => {
                out.push('K');
                push_number(&mut out, (*partition).max(0) as u128);
                push_number(&mut out, (*offset).max(0) as u128);
                out.push_str(topic);
            }
            StreamPosition::Cdc => out.push('C'),
            StreamPosition::Snapshot { instance, row } => {
                out.push('S');
                push_number(&mut out, *row as u128);
                out.push_str(instance);
            }
        }
        out
    }

    /// The position an order key (version 1 or 2) was made from (`None` when `key` is not one). A line's
    /// byte offset is not in the key and comes back as 0; an absent change LSN or serial comes back as
    /// zero, which orders (and keys) the same.
    pub fn from_order_key(key: &str) -> Option<Position> {
        match key.as_bytes().first()? {
            b'2' => from_key_v2(&key[1..]),
            _ => from_key_v1(key),
        }
    }
}

/// Orders two order keys as their positions order. Keys of one version compare as texts; a version 1 key
/// (a table written before version 2) and a version 2 key compare by the positions they stand for. Text
/// that is not an order key (an empty stored position) compares as text.
pub fn compare_order_keys(a: &str, b: &str) -> Ordering {
    let version = |k: &str| match k.as_bytes().first() {
        Some(b'2') => 2,
        Some(b'0' | b'1') => 1,
        _ => 0,
    };
    if version(a) == version(b) {
        return a.cmp(b);
    }
    match (Position::from_order_key(a), Position::from_order_key(b)) {
        (Some(x), Some(y)) => x.order_key().cmp(&y.order_key()),
        _ => a.cmp(b),
    }
}

/// `v` as its length letter and hex digits (none for 0).
fn push_number(out: &mut String, v: u128) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digits = (128 - v.leading_zeros()).div_ceil(4);
    if digits > MAX_DIGITS {
        out.push((b'a' + MAX_DIGITS as u8) as char);
        out.extend(std::iter::repeat_n('f', MAX_DIGITS as usize));
        return;
    }
    out.push((b'a' + digits as u8) as char);
    for k in (0..digits).rev() {
        out.push(HEX[((v >> (4 * k)) & 0xf) as usize] as char);
    }
}

/// Reads one [`push_number`] number off the front of `text`.
fn take_number(text: &mut &str) -> Option<u128> {
    let (&len, rest) = text.as_bytes().split_first()?;
    let digits = len.checked_sub(b'a')? as usize;
    if digits > MAX_DIGITS as usize {
        return None;
    }
    let hex = text.get(1..1 + digits)?;
    let value = if digits == 0 {
        0
    } else {
        if hex.starts_with('0') || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return None;
        }
        u128::from_str_radix(hex, 16).ok()?
    };
    debug_assert!(rest.len() >= digits);
    *text = &text[1 + digits..];
    Some(value)
}

fn from_key_v2(mut rest: &str) -> Option<Position> {
    let (flag, tail) = rest.split_at_checked(1)?;
    rest = tail;
    let lsn = match flag {
        "1" => Some(LsnPosition {
            commit_lsn: Lsn(take_number(&mut rest)?),
            change_lsn: Some(Lsn(take_number(&mut rest)?)),
            event_serial_no: Some(i64::try_from(take_number(&mut rest)?).ok()?),
        }),
        "0" => None,
        _ => return None,
    };
    let (kind, mut body) = rest.split_at_checked(1)?;
    let stream = match kind {
        "L" => {
            let line = u64::try_from(take_number(&mut body)?).ok()?;
            if !body.is_empty() {
                return None;
            }
            StreamPosition::Line {
                line,
                end_offset: 0,
            }
        }
        "K" => StreamPosition::Kafka {
            partition: i32::try_from(take_number(&mut body)?).ok()?,
            offset: i64::try_from(take_number(&mut body)?).ok()?,
            topic: body.to_string(),
        },
        "C" if body.is_empty() => StreamPosition::Cdc,
        "S" => StreamPosition::Snapshot {
            row: u64::try_from(take_number(&mut body)?).ok()?,
            instance: body.to_string(),
        },
        _ => return None,
    };
    Some(Position { lsn, stream })
}

/// The version 1 key of a position (tests: keys of tables written before version 2).
#[cfg(test)]
fn order_key_v1(p: &Position) -> String {
    let (commit, change, serial) = match &p.lsn {
        Some(l) => (
            l.commit_lsn,
            l.change_lsn.unwrap_or_default(),
            l.event_serial_no.unwrap_or(0).max(0),
        ),
        None => (Lsn(0), Lsn(0), 0),
    };
    let lsn_flag = if p.lsn.is_some() { 1 } else { 0 };
    let stream = match &p.stream {
        StreamPosition::Line { line, .. } => format!("L{line:020}"),
        StreamPosition::Kafka {
            topic,
            partition,
            offset,
        } => format!(
            "K{:010}:{:020}:{topic}",
            (*partition).max(0),
            (*offset).max(0)
        ),
        StreamPosition::Cdc => "C".to_string(),
        StreamPosition::Snapshot { instance, row } => format!("S{row:020}:{instance}"),
    };
    format!("{lsn_flag}:{commit}:{change}:{serial:019}:{stream}")
}

fn from_key_v1(key: &str) -> Option<Position> {
    let (flag, rest) = key.split_at_checked(2)?;
    let commit = rest.get(..22)?.parse::<Lsn>().ok()?;
    let change = rest.get(23..45)?.parse::<Lsn>().ok()?;
    let serial: i64 = rest.get(46..65)?.parse().ok()?;
    if rest.get(22..23)? != ":" || rest.get(45..46)? != ":" || rest.get(65..66)? != ":" {
        return None;
    }
    let lsn = match flag {
        "1:" => Some(LsnPosition {
            commit_lsn: commit,
            change_lsn: Some(change),
            event_serial_no: Some(serial),
        }),
        "0:" => None,
        _ => return None,
    };
    let stream = rest.get(66..)?;
    let (kind, body) = stream.split_at_checked(1)?;
    let stream = match kind {
        "L" => StreamPosition::Line {
            line: body.parse().ok()?,
            end_offset: 0,
        },
        "K" => {
            let mut parts = body.splitn(3, ':');
            StreamPosition::Kafka {
                partition: parts.next()?.parse().ok()?,
                offset: parts.next()?.parse().ok()?,
                topic: parts.next()?.to_string(),
            }
        }
        "C" if body.is_empty() => StreamPosition::Cdc,
        "S" => {
            let (row, instance) = body.split_once(':')?;
            StreamPosition::Snapshot {
                instance: instance.to_string(),
                row: row.parse().ok()?,
            }
        }
        _ => return None,
    };
    Some(Position { lsn, stream })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_order_key_reads_back_as_the_position_it_was_made_from() {
        let lsn = LsnPosition {
            commit_lsn: Lsn(0x0000_0027_0000_0658_0003),
            change_lsn: Some(Lsn(0x0000_0027_0000_0658_0002)),
            event_serial_no: Some(2),
        };
        let cases = [
            Position {
                lsn: None,
                stream: StreamPosition::Line {
                    line: 17,
                    end_offset: 0,
                },
            },
            Position {
                lsn: Some(lsn),
                stream: StreamPosition::Kafka {
                    topic: "erp.dbo.SALES:x".into(),
                    partition: 3,
                    offset: 1044,
                },
            },
            Position {
                lsn: Some(lsn),
                stream: StreamPosition::Cdc,
            },
            Position {
                lsn: Some(lsn),
                stream: StreamPosition::Snapshot {
                    instance: "dbo_SALES".into(),
                    row: 9,
                },
            },
        ];
        for p in cases {
            let key = p.order_key();
            assert_eq!(Position::from_order_key(&key), Some(p.clone()), "{key}");
            let old = order_key_v1(&p);
            assert_eq!(Position::from_order_key(&old), Some(p.clone()), "{old}");
        }
        // An absent change LSN keys (and so reads back) as zero.
        let sparse = Position {
            lsn: Some(LsnPosition {
                commit_lsn: Lsn(5),
                change_lsn: None,
                event_serial_no: None,
            }),
            stream: StreamPosition::Cdc,
        };
        let back = Position::from_order_key(&sparse.order_key()).map(|p| p.order_key());
        assert_eq!(back, Some(sparse.order_key()));
        let bad_keys = ["", "x", "1:zz", "2", "21", "21b0", "20Lb1x", "20Lz"];
        for bad in bad_keys
            .into_iter()
            .chain([sparse.order_key().replace('C', "Q").as_str()])
        {
            assert_eq!(Position::from_order_key(bad), None, "{bad}");
        }
    }

    #[test]
    fn version_2_keys_order_as_version_1_keys_did_and_both_read_back_for_every_field_range() {
        let lsns = [
            0u128,
            1,
            0xffff,
            0x27_0000_0758_0001,
            u128::MAX >> 48,
            (1 << 80) - 1,
        ];
        let nums = [0i64, 1, 9, 10, 15, 16, 123_456_789, i64::MAX, -5];
        let mut ps = Vec::new();
        for &c in &lsns {
            for &n in &nums {
                for lsn in [
                    None,
                    Some(LsnPosition {
                        commit_lsn: Lsn(c),
                        change_lsn: Some(Lsn(c / 3)),
                        event_serial_no: Some(n),
                    }),
                    Some(LsnPosition {
                        commit_lsn: Lsn(c),
                        change_lsn: None,
                        event_serial_no: None,
                    }),
                ] {
                    for stream in [
                        StreamPosition::Line {
                            line: n.unsigned_abs(),
                            end_offset: 0,
                        },
                        StreamPosition::Line {
                            line: u64::MAX,
                            end_offset: 0,
                        },
                        StreamPosition::Kafka {
                            topic: "t.dbo.SALES".into(),
                            partition: (n % 1000) as i32,
                            offset: n,
                        },
                        StreamPosition::Kafka {
                            topic: "x".into(),
                            partition: i32::MAX,
                            offset: n,
                        },
                        StreamPosition::Cdc,
                        StreamPosition::Snapshot {
                            instance: "dbo_SALES".into(),
                            row: n.unsigned_abs(),
                        },
                    ] {
                        ps.push(Position { lsn, stream });
                    }
                }
            }
        }
        let clamp = |p: &Position| Position::from_order_key(&order_key_v1(p));
        for p in &ps {
            let v2 = p.order_key();
            assert_eq!(Position::from_order_key(&v2), clamp(p), "{v2}");
            assert_eq!(
                Position::from_order_key(&v2).map(|q| q.order_key()),
                Some(v2)
            );
        }
        for a in &ps {
            for b in &ps {
                let (a1, b1) = (order_key_v1(a), order_key_v1(b));
                let (a2, b2) = (a.order_key(), b.order_key());
                assert_eq!(a2.cmp(&b2), a1.cmp(&b1), "{a2} {b2}");
                assert_eq!(compare_order_keys(&a1, &b2), a1.cmp(&b1), "{a1} {b2}");
                assert_eq!(compare_order_keys(&a2, &b1), a1.cmp(&b1), "{a2} {b1}");
            }
        }
    }

    #[test]
    fn the_sales_stream_position_is_short() {
        let p = Position {
            lsn: Some(LsnPosition {
                commit_lsn: Lsn(0x27_0000_0005_2430),
                change_lsn: Some(Lsn(0x27_0000_0005_2430)),
                event_serial_no: Some(1),
            }),
            stream: StreamPosition::Line {
                line: 21059,
                end_offset: 0,
            },
        };
        assert_eq!(p.order_key(), "21o27000000052430o27000000052430b1Le5243");
        assert_eq!(
            order_key_v1(&p),
            "1:00000027:00000005:2430:00000027:00000005:2430:0000000000000000001:L00000000000000021059"
        );
    }
}
