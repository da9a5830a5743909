"""The daemon as a service: `/metrics` parsed by prometheus_client's own parser and checked against the run
summary, `/healthz`, `/readyz`, `/status`, `lakefold status` (from the daemon, then from a stopped lake's
timelines), `lakefold top`, and SIGTERM ending with exit 0."""
import json
import re
import signal
import subprocess
import time
import urllib.request

from conftest import BIN, assert_tables_match, gen, lakefold, write_config, write_events
from servers import free_port

REPO = __import__("pathlib").Path(__file__).resolve().parents[2]


def get(port, path):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def scrape(port):
    """{(metric sample name, labels tuple): value} and the counter family names."""
    from prometheus_client.parser import text_string_to_metric_families
    status, text = get(port, "/metrics")
    assert status == 200, text
    samples, counters = {}, set()
    for family in text_string_to_metric_families(text):
        if family.type == "counter":
            counters.add(family.name)
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples, counters


def summary_of(stderr):
    m = re.search(r"(\d+) records read, (\d+) change events, (\d+) skipped .*?, (\d+) dead letters", stderr)
    assert m, stderr[-3000:]
    tables = {}
    for t, commits, ins, upd, dele in re.findall(r"\n  (\w+): (\d+) commits?, (\d+) inserted, (\d+) updated, (\d+) deleted", stderr):
        tables[t] = tuple(int(x) for x in (commits, ins, upd, dele))
    return tuple(int(x) for x in m.groups()), tables


def last_instant(table_dir):
    done = sorted(p.name.split(".")[0] for p in (table_dir / ".hoodie").glob("*.commit"))
    return done[-1] if done else None


def test_metrics_health_and_status_of_a_daemon_over_a_growing_file_match_its_summary(tmp):
    events = gen.generate(3000, seed=31)
    path = tmp / "events.jsonl"
    write_events(path, events[:1500])
    with open(path, "a") as f:
        f.write("{not json\n")
    port = free_port()
    cfg = write_config(tmp, path, commit='[metrics]\nlisten = "127.0.0.1:%d"\n\n[commit]\ninterval = "1s"\n' % port)
    proc = subprocess.Popen([BIN, "--config", str(cfg), "run"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if get(port, "/healthz")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        write_events(path, events[1500:], append=True)
        lines = sum(1 for _ in open(path))
        # Wait until every line is read, every route's commit covers it and the lag (asked every 2 s) says so.
        while time.time() < deadline:
            doc = json.loads(get(port, "/status")[1])
            if doc["routes"] and all(r["checkpoint"] and r["checkpoint"].endswith("line %d" % lines) for r in doc["routes"]) \
                    and doc["sources"][0]["lag"].get("bytes") == 0:
                break
            time.sleep(0.2)
        assert get(port, "/healthz")[0] == 200
        assert get(port, "/readyz")[0] == 200
        assert get(port, "/nothing")[0] == 404
        samples, counters = scrape(port)
        daemon_status = lakefold("--config", cfg, "status").stdout
        top = lakefold("--config", cfg, "top", "--count", "2", "--interval", "0.2").stdout
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-3000:]
    (records, evs, skipped, dead), tables = summary_of(err)
    v = lambda name, **labels: samples.get((name, tuple(sorted(labels.items()))))
    assert records == lines and v("lakefold_source_records_total", source="events") == records
    assert v("lakefold_source_events_total", source="events") == evs
    assert v("lakefold_source_skipped_total", source="events") == skipped
    assert dead == 1 and v("lakefold_dead_letters_total", source="events", table="-") == 1
    assert [c for c in counters if "record" in c] == ["lakefold_source_records"], counters
    for table, key, _, _ in gen.ROUTES:
        commits, ins, upd, dele = tables[table]
        assert v("lakefold_table_commits_total", table=table) == commits, table
        assert v("lakefold_table_rows_inserted_total", table=table) == ins, table
        assert v("lakefold_table_rows_updated_total", table=table) == upd, table
        assert v("lakefold_table_rows_deleted_total", table=table) == dele, table
        assert v("lakefold_table_bytes_written_total", table=table) > 0
        assert v("lakefold_table_commit_duration_seconds_count", table=table) == commits
        assert v("lakefold_table_freshness_seconds", table=table) > 0, "freshness is measured from source.ts_ms"
        row = next(r for r in doc["routes"] if r["table"] == table)
        assert row["last_instant"] == last_instant(tmp / "lake" / table), row
        assert table in daemon_status and row["last_instant"] in daemon_status
    assert v("lakefold_source_lag_bytes", source="events") == 0
    assert v("lakefold_process_resident_memory_bytes") > 1 << 20
    assert "(daemon ready" in daemon_status and "(daemon ready" in top and "\x1b[2J" in top
    # Every metric the shipped dashboard and alerts query is one this run exports.
    exported = {name for name, _ in samples}
    for f in ("deploy/grafana/lakefold.json", "deploy/prometheus/alerts.yml"):
        queried = set(re.findall(r"lakefold_[a-z_]+", (REPO / f).read_text()))
        assert queried and queried <= exported, (f, sorted(queried - exported))
    assert_tables_match(tmp / "lake", gen.expected_tables(events))

    # Stopped: the same command reads the tables' timelines.
    stopped = lakefold("--config", cfg, "status").stdout
    assert "no daemon answers" in stopped, stopped
    for table, *_ in gen.ROUTES:
        line = next(l for l in stopped.splitlines() if l.startswith(table + " "))
        assert last_instant(tmp / "lake" / table) in line and "line %d" % lines in line, line
