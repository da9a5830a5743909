//! The fast path of [`crate::JsonDecoder`] for the common Debezium envelope (`before`, `after`, `source`,
//! `op`): the message is read without building a JSON tree; only the scalar values and the few `source`
//! fields that matter are parsed. Anything unusual (escaped keys, duplicate keys, ExtractNewRecordState
//! markers, an image or `source` that is not an object) returns `None`, and the caller decodes the message
//! with the tree decoder, so both paths give the same result for every input.

use crate::connect::{infer, ConnectKind};
use crate::decoder::{Layouts, RowLayout};
use crate::envelope::{envelope_event, Decoding, SourceInfo};
use lakefold_api::{Field, Lsn, LsnPosition, Row, TableId};
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value as Json;
use std::sync::{Arc, RwLock};

/// A JSON object's entries in order, values unparsed. Keys must be plain (no escapes).
pub(crate) struct RawObject<'a>(pub Vec<(&'a str, &'a RawValue)>);

impl<'de: 'a, 'a> Deserialize<'de> for RawObject<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = RawObject<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(16));
                while let Some(k) = map.next_key::<&'de str>()? {
                    out.push((k, map.next_value::<&'de RawValue>()?));
                }
                Ok(RawObject(out))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

/// The envelope's fields lakefold reads, in one pass; others (`ts_ms`, `transaction`) are skipped
/// unparsed. `after` is split into its entries on the way; `before` stays unparsed until a delete needs it.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    op: Option<&'a RawValue>,
    #[serde(borrow)]
    source: Option<Source<'a>>,
    #[serde(borrow)]
    before: Option<&'a RawValue>,
    #[serde(borrow)]
    after: Option<RawObject<'a>>,
}

/// The `source` fields an event needs; the others are skipped unparsed.
#[derive(Deserialize)]
struct Source<'a> {
    #[serde(borrow)]
    ts_ms: Option<&'a RawValue>,
    #[serde(borrow)]
    commit_lsn: Option<&'a RawValue>,
    #[serde(borrow)]
    change_lsn: Option<&'a RawValue>,
    #[serde(borrow)]
    event_serial_no: Option<&'a RawValue>,
    #[serde(borrow)]
    schema: Option<&'a RawValue>,
    #[serde(borrow)]
    table: Option<&'a RawValue>,
}

impl Source<'_> {
    /// What the tree decoder reads from `source`, for the plain forms only (strings without escapes,
    /// integers); `None` for anything else, which the tree decoder then reads (and reports).
    fn info(&self) -> Option<SourceInfo> {
        let lsn = match lsn_text(self.commit_lsn)? {
            None => None,
            Some(commit_lsn) => Some(LsnPosition {
                commit_lsn,
                change_lsn: lsn_text(self.change_lsn)?,
                event_serial_no: match self.event_serial_no {
                    None => None,
                    Some(raw) => Some(integer_text(raw)?),
                },
            }),
        };
        let name = |raw: Option<&RawValue>| -> Option<Option<String>> {
            match raw {
                None => Some(None),
                // `as_str` of a number or a boolean: no name.
                Some(r) if !r.get().starts_with('"') => Some(None),
                Some(r) => plain_str(r).map(|s| Some(s.to_string())),
            }
        };
        let table = match name(self.table)? {
            Some(table) => Some(TableId {
                schema: name(self.schema)?,
                table,
            }),
            None => None,
        };
        Some(SourceInfo {
            lsn: Ok(lsn),
            table,
            ts_ms: self.ts_ms.and_then(|t| t.get().parse::<i64>().ok()),
        })
    }
}

/// A JSON string without escapes, as its text.
fn plain_str(raw: &RawValue) -> Option<&str> {
    let text = raw.get();
    let inner = text.strip_prefix('"')?.strip_suffix('"')?;
    (!inner.contains('\\')).then_some(inner)
}

/// An LSN written as a plain string; `Some(None)` when absent.
fn lsn_text(raw: Option<&RawValue>) -> Option<Option<Lsn>> {
    match raw {
        None => Some(None),
        Some(r) => plain_str(r)?.parse().ok().map(Some),
    }
}

/// An integer written as digits (serde_json reads `-0` as a float: not one).
fn integer_text(raw: &RawValue) -> Option<i64> {
    let text = raw.get();
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || text == "-0" {
        return None;
    }
    text.parse().ok()
}

/// Row layouts of schemaless images seen so far (the same columns come again and again).
#[derive(Default)]
pub(crate) struct FieldCache {
    layouts: RwLock<Vec<Arc<Vec<Field>>>>,
}

