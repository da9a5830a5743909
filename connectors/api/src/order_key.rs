//! The order key: a fixed-width text form of a [`Position`] whose byte order is the position order
//! (lakefold's Hudi precombine column), and its reading back.

use crate::position::{Lsn, LsnPosition, Position, StreamPosition};

impl Position {
    /// A fixed-width text whose byte order equals the position order. It is what lakefold stores in the
    /// Hudi precombine column, so readers and later writes can compare row versions without lakefold.
    ///
    /// Built digit by digit (no `format!`): it is computed for every event of every route.
    pub fn order_key(&self) -> String {
        let (commit, change, serial) = match &self.lsn {
            Some(l) => (
                l.commit_lsn,
                l.change_lsn.unwrap_or_default(),
                l.event_serial_no.unwrap_or(0).max(0),
            ),
            None => (Lsn(0), Lsn(0), 0),
        };
        let mut out = String::with_capacity(112);
        out.push(if self.lsn.is_some() { '1' } else { '0' });
        out.push(':');
        push_lsn(&mut out, commit);
        out.push(':');
        push_lsn(&mut out, change);
        out.push(':');
        push_decimal(&mut out, serial as u64, 19);
        out.push(':');
        match &self.stream {
            StreamPosition::Line { line, .. } => {
                out.push('L');
                push_decimal(&mut out, *line, 20);
            }
            StreamPosition::Kafka {
                topic,
                partition,
                offset,
            } => {
                out.push('K');
                push_decimal(&mut out, (*partition).max(0) as u64, 10);
                out.push(':');
                push_decimal(&mut out, (*offset).max(0) as u64, 20);
                out.push(':');
                out.push_str(topic);
            }
            StreamPosition::Cdc => out.push('C'),
            StreamPosition::Snapshot { instance, row } => {
                out.push('S');
                push_decimal(&mut out, *row, 20);
                out.push(':');
                out.push_str(instance);
            }
        }
        out
    }
}

impl Position {
    /// The position an [`Position::order_key`] text was made from (`None` when `key` is not one). A line's
    /// byte offset is not in the key and comes back as 0; an absent change LSN or serial comes back as
    /// zero, which orders (and keys) the same.
    pub fn from_order_key(key: &str) -> Option<Position> {
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
}

/// `v` in decimal, zero-padded to `width` digits (every value of the field fits in `width`).
fn push_decimal(out: &mut String, mut v: u64, width: usize) {
    let mut digits = [b'0'; 20];
    let mut i = digits.len();
    while v > 0 && i > 0 {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
    let start = digits.len().saturating_sub(width).min(i);
    out.extend(digits[start..].iter().map(|&d| d as char));
}

/// An LSN as its Display form `xxxxxxxx:xxxxxxxx:xxxx` (fixed width, lower-case hex).
fn push_lsn(out: &mut String, lsn: Lsn) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let v = lsn.0;
    let parts = [
        ((v >> 48) & 0xffff_ffff, 8),
        ((v >> 16) & 0xffff_ffff, 8),
        (v & 0xffff, 4),
    ];
    for (n, (part, width)) in parts.into_iter().enumerate() {
        if n > 0 {
            out.push(':');
        }
        for k in (0..width).rev() {
            out.push(HEX[((part >> (4 * k)) & 0xf) as usize] as char);
        }
    }
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
        for bad in ["", "x", "1:zz", &sparse.order_key().replace('C', "Q")] {
            assert_eq!(Position::from_order_key(bad), None, "{bad}");
        }
    }

    /// The order key as it was first written, with `format!`: the fast one must equal it.
    fn order_key_reference(p: &Position) -> String {
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

    #[test]
    fn the_order_key_is_the_reference_text_for_every_field_range() {
        let lsns = [
            0u128,
            1,
            0xffff,
            0x27_0000_0758_0001,
            u128::MAX >> 48,
            (1 << 80) - 1,
        ];
        let nums = [0i64, 1, 9, 10, 123_456_789, i64::MAX, -5];
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
                        let p = Position { lsn, stream };
                        assert_eq!(p.order_key(), order_key_reference(&p));
                    }
                }
            }
        }
    }
}
