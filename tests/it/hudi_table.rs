//! The Hudi table through the library API on a local object store: upserts, copy-on-write merges,
//! stale rows, deletes, partition moves, conflicts and rollback.

use lakefold::config::Compression;
use lakefold::schema::{Column, TableSchema, POSITION_COLUMN};
use lakefold::sink::hudi::{HudiError, HudiTable, RowChange, StagedRow, TableLayout};
use lakefold_api::{LogicalType, Value};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::ObjectStore;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

const LAYOUT: TableLayout = TableLayout {
    compression: Compression::Snappy,
    max_file_size: 120 << 20,
    small_file_limit: 100 << 20,
};

fn schema() -> TableSchema {
    TableSchema {
        columns: vec![
            Column {
                name: "id".into(),
                ty: LogicalType::Int,
            },
            Column {
                name: "name".into(),
                ty: LogicalType::String,
            },
            Column {
                name: "part".into(),
                ty: LogicalType::Int,
            },
            Column {
                name: POSITION_COLUMN.into(),
                ty: LogicalType::String,
            },
        ],
    }
}

fn upsert(id: i32, name: &str, part: i32, pos: &str) -> StagedRow {
    StagedRow {
        record_key: id.to_string(),
        partition_path: format!("part={part}"),
        position: pos.into(),
        change: RowChange::Upsert(vec![
            Value::Int(id),
            Value::String(name.into()),
            Value::Int(part),
            Value::String(pos.into()),
        ]),
    }
}

fn delete(id: i32, part: i32, pos: &str) -> StagedRow {
    StagedRow {
        record_key: id.to_string(),
        partition_path: format!("part={part}"),
        position: pos.into(),
        change: RowChange::Delete,
    }
}

async fn table() -> (tempfile::TempDir, Arc<dyn ObjectStore>, HudiTable) {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn ObjectStore> =
        Arc::new(LocalFileSystem::new_with_prefix(dir.path()).unwrap());
    let t = HudiTable::create(
        store.clone(),
        Path::from("t"),
        "t",
        "default",
        &["id".into()],
        POSITION_COLUMN,
        &["part".into()],
    )
    .await
    .unwrap();
    (dir, store, t)
}

async fn rows(t: &mut HudiTable) -> HashMap<String, (String, String, String)> {
    let mut out = HashMap::new();
    for b in t.snapshot().await.unwrap() {
        use arrow::array::AsArray;
        let key = b
            .column_by_name("_hoodie_record_key")
            .unwrap()
            .as_string::<i32>()
            .clone();
        let part = b
            .column_by_name("_hoodie_partition_path")
            .unwrap()
            .as_string::<i32>()
            .clone();
        let name = b.column_by_name("name").unwrap().as_string::<i32>().clone();
        let file = b
            .column_by_name("_hoodie_file_name")
            .unwrap()
            .as_string::<i32>()
            .clone();
        for i in 0..b.num_rows() {
            let prev = out.insert(
                key.value(i).to_string(),
                (
                    name.value(i).to_string(),
                    part.value(i).to_string(),
                    file.value(i).to_string(),
                ),
            );
            assert!(prev.is_none(), "duplicate key {}", key.value(i));
        }
    }
    out
}