const FIELD_CACHE_ENTRIES: usize = 64;

impl FieldCache {
    /// The shared field list named like the entries of `row`, or `None` when a name comes twice.
    fn fields(&self, row: &[(&str, &RawValue)]) -> Option<Arc<Vec<Field>>> {
        let same = |f: &Vec<Field>| {
            f.len() == row.len()
                && f.iter()
                    .zip(row)
                    .all(|(f, (k, _))| f.name == *k && f.ty.is_none())
        };
        if let Ok(cache) = self.layouts.read() {
            if let Some(hit) = cache.iter().find(|f| same(f)) {
                return Some(hit.clone());
            }
        }
        for (i, (k, _)) in row.iter().enumerate() {
            if row[..i].iter().any(|(other, _)| other == k) {
                return None;
            }
        }
        let fields = Arc::new(
            row.iter()
                .map(|(k, _)| Field {
                    name: k.to_string(),
                    ty: None,
                })
                .collect::<Vec<_>>(),
        );
        if let Ok(mut cache) = self.layouts.write() {
            if cache.len() >= FIELD_CACHE_ENTRIES {
                cache.clear();
            }
            cache.push(fields.clone());
        }
        Some(fields)
    }
}

fn parse(raw: &RawValue) -> Option<Json> {
    serde_json::from_str(raw.get()).ok()
}

/// A schemaless value as [`infer`] types it, read straight from its JSON text for the common scalars
/// (null, booleans, integers, strings without escapes); anything else goes through a parsed tree.
fn infer_raw(raw: &RawValue) -> Option<lakefold_api::Value> {
    use lakefold_api::Value;
    let text = raw.get();
    let bytes = text.as_bytes();
    match bytes.first() {
        Some(b'"') if bytes.len() >= 2 && !bytes.contains(&b'\\') => {
            return Some(Value::String(text[1..text.len() - 1].to_string()))
        }
        Some(b'-' | b'0'..=b'9')
            // serde_json reads `-0` as the float -0.0.
            if bytes[1..].iter().all(u8::is_ascii_digit) && bytes != b"-" && bytes != b"-0" =>
        {
            if let Ok(i) = text.parse::<i64>() {
                return Some(Value::Bigint(i));
            }
        }
        _ => match text {
            "null" => return Some(Value::Null),
            "true" => return Some(Value::Bool(true)),
            "false" => return Some(Value::Bool(false)),
            _ => {}
        },
    }
    parse(raw).map(|j| infer(&j))
}

fn starts_object(raw: &RawValue) -> bool {
    raw.get().trim_start().starts_with('{')
}

/// Decodes `bytes` as an envelope without a tree, or `None` when the tree decoder must.
pub(crate) fn decode_envelope_borrowed(
    bytes: &[u8],
    schema: Option<&Layouts>,
    fields: &FieldCache,
) -> Option<Decoding> {
    // ExtractNewRecordState markers (or any `__` key) make the tree decoder decide the form.
    static MARKER: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\"__"));
    if MARKER.find(bytes).is_some() {
        return None;
    }
    // Checked once as a whole (fast for ASCII), so the parser need not check each string it borrows.
    let text = std::str::from_utf8(bytes).ok()?;
    let env: Envelope = serde_json::from_str(text).ok()?;
    let op = op_of(env.op?)?;
    if env.before.is_none() && env.after.is_none() {
        return None;
    }
    let source = match &env.source {
        Some(s) => Some(s.info()?),
        None => None,
    };
    // Read only for a delete (as `envelope_event` asks), and first: it may send us to the tree decoder.
    let before = match op.as_str() {
        Some("d") => image(
            env.before,
            schema.and_then(|s| s.image("before")),
            fields,
            "before",
        )?,
        _ => Ok(None),
    };
    let after = match &env.after {
        None => Ok(None),
        Some(row) => row_of(row, schema.and_then(|s| s.image("after")), fields)?
            .map(Some)
            .map_err(|e| format!("`after`.{e}")),
    };
    Some(envelope_event(Some(&*op), source, || before, || after))
}

/// The `op` value: the usual codes without parsing (or allocating), anything else parsed.
fn op_of(raw: &RawValue) -> Option<std::borrow::Cow<'static, Json>> {
    use std::borrow::Cow;
    use std::sync::LazyLock;
    static CODES: LazyLock<[Json; 4]> =
        LazyLock::new(|| ["c", "u", "d", "r"].map(|c| Json::String(c.to_string())));
    let code = match raw.get() {
        "\"c\"" => 0,
        "\"u\"" => 1,
        "\"d\"" => 2,
        "\"r\"" => 3,
        _ => return parse(raw).map(Cow::Owned),
    };
    Some(Cow::Borrowed(&CODES[code]))
}

