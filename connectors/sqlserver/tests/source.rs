//! The poller's logic against the in-memory CDC model (windows, merge order, 3/4 pairs, serials, gaps,
//! snapshot chunks and resume, capture-instance switch, reconnect).

use lakefold_api::{BatchLimits, Checkpoint, SourceRecord, SqlServerCheckpoint, TableId, Value};
use lakefold_api::{Decoded, Op, Source};
use lakefold_sqlserver::history::History;
use lakefold_sqlserver::source::value_of;
use lakefold_sqlserver::MemoryCdc;
use lakefold_sqlserver::{CdcOptions, GapPolicy, SnapshotMode, SqlServerSource};

fn lsn(n: u32) -> String {
    format!("0x000000270000075{:01X}{:04X}", n >> 16, n & 0xffff)
}

/// Transactions 1..=n: even ones insert SaleId n, odd ones update SaleId 2 (before/after pair);
/// transaction 5 also deletes SaleId 4 in a second change.
fn history(n: u32, min: Option<u32>) -> History {
    let mut changes = Vec::new();
    let mut txs = Vec::new();
    for t in 1..=n {
        txs.push(serde_json::json!({"start_lsn": lsn(t * 16)}));
        if t % 2 == 0 {
            changes.push(serde_json::json!({"start_lsn": lsn(t * 16), "seqval": lsn(t * 16 - 2), "operation": 2,
                "values": {"SaleId": t, "Name": format!("n{t}")}}));
        } else if t > 1 {
            for op in [3, 4] {
                changes.push(serde_json::json!({"start_lsn": lsn(t * 16), "seqval": lsn(t * 16 - 3), "operation": op,
                    "values": {"SaleId": 2, "Name": format!("{}{t}", if op == 3 { "old" } else { "new" })}}));
            }
        }
        if t == 5 {
            changes.push(serde_json::json!({"start_lsn": lsn(t * 16), "seqval": lsn(t * 16 - 1), "operation": 1,
                "values": {"SaleId": 4, "Name": "n4"}}));
        }
    }
    let mut doc = serde_json::json!({"database": "DB", "capture_instances": [{"name": "dbo_T",
        "source_schema": "dbo", "source_table": "T", "start_lsn": lsn(16),
        "columns": [{"name": "SaleId", "type": "int", "nullable": false, "key": true},
                    {"name": "Name", "type": "nvarchar(20)"}],
        "changes": changes}], "lsn_time_mapping": txs});
    if let Some(m) = min {
        doc["min_lsn"] = serde_json::json!({"dbo_T": lsn(m * 16)});
    }
    History::parse(&doc.to_string()).unwrap()
}

fn options(snapshot: SnapshotMode) -> CdcOptions {
    CdcOptions {
        name: "erp".into(),
        tables: vec![TableId::parse("dbo.T")],
        capture_instances: Vec::new(),
        max_transactions_per_window: 2,
        on_gap: GapPolicy::Fail,
        snapshot,
        snapshot_chunk_rows: 2,
        max_attempts: 3,
    }
}

/// A source that streams `h` (no snapshot) from `resume`.
async fn streaming(h: History, resume: Option<&SqlServerCheckpoint>) -> SqlServerSource {
    SqlServerSource::open(
        Box::new(MemoryCdc::new(h)),
        options(SnapshotMode::Never),
        resume,
    )
    .await
    .unwrap()
}

const ALL: BatchLimits = BatchLimits {
    max_records: 1000,
    max_bytes: 1 << 30,
};

async fn drain(
    src: &mut SqlServerSource,
    limits: BatchLimits,
) -> (Vec<SourceRecord>, Option<SqlServerCheckpoint>) {
    let mut out = Vec::new();
    let mut cp = None;
    for _ in 0..100 {
        let b = src.poll(limits).await.unwrap();
        if let Some(Checkpoint::SqlserverCdc(c)) = b.checkpoint {
            cp = Some(c);
        }
        let done = b.caught_up;
        out.extend(b.records);
        if done {
            break;
        }
    }
    (out, cp)
}

