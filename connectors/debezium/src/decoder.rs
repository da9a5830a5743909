//! The decoder the sources use: [`JsonDecoder`] remembers every Connect schema it has seen (by its exact
//! bytes) with the row layouts built from it, and reads the common Debezium envelope without a JSON tree
//! (`borrowed.rs`); both fall back to the tree decoder of `envelope.rs` for anything else, so the result
//! is always the one `decode_json` gives.

use crate::borrowed::{decode_envelope_borrowed, FieldCache};
use crate::connect::{ConnectKind, ConnectSchema};
use crate::envelope::{decode_json_uncached, decode_payload, kind_of, Decoding};
use lakefold_api::Field;
use serde_json::Value as Json;
use std::collections::HashMap;
use std::sync::Arc;

/// The message form of JsonConverter with `schemas.enable=true`, borrowed: the schema is not parsed.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SchemaEnvelope<'a> {
    #[serde(borrow)]
    schema: &'a serde_json::value::RawValue,
    #[serde(borrow)]
    payload: &'a serde_json::value::RawValue,
}

/// Most distinct schemas a decoder remembers (a topic has one per table version).
const SCHEMA_CACHE_ENTRIES: usize = 256;

/// Decodes messages, remembering every Connect schema it has seen by its exact bytes: an envelope that
/// embeds its schema (JsonConverter with `schemas.enable=true`, 3 KB of schema for a 300-byte row) has it
/// parsed, and its row layouts built, once per distinct schema rather than once per message. Shared by
/// the threads that decode one batch.
#[derive(Default)]
pub struct JsonDecoder {
    schemas: std::sync::RwLock<HashMap<Box<[u8]>, SchemaLayouts>>,
    /// The last few message openings up to the payload (`{"schema":<schema>,"payload":`), with their
    /// schema's layouts: a message that starts with one of them is that envelope, and its payload is
    /// found by comparing bytes instead of scanning 3 KB of schema as JSON.
    openings: std::sync::RwLock<std::collections::VecDeque<(Box<[u8]>, SchemaLayouts)>>,
    fields: FieldCache,
}

/// A schema's row layouts (`None`: not a Connect schema lakefold reads).
type SchemaLayouts = Option<Arc<Layouts>>;

/// Message openings a decoder compares each message with (a stream of one table has one).
const OPENINGS: usize = 4;

impl JsonDecoder {
    pub fn new() -> JsonDecoder {
        JsonDecoder::default()
    }

    /// Decodes one message, exactly as [`decode_json`] does.
    pub fn decode(&self, bytes: &[u8]) -> Decoding {
        if let Some((layouts, payload)) = self.known_opening(bytes) {
            if let Some(d) = decode_envelope_borrowed(payload, layouts.as_deref(), &self.fields) {
                return d;
            }
        }
        let embedded = may_embed_schema(bytes)
            .then(|| serde_json::from_slice::<SchemaEnvelope>(bytes).ok())
            .flatten();
        let Some(envelope) = embedded else {
            return decode_envelope_borrowed(bytes, None, &self.fields)
                .unwrap_or_else(|| decode_json_uncached(bytes));
        };
        let layouts = self.layouts(envelope.schema.get().as_bytes());
        self.remember_opening(bytes, &envelope, &layouts);
        let payload = envelope.payload.get().as_bytes();
        if let Some(d) = decode_envelope_borrowed(payload, layouts.as_deref(), &self.fields) {
            return d;
        }
        match serde_json::from_str::<Json>(envelope.payload.get()) {
            Ok(Json::Null) => Decoding::skipped("tombstone"),
            Ok(Json::Object(p)) => decode_payload(p, layouts.as_deref()),
            Ok(other) => Decoding::failed(format!(
                "`payload` must be an object, found {}",
                kind_of(&other)
            )),
            Err(_) => decode_json_uncached(bytes),
        }
    }

