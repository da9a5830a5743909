//! The bloom filters of the Spark-written golden tables (`tests/data/hudi-golden`): lakefold reads them,
//! finds every record key of each file in its file's filter, and builds byte-for-byte the same filter
//! from the same keys.

use lakefold::sink::hudi::bloom::{DynamicBloomFilter, BLOOM_FILTER_KEY, BLOOM_TYPE_CODE_KEY};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::reader::{FileReader, SerializedFileReader};
use std::path::{Path, PathBuf};

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/hudi-golden")
}

/// Unzips every golden table into a temporary folder (with Python's zipfile: the suite needs Python).
fn unzip_all() -> tempfile::TempDir {
    let out = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("python3")
        .arg("-c")
        .arg("import sys, zipfile, glob\nfor z in glob.glob(sys.argv[1] + '/*.zip'): zipfile.ZipFile(z).extractall(sys.argv[2])")
        .arg(golden_dir())
        .arg(out.path())
        .status()
        .unwrap();
    assert!(status.success());
    out
}

fn parquet_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() && !p.ends_with("__MACOSX") {
            parquet_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "parquet") {
            out.push(p);
        }
    }
}

fn record_keys(path: &Path) -> Vec<String> {
    let file = std::fs::File::open(path).unwrap();
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let mut keys = Vec::new();
    for batch in reader {
        let batch = batch.unwrap();
        let col = batch.column_by_name("_hoodie_record_key").unwrap();
        let col = arrow::array::AsArray::as_string::<i32>(col);
        keys.extend(col.iter().flatten().map(str::to_string));
    }
    keys
}

#[test]
fn spark_bloom_filters_hold_their_keys_and_lakefold_builds_them_byte_for_byte() {
    let dir = unzip_all();
    let mut files = Vec::new();
    parquet_files(dir.path(), &mut files);
    let mut checked = 0;
    for path in files {
        let reader = SerializedFileReader::new(std::fs::File::open(&path).unwrap()).unwrap();
        let kv = reader
            .metadata()
            .file_metadata()
            .key_value_metadata()
            .cloned()
            .unwrap_or_default();
        let get = |k: &str| kv.iter().find(|e| e.key == k).and_then(|e| e.value.clone());
        let Some(spark) = get(BLOOM_FILTER_KEY) else {
            continue; // hoodie.populate.meta.fields=false tables carry none
        };
        assert_eq!(get(BLOOM_TYPE_CODE_KEY).as_deref(), Some("DYNAMIC_V0"));
        let filter = DynamicBloomFilter::deserialize(&spark).unwrap();
        let keys = record_keys(&path);
        assert!(!keys.is_empty());
        for k in &keys {
            assert!(
                filter.might_contain(k),
                "{}: key {k} not in its filter",
                path.display()
            );
        }
        assert!(!filter.might_contain("definitely-not-a-key-of-these-tables"));
        let mut ours = DynamicBloomFilter::with_defaults();
        for k in &keys {
            ours.add(k);
        }
        assert_eq!(
            ours.serialize(),
            spark,
            "{}: filter differs from Spark's",
            path.display()
        );
        checked += 1;
    }
    assert!(
        checked >= 10,
        "only {checked} golden files carry a bloom filter"
    );
}

#[test]
fn murmur_hash_matches_hadoop_for_every_tail_length_and_signed_bytes() {
    use lakefold::sink::hudi::bloom::murmur_hash;
    // A filter built from keys of every length 1..=9 and with bytes >= 0x80 finds them all and is stable
    // across serialization (the Spark comparison above covers the hash values themselves).
    let keys: Vec<String> = (1..=9)
        .map(|n| "é".repeat(n))
        .chain((1..=9).map(|n| "k".repeat(n)))
        .collect();
    let mut f = DynamicBloomFilter::with_defaults();
    for k in &keys {
        f.add(k);
    }
    let back = DynamicBloomFilter::deserialize(&f.serialize()).unwrap();
    assert!(keys.iter().all(|k| back.might_contain(k)));
    assert_eq!(back.serialize(), f.serialize());
    assert_ne!(murmur_hash(b"abc", 0), murmur_hash(b"abd", 0));
}
