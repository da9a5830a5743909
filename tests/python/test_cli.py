"""The command line of design.md §1: validate (all errors, exit 78), show, history, table lifecycle, and
the daemon (follow the file, commit on the interval, stop cleanly on SIGTERM)."""
import os
import signal
import subprocess
import time

from conftest import BIN, REPO, assert_tables_match, gen, lakefold, read_hudi, write_config, write_events


def test_validate_reports_every_error_with_file_line_and_key(tmp):
    routes_dir = tmp / "routes"
    routes_dir.mkdir()
    (routes_dir / "bad.toml").write_text('table = "units"\nsource = "nope"\nfrom = "dbo.SALES"\nkey = ["UnitId"]\ncolumns = ["UnitName"]\n')
    cfg = tmp / "bad.toml"
    cfg.write_text('''include = ["routes/*.toml"]
[lake]
uri = "./lake"
colour = "blue"

[commit]
max_events = 0

[sources.erp]
type = "debezium-file"
path = "events.jsonl"

[[route]]
table = "agents"
source = "erp"
from = "dbo.SALES"
key = ["AgentId"]
columns = ["AgentId", "AgentName"]
types = { AgentName = "varchar2" }
on_delete = "sometimes"

[[route]]
table = "sales"
source = "erp"
from = "dbo.SALES"
key = ["SaleId"]
columns = ["AgentId"]
partition_by = ["ProjectId"]
''')
    proc = lakefold("--config", cfg, "validate", "--no-environment", check=False)
    assert proc.returncode == 78, proc.stderr
    err = proc.stderr
    expected = [
        ("bad.toml:4", "colour"),                 # unknown key in [lake]
        ("bad.toml:7", "max_events"),             # must be at least 1
        ("bad.toml:20", "sometimes"),             # unknown on_delete variant (line of the value)
        ("bad.toml:26", "SaleId"),                # key not among columns
        ("bad.toml:28", "ProjectId"),             # partition column not among columns
        ("bad.toml:2", "unknown source `nope`"),  # in routes/bad.toml
        ("bad.toml:4", "UnitId"),                 # key not among columns, routes/bad.toml
    ]
    for where, what in expected:
        assert any(where in line and what in line for line in err.splitlines()), (where, what, err)
    assert "routes/bad.toml" in err
    # the good parts of the file do not drown the report: one line per problem
    assert err.count("\n") <= 12, err


def test_validate_passes_the_embedded_default_and_checks_the_environment(tmp):
    proc = lakefold("validate", cwd=REPO)
    assert proc.returncode == 0 and "ok" in proc.stdout
    cfg = write_config(tmp, tmp / "missing.jsonl")
    proc = lakefold("--config", cfg, "validate", check=False)
    assert proc.returncode == 78 and "missing.jsonl" in proc.stderr
    assert lakefold("--config", cfg, "validate", "--no-environment").returncode == 0
    assert lakefold("--config", cfg, "run", "--once", check=False).returncode == 78
    assert lakefold("--config", cfg, "frobnicate", check=False).returncode == 2
    assert lakefold("--config", tmp / "nope.toml", "validate", check=False).returncode == 78


def test_show_history_and_table_lifecycle(tmp):
    events = gen.generate(300, seed=23)
    path = tmp / "events.jsonl"
    write_events(path, events)
    cfg = write_config(tmp, path)
    lakefold("--config", cfg, "run", "--once")
    expected = gen.expected_tables(events)

    out = lakefold("--config", cfg, "show", "agents", "--limit", "3").stdout
    assert "AgentId" in out and "AgentName" in out and "_hoodie" not in out
    assert ("3 of %d rows" % len(expected["agents"])) in out
    agent = sorted(expected["agents"])[0][0]
    out = lakefold("--config", cfg, "show", "agents", "--where", "AgentId=%d" % agent).stdout
    assert expected["agents"][(agent,)]["AgentName"] in out and "1 of 1 row" in out

    hist = lakefold("--config", cfg, "history", "sales").stdout.splitlines()
    assert hist[0].split() == ["instant", "action", "operation", "inserted", "updated", "deleted", "files", "checkpoint"]
    assert len(hist) == 3 and "UPSERT" in hist[2] and ("line %d" % len(events)) in hist[2]

    assert lakefold("--config", cfg, "show", "nosuch", check=False).returncode == 1
    lakefold("--config", cfg, "table", "truncate", "agents")
    assert read_hudi(tmp / "lake" / "agents") == []
    # truncate resets the checkpoint: the next run rebuilds the table from the file
    lakefold("--config", cfg, "run", "--once")
    assert_tables_match(tmp / "lake", expected)
    lakefold("--config", cfg, "table", "drop", "units")
    assert not (tmp / "lake" / "units").exists()
    lakefold("--config", cfg, "table", "create", "units")
    assert (tmp / "lake" / "units" / ".hoodie" / "hoodie.properties").exists()
    assert read_hudi(tmp / "lake" / "units") == []


def test_daemon_follows_the_file_commits_on_interval_and_stops_on_sigterm(tmp):
    events = gen.generate(600, seed=29)
    path = tmp / "events.jsonl"
    write_events(path, events[:300])
    cfg = write_config(tmp, path, commit='[commit]\ninterval = "500ms"\n')
    cfg.write_text(cfg.read_text().replace('type = "debezium-file"', 'type = "debezium-file"\npoll_interval = "200ms"'))
    proc = subprocess.Popen([BIN, "--config", str(cfg), "run"], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 30
        first = gen.expected_tables(events[:300])
        while time.time() < deadline:
            try:
                if len(read_hudi(tmp / "lake" / "sales")) == len(first["sales"]):
                    break
            except Exception:
                pass
            time.sleep(0.2)
        write_events(path, events[300:], append=True)
        want = gen.expected_tables(events)
        while time.time() < deadline:
            try:
                assert_tables_match(tmp / "lake", want)
                break
            except Exception:
                time.sleep(0.3)
        assert_tables_match(tmp / "lake", want)
        assert proc.poll() is None, "the daemon exited on its own"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert rc == 0, proc.stderr.read()
