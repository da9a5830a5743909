//! Throughput of the per-record hot path: Debezium JSON decoding (with and without the embedded schema;
//! the tree decoder `decode_json` and the caching, borrowing `JsonDecoder` the sources use), route
//! projection and the keyed fold. Input: the bundled sample (`config/sample/sales.jsonl`) and its
//! schemaless form (each line's `payload`).
//!
//!     cargo bench --bench decode_fold

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use lakefold::config::load;
use lakefold::fold::{project, Fold, Projected, RouteSpec};
use lakefold_api::{Decoded, Position, StreamPosition};
use lakefold_debezium::{decode_json, JsonDecoder};
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
    let schemaless: Vec<Vec<u8>> = lines
        .iter()
        .filter_map(|l| serde_json::from_slice::<serde_json::Value>(l).ok())
        .map(|j| {
            j.get("payload")
                .cloned()
                .unwrap_or(j)
                .to_string()
                .into_bytes()
        })
        .collect();
    let events = |decode: &dyn Fn(&[u8]) -> Decoded, input: &[Vec<u8>]| {
        input
            .iter()
            .filter(|l| matches!(decode(l), Decoded::Event(_)))
            .count()
    };
    let mut group = c.benchmark_group("sample");
    for (name, input) in [("with schema", &lines), ("schemaless", &schemaless)] {
        group.throughput(Throughput::Bytes(
            input.iter().map(Vec::len).sum::<usize>() as u64
        ));
        group.bench_function(format!("decode_json {name}"), |b| {
            b.iter(|| events(&|l| decode_json(l).decoded, input))
        });
        let decoder = JsonDecoder::new();
        group.bench_function(format!("JsonDecoder {name}"), |b| {
            b.iter(|| events(&|l| decoder.decode(l).decoded, input))
        });
    }
    let _ = bytes;
    group.throughput(Throughput::Elements(lines.len() as u64));
    group.bench_function("decode+project+fold (6 routes)", |b| {
        b.iter(|| {
            let mut routes: Vec<RouteSpec> = config
                .routes
                .iter()
                .map(|r| RouteSpec::new(r, None))
                .collect();
            let mut folds: Vec<Fold> = routes.iter().map(|_| Fold::default()).collect();
            let decoder = JsonDecoder::new();
            for (i, line) in lines.iter().enumerate() {
                let d = decoder.decode(line);
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