    /// The layouts and the payload of a message that opens as a known envelope does: the rest is the
    /// payload and the envelope's closing brace (whether the payload is one JSON value is for its
    /// decoder to find; if not, the message is read the long way).
    fn known_opening<'b>(&self, bytes: &'b [u8]) -> Option<(Option<Arc<Layouts>>, &'b [u8])> {
        let openings = self.openings.read().ok()?;
        let (opening, layouts) = openings.iter().find(|(o, _)| bytes.starts_with(o))?;
        let rest = bytes[opening.len()..].trim_ascii_end();
        let payload = rest.strip_suffix(b"}")?;
        Some((layouts.clone(), payload))
    }

    /// Remembers how `bytes` opens up to its payload, when its schema comes first.
    fn remember_opening(
        &self,
        bytes: &[u8],
        envelope: &SchemaEnvelope,
        layouts: &Option<Arc<Layouts>>,
    ) {
        // Borrowed raw values point into `bytes`; anything else is not remembered.
        let offset = |raw: &serde_json::value::RawValue| {
            (raw.get().as_ptr() as usize).checked_sub(bytes.as_ptr() as usize)
        };
        let (Some(schema_at), Some(payload_at)) =
            (offset(envelope.schema), offset(envelope.payload))
        else {
            return;
        };
        if schema_at > payload_at || payload_at > bytes.len() {
            return;
        }
        let opening = &bytes[..payload_at];
        if let Ok(mut openings) = self.openings.write() {
            if openings.iter().any(|(o, _)| o.as_ref() == opening) {
                return;
            }
            if openings.len() >= OPENINGS {
                openings.pop_front();
            }
            openings.push_back((opening.into(), layouts.clone()));
        }
    }

    fn layouts(&self, schema: &[u8]) -> Option<Arc<Layouts>> {
        if let Ok(cache) = self.schemas.read() {
            if let Some(hit) = cache.get(schema) {
                return hit.clone();
            }
        }
        let parsed = serde_json::from_slice::<Json>(schema)
            .ok()
            .and_then(|j| ConnectSchema::parse(&j))
            .map(|s| Arc::new(Layouts::of(&s)));
        if let Ok(mut cache) = self.schemas.write() {
            if cache.len() >= SCHEMA_CACHE_ENTRIES {
                cache.clear();
            }
            cache.insert(schema.into(), parsed.clone());
        }
        parsed
    }
}

/// False when the message cannot be the `{"schema", "payload"}` envelope because its first key, written
/// plainly, is another one: reading it as that envelope would stop there with an error, and building the
/// error (a formatted message) costs more than this look. Anything else (`true`) is tried.
fn may_embed_schema(bytes: &[u8]) -> bool {
    let skip_ws = |b: &[u8]| -> usize { b.iter().take_while(|c| c.is_ascii_whitespace()).count() };
    let rest = &bytes[skip_ws(bytes)..];
    let Some(rest) = rest.strip_prefix(b"{") else {
        return true;
    };
    let rest = &rest[skip_ws(rest)..];
    let Some(key) = rest.strip_prefix(b"\"") else {
        return true;
    };
    match memchr::memchr2(b'"', b'\\', key) {
        // A plain key: its text is the name.
        Some(end) if key[end] == b'"' => matches!(&key[..end], b"schema" | b"payload"),
        // An escape (the name is known once unescaped) or no end: tried.
        _ => true,
    }
}

/// The row layouts of an envelope schema (`before` and `after`) or of a flattened row's schema.
#[derive(Debug)]
pub(crate) struct Layouts {
    before: Option<RowLayout>,
    after: Option<RowLayout>,
    pub(crate) flat: Option<RowLayout>,
}

/// The columns of a row image in schema order (without `__` fields), and how each is converted.
#[derive(Debug)]
pub(crate) struct RowLayout {
    pub(crate) fields: Arc<Vec<Field>>,
    pub(crate) kinds: Vec<ConnectKind>,
    /// No two fields share a name (so an image whose keys are the fields in order has no duplicate).
    pub(crate) distinct: bool,
}

