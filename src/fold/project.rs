//! Projection of one change event through one route.

use super::route::{RouteSpec, HIVE_DEFAULT_PARTITION};
use super::FoldEntry;
use crate::config::OnDelete;
use crate::schema::coerce_ref;
use crate::sink::RowChange;
use lakefold_api::{ChangeEvent, LogicalType, Position, Value};
use std::fmt::Write;

/// What a route makes of an event.
#[derive(Debug, Clone, PartialEq)]
pub enum Projected {
    /// A row change to fold.
    Entry(FoldEntry),
    /// The route does not act on this event (a delete under `on_delete = "ignore"`).
    Ignored,
}

/// Reusable buffers of one route's projection, kept by its fold: the values of an entry that a newer
/// image replaces come back here, so the next event's texts are written into their strings instead of
/// new ones, and the key and partition texts are built in place before any map lookup.
#[derive(Debug, Default)]
pub struct Scratch {
    pub(super) values: Vec<Value>,
    /// The record key when it is one integer column (then `key` is not written), else `None`.
    pub(super) int_key: Option<i64>,
    pub(super) key: String,
    pub(super) partition: String,
}

/// Projects `event` through `route`. Fixes still-undecided column types from the event (its declared
/// Debezium types, else its values). An `Err` is a record that does not fit the route: it goes to the
/// dead-letter table with this message.
pub fn project(
    route: &mut RouteSpec,
    event: &ChangeEvent,
    position: &Position,
) -> Result<Projected, String> {
    let mut scratch = Scratch::default();
    let Some(is_delete) = project_parts(route, event, &mut scratch)? else {
        return Ok(Projected::Ignored);
    };
    if let Some(k) = scratch.int_key {
        scratch.key = k.to_string();
    }
    let (change, position_slot) = change_of(route, is_delete, scratch.values);
    Ok(Projected::Entry(FoldEntry {
        record_key: scratch.key,
        partition_path: scratch.partition,
        position: position.clone(),
        position_slot,
        change,
        held: 0,
    }))
}

/// [`project`]'s work into `scratch`: the image's values (reusing the strings already there), the
/// record key (as an integer when it is one integer column) and the partition path. `None` when the
/// route ignores the event; else whether it deletes.
pub(super) fn project_parts(
    route: &mut RouteSpec,
    event: &ChangeEvent,
    scratch: &mut Scratch,
) -> Result<Option<bool>, String> {
    let is_delete = event.op.is_delete();
    if is_delete && route.on_delete == OnDelete::Ignore {
        return Ok(None);
    }
    let image = event
        .image()
        .ok_or_else(|| format!("op {} has no row image", event.op.code()))?;
    // Types still undecided are decided on a copy, kept only if the record is accepted: a rejected record
    // must not choose a column's type for the rest of the table's life.
    let undecided = route.types.iter().any(Option::is_none);
    let mut types = if undecided {
        route.types.clone()
    } else {
        Vec::new()
    };
    route.look_up_columns(&image.fields);
    let positions = route.positions();
    let values = &mut scratch.values;
    for (i, (out, input)) in route.projection.iter().enumerate() {
        let (declared, value) = match positions
            .get(i)
            .copied()
            .flatten()
            .and_then(|p| image.at(p))
        {
            Some((field, value)) => (field.ty, value),
            None if route.key.contains(&i) => {
                return Err(format!("key column `{input}` is missing from the row"))
            }
            None => (None, &Value::Null),
        };
        if undecided && types[i].is_none() {
            types[i] = declared.or_else(|| value.natural_type());
        }
        let ty = if undecided { types[i] } else { route.types[i] };
        if i == values.len() {
            values.push(Value::Null);
        }
        assign(&mut values[i], value, ty).map_err(|e| format!("column `{out}`: {e}"))?;
    }
    values.truncate(route.projection.len());
    for &k in &route.key {
        if values[k].is_null() {
            return Err(format!("key column `{}` is null", route.projection[k].1));
        }
    }
    scratch.int_key = int_key(route, values);
    if scratch.int_key.is_none() {
        key_text(route, values, &mut scratch.key);
    }
    partition_text(route, values, &mut scratch.partition);
    if undecided {
        route.types = types;
    }
    Ok(Some(is_delete))
}

/// `slot = coerce(value, ty)`, writing a string into the string already in `slot`.
fn assign(slot: &mut Value, value: &Value, ty: Option<LogicalType>) -> Result<(), String> {
    match (value, ty, &mut *slot) {
        (Value::String(text), None | Some(LogicalType::String), Value::String(buf)) => {
            buf.clear();
            buf.push_str(text);
        }
        (_, Some(ty), _) => *slot = coerce_ref(value, ty)?,
        (_, None, _) => slot.clone_from(value),
    }
    Ok(())
}

