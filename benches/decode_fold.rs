//! Throughput of the per-record hot path: Debezium JSON decoding (with schema), route projection and the
//! keyed fold. Input: the bundled sample (`config/sample/sales.jsonl`), decoded once per iteration.
//!
//!     cargo bench --bench decode_fold

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use lakefold::config::load;
use lakefold::fold::{project, Fold, Projected, RouteSpec};
use lakefold_api::{Decoded, Position, StreamPosition};
use lakefold_debezium::decode_json;
use std::path::Path;

fn sample() -> Vec<Vec<u8>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/sample/sales.jsonl");
    std::fs::read(path)
        .unwrap_or_default()
        .split(|b| *b == b'\n')
        .map(<[u8]>::to_vec)
        .collect()
}

fn bench(c: &mut Criterion) {
    let lines = sample();
    let bytes: usize = lines.iter().map(Vec::len).sum();
    let config = match load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("config/lakefold.toml")) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return;
        }
    };
    let mut group = c.benchmark_group("sample");
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function("decode", |b| {
        b.iter(|| {
            lines
                .iter()
                .filter(|l| matches!(decode_json(l).decoded, Decoded::Event(_)))
                .count()
        })
    });
    group.throughput(Throughput::Elements(lines.len() as u64));
    group.bench_function("decode+project+fold (6 routes)", |b| {
        b.iter(|| {
            let mut routes: Vec<RouteSpec> = config
                .routes
                .iter()
                .map(|r| RouteSpec::new(r, None))
                .collect();
            let mut folds: Vec<Fold> = routes.iter().map(|_| Fold::default()).collect();
            for (i, line) in lines.iter().enumerate() {
                let d = decode_json(line);
                let Decoded::Event(e) = d.decoded else {
                    continue;
                };
                let pos = Position {
                    lsn: d.lsn,
                    stream: StreamPosition::Line {
                        line: i as u64 + 1,
                        end_offset: 0,
                    },
                };
                for (r, f) in routes.iter_mut().zip(folds.iter_mut()) {
                    if let Ok(Projected::Entry(entry)) = project(r, &e, &pos) {
                        f.add(entry);
                    }
                }
            }
            folds.iter().map(Fold::len).sum::<usize>()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
