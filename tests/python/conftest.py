"""Shared helpers: the lakefold binary, configs, and reading tables with hudi-rs (Python `hudi`) and daft."""
import decimal
import datetime
import json
import os
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))
import gen_sales_events as gen  # noqa: E402

BIN = os.environ.get("LAKEFOLD_BIN") or str(
    pathlib.Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target")) / "debug" / "lakefold")


def lakefold(*args, cwd=None, check=True, timeout=300):
    proc = subprocess.run([BIN, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError("lakefold %s exited %d\nstdout:\n%s\nstderr:\n%s" % (args, proc.returncode, proc.stdout, proc.stderr))
    return proc


def wait_for(what, check, timeout):
    """Polls `check` until it is true; fails after `timeout` seconds naming `what`."""
    import time
    deadline = time.time() + timeout
    while time.time() < deadline:
        if check():
            return
        time.sleep(0.25)
    raise AssertionError("timed out after %ds waiting for %s" % (timeout, what))


def kill_after(cfg, marker, log_path, timeout=60):
    """Runs the daemon and kill -9s it as soon as its log shows `marker` (the next table's commit is then
    in flight). Returns True if the marker was seen."""
    import select
    import signal
    import time
    with open(log_path, "w") as log:
        proc = subprocess.Popen([BIN, "--config", str(cfg), "run"], stderr=subprocess.PIPE, text=True)
        seen = False
        deadline = time.time() + timeout
        while time.time() < deadline and proc.poll() is None:
            ready, _, _ = select.select([proc.stderr], [], [], 0.5)
            if not ready:
                continue
            line = proc.stderr.readline()
            log.write(line)
            if marker in line:
                seen = True
                break
        proc.send_signal(signal.SIGKILL)
        rest, _ = proc.communicate(timeout=20)
        log.write(rest or "")
    return seen


def route_toml(table, key, columns, on_delete, source="events", extra=""):
    return '''
[[route]]
table = "%s"
source = "%s"
from = "dbo.SALES"
key = %s
columns = %s
on_delete = "%s"
%s
''' % (table, source, json.dumps(key), json.dumps(columns), on_delete, extra)


def write_config(tmp, events_path, routes=None, extra_routes="", commit="", route_extra=None):
    routes = gen.ROUTES if routes is None else routes
    route_extra = route_extra or {}
    text = '[lake]\nuri = "%s"\n\n%s\n[sources.events]\ntype = "debezium-file"\npath = "%s"\n' % (tmp / "lake", commit, events_path)
    for table, key, columns, on_delete in routes:
        text += route_toml(table, key, columns, on_delete, extra=route_extra.get(table, ""))
    text += extra_routes
    cfg = tmp / "lakefold.toml"
    cfg.write_text(text)
    return cfg


def write_events(path, events, with_schema=True, decimal_mode="precise", append=False):
    with open(path, "a" if append else "w") as f:
        for e in events:
            f.write(gen.encode(e, with_schema, decimal_mode) + "\n")


def _plain(v):
    """Reader values → the generator's representation (unscaled decimals, epoch ms)."""
    if isinstance(v, decimal.Decimal):
        return int(v.scaleb(4))
    if isinstance(v, datetime.datetime):
        if v.tzinfo is None:
            v = v.replace(tzinfo=datetime.timezone.utc)
        return int(v.timestamp() * 1000)
    return v


def read_hudi(table_path):
    from hudi import HudiTableBuilder
    import pyarrow as pa
    batches = HudiTableBuilder.from_base_uri(str(table_path)).build().read()
    if not batches:
        return []
    return pa.Table.from_batches(batches).to_pylist()


def read_daft(table_path, columns=None):
    import daft
    df = daft.read_hudi(str(table_path))
    if columns:
        df = df.select(*columns)
    return df.to_pylist()


def as_table(rows, key, columns):
    """{key tuple: {column: value}} from reader rows; fails on duplicate keys."""
    out = {}
    for r in rows:
        k = tuple(_plain(r[c]) for c in key)
        assert k not in out, "duplicate key %r" % (k,)
        out[k] = {c: _plain(r[c]) for c in columns}
    return out


def assert_tables_match(lake, expected, routes=None):
    routes = gen.ROUTES if routes is None else routes
    for table, key, columns, _ in routes:
        want = expected[table]
        hudi_rows = read_hudi(lake / table)
        got = as_table(hudi_rows, key, columns)
        assert got == want, "hudi-rs reads %s differently: missing %s, extra %s, differing %s" % (
            table, sorted(set(want) - set(got))[:5], sorted(set(got) - set(want))[:5],
            [(k, want[k], got[k]) for k in want if k in got and want[k] != got[k]][:3])
        for r in hudi_rows:
            assert r["_hoodie_record_key"] == ",".join("%s:%s" % (c, r[c]) for c in key) if len(key) > 1 else str(r[key[0]])
        daft_rows = read_daft(lake / table, columns)
        assert as_table(daft_rows, key, columns) == want, "daft reads %s differently" % table


@pytest.fixture
def tmp(tmp_path):
    return tmp_path
