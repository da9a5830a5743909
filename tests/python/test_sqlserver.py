"""SQL Server CDC read directly: the real tiberius client against lakefold-mssql-fixture (a TDS server over a
change history file), `run --once` into Hudi tables read back by hudi-rs and daft; the fixture also answers
pymssql (FreeTDS), a client written by others."""
import json
import pathlib
import re

import pytest

from conftest import BIN, assert_tables_match, gen, lakefold, route_toml
from servers import ServerProcess, free_port

FIXTURE = str(pathlib.Path(BIN).parent / "lakefold-mssql-fixture")


def start_fixture(tmp, data, *extra):
    """lakefold-mssql-fixture over the history file `data` on a free port (stopped by the caller)."""
    port = free_port()
    return ServerProcess("lakefold-mssql-fixture",
                         [FIXTURE, "--listen", "127.0.0.1:%d" % port, "--data", str(data), *extra],
                         port, tmp / "fixture.log", timeout=30), port


@pytest.fixture
def mssql(tmp):
    """A fixture server over tmp/history.json; yields (port, history path)."""
    data = tmp / "history.json"
    data.write_text(json.dumps(gen.cdc_history([])))
    server, port = start_fixture(tmp, data)
    try:
        yield port, data
    finally:
        server.stop()


def write_history(path, events, **kw):
    # A rewrite within the same second must still be seen: bump the modification time explicitly.
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(json.dumps(gen.cdc_history(events, **kw)))
    import os
    st = path.stat()
    if st.st_mtime_ns <= before:
        os.utime(path, ns=(st.st_atime_ns, before + 1_000_000))


def write_cdc_config(tmp, port, snapshot="never", extra="", encrypt="false", lake=None):
    text = '[lake]\nuri = "%s"\n\n[sources.erp]\ntype = "sqlserver-cdc"\n' % (lake or tmp / "lake")
    text += 'connection = "server=tcp:127.0.0.1,%d;database=MYCOMPANY;user=cdc;encrypt=%s"\n' % (port, encrypt)
    text += 'snapshot = "%s"\n%s\n' % (snapshot, extra)
    for table, key, columns, on_delete in gen.ROUTES:
        text += route_toml(table, key, columns, on_delete, source="erp")
    cfg = tmp / "lakefold.toml"
    cfg.write_text(text)
    return cfg


def records_read(proc):
    text = proc.stdout + proc.stderr
    m = re.search(r"(\d+) records read", text)
    assert m, text
    return int(m.group(1))


def distinct_changes(events):
    return len({(e["commit_lsn"], e["change_lsn"]) for e in events if e is not None})


def test_cdc_history_folds_into_the_six_routes_and_a_second_history_resumes_exactly(tmp, mssql):
    port, data = mssql
    events = gen.generate(3000, seed=5)
    first, rest = events[:1800], events[1800:]
    write_history(data, first)
    cfg = write_cdc_config(tmp, port, extra="max_transactions_per_window = 50")
    out = lakefold("--config", cfg, "run", "--once")
    assert records_read(out) == distinct_changes(first)
    assert_tables_match(tmp / "lake", gen.expected_tables(first))

    write_history(data, events)
    out = lakefold("--config", cfg, "run", "--once")
    # Only what the checkpoint does not cover is read again.
    assert records_read(out) == distinct_changes(events) - distinct_changes(first)
    assert_tables_match(tmp / "lake", gen.expected_tables(events))

    # Nothing new: nothing read, tables unchanged.
    out = lakefold("--config", cfg, "run", "--once")
    assert records_read(out) == 0