impl RowLayout {
    fn of(schema: &ConnectSchema) -> Option<RowLayout> {
        if schema.fields.is_empty() {
            return None;
        }
        let (fields, kinds): (Vec<Field>, Vec<ConnectKind>) = schema
            .row_fields()
            .into_iter()
            .filter(|(f, _)| !f.name.starts_with("__"))
            .unzip();
        let distinct = fields
            .iter()
            .enumerate()
            .all(|(i, f)| fields[..i].iter().all(|other| other.name != f.name));
        Some(RowLayout {
            fields: Arc::new(fields),
            kinds,
            distinct,
        })
    }
}

impl Layouts {
    pub(crate) fn of(schema: &ConnectSchema) -> Layouts {
        Layouts {
            before: schema.child("before").and_then(RowLayout::of),
            after: schema.child("after").and_then(RowLayout::of),
            flat: RowLayout::of(schema),
        }
    }

    pub(crate) fn image(&self, name: &str) -> Option<&RowLayout> {
        match name {
            "before" => self.before.as_ref(),
            _ => self.after.as_ref(),
        }
    }
}

#[cfg(test)]
mod cached_decoder_tests {
    use super::*;
    use crate::envelope::decode_json;

    const SAMPLE: &str = include_str!("../../../config/sample/sales.jsonl");

    #[test]
    fn the_caching_decoder_decodes_every_sample_line_as_the_plain_decoder_does() {
        let decoder = JsonDecoder::new();
        let mut with_schema = 0;
        for line in SAMPLE.lines() {
            assert_eq!(
                decoder.decode(line.as_bytes()),
                decode_json(line.as_bytes()),
                "{line}"
            );
            with_schema += usize::from(line.starts_with("{\"schema\""));
        }
        assert!(with_schema > 100);
        let cached = decoder.schemas.read().map(|c| c.len()).unwrap_or(0);
        assert_eq!(cached, 1, "one distinct schema in the sample");
    }

    #[test]
    fn schemaless_envelopes_decode_without_a_tree_exactly_as_with_one() {
        let decoder = JsonDecoder::new();
        let mut lines = Vec::new();
        for line in SAMPLE.lines() {
            let json: Json = serde_json::from_str(line).unwrap();
            lines.push(match json.get("payload") {
                Some(p) => p.to_string(),
                None => line.to_string(),
            });
        }
        let edge = [
            r#"{"op":"c","after":{"id":1,"n":"a\u00e9\"b","f":1.5,"big":18446744073709551615,"o":{"x":[1,2]},"z":null},"source":{"table":"T","schema":"dbo","commit_lsn":"00000027:00000758:0001","change_lsn":"00000027:00000758:0002","event_serial_no":1}}"#,
            r#"{"op":"d","before":{"id":1},"after":null,"source":{"table":"T"}}"#,
            r#"{"op":"d","after":{"id":1}}"#,
            r#"{"op":"c","before":{"id":1}}"#,
            r#"{"op":"x","after":{"id":1}}"#,
            r#"{"op":7,"after":{"id":1}}"#,
            r#"{"op":"c","after":{"id":1,"id":2}}"#,
            r#"{"op":"c","op":"u","after":{"id":1}}"#,
            r#"{"op":"c","after":{"i\u0064":1}}"#,
            r#"{"op":"c","after":{"id":1},"source":"nope"}"#,
            r#"{"op":"c","after":{"id":1},"source":{"commit_lsn":"zz"}}"#,
            r#"{"op":"c","after":{"id":1},"source":{"commit_lsn":"00000027:00000758:0001","event_serial_no":"x"}}"#,
            r#"{"op":"c","after":[1]}"#,
            r#"{"op":"c","after":{"id":1},"__deleted":"true"}"#,
            r#"{"op":"t","source":{"table":"T"},"before":null}"#,
            r#"{"before":null,"after":{"id":1}}"#,
            r#"{"id":1,"name":"flat"}"#,
            r#"{"op":"c","after":{"id":1},"source":{"table":"T\u0041","schema":"dbo"}}"#,
            r#"{"op":"c","after":{"id":1},"source":{"table":7,"schema":"dbo","ts_ms":1.5}}"#,
            r#"{"op":"c","after":{"id":1},"source":{"table":"T","schema":null,"ts_ms":1700000000000}}"#,
            r#"{"op":"c","after":{"id":1},"source":{"commit_lsn":"00000027:00000758:0001","event_serial_no":"2"}}"#,
            r#"{"op":"c","after":{"id":1},"source":{"commit_lsn":null,"change_lsn":"zz"}}"#,
            r#"{"op":"c","after":{"id":1},"source":{"commit_lsn":"00000027:00000758:0001","change_lsn":7}}"#,
            r#"{"op":"c","after":{"id":1},"source":{"commit_lsn":"00000027:00000758:0001","event_serial_no":99999999999999999999}}"#,
            r#"{"op":"c","after":{"id":1},"source":{"table":"T","table":"U"}}"#,
            r#"{"op":"c","after":{"id":1},"source":null}"#,
            r#"{"op":"u","before":"not a row","after":{"id":2}}"#,
            r#"{"op":"u","before":{"id":1,"id":1},"after":{"id":2}}"#,
            r#"{"op":"d","before":{"i\u0064":1},"after":null}"#,
            r#"{"op":"d","before":"not a row"}"#,
            r#"{"op":"r","after":null}"#,
            r#"{"op":"c","after":{"id":1},"source":{"commit_lsn":"00000027:00000758:0001","event_serial_no":-0}}"#,
            r#"{"op":"\u0063","after":{"id":1}}"#,
            r#"{"op" : "u" ,"after":{"id":1}}"#,
            r#"{"op":"C","after":{"id":1}}"#,
        ];
        lines.extend(edge.iter().map(|s| s.to_string()));
        for line in &lines {
            assert_eq!(
                decoder.decode(line.as_bytes()),
                decode_json(line.as_bytes()),
                "{line}"
            );
        }
        // Bytes that are not UTF-8, in a value and in a key.
        for bytes in [
            &b"{\"op\":\"c\",\"after\":{\"id\":1,\"n\":\"\xff\"}}"[..],
            &b"{\"op\":\"c\",\"after\":{\"i\xc3\":1}}"[..],
        ] {
            assert_eq!(decoder.decode(bytes), decode_json(bytes));
        }
        // and the borrowed path really is the one taken for ordinary envelopes
        assert!(crate::borrowed::decode_envelope_borrowed(
            lines[0].as_bytes(),
            None,
            &crate::borrowed::FieldCache::default()
        )
        .is_some());
    }