/// The record key when it is one integer column: its text is the integer's decimal text.
fn int_key(route: &RouteSpec, values: &[Value]) -> Option<i64> {
    match (route.complex_keys, route.key.as_slice()) {
        (false, [k]) => match values[*k] {
            Value::Int(i) => Some(i64::from(i)),
            Value::Bigint(i) => Some(i),
            _ => None,
        },
        _ => None,
    }
}

/// The record key: the bare value of one key column, or as Hudi's KeyGenUtils encodes several
/// (`col:value,...`, an empty value as `__empty__`; key values are never null here).
fn key_text(route: &RouteSpec, values: &[Value], out: &mut String) {
    out.clear();
    match (route.complex_keys, route.key.first()) {
        (false, Some(&k)) => {
            let _ = write!(out, "{}", values[k]);
        }
        (false, None) => {}
        (true, _) => named_values(route, &route.key, [',', ':'], "__empty__", values, out),
    }
}

/// The Hive-style partition path; as Hudi's KeyGenUtils, a null or empty value is the default partition.
fn partition_text(route: &RouteSpec, values: &[Value], out: &mut String) {
    out.clear();
    let columns = &route.partition_by;
    named_values(
        route,
        columns,
        ['/', '='],
        HIVE_DEFAULT_PARTITION,
        values,
        out,
    );
}

/// Appends `name=value` for each of `columns` (with the separators `[between, assign]`), `empty` for a
/// null or empty value.
fn named_values(
    route: &RouteSpec,
    columns: &[usize],
    [between, assign]: [char; 2],
    empty: &str,
    values: &[Value],
    out: &mut String,
) {
    for (j, &c) in columns.iter().enumerate() {
        if j > 0 {
            out.push(between);
        }
        out.push_str(&route.projection[c].0);
        out.push(assign);
        let start = out.len();
        let v = &values[c];
        let _ = write!(out, "{v}");
        if v.is_null() || out.len() == start {
            out.truncate(start);
            out.push_str(empty);
        }
    }
}

/// The change a projected image makes: a delete, or the values with the position column (its text is
/// built when the fold is drained, for the surviving image only) and the soft-delete flag.
pub(super) fn change_of(
    route: &RouteSpec,
    is_delete: bool,
    mut values: Vec<Value>,
) -> (RowChange, Option<usize>) {
    if is_delete && route.on_delete == OnDelete::Delete {
        return (RowChange::Delete, None);
    }
    let slot = values.len();
    values.push(Value::Null);
    if route.on_delete == OnDelete::Soft {
        values.push(Value::Bool(is_delete));
    }
    (RowChange::Upsert(values), Some(slot))
}