#[tokio::test]
async fn upserts_merge_in_place_and_older_positions_never_win() {
    let (_dir, _store, mut t) = table().await;
    let s = t
        .upsert(
            &schema(),
            vec![
                upsert(1, "a", 1, "p1"),
                upsert(2, "b", 1, "p1"),
                upsert(3, "c", 2, "p1"),
            ],
            LAYOUT,
            BTreeMap::new(),
        )
        .await
        .unwrap();
    assert_eq!((s.inserts, s.updates, s.files), (3, 0, 2));
    let before = rows(&mut t).await;

    // update 1, stale update of 2, delete 3, insert 4 into partition 1
    let s = t
        .upsert(
            &schema(),
            vec![
                upsert(1, "a2", 1, "p2"),
                upsert(2, "old", 1, "p0"),
                delete(3, 2, "p2"),
                upsert(4, "d", 1, "p2"),
            ],
            LAYOUT,
            BTreeMap::new(),
        )
        .await
        .unwrap();
    assert_eq!((s.inserts, s.updates, s.deletes, s.stale), (1, 1, 1, 1));
    let after = rows(&mut t).await;
    assert_eq!(after["1"].0, "a2");
    assert_eq!(after["2"].0, "b", "an older position overwrote a newer row");
    assert!(!after.contains_key("3"));
    assert_eq!(after["4"].0, "d");
    // same file group (file id) for the updated key, a new file slice
    let id = |f: &str| f.split('_').next().unwrap().to_string();
    assert_eq!(id(&after["1"].2), id(&before["1"].2));
    assert_ne!(after["1"].2, before["1"].2);
}

#[tokio::test]
async fn a_key_that_changes_partition_moves_without_a_duplicate() {
    let (_dir, _store, mut t) = table().await;
    t.upsert(
        &schema(),
        vec![upsert(1, "a", 1, "p1"), upsert(2, "b", 1, "p1")],
        LAYOUT,
        BTreeMap::new(),
    )
    .await
    .unwrap();
    t.upsert(
        &schema(),
        vec![upsert(1, "a", 5, "p2")],
        LAYOUT,
        BTreeMap::new(),
    )
    .await
    .unwrap();
    let r = rows(&mut t).await;
    assert_eq!(r.len(), 2);
    assert_eq!(r["1"].1, "part=5");
    // the index follows: a later update lands in the new partition
    t.upsert(
        &schema(),
        vec![upsert(1, "a3", 5, "p3")],
        LAYOUT,
        BTreeMap::new(),
    )
    .await
    .unwrap();
    assert_eq!(
        rows(&mut t).await["1"],
        (
            "a3".to_string(),
            "part=5".to_string(),
            rows(&mut t).await["1"].2.clone()
        )
    );
}

#[tokio::test]
async fn nothing_to_change_writes_no_commit() {
    let (_dir, _store, mut t) = table().await;
    let s = t
        .upsert(&schema(), vec![delete(9, 1, "p1")], LAYOUT, BTreeMap::new())
        .await
        .unwrap();
    assert!(s.instant.is_none());
    assert!(t.timeline().completed_writes().is_empty());
}

#[tokio::test]
async fn two_writers_racing_on_one_table_exactly_one_commit_wins() {
    let (dir, store, mut first) = table().await;
    first
        .upsert(
            &schema(),
            vec![upsert(1, "a", 1, "p1")],
            LAYOUT,
            BTreeMap::new(),
        )
        .await
        .unwrap();
    // A second writer opens the same table and plans on the same state as the first.
    let mut second = HudiTable::open(store.clone(), Path::from("t"), "t")
        .await
        .unwrap()
        .unwrap();
    second.rollback_pending().await.unwrap();
    let ok = first
        .upsert(
            &schema(),
            vec![upsert(1, "from-first", 1, "p2")],
            LAYOUT,
            BTreeMap::new(),
        )
        .await
        .unwrap();
    assert!(ok.instant.is_some());
    let err = second
        .upsert(
            &schema(),
            vec![upsert(1, "from-second", 1, "p3"), upsert(2, "b", 1, "p3")],
            LAYOUT,
            BTreeMap::new(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, HudiError::Conflict { .. }), "{err}");
    // The loser left nothing behind: readers see the winner's rows, no pending instant remains.
    let mut reader = HudiTable::open(store.clone(), Path::from("t"), "t")
        .await
        .unwrap()
        .unwrap();
    let r = rows(&mut reader).await;
    assert_eq!(r.len(), 1);
    assert_eq!(r["1"].0, "from-first");
    assert!(reader.timeline().pending_writes().is_empty());
    let parquet: Vec<_> = walk(dir.path())
        .into_iter()
        .filter(|p| p.ends_with(".parquet"))
        .collect();
    assert_eq!(parquet.len(), 2, "{parquet:?}");
    // After reopening, the second writer sees the new state and commits normally.
    let mut again = HudiTable::open(store, Path::from("t"), "t")
        .await
        .unwrap()
        .unwrap();
    again
        .upsert(
            &schema(),
            vec![upsert(2, "b", 1, "p3")],
            LAYOUT,
            BTreeMap::new(),
        )
        .await
        .unwrap();
    assert_eq!(rows(&mut again).await.len(), 2);
}