    #[test]
    fn typed_images_read_from_their_text_equal_the_tree_decoders() {
        let decoder = JsonDecoder::new();
        let row = r#"{"type":"struct","optional":true,"fields":[{"type":"int32","field":"id"},{"type":"int64","field":"n","optional":true},{"type":"string","field":"s","optional":true},{"type":"boolean","field":"b","optional":true}]}"#;
        let schema = format!(
            r#"{{"type":"struct","fields":[{{"field":"before",{r}}},{{"field":"after",{r}}},{{"type":"string","field":"op"}}]}}"#,
            r = &row[1..row.len() - 1]
        );
        let images = [
            r#"{"id":1,"n":-7,"s":"plain","b":true}"#,
            r#"{"id":2147483647,"n":9223372036854775807,"s":"","b":false}"#,
            r#"{"id":2147483648,"n":1,"s":"x","b":true}"#,
            r#"{"id":-0,"n":1,"s":"x","b":true}"#,
            r#"{"id":1,"n":9223372036854775808,"s":"x","b":true}"#,
            r#"{"id":1,"n":1.5,"s":"x","b":true}"#,
            r#"{"id":1,"n":1e3,"s":"x","b":true}"#,
            r#"{"id":1,"n":null,"s":null,"b":null}"#,
            r#"{"id":1,"n":2,"s":"a\"b\u00e9","b":"true"}"#,
            r#"{"id":1,"n":2,"s":7,"b":1}"#,
            r#"{"id":"1","n":2,"s":"x","b":true}"#,
            r#"{"b":true,"s":"x","n":2,"id":3}"#,
            r#"{"id":1,"s":"x"}"#,
            r#"{"id":1,"n":2,"s":"x","b":true,"extra":5}"#,
            r#"{"id":1,"id":2,"n":2,"s":"x","b":true}"#,
            r#"{"id":null,"n":2,"s":"x","b":true}"#,
        ];
        let mut events = 0;
        for image in images {
            let line = format!(
                r#"{{"schema":{schema},"payload":{{"op":"c","after":{image},"source":{{"table":"T"}}}}}}"#
            );
            events += usize::from(matches!(
                decoder.decode(line.as_bytes()).decoded,
                lakefold_api::Decoded::Event(_)
            ));
            assert_eq!(
                decoder.decode(line.as_bytes()),
                decode_json(line.as_bytes()),
                "{image}"
            );
        }
        assert!(events >= 6, "the plain images decode ({events})");
    }