def test_a_cleanup_past_the_checkpoint_stops_the_run_with_the_gap_error(tmp, mssql):
    port, data = mssql
    events = gen.generate(1200, seed=8)
    first = events[:600]
    write_history(data, first)
    cfg = write_cdc_config(tmp, port)
    lakefold("--config", cfg, "run", "--once")
    later = sorted({gen.lsn_hex(e["commit_lsn"]) for e in events[600:] if e is not None})
    write_history(data, events, min_lsn=later[5])
    proc = lakefold("--config", cfg, "run", "--once", check=False)
    assert proc.returncode == 1, proc.stderr
    err = proc.stderr + proc.stdout
    assert "gap" in err and "dbo_SALES" in err, err
    shown = later[5][2:].lower()
    assert "%s:%s:%s" % (shown[:8], shown[8:16], shown[16:]) in err, err
    # Nothing was lost silently: the tables still hold exactly the first history.
    assert_tables_match(tmp / "lake", gen.expected_tables(first))


def state_events(events):
    """The live rows after `events`, as snapshot reads at the last commit LSN."""
    live, last = {}, None
    for e in events:
        if e is None:
            continue
        last = e["commit_lsn"]
        if e["op"] == "d":
            live.pop(e["before"]["SaleId"], None)
        else:
            live[e["after"]["SaleId"]] = e["after"]
    return [{"op": "r", "before": None, "after": img, "ts_ms": 0, "commit_lsn": last,
             "change_lsn": "00000000:00000000:0000", "event_serial_no": 0} for _, img in sorted(live.items())]


def test_an_initial_snapshot_reads_the_table_state_in_chunks_then_streams_from_its_lsn(tmp, mssql):
    port, data = mssql
    events = gen.generate(2500, seed=11)
    first, rest = events[:1500], events[1500:]
    write_history(data, first)
    cfg = write_cdc_config(tmp, port, snapshot="initial")
    out = lakefold("--config", cfg, "run", "--once")
    snap = state_events(first)
    assert records_read(out) == len(snap)
    assert "snapshot" in out.stderr
    assert_tables_match(tmp / "lake", gen.expected_tables(snap))

    write_history(data, events)
    out = lakefold("--config", cfg, "run", "--once")
    assert records_read(out) == distinct_changes(events) - distinct_changes(first)
    assert_tables_match(tmp / "lake", gen.expected_tables(snap + [e for e in rest if e is not None]))


def test_the_fixture_answers_a_client_written_by_others(tmp, mssql):
    pymssql = pytest.importorskip("pymssql")
    port, data = mssql
    events = gen.generate(50, seed=3)
    write_history(data, events)
    conn = pymssql.connect(server="127.0.0.1", port=str(port), user="someone", password="x", database="MYCOMPANY",
                           login_timeout=10, timeout=10, tds_version="7.4")
    try:
        cur = conn.cursor()
        cur.execute("SELECT DB_NAME() AS database_name")
        assert cur.fetchall() == [("MYCOMPANY",)]
        cur.execute("SELECT ct.capture_instance, OBJECT_SCHEMA_NAME(ct.source_object_id) AS source_schema, "
                    "OBJECT_NAME(ct.source_object_id) AS source_table, ct.start_lsn FROM cdc.change_tables AS ct "
                    "ORDER BY ct.capture_instance")
        [(instance, schema, table, start)] = cur.fetchall()
        assert (instance, schema, table) == ("dbo_SALES", "dbo", "SALES")
        assert "0x" + bytes(start).hex().upper() == min(gen.lsn_hex(e["commit_lsn"]) for e in events if e)
        cur.execute("SELECT sys.fn_cdc_get_max_lsn() AS max_lsn")
        [(max_lsn,)] = cur.fetchall()
        assert "0x" + bytes(max_lsn).hex().upper() == max(gen.lsn_hex(e["commit_lsn"]) for e in events if e)
        # Statements it does not understand are errors, never empty successes.
        with pytest.raises(pymssql.Error) as err:
            cur.execute("SELECT * FROM dbo.SALES")
        assert "does not understand" in str(err.value)
    finally:
        conn.close()


