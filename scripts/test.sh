#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what it needs, builds, runs the Rust tests, then the
# integration tests that run the binary and read every table back with hudi-rs (Python `hudi`) and daft.
#
#   scripts/test.sh
#
# Caches: CARGO_TARGET_DIR and the Python venv live under $HOME/.cache/lakefold/ so reruns are warm.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${LAKEFOLD_CACHE:-$HOME/.cache/lakefold}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
VENV="$CACHE/venv"
mkdir -p "$CACHE"

log() { printf '\n== %s ==\n' "$*" >&2; }

# System packages: C toolchain and headers to build librdkafka (rdkafka-sys), and a Python with venv.
apt_install() {
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq "$@" >/dev/null
  else sudo apt-get update -qq && sudo apt-get install -y -qq "$@" >/dev/null; fi
}
missing=()
for pkg in build-essential pkg-config libssl-dev zlib1g-dev; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv python3-pip)
# systemd-analyze verifies deploy/systemd/lakefold.service (the test skips, saying so, where it cannot be had).
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
if [ "${#missing[@]}" -gt 0 ]; then
  log "apt-get install ${missing[*]}"
  apt_install "${missing[@]}"
fi

# Python readers (written by others) in a venv; reinstalled only when requirements change.
REQ=tests/python/requirements.txt
if [ ! -x "$VENV/bin/python" ] || ! cmp -s "$REQ" "$VENV/.requirements" 2>/dev/null; then
  log "python venv at $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  "$VENV/bin/pip" install -q -r "$REQ"
  cp "$REQ" "$VENV/.requirements"
fi

log "cargo build"
cargo build --locked --bin lakefold --bin lakefold-mssql-fixture

log "cargo test (unit and Rust integration tests)"
cargo test --locked --workspace

# The Kafka-protocol broker the Kafka tests run against (tansu), built once into the cache.
TANSU="$CACHE/tools/bin/tansu"
if [ ! -x "$TANSU" ]; then
  log "cargo install tansu (once; cached in $CACHE/tools)"
  CARGO_TARGET_DIR="$CACHE/tansu-target" cargo install tansu --locked --features dynostore,libsql --root "$CACHE/tools"
fi
export TANSU_BIN="$TANSU" LAKEFOLD_REQUIRE_KAFKA=1

log "integration tests (binary + hudi-rs + daft; tansu broker; schema registry)"
export LAKEFOLD_BIN="$CARGO_TARGET_DIR/debug/lakefold"
"$VENV/bin/python" -m pytest -q -p no:cacheprovider tests/python