    #[test]
    fn the_schema_envelope_is_recognised_by_its_first_key_written_in_any_form() {
        let decoder = JsonDecoder::new();
        let schema = r#"{"type":"struct","fields":[{"type":"struct","field":"after","fields":[{"type":"int32","field":"id"}]}]}"#;
        let payload = r#"{"op":"c","after":{"id":7},"source":{"table":"T"}}"#;
        let forms = [
            format!(r#"{{"schema":{schema},"payload":{payload}}}"#),
            format!(r#" {{ "payload":{payload},"schema":{schema}}}"#),
            format!(r#"{{"sch\u0065ma":{schema},"payload":{payload}}}"#),
            format!(r#"{{"\u0070ayload":{payload},"schema":{schema}}}"#),
            format!(r#"{{"schemas":{schema},"payload":{payload}}}"#),
            format!(r#"{{"schema":{schema},"payload":{payload},"extra":1}}"#),
            format!("\t{{\n\"schema\":{schema},\"payload\":{payload}}}"),
            "{\"schema\"".to_string(),
            "{\"".to_string(),
            "{".to_string(),
            "".to_string(),
        ];
        for m in &forms {
            assert_eq!(
                decoder.decode(m.as_bytes()),
                decode_json(m.as_bytes()),
                "{m}"
            );
        }
        assert!(may_embed_schema(forms[0].as_bytes()));
        assert!(
            may_embed_schema(forms[2].as_bytes()),
            "an escaped key is tried"
        );
        assert!(!may_embed_schema(payload.as_bytes()));
        assert!(!may_embed_schema(forms[4].as_bytes()));
    }

    #[test]
    fn a_changed_schema_gets_its_own_layout_and_bad_input_still_fails_the_same_way() {
        let decoder = JsonDecoder::new();
        let msg = |ty: &str, v: &str| {
            format!(
                r#"{{"schema":{{"type":"struct","fields":[{{"type":"struct","field":"after","fields":[{{"type":"{ty}","field":"id"}}]}}]}},"payload":{{"op":"c","after":{{"id":{v}}},"source":{{"table":"T"}}}}}}"#
            )
        };
        let a = msg("int32", "7");
        let b = msg("string", "\"7\"");
        for m in [&a, &b, &a] {
            assert_eq!(decoder.decode(m.as_bytes()), decode_json(m.as_bytes()));
        }
        assert_ne!(decoder.decode(a.as_bytes()), decoder.decode(b.as_bytes()));
        // Values read straight from their text, and those that are not, decode as the tree decoder does.
        for (ty, v) in [
            ("int32", "2147483647"),
            ("int32", "2147483648"),
            ("int32", "-0"),
            ("int32", "1.0"),
            ("int32", "\"7\""),
            ("int32", "null"),
            ("int64", "-9223372036854775808"),
            ("int64", "9223372036854775808"),
            ("int64", "true"),
            ("boolean", "true"),
            ("boolean", "1"),
            ("string", "\"caf\\u00e9\""),
            ("string", "7"),
            ("string", "null"),
        ] {
            let m = msg(ty, v);
            assert_eq!(
                decoder.decode(m.as_bytes()),
                decode_json(m.as_bytes()),
                "{m}"
            );
        }
        for bad in [
            &b"{\"schema\":{},\"payload\":[1]}"[..],
            b"{\"schema\":",
            b"",
            b"null",
        ] {
            assert_eq!(decoder.decode(bad), decode_json(bad));
        }
    }
}