#[tokio::test]
async fn an_abandoned_claim_of_a_dead_writer_is_taken_over() {
    let (dir, store, mut t) = table().await;
    t.upsert(
        &schema(),
        vec![upsert(1, "a", 1, "p1")],
        LAYOUT,
        BTreeMap::new(),
    )
    .await
    .unwrap();
    let last = t
        .timeline()
        .completed_writes()
        .last()
        .unwrap()
        .0
        .to_string();
    // A writer died after claiming the next slot for instant 29990101000000000 and writing its requested file.
    let hoodie = dir.path().join("t/.hoodie");
    std::fs::write(hoodie.join("29990101000000000.commit.requested"), b"").unwrap();
    std::fs::create_dir_all(hoodie.join(".lakefold")).unwrap();
    let claim = hoodie.join(format!(".lakefold/next-after-{last}"));
    std::fs::write(
        &claim,
        br#"{"owner":"dead","instant":"29990101000000000","purpose":"commit"}"#,
    )
    .unwrap();
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
    std::fs::File::options()
        .write(true)
        .open(&claim)
        .unwrap()
        .set_modified(old)
        .unwrap();
    let mut restarted = HudiTable::open(store, Path::from("t"), "t")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(restarted.rollback_pending().await.unwrap().len(), 1);
    restarted
        .upsert(
            &schema(),
            vec![upsert(2, "b", 1, "p2")],
            LAYOUT,
            BTreeMap::new(),
        )
        .await
        .unwrap();
    assert_eq!(rows(&mut restarted).await.len(), 2);
}

#[tokio::test]
async fn a_write_decided_commit_is_rolled_forward_not_deleted() {
    let (dir, store, mut t) = table().await;
    t.upsert(
        &schema(),
        vec![upsert(1, "a", 1, "p1")],
        LAYOUT,
        BTreeMap::new(),
    )
    .await
    .unwrap();
    // A writer decided to commit instant 29990101000000000 (fate marker with its commit JSON) and died
    // before publishing the .commit.
    let hoodie = dir.path().join("t/.hoodie");
    std::fs::write(hoodie.join("29990101000000000.commit.requested"), b"").unwrap();
    std::fs::write(hoodie.join("29990101000000000.inflight"), b"{}").unwrap();
    let commit = r#"{"partitionToWriteStats":{},"compacted":false,"extraMetadata":{"k":"v"},"operationType":"UPSERT"}"#;
    let fate = serde_json::json!({"fate": "commit", "owner": "dead", "commit": commit}).to_string();
    std::fs::create_dir_all(hoodie.join(".lakefold")).unwrap();
    std::fs::write(hoodie.join(".lakefold/fate-29990101000000000"), fate).unwrap();
    let mut restarted = HudiTable::open(store, Path::from("t"), "t")
        .await
        .unwrap()
        .unwrap();
    assert!(
        restarted.rollback_pending().await.unwrap().is_empty(),
        "a decided commit was rolled back"
    );
    assert_eq!(
        std::fs::read_to_string(hoodie.join("29990101000000000.commit")).unwrap(),
        commit
    );
    assert!(restarted.timeline().pending_writes().is_empty());
    assert_eq!(rows(&mut restarted).await.len(), 1);
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p.display().to_string());
        }
    }
    out
}