fn ops(records: &[SourceRecord]) -> Vec<(Op, i64)> {
    records
        .iter()
        .map(|r| match &r.decoded {
            Decoded::Event(e) => (
                e.op,
                r.position.lsn.and_then(|l| l.event_serial_no).unwrap_or(-1),
            ),
            other => panic!("{other:?}"),
        })
        .collect()
}

#[tokio::test]
async fn windows_merge_into_log_order_with_update_pairs_and_debezium_serials() {
    let db = MemoryCdc::new(history(6, None));
    let mut src = SqlServerSource::open(Box::new(db), options(SnapshotMode::Never), None)
        .await
        .unwrap();
    let (records, cp) = drain(&mut src, ALL).await;
    assert_eq!(
        ops(&records),
        vec![
            (Op::Create, 1),
            (Op::Update, 2),
            (Op::Create, 1),
            (Op::Update, 2),
            (Op::Delete, 1),
            (Op::Create, 1)
        ]
    );
    let positions: Vec<_> = records.iter().map(|r| r.position.clone()).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "log order");
    let Decoded::Event(update) = &records[1].decoded else {
        unreachable!()
    };
    assert_eq!(
        value_of(&records[1], "Name"),
        Some(&Value::String("new3".into()))
    );
    assert_eq!(
        update.before.as_ref().unwrap().values[1],
        Value::String("old3".into())
    );
    assert_eq!(cp.unwrap().lsn, records.last().unwrap().position.lsn);
}

#[tokio::test]
async fn a_resumed_source_skips_exactly_what_its_checkpoint_covers_even_inside_a_transaction() {
    let mut src = streaming(history(6, None), None).await;
    let all = drain(&mut src, ALL).await.0;
    for cut in 1..all.len() {
        let mut src = streaming(history(6, None), None).await;
        let (first, cp) = drain(
            &mut src,
            BatchLimits {
                max_records: cut,
                max_bytes: 1 << 30,
            },
        )
        .await;
        // Stop after `cut` records (the first batch), as a crash after a commit would.
        let first = &first[..cut.min(first.len())];
        let cp = SqlServerCheckpoint {
            lsn: first.last().and_then(|r| r.position.lsn),
            ..cp.unwrap()
        };
        let mut again = streaming(history(6, None), Some(&cp)).await;
        let rest = drain(&mut again, ALL).await.0;
        let joined: Vec<_> = first
            .iter()
            .chain(&rest)
            .map(|r| r.position.clone())
            .collect();
        let want: Vec<_> = all.iter().map(|r| r.position.clone()).collect();
        assert_eq!(joined, want, "cut after {cut}");
    }
}

#[tokio::test]
async fn a_cleanup_past_the_checkpoint_is_a_gap_error_naming_instance_and_lsns() {
    let mut src = streaming(history(4, None), None).await;
    let (_, cp) = drain(&mut src, ALL).await;
    // Cleanup of what was already read is normal; a minimum LSN beyond the checkpoint's next LSN is a gap.
    let ok = SqlServerSource::open(
        Box::new(MemoryCdc::new(history(8, Some(4)))),
        options(SnapshotMode::Never),
        cp.as_ref(),
    )
    .await;
    let mut ok = ok.unwrap();
    assert_eq!(drain(&mut ok, ALL).await.0.len(), 5, "transactions 5 to 8");
    let mut gap = streaming(history(8, Some(5)), cp.as_ref()).await;
    let err = gap.poll(ALL).await.unwrap_err().to_string();
    assert!(
        err.contains("gap") && err.contains("dbo_T") && err.contains("00000027:00000750:0040"),
        "{err}"
    );
}