/// Types still undecided when a commit is written become strings; report them so operators can declare
/// them in `types`.
pub fn undecided_columns(route: &RouteSpec) -> Vec<&str> {
    route
        .projection
        .iter()
        .zip(&route.types)
        .filter(|(_, t)| t.is_none())
        .map(|((out, _), _)| out.as_str())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ByteSize;
    use crate::config::{Columns, Compression, RouteConfig};
    use indexmap::IndexMap;
    use lakefold_api::{Field, Op, Row, StreamPosition, TableId};
    use std::sync::Arc;

    fn route(on_delete: OnDelete, key: &[&str], cols: &[&str], partition: &[&str]) -> RouteSpec {
        let cfg = RouteConfig {
            table: "t".into(),
            source: "s".into(),
            from: "dbo.SALES".into(),
            key: key.iter().map(|s| s.to_string()).collect(),
            columns: Columns::List(cols.iter().map(|s| s.to_string()).collect()),
            types: IndexMap::new(),
            on_delete,
            partition_by: partition.iter().map(|s| s.to_string()).collect(),
            compression: Some(Compression::Snappy),
            format: None,
            max_file_size: ByteSize(1 << 27),
            small_file_limit: ByteSize(1 << 26),
            clean_retain_commits: 10,
            clean_min_age: crate::config::DurationText(std::time::Duration::ZERO),
        };
        RouteSpec::new(&cfg, None)
    }

    fn event(op: Op, pairs: &[(&str, Value)]) -> ChangeEvent {
        let row = Row {
            fields: Arc::new(
                pairs
                    .iter()
                    .map(|(n, _)| Field {
                        name: n.to_string(),
                        ty: None,
                    })
                    .collect(),
            ),
            values: pairs.iter().map(|(_, v)| v.clone()).collect(),
        };
        let (before, after) = if op.is_delete() {
            (Some(row), None)
        } else {
            (None, Some(row))
        };
        ChangeEvent {
            table: Some(TableId::parse("dbo.SALES")),
            op,
            before,
            after,
            source_ts_ms: None,
        }
    }

    fn at(line: u64) -> Position {
        Position {
            lsn: None,
            stream: StreamPosition::Line {
                line,
                end_offset: 0,
            },
        }
    }

    #[test]
    fn composite_keys_and_hive_partitions_follow_hudi() {
        let mut r = route(OnDelete::Delete, &["a", "b"], &["a", "b", "p"], &["p"]);
        let e = event(
            Op::Create,
            &[
                ("a", Value::Bigint(1)),
                ("b", Value::String("x".into())),
                ("p", Value::Bigint(3)),
            ],
        );
        let Projected::Entry(entry) = project(&mut r, &e, &at(1)).unwrap() else {
            panic!()
        };
        assert_eq!(entry.record_key, "a:1,b:x");
        assert_eq!(entry.partition_path, "p=3");
        let e = event(
            Op::Create,
            &[
                ("a", Value::Bigint(1)),
                ("b", Value::String("x".into())),
                ("p", Value::Null),
            ],
        );
        let Projected::Entry(entry) = project(&mut r, &e, &at(2)).unwrap() else {
            panic!()
        };
        assert_eq!(entry.partition_path, "p=__HIVE_DEFAULT_PARTITION__");
    }

    #[test]
    fn one_key_with_two_partition_fields_reads_as_a_complex_key() {
        let mut r = route(OnDelete::Ignore, &["a"], &["a", "p", "q"], &["p", "q"]);
        let e = event(
            Op::Create,
            &[
                ("a", Value::Int(7)),
                ("p", Value::Int(3)),
                ("q", Value::String("".into())),
            ],
        );
        let Projected::Entry(entry) = project(&mut r, &e, &at(1)).unwrap() else {
            panic!("expected an entry");
        };
        assert_eq!(entry.record_key, "a:7");
        assert_eq!(entry.partition_path, "p=3/q=__HIVE_DEFAULT_PARTITION__");
        let mut simple = route(OnDelete::Ignore, &["a"], &["a", "p"], &["p"]);
        let Projected::Entry(entry) = project(&mut simple, &e, &at(2)).unwrap() else {
            panic!("expected an entry");
        };
        assert_eq!(entry.record_key, "7");
    }

    #[test]
    fn rows_with_a_shared_field_list_and_rows_with_another_order_project_alike() {
        let mut r = route(OnDelete::Ignore, &["a"], &["a", "b"], &[]);
        let first = event(Op::Create, &[("a", Value::Int(1)), ("b", Value::Int(2))]);
        // The same field list (shared Arc), other values: the cached positions apply.
        let mut same = first.clone();
        if let Some(row) = same.after.as_mut() {
            row.values = vec![Value::Int(3), Value::Int(4)];
        }
        // Another field list, other order: positions are looked up again.
        let swapped = event(Op::Create, &[("b", Value::Int(6)), ("a", Value::Int(5))]);
        let values = |e: &ChangeEvent, r: &mut RouteSpec, line| match project(r, e, &at(line)) {
            Ok(Projected::Entry(FoldEntry {
                change: RowChange::Upsert(v),
                ..
            })) => v[..2].to_vec(),
            other => panic!("unexpected {other:?}"),
        };
        assert_eq!(
            values(&first, &mut r, 1),
            vec![Value::Int(1), Value::Int(2)]
        );
        assert_eq!(values(&same, &mut r, 2), vec![Value::Int(3), Value::Int(4)]);
        assert_eq!(
            values(&swapped, &mut r, 3),
            vec![Value::Int(5), Value::Int(6)]
        );
    }

    #[test]
    fn deletes_follow_on_delete() {
        let del = event(
            Op::Delete,
            &[("k", Value::Bigint(1)), ("v", Value::String("x".into()))],
        );
        assert_eq!(
            project(
                &mut route(OnDelete::Ignore, &["k"], &["k", "v"], &[]),
                &del,
                &at(1)
            )
            .unwrap(),
            Projected::Ignored
        );
        let Projected::Entry(hard) = project(
            &mut route(OnDelete::Delete, &["k"], &["k", "v"], &[]),
            &del,
            &at(1),
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(hard.change, RowChange::Delete);
        let Projected::Entry(soft) = project(
            &mut route(OnDelete::Soft, &["k"], &["k", "v"], &[]),
            &del,
            &at(1),
        )
        .unwrap() else {
            panic!()
        };
        match soft.change {
            RowChange::Upsert(v) => assert_eq!(v.last(), Some(&Value::Bool(true))),
            RowChange::Delete => panic!("soft delete must keep the row"),
        }
    }

    #[test]
    fn missing_or_null_keys_and_wrong_types_are_errors() {
        let mut r = route(OnDelete::Delete, &["k"], &["k", "v"], &[]);
        let no_key = event(Op::Create, &[("v", Value::String("x".into()))]);
        assert!(project(&mut r, &no_key, &at(1))
            .unwrap_err()
            .contains("key column `k` is missing"));
        let null_key = event(
            Op::Create,
            &[("k", Value::Null), ("v", Value::String("x".into()))],
        );
        assert!(project(&mut r, &null_key, &at(2))
            .unwrap_err()
            .contains("is null"));
        assert_eq!(r.types[1], None, "a rejected record decided a column type");
        let first = event(
            Op::Create,
            &[("k", Value::Bigint(1)), ("v", Value::Bigint(5))],
        );
        project(&mut r, &first, &at(3)).unwrap();
        let wrong = event(
            Op::Create,
            &[("k", Value::String("abc".into())), ("v", Value::Bigint(5))],
        );
        assert!(project(&mut r, &wrong, &at(4))
            .unwrap_err()
            .contains("column `k`"));
    }

    #[test]
    fn folding_in_place_keeps_what_projecting_then_adding_keeps() {
        use crate::fold::Fold;
        let routes = || {
            let mut typed = route(OnDelete::Delete, &["k"], &["k", "v", "d"], &[]);
            typed.types = vec![
                Some(LogicalType::Bigint),
                Some(LogicalType::String),
                Some(LogicalType::Decimal {
                    precision: 18,
                    scale: 2,
                }),
            ];
            vec![
                typed,
                route(OnDelete::Soft, &["k", "v"], &["k", "v", "p"], &["p"]),
                route(OnDelete::Ignore, &["v"], &["v", "k"], &[]),
                route(OnDelete::Delete, &["k"], &["k", "v"], &["v", "p"]),
            ]
        };
        let (mut slow, mut fast) = (routes(), routes());
        let mut slow_folds: Vec<Fold> = slow.iter().map(|_| Fold::default()).collect();
        let mut fast_folds: Vec<Fold> = fast.iter().map(|_| Fold::default()).collect();
        let text = |n: u64| Value::String("x".repeat((n % 7) as usize));
        for n in 0..400u64 {
            let op = match n % 5 {
                0 => Op::Delete,
                1 => Op::Update,
                _ => Op::Create,
            };
            let k = match n % 23 {
                0 => Value::Null,
                1 => Value::String("not a number".into()),
                _ => Value::Bigint((n % 9) as i64),
            };
            let d = match n % 11 {
                0 => Value::String("1.005".into()),
                1 => Value::String("oops".into()),
                _ => Value::String(format!("{}.{}", n, n % 100)),
            };
            let p = if n % 4 == 0 { Value::Null } else { text(n / 3) };
            let mut pairs = vec![("k", k), ("v", text(n)), ("d", d), ("p", p)];
            if n % 31 == 0 {
                pairs.remove(0);
            }
            let e = event(op, &pairs);
            // Positions out of order now and then: an older image must lose.
            let pos = at(if n % 13 == 0 { n / 2 } else { n });
            for i in 0..slow.len() {
                let expected = project(&mut slow[i], &e, &pos).map(|p| match p {
                    Projected::Entry(entry) => {
                        slow_folds[i].add(entry);
                        true
                    }
                    Projected::Ignored => false,
                });
                let got = fast_folds[i].fold_event(&mut fast[i], &e, &pos);
                assert_eq!(got, expected, "event {n}, route {i}");
                // Reused buffers may hold more capacity than fresh ones: each count matches its entries.
                assert_eq!(
                    fast_folds[i].bytes(),
                    fast_folds[i].recount(),
                    "event {n}, route {i}"
                );
            }
            if n % 100 == 99 {
                for (a, b) in slow_folds.iter_mut().zip(&mut fast_folds) {
                    let (a, b) = (a.drain(), b.drain());
                    assert!(!a.is_empty());
                    assert_eq!(a, b, "drained after event {n}");
                }
            }
        }
        assert_eq!(
            slow.iter().map(|r| r.types.clone()).collect::<Vec<_>>(),
            fast.iter().map(|r| r.types.clone()).collect::<Vec<_>>()
        );
    }
}
