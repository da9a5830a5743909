//! Tests of the in-place rewrite: rows and meta columns as the streamed merge writes them, unchanged
//! columns byte for byte, inserts into a small file.

use super::super::avro_schema::META_COLUMNS;
use super::super::merge::KeyChange;
use super::super::parquet_io::{codec, writer_options};
use super::*;
use arrow::array::StringArray;
use arrow::datatypes::{Field, Schema, SchemaRef};
use std::sync::Arc;

fn schema() -> SchemaRef {
    let mut fields: Vec<Field> = META_COLUMNS
        .iter()
        .map(|m| Field::new(*m, DataType::Utf8, true))
        .collect();
    for name in ["changed", "same", POSITION_COLUMN] {
        fields.push(Field::new(name, DataType::Utf8, true));
    }
    Arc::new(Schema::new(fields))
}

/// Rows `(key, changed, same, position)` of commit `instant` as a batch of the test schema.
fn batch(rows: &[[String; 4]], instant: &str) -> RecordBatch {
    let col = |f: &dyn Fn(usize) -> String| -> ArrayRef {
        Arc::new(StringArray::from_iter_values((0..rows.len()).map(f)))
    };
    RecordBatch::try_new(
        schema(),
        vec![
            col(&|_| instant.to_string()),
            col(&|_| String::new()),
            col(&|i| rows[i][0].clone()),
            col(&|_| String::new()),
            col(&|_| "new.parquet".to_string()),
            col(&|i| rows[i][1].clone()),
            col(&|i| rows[i][2].clone()),
            col(&|i| rows[i][3].clone()),
        ],
    )
    .unwrap()
}

fn merge(old: Option<Bytes>, new_rows: RecordBatch, changes: KeyMap<KeyChange>) -> Merge {
    let instant = new_rows.column(0).as_string::<i32>().value(0).to_string();
    let path = Path::from("t/new.parquet");
    let gzip = codec(crate::config::Compression::Gzip);
    Merge {
        table: "t".into(),
        old: old.map(|b| (Path::from("t/old.parquet"), b)),
        file_schema: schema(),
        inserts: if changes.is_empty() {
            (0..new_rows.num_rows()).collect()
        } else {
            vec![]
        },
        new_rows,
        changes,
        seqno_prefix: format!("{instant}_0"),
        file_name: "new.parquet".into(),
        writer: writer_options("t", &path, &schema(), gzip).unwrap(),
        path,
        avro: "{}".into(),
        threads: 2,
    }
}

fn stored(i: usize) -> [String; 4] {
    [
        format!("k{i:05}"),
        format!("c{i}"),
        format!("s{}", i * 7919 % 1000),
        format!("p{i:05}"),
    ]
}

/// A base file of 20,000 stored rows of commit `001`.
fn stored_file() -> Bytes {
    let rows: Vec<[String; 4]> = (0..20_000).map(stored).collect();
    let file = merge(None, batch(&rows, "001"), KeyMap::default());
    Bytes::from(file.run().unwrap().bytes)
}

#[test]
fn an_update_only_rewrite_splices_unchanged_columns_and_keeps_every_row_in_place() {
    let old = stored_file();
    // Updates change `changed` (and the meta columns) only; one is older than the stored row; one
    // key is not in the file (an insert at the end).
    let updates: Vec<[String; 4]> = [3usize, 12_000, 19_999]
        .iter()
        .map(|&i| {
            let mut r = stored(i);
            r[1] = format!("updated {i}");
            r[3] = if i == 19_999 {
                "p00000".into()
            } else {
                "q".into()
            };
            r
        })
        .chain([["kNEW".into(), "new".into(), "s".into(), "q".into()]])
        .collect();
    let mut changes = KeyMap::default();
    for (j, r) in updates.iter().enumerate() {
        let position = r[3].clone();
        changes.insert(r[0].clone(), KeyChange::Update { new: j, position });
    }
    let merged = merge(Some(old.clone()), batch(&updates, "002"), changes)
        .run()
        .unwrap();
    assert_eq!((merged.updates, merged.stale, merged.inserts), (2, 1, 1));
    let new = Bytes::from(merged.bytes);
    let meta = ArrowReaderMetadata::load(&new, Default::default()).unwrap();
    let old_meta = ArrowReaderMetadata::load(&old, Default::default()).unwrap();
    let (new_rg, old_rg) = (
        meta.metadata().row_group(0),
        old_meta.metadata().row_group(0),
    );
    assert_eq!(
        meta.metadata().num_row_groups(),
        2,
        "the insert has a row group of its own"
    );
    let chunk = |b: &Bytes, c: &parquet::file::metadata::ColumnChunkMetaData| {
        let (start, len) = c.byte_range();
        b.slice(start as usize..(start + len) as usize)
    };
    for c in [2, 3, 6] {
        assert_eq!(
            chunk(&new, new_rg.column(c)),
            chunk(&old, old_rg.column(c)),
            "column {c} is spliced as it was"
        );
    }
    let reader = ParquetRecordBatchReaderBuilder::try_new(new)
        .unwrap()
        .build()
        .unwrap();
    let batches: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
    let all = concat_batches(&batches[0].schema(), &batches).unwrap();
    let text = |c: usize, r: usize| all.column(c).as_string::<i32>().value(r).to_string();
    assert_eq!(all.num_rows(), 20_001);
    for r in 0..20_000 {
        let expect = match r {
            3 => (updates[0].clone(), ["002".into(), format!("002_0_{r}")]),
            12_000 => (updates[1].clone(), ["002".into(), format!("002_0_{r}")]),
            _ => (stored(r), ["001".to_string(), format!("001_0_{r}")]),
        };
        assert_eq!(
            [text(2, r), text(5, r), text(6, r), text(7, r)],
            expect.0,
            "row {r}"
        );
        assert_eq!([text(0, r), text(1, r)], expect.1, "row {r}");
        assert_eq!(text(4, r), "new.parquet");
    }
    assert_eq!(text(2, 20_000), "kNEW");
    assert_eq!(text(1, 20_000), "002_0_20000");
    assert!(merged.keys.may_contain("kNEW") && merged.keys.may_contain("k12000"));
    assert_eq!(merged.keys.range, Some(("k00000".into(), "kNEW".into())));
}

#[test]
fn inserts_into_a_small_file_share_its_last_row_group() {
    let old = stored_file();
    let more: Vec<[String; 4]> = (20_000..20_100).map(stored).collect();
    let merged = merge(Some(old), batch(&more, "002"), KeyMap::default())
        .run()
        .unwrap();
    assert_eq!((merged.rows, merged.inserts), (20_100, 100));
    let new = Bytes::from(merged.bytes);
    let meta = ArrowReaderMetadata::load(&new, Default::default()).unwrap();
    assert_eq!(meta.metadata().num_row_groups(), 1);
    assert!(merged.keys.may_contain("k20099") && merged.keys.may_contain("k00000"));
}