/// One image: absent or null → no row; an object → its row; anything else → the tree decoder.
fn image(
    raw: Option<&RawValue>,
    layout: Option<&RowLayout>,
    fields: &FieldCache,
    name: &str,
) -> Option<Result<Option<Row>, String>> {
    let Some(raw) = raw else {
        return Some(Ok(None));
    };
    if raw.get().trim() == "null" {
        return Some(Ok(None));
    }
    if !starts_object(raw) {
        return None;
    }
    let row: RawObject = serde_json::from_str(raw.get()).ok()?;
    let decoded = row_of(&row, layout, fields)?;
    Some(decoded.map(Some).map_err(|e| format!("`{name}`.{e}")))
}

/// A row's values, by its schema layout or inferred from the JSON; `None` for the tree decoder.
fn row_of(
    row: &RawObject,
    layout: Option<&RowLayout>,
    fields: &FieldCache,
) -> Option<Result<Row, String>> {
    match layout {
        Some(l) => typed_row(row, l),
        None => {
            let fields = fields.fields(&row.0)?;
            let mut values = Vec::with_capacity(row.0.len());
            for (_, v) in &row.0 {
                values.push(infer_raw(v)?);
            }
            Some(Ok(Row { fields, values }))
        }
    }
}

/// A row by its schema layout: values by field name (the tree decoder reads them the same way). An image
/// written in the layout's order is read by position.
fn typed_row(row: &RawObject, layout: &RowLayout) -> Option<Result<Row, String>> {
    let in_order = layout.distinct
        && row.0.len() == layout.fields.len()
        && row
            .0
            .iter()
            .zip(layout.fields.iter())
            .all(|((k, _), f)| *k == f.name);
    if !in_order {
        for (i, (k, _)) in row.0.iter().enumerate() {
            if row.0[..i].iter().any(|(other, _)| other == k) {
                return None;
            }
        }
    }
    let mut values = Vec::with_capacity(layout.kinds.len());
    for (i, (field, kind)) in layout.fields.iter().zip(&layout.kinds).enumerate() {
        let entry = if in_order {
            row.0.get(i)
        } else {
            row.0.iter().find(|(k, _)| *k == field.name)
        };
        let raw = entry.map(|(_, v)| *v);
        let converted = match raw {
            Some(v) => match typed_raw(v, *kind) {
                Some(value) => Ok(value),
                None => kind.convert(&parse(v)?),
            },
            None => kind.convert(&Json::Null),
        };
        match converted {
            Ok(v) => values.push(v),
            Err(e) => return Some(Err(format!("{}: {e}", field.name))),
        }
    }
    Some(Ok(Row {
        fields: layout.fields.clone(),
        values,
    }))
}

/// A value of a declared kind read straight from its JSON text, for the plain forms of the common kinds
/// (null, integers as digits, strings without escapes, booleans); `None` sends it through a parsed tree
/// and [`ConnectKind::convert`] (which also words the errors).
fn typed_raw(raw: &RawValue, kind: ConnectKind) -> Option<lakefold_api::Value> {
    use lakefold_api::Value;
    let text = raw.get();
    if text == "null" {
        return Some(Value::Null);
    }
    match kind {
        ConnectKind::Int => i32::try_from(integer_text(raw)?).ok().map(Value::Int),
        ConnectKind::Bigint => integer_text(raw).map(Value::Bigint),
        ConnectKind::String => plain_str(raw).map(|s| Value::String(s.to_string())),
        ConnectKind::Boolean => match text {
            "true" => Some(Value::Bool(true)),
            "false" => Some(Value::Bool(false)),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_read_from_their_text_equal_the_tree_decoders_inference() {
        let texts = [
            "null",
            "true",
            "false",
            "0",
            "-0",
            "7",
            "-42",
            "9223372036854775807",
            "-9223372036854775808",
            "9223372036854775808",
            "18446744073709551616",
            "1.5",
            "-2e3",
            "1E2",
            "\"\"",
            "\"plain\"",
            "\"caf\u{e9}\"",
            "\"a\\\"b\"",
            "\"\\u00e9\"",
            "[1,2]",
            "{\"a\":1}",
        ];
        for text in texts {
            let raw: Box<RawValue> = serde_json::from_str(text).unwrap();
            let tree = infer(&serde_json::from_str::<Json>(text).unwrap());
            assert_eq!(infer_raw(&raw), Some(tree), "{text}");
        }
    }
}
