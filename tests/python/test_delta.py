"""Routes written as Delta Lake tables (`format = "delta"`), read back with readers written by others:
Python `deltalake` (delta-rs) and daft, compared with the last-value fold computed independently in
Python; the source checkpoint travels in each commit (table configuration and `txn`)."""
import json
import os
import subprocess
import time

from conftest import BIN, as_table, gen, kill_after, lakefold, read_hudi, write_config, write_events


def delta_config(tmp, events_path, route_extra=None, lake_format="delta"):
    cfg = write_config(tmp, events_path, route_extra=route_extra)
    text = cfg.read_text().replace("[lake]\n", '[lake]\nformat = "%s"\n' % lake_format, 1)
    cfg.write_text(text)
    return cfg


def read_delta(table_path):
    from deltalake import DeltaTable
    return DeltaTable(str(table_path)).to_pyarrow_table().to_pylist()


def read_daft_delta(table_path, columns):
    import daft
    return daft.read_deltalake(str(table_path)).select(*columns).to_pylist()


def delta_version(table_path):
    from deltalake import DeltaTable
    return DeltaTable(str(table_path)).version()


def log_actions(table_path):
    """Every action of every commit file still in the log, by version."""
    out = {}
    for f in sorted((table_path / "_delta_log").glob("*.json")):
        out[int(f.stem)] = [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
    return out


def live_files(dt, table_path):
    """The data files of a snapshot, relative to the table."""
    return {os.path.relpath(u, str(table_path)) for u in dt.file_uris()}


def assert_delta_tables_match(lake, expected, routes=None):
    for table, key, columns, _ in routes or gen.ROUTES:
        want = expected[table]
        got = as_table(read_delta(lake / table), key, columns)
        assert got == want, "deltalake reads %s differently: missing %s, extra %s, differing %s" % (
            table, sorted(set(want) - set(got))[:5], sorted(set(got) - set(want))[:5],
            [(k, want[k], got[k]) for k in want if k in got and want[k] != got[k]][:3])
        assert as_table(read_daft_delta(lake / table, columns), key, columns) == want, "daft reads %s differently" % table


def test_six_routes_as_delta_equal_the_fold_after_a_first_run_an_appended_batch_and_an_idle_rerun(tmp):
    events = gen.generate(1500, seed=21, duplicates=0.05, shuffle_window=16)
    first, second = events[:900], events[900:]
    path = tmp / "events.jsonl"
    write_events(path, first)
    cfg = delta_config(tmp, path)
    proc = lakefold("--config", cfg, "run", "--once")
    assert "0 dead letters" in proc.stderr
    lake = tmp / "lake"
    assert not (lake / "sales" / ".hoodie").exists()
    assert_delta_tables_match(lake, gen.expected_tables(first))

    write_events(path, second, append=True)
    lakefold("--config", cfg, "run", "--once")
    expected = gen.expected_tables(events)
    assert_delta_tables_match(lake, expected)
    # updates and deletes replaced files: the sales table's last commit removed some and added others
    last = log_actions(lake / "sales")[delta_version(lake / "sales")]
    assert any("remove" in a for a in last) and any("add" in a for a in last)

    versions = {t: delta_version(lake / t) for t, *_ in gen.ROUTES}
    proc = lakefold("--config", cfg, "run", "--once")
    assert "0 records read" in proc.stderr
    assert {t: delta_version(lake / t) for t, *_ in gen.ROUTES} == versions, "an idle rerun wrote a Delta version"
    assert_delta_tables_match(lake, expected)


def test_the_last_delta_snapshot_holds_the_source_txn_and_checkpoint(tmp):
    from deltalake import DeltaTable
    events = gen.generate(300, seed=4)
    path = tmp / "events.jsonl"
    write_events(path, events[:200])
    cfg = delta_config(tmp, path)
    lakefold("--config", cfg, "run", "--once")
    write_events(path, events[200:], append=True)
    lakefold("--config", cfg, "run", "--once")
    dt = DeltaTable(str(tmp / "lake" / "sales"))
    assert dt.transaction_version("lakefold-events") == 1, "one txn version per commit of the source"
    last = log_actions(tmp / "lake" / "sales")[dt.version()]
    assert [a["txn"]["appId"] for a in last if "txn" in a] == ["lakefold-events"]
    checkpoint = json.loads(dt.metadata().configuration["lakefold.checkpoint"])
    assert checkpoint["events"]["type"] == "debezium-file"
    assert checkpoint["events"]["line"] == sum(1 for _ in open(path)), checkpoint


def test_a_route_can_choose_delta_while_the_lake_writes_hudi(tmp):
    events = gen.generate(500, seed=8)
    path = tmp / "events.jsonl"
    write_events(path, events)
    cfg = delta_config(tmp, path, route_extra={"sales": 'format = "delta"\n'}, lake_format="hudi")
    lakefold("--config", cfg, "run", "--once")
    lake = tmp / "lake"
    expected = gen.expected_tables(events)
    sales = [r for r in gen.ROUTES if r[0] == "sales"]
    assert_delta_tables_match(lake, expected, routes=sales)
    assert not (lake / "agents" / "_delta_log").exists()
    agents = [r for r in gen.ROUTES if r[0] == "agents"]
    key, columns = agents[0][1], agents[0][2]
    assert as_table(read_hudi(lake / "agents"), key, columns) == expected["agents"]


def test_a_partitioned_delta_table_moves_keys_whose_partition_changes_checkpoints_every_ten_commits_and_keeps_the_txn(tmp):
    from deltalake import DeltaTable
    events = gen.generate(3000, seed=12)
    path = tmp / "events.jsonl"
    write_events(path, events)
    sales = [r for r in gen.ROUTES if r[0] == "sales"]
    cfg = write_config(tmp, path, routes=sales, commit="[commit]\nmax_events = 200\n",
                       route_extra={"sales": 'partition_by = ["AgentId"]\n'})
    cfg.write_text(cfg.read_text().replace("[lake]\n", '[lake]\nformat = "delta"\n', 1))
    lakefold("--config", cfg, "run", "--once")
    table = tmp / "lake" / "sales"
    dt = DeltaTable(str(table))
    assert dt.version() >= 10, "expected one commit per 200 events"
    assert (table / "_delta_log" / "_last_checkpoint").exists()
    assert list((table / "_delta_log").glob("*.checkpoint.parquet")), "no Delta checkpoint written"
    assert dt.metadata().partition_columns == ["AgentId"]
    assert {p.name.split("=")[0] for p in table.iterdir() if p.is_dir() and p.name != "_delta_log"} == {"AgentId"}
    assert as_table(dt.to_pyarrow_table().to_pylist(), ["SaleId"], sales[0][2]) == gen.expected_tables(events)["sales"]
    # the txn survives in the checkpoint: a reader that starts from it still sees the source's version
    assert dt.transaction_version("lakefold-events") == dt.version()


def test_a_crash_after_the_data_files_and_kill_9s_between_commits_lose_and_duplicate_nothing(tmp):
    events = gen.generate(3000, seed=31)
    path = tmp / "events.jsonl"
    write_events(path, events[:1000])
    cfg = delta_config(tmp, path)
    cfg.write_text(cfg.read_text().replace("[sources.events]", '[commit]\ninterval = "100ms"\nmax_events = 150\n\n[sources.events]', 1))
    lakefold("--config", cfg, "run", "--once")
    write_events(path, events[1000:2000], append=True)
    # The process aborts with the new data files of `sales` written and no log entry for them.
    env = dict(os.environ, LAKEFOLD_FAILPOINT="sales:after-data")
    crashed = subprocess.run([BIN, "--config", str(cfg), "run", "--once"], env=env, capture_output=True, text=True, timeout=120)
    assert crashed.returncode != 0 and "failpoint sales:after-data reached" in crashed.stderr
    table = tmp / "lake" / "sales"
    from deltalake import DeltaTable
    live = set(DeltaTable(str(table)).file_uris())
    on_disk = {str(p) for p in table.rglob("*.parquet") if "_delta_log" not in p.parts}
    assert on_disk - live, "the crash left no unreferenced data file: the failpoint fired too early"
    # Real kill -9s of the daemon right after a table's commit (the next one is then in flight).
    write_events(path, events[2000:], append=True)
    for n, t in enumerate(["sales", "agents", "sales"]):
        assert kill_after(cfg, "committed table=%s " % t, tmp / ("kill-%d.log" % n)), "no commit of %s to kill after" % t
    lakefold("--config", cfg, "run", "--once")
    assert_delta_tables_match(tmp / "lake", gen.expected_tables(events))


def test_a_second_writer_committing_between_lakefold_commits_makes_lakefold_stop_clearly(tmp):
    from deltalake import DeltaTable, write_deltalake
    events = gen.generate(800, seed=17)
    path = tmp / "events.jsonl"
    write_events(path, events[:400])
    cfg = delta_config(tmp, path)
    cfg.write_text(cfg.read_text().replace("[sources.events]", '[commit]\ninterval = "100ms"\n\n[sources.events]', 1))
    lakefold("--config", cfg, "run", "--once")
    table = tmp / "lake" / "sales"
    log = tmp / "daemon.log"
    with open(log, "w") as err:
        proc = subprocess.Popen([BIN, "--config", str(cfg), "run"], stderr=err, text=True)
        try:
            time.sleep(1.5)  # the daemon has opened the tables and found nothing new
            assert proc.poll() is None, log.read_text()
            # another writer appends a copy of one row (a version the daemon has not read)
            dt = DeltaTable(str(table))
            before = dt.version()
            write_deltalake(str(table), dt.to_pyarrow_table().slice(0, 1), mode="append")
            write_events(path, events[400:], append=True)
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    text = log.read_text()
    assert proc.returncode != 0, text
    assert "another writer committed to this Delta table" in text, text
    assert DeltaTable(str(table)).version() == before + 1, "lakefold committed over the other writer"


def test_show_history_status_and_table_truncate_drop_work_on_delta_tables(tmp):
    from deltalake import DeltaTable
    events = gen.generate(600, seed=27)
    path = tmp / "events.jsonl"
    write_events(path, events[:300])
    cfg = delta_config(tmp, path)
    lakefold("--config", cfg, "run", "--once")
    write_events(path, events[300:], append=True)
    lakefold("--config", cfg, "run", "--once")
    expected = gen.expected_tables(events)
    lines = sum(1 for _ in open(path))

    history = lakefold("--config", cfg, "history", "sales").stdout.splitlines()
    assert history[0].split()[:3] == ["version", "time", "operation"]
    body = [l.split() for l in history[2:]]
    assert [r[0] for r in body] == ["1", "0"], history
    assert body[0][2] == "MERGE" and body[1][2] == "CREATE"
    assert ("line %d" % lines) in history[2]
    inserted, updated, deleted = (int(x) for x in body[0][4:7])
    assert inserted + updated + deleted > 0

    shown = lakefold("--config", cfg, "show", "sales", "--limit", "5").stdout
    assert "SaleId" in shown and ("5 of %d rows" % len(expected["sales"])) in shown

    status = lakefold("--config", cfg, "status").stdout
    row = next(l for l in status.splitlines() if l.startswith("sales "))
    assert "v1" in row and ("line %d" % lines) in row, status

    out = lakefold("--config", cfg, "table", "truncate", "sales").stdout
    assert "truncated" in out
    assert not (tmp / "lake" / "sales" / "_delta_log").exists()
    lakefold("--config", cfg, "run", "--once")
    assert as_table(DeltaTable(str(tmp / "lake" / "sales")).to_pyarrow_table().to_pylist(), ["SaleId"],
                    [r for r in gen.ROUTES if r[0] == "sales"][0][2]) == expected["sales"]
    assert "dropped" in lakefold("--config", cfg, "table", "drop", "agents").stdout
    assert not (tmp / "lake" / "agents").exists()


def test_vacuum_deletes_replaced_files_once_the_retained_versions_no_longer_need_them(tmp):
    from deltalake import DeltaTable
    events = gen.generate(2400, seed=33)
    path = tmp / "events.jsonl"
    write_events(path, events)
    sales = [r for r in gen.ROUTES if r[0] == "sales"]
    cfg = write_config(tmp, path, routes=sales, commit="[commit]\nmax_events = 200\n",
                       route_extra={"sales": "clean_retain_commits = 3\n"})
    cfg.write_text(cfg.read_text().replace("[lake]\n", '[lake]\nformat = "delta"\n', 1))
    lakefold("--config", cfg, "run", "--once")
    table = tmp / "lake" / "sales"
    dt = DeltaTable(str(table))
    latest = dt.version()
    assert latest >= 8
    removed = [a["remove"]["path"] for v, acts in log_actions(table).items() for a in acts if "remove" in a]
    assert removed, "no commit replaced a file"
    on_disk = {str(p.relative_to(table)) for p in table.rglob("*.parquet") if "_delta_log" not in p.parts}
    # the snapshots of the last three versions read whole (time travel), with every row of their time
    for v in range(latest - 2, latest + 1):
        old = DeltaTable(str(table), version=v)
        assert live_files(old, table) <= on_disk, "version %d lost a file" % v
        assert len(old.to_pyarrow_table()) > 0
    assert as_table(dt.to_pyarrow_table().to_pylist(), ["SaleId"], sales[0][2]) == gen.expected_tables(events)["sales"]
    # files only older versions needed are gone, and vacuuming wrote no Delta version
    needed = set().union(*(live_files(DeltaTable(str(table), version=v), table) for v in range(latest - 2, latest + 1)))
    assert on_disk == needed, (sorted(on_disk - needed)[:3], sorted(needed - on_disk)[:3])
    assert not any("VACUUM" in json.dumps(acts) for acts in log_actions(table).values())