def test_validate_connects_and_lists_tables_without_cdc(tmp, mssql):
    port, data = mssql
    write_history(data, gen.generate(50, seed=4))
    cfg = write_cdc_config(tmp, port)
    assert lakefold("--config", cfg, "validate").returncode == 0
    cfg.write_text(cfg.read_text().replace('table = "agents"\nsource = "erp"\nfrom = "dbo.SALES"',
                                           'table = "agents"\nsource = "erp"\nfrom = "dbo.AGENTS"'))
    proc = lakefold("--config", cfg, "validate", check=False)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "CDC is not enabled for table dbo.AGENTS" in out and out.count("dbo.AGENTS (no capture") == 1, out
    # Without the environment checks the same file is valid.
    assert lakefold("--config", cfg, "validate", "--no-environment").returncode == 0


def test_on_gap_resnapshot_rereads_the_table_and_goes_on_streaming(tmp, mssql):
    port, data = mssql
    more = gen.generate(1500, seed=8)
    first, events = more[:600], more[:1200]
    write_history(data, first)
    cfg = write_cdc_config(tmp, port, extra='on_gap = "resnapshot"')
    lakefold("--config", cfg, "run", "--once")
    later = sorted({gen.lsn_hex(e["commit_lsn"]) for e in events[600:] if e is not None})
    write_history(data, events, min_lsn=later[5])
    out = lakefold("--config", cfg, "run", "--once")
    assert "re-snapshotting" in out.stderr, out.stderr[-3000:]
    # The table as it is now, at positions after the first history; sales deleted in the gap stay (no
    # change says they went).
    snap = state_events(events)
    assert records_read(out) == len(snap)
    assert_tables_match(tmp / "lake", gen.expected_tables(first + snap))
    write_history(data, more, min_lsn=later[5])
    out = lakefold("--config", cfg, "run", "--once")
    assert records_read(out) == distinct_changes(more) - distinct_changes(events)
    assert_tables_match(tmp / "lake", gen.expected_tables(first + snap + [e for e in more[1200:] if e]))


def test_sigterm_ends_the_daemon_between_windows_and_a_restart_resumes_exactly(tmp, mssql):
    import signal
    import subprocess
    import time
    port, data = mssql
    events = gen.generate(4000, seed=17)
    write_history(data, events[:1000])
    cfg = write_cdc_config(tmp, port, extra='max_transactions_per_window = 25\npoll_interval = "100ms"')
    proc = subprocess.Popen([BIN, "--config", str(cfg), "run"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 60
        while not list((tmp / "lake" / "sales" / ".hoodie").glob("*.commit")) and time.time() < deadline:
            time.sleep(0.1)
        write_history(data, events)
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-3000:]
    assert " ERROR " not in err, err[-3000:]
    daemon = records_read(subprocess.CompletedProcess([], 0, out, err))
    again = lakefold("--config", cfg, "run", "--once")
    # Every change read exactly once across the stop, and the tables are the fold of all of them.
    assert daemon + records_read(again) == distinct_changes(events), (daemon, records_read(again))
    assert_tables_match(tmp / "lake", gen.expected_tables(events))


def test_a_snapshot_on_a_terminal_draws_a_progress_bar(tmp, mssql):
    import os
    import pty
    import select
    import subprocess
    import time
    port, data = mssql
    events = gen.generate(1500, seed=11)
    write_history(data, events)
    cfg = write_cdc_config(tmp, port, snapshot="initial")
    master, slave = pty.openpty()
    proc = subprocess.Popen([BIN, "--config", str(cfg), "run", "--once"], stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    out = b""
    deadline = time.time() + 120
    while time.time() < deadline:
        ready, _, _ = select.select([master], [], [], 1)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
        elif proc.poll() is not None:
            break
    proc.wait(timeout=30)
    os.close(master)
    text = out.decode("utf-8", "replace")
    assert proc.returncode == 0, text[-3000:]
    live = len(state_events(events))
    bar = "\r\x1b[2Ksnapshot dbo_SALES [%s] 100%%  %d/%d rows" % ("#" * 30, live, live)
    assert bar in text, text[-3000:]