#[tokio::test]
async fn a_snapshot_reads_the_state_in_key_chunks_and_resumes_mid_table() {
    let h = history(6, None);
    let mut src = SqlServerSource::open(
        Box::new(MemoryCdc::new(h.clone())),
        options(SnapshotMode::Initial),
        None,
    )
    .await
    .unwrap();
    let (all, cp) = drain(&mut src, ALL).await;
    let keys: Vec<_> = all.iter().map(|r| value_of(r, "SaleId").cloned()).collect();
    assert_eq!(
        keys,
        vec![Some(Value::Int(2)), Some(Value::Int(6))],
        "4 was deleted; 2 holds its last update"
    );
    assert!(all
        .iter()
        .all(|r| matches!(&r.decoded, Decoded::Event(e) if e.op == Op::Read)));
    let cp = cp.unwrap();
    assert!(cp.snapshot.is_none(), "{cp:?}");
    // A crash after the first row: the next run reads the rest of the table (as it is now: key 8 was
    // inserted after the snapshot LSN, so it is read here and again, later in position, when streaming),
    // then streams from the snapshot LSN. The fold by position converges on the same last values.
    let mut one = SqlServerSource::open(
        Box::new(MemoryCdc::new(h.clone())),
        options(SnapshotMode::Initial),
        None,
    )
    .await
    .unwrap();
    let b = one
        .poll(BatchLimits {
            max_records: 1,
            max_bytes: 1 << 30,
        })
        .await
        .unwrap();
    let Some(Checkpoint::SqlserverCdc(mid)) = b.checkpoint else {
        unreachable!()
    };
    assert!(mid
        .snapshot
        .as_ref()
        .is_some_and(|s| s.current.as_ref().is_some_and(|c| c.rows == 1)));
    let mut rest = SqlServerSource::open(
        Box::new(MemoryCdc::new(history(8, None))),
        options(SnapshotMode::Initial),
        Some(&mid),
    )
    .await
    .unwrap();
    let (more, _) = drain(&mut rest, ALL).await;
    let got: Vec<_> = more
        .iter()
        .map(|r| {
            (
                value_of(r, "SaleId").cloned(),
                ops(std::slice::from_ref(r))[0].0,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (Some(Value::Int(6)), Op::Read),
            (Some(Value::Int(8)), Op::Read),
            (Some(Value::Int(2)), Op::Update),
            (Some(Value::Int(8)), Op::Create)
        ]
    );
}

#[tokio::test]
async fn a_second_capture_instance_takes_over_at_its_start_lsn_without_duplicates() {
    let change = |t: u32, id: u32, extra: bool| {
        let mut values = serde_json::json!({"SaleId": id, "Name": format!("n{t}")});
        if extra {
            values["Extra"] = serde_json::json!(t);
        }
        serde_json::json!({"start_lsn": lsn(t * 16), "seqval": lsn(t * 16 - 1), "operation": 2, "values": values})
    };
    let cols = |extra: bool| {
        let mut c = vec![
            serde_json::json!({"name": "SaleId", "type": "int", "nullable": false, "key": true}),
            serde_json::json!({"name": "Name", "type": "nvarchar(20)"}),
        ];
        if extra {
            c.push(serde_json::json!({"name": "Extra", "type": "int"}));
        }
        c
    };
    // The old instance keeps capturing until it is disabled; the new one starts at transaction 4.
    let doc = |old_min: u32| {
        serde_json::json!({"database": "DB", "capture_instances": [
        {"name": "dbo_T", "source_schema": "dbo", "source_table": "T", "start_lsn": lsn(16), "columns": cols(false),
         "changes": (1..=5).map(|t| change(t, t, false)).collect::<Vec<_>>()},
        {"name": "dbo_T_v2", "source_schema": "dbo", "source_table": "T", "start_lsn": lsn(64), "columns": cols(true),
         "changes": (4..=6).map(|t| change(t, t, true)).collect::<Vec<_>>()}],
        "lsn_time_mapping": (1..=6).map(|t| serde_json::json!({"start_lsn": lsn(t * 16)})).collect::<Vec<_>>(),
        "min_lsn": {"dbo_T": lsn(old_min * 16)}})
    };
    let h = History::parse(&doc(1).to_string()).unwrap();
    let mut src = streaming(h, None).await;
    let (records, cp) = drain(&mut src, ALL).await;
    let got: Vec<_> = records
        .iter()
        .map(|r| {
            (
                value_of(r, "SaleId").cloned(),
                value_of(r, "Extra").is_some(),
            )
        })
        .collect();
    let want: Vec<_> = (1..=6).map(|t| (Some(Value::Int(t)), t >= 4)).collect();
    assert_eq!(got, want);
    // The old instance's cleanup after the switch is no gap.
    let h = History::parse(&doc(7).to_string()).unwrap();
    let mut again = streaming(h, cp.as_ref()).await;
    assert!(drain(&mut again, ALL).await.0.is_empty());
}

#[tokio::test]
async fn connection_errors_are_retried_and_the_run_goes_on() {
    let mut db = MemoryCdc::new(history(4, None));
    db.fail_next = 2;
    let mut src = SqlServerSource::open(Box::new(db), options(SnapshotMode::Never), None)
        .await
        .unwrap();
    assert_eq!(drain(&mut src, ALL).await.0.len(), 3);
}

fn positions(records: &[SourceRecord]) -> Vec<lakefold_api::Position> {
    records.iter().map(|r| r.position.clone()).collect()
}

#[tokio::test]
async fn a_change_query_that_times_out_shrinks_the_window_and_loses_nothing() {
    let mut opts = options(SnapshotMode::Never);
    opts.max_transactions_per_window = 16;
    let open = |db: MemoryCdc| SqlServerSource::open(Box::new(db), opts.clone(), None);
    let mut plain = open(MemoryCdc::new(history(40, None))).await.unwrap();
    let want = drain(&mut plain, ALL).await.0;
    // A server that cannot answer more than 3 rows in time: windows halve until they fit (transaction 5
    // alone has 3), then grow again; every change arrives once, in order.
    let mut db = MemoryCdc::new(history(40, None));
    db.timeout_over_rows = Some(3);
    let mut slow = open(db).await.unwrap();
    let got = drain(&mut slow, ALL).await.0;
    assert_eq!(positions(&got), positions(&want));
    assert_eq!(
        got.len(),
        40,
        "39 transactions with one change each, two in transaction 5"
    );
    // One transaction too big to answer in time even alone: retried, then a database error (not a gap,
    // not a silent skip).
    let mut db = MemoryCdc::new(history(40, None));
    db.timeout_over_rows = Some(0);
    let mut stuck = open(db).await.unwrap();
    match stuck.poll(ALL).await {
        Err(e @ lakefold_api::SourceError::Database { .. }) => {
            assert!(e.to_string().contains("did not answer"), "{e}")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn on_gap_resnapshot_rereads_the_table_then_streams_only_what_follows() {
    let mut src = streaming(history(4, None), None).await;
    let (_, read) = drain(&mut src, ALL).await;
    let read = read.unwrap();
    let mut opts = options(SnapshotMode::Never);
    opts.on_gap = GapPolicy::Resnapshot;
    // Cleanup removed transactions 5 to 7 before they were read: the table is read again as it is at the
    // max LSN (transaction 12), at positions after everything stored.
    let mut src = SqlServerSource::open(
        Box::new(MemoryCdc::new(history(12, Some(8)))),
        opts.clone(),
        Some(&read),
    )
    .await
    .unwrap();
    let (snap, cp) = drain(&mut src, ALL).await;
    let keys: Vec<_> = snap
        .iter()
        .map(|r| value_of(r, "SaleId").cloned())
        .collect();
    assert_eq!(
        keys,
        [2, 6, 8, 10, 12].map(|k| Some(Value::Int(k))).to_vec()
    );
    assert_eq!(
        value_of(&snap[0], "Name"),
        Some(&Value::String("new11".into()))
    );
    assert!(snap
        .iter()
        .all(|r| matches!(&r.decoded, Decoded::Event(e) if e.op == Op::Read)));
    let stored = Checkpoint::SqlserverCdc(read.clone());
    assert!(snap.iter().all(|r| !stored.covers(&r.position)));
    let cp = cp.unwrap();
    assert!(cp.snapshot.is_none() && cp.lsn == read.lsn, "{cp:?}");
    // Streaming goes on: the changes the snapshot covers are skipped, transactions 13 and 14 arrive.
    let mut again = SqlServerSource::open(
        Box::new(MemoryCdc::new(history(14, Some(8)))),
        opts,
        Some(&cp),
    )
    .await
    .unwrap();
    let (rest, last) = drain(&mut again, ALL).await;
    assert_eq!(ops(&rest), vec![(Op::Update, 2), (Op::Create, 1)]);
    assert!(last.unwrap().resnapshotted.is_empty());
}
