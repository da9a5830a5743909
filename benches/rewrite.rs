//! The copy-on-write commit: upsert 2,000 changed rows (uniform keys) into a 200,000-row `sales`-shaped
//! Hudi table on the local disk, i.e. index lookup (footers, bloom filters), the streamed merge of every
//! touched file group and the column-parallel Parquet encoding (gzip, Hudi's default), plus the timeline
//! writes. Each iteration is one commit on the same table (its size does not change).
//!
//!     cargo bench --bench rewrite

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use lakefold::config::Compression;
use lakefold::schema::{Column, TableSchema, POSITION_COLUMN};
use lakefold::sink::hudi::HudiTable;
use lakefold::sink::{RowChange, StagedRow, TableLayout};
use lakefold_api::{LogicalType, TimeUnit, Value};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::ObjectStore;
use std::collections::BTreeMap;
use std::sync::Arc;

const ROWS: i64 = 200_000;
const CHANGES: i64 = 2_000;

fn schema() -> TableSchema {
    let col = |name: &str, ty| Column {
        name: name.into(),
        ty,
    };
    TableSchema {
        columns: vec![
            col("SaleId", LogicalType::Int),
            col("UnitId", LogicalType::Int),
            col("StatusId", LogicalType::Int),
            col(
                "ContractSubtotal",
                LogicalType::Decimal {
                    precision: 18,
                    scale: 4,
                },
            ),
            col(
                "ContractSigningDate",
                LogicalType::Timestamp(TimeUnit::Millisecond),
            ),
            col("AgentId", LogicalType::Int),
            col(POSITION_COLUMN, LogicalType::String),
        ],
    }
}

fn row(id: i64, status: i32, serial: i64) -> StagedRow {
    let position = format!("1:{serial:020}:{id:020}");
    StagedRow {
        record_key: id.to_string(),
        partition_path: String::new(),
        position: position.clone(),
        change: RowChange::Upsert(vec![
            Value::Int(id as i32),
            Value::Int((id % 80) as i32 + 1),
            Value::Int(status),
            Value::Decimal {
                unscaled: id as i128 * 70_000,
                precision: 18,
                scale: 4,
            },
            Value::Timestamp {
                value: 1_700_000_000_000 + id,
                unit: TimeUnit::Millisecond,
            },
            Value::Int((id % 25) as i32 + 1),
            Value::String(position),
        ]),
    }
}

fn bench(c: &mut Criterion) {
    let Ok(runtime) = tokio::runtime::Runtime::new() else {
        return;
    };
    let Ok(dir) = tempfile::tempdir() else {
        return;
    };
    let Ok(local) = LocalFileSystem::new_with_prefix(dir.path()) else {
        return;
    };
    let store: Arc<dyn ObjectStore> = Arc::new(local);
    let layout = TableLayout {
        compression: Compression::Gzip,
        max_file_size: 120 << 20,
        small_file_limit: 100 << 20,
    };
    let mut table = match runtime.block_on(HudiTable::create(
        store,
        Path::from("sales"),
        "sales",
        "default",
        &["SaleId".to_string()],
        POSITION_COLUMN,
        &[],
    )) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{e}");
            return;
        }
    };
    let load: Vec<StagedRow> = (1..=ROWS).map(|i| row(i, 1, 1)).collect();
    if let Err(e) = runtime.block_on(table.upsert(&schema(), load, layout, BTreeMap::new())) {
        eprintln!("{e}");
        return;
    }
    let mut serial = 1;
    let mut group = c.benchmark_group("cow");
    group.sample_size(10);
    group.throughput(Throughput::Elements(CHANGES as u64));
    group.bench_function("upsert 2k uniform changes into 200k rows", |b| {
        b.iter(|| {
            serial += 1;
            let mut changes: Vec<StagedRow> = (0..CHANGES)
                .map(|j| row(1 + (j * 7919 + serial * 31) % ROWS, 2, serial))
                .collect();
            changes.sort_by(|a, b| a.record_key.cmp(&b.record_key));
            changes.dedup_by(|a, b| a.record_key == b.record_key);
            runtime.block_on(table.upsert(&schema(), changes, layout, BTreeMap::new()))
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
