#!/usr/bin/env bash
# End-to-end harness: builds the release binary, prepares a Python venv with the peers (pyarrow, deltalake)
# under ~/.cache/lakefold/bench-venv, and runs benches/e2e.py (lakefold against the Python json.loads +
# delta-rs script and delta-rs MERGE, on the same data in the same run). See benches/README.md.
#
#   scripts/bench_e2e.sh [e2e.py options]       # e.g. --events 200000 --rows 1000000 --repeat 3
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${LAKEFOLD_CACHE:-$HOME/.cache/lakefold}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
VENV="$CACHE/bench-venv"
REQ=benches/requirements.txt
if [ ! -x "$VENV/bin/python" ] || ! cmp -s "$REQ" "$VENV/.requirements" 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  "$VENV/bin/pip" install -q -r "$REQ"
  cp "$REQ" "$VENV/.requirements"
fi
cargo build --release --locked --bin lakefold >&2
exec "$VENV/bin/python" benches/e2e.py --bin "$CARGO_TARGET_DIR/release/lakefold" --python "$VENV/bin/python" "$@"
