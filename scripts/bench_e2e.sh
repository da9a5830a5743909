#!/usr/bin/env bash
# End-to-end throughput harness: generate N Debezium events (with schema) for dbo.SALES, run the release
# binary once over them into a fresh lake with the six routes, and report events/s and peak memory.
#
#   scripts/bench_e2e.sh [EVENTS]        # default 200000
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-200000}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/lakefold/target}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
cargo build --release --locked --bin lakefold >&2
python3 scripts/gen_sales_events.py --events "$N" --seed 1 > "$WORK/events.jsonl"
sed -e "s#^uri = .*#uri = \"$WORK/lake\"#" -e "s#^path = .*#path = \"$WORK/events.jsonl\"#" config/lakefold.toml > "$WORK/lakefold.toml"
BYTES=$(stat -c %s "$WORK/events.jsonl")
LINES=$(wc -l < "$WORK/events.jsonl")
START=$(date +%s.%N)
/usr/bin/time -v "$CARGO_TARGET_DIR/release/lakefold" --config "$WORK/lakefold.toml" run --once 2> "$WORK/time.log" >/dev/null || { cat "$WORK/time.log"; exit 1; }
END=$(date +%s.%N)
RSS=$(awk -F: '/Maximum resident set size/ {gsub(/ /,"",$2); print $2}' "$WORK/time.log")
python3 - "$START" "$END" "$LINES" "$BYTES" "$RSS" <<'PY'
import sys
start, end, lines, size, rss = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
secs = end - start
print(f"{lines} records ({size/2**20:.1f} MiB) in {secs:.2f} s: {lines/secs:,.0f} records/s, {size/2**20/secs:.1f} MiB/s, peak RSS {rss/1024:.0f} MiB")
PY
