"""The six routes of the SALES split, run through the binary and read back with hudi-rs and daft, equal the
last-value fold computed independently in Python."""
import json
import os
import re

from conftest import assert_tables_match, gen, lakefold, read_hudi, write_config, write_events


def commits(table_dir):
    return sorted(p.name for p in (table_dir / ".hoodie").iterdir() if p.name.endswith(".commit"))


def test_six_routes_equal_the_expected_fold_with_schema_duplicates_and_shuffled_arrival(tmp):
    events = gen.generate(1500, seed=7, duplicates=0.05, shuffle_window=16)
    write_events(tmp / "events.jsonl", events)
    cfg = write_config(tmp, tmp / "events.jsonl")
    proc = lakefold("--config", cfg, "run", "--once")
    assert "0 dead letters" in proc.stderr
    assert_tables_match(tmp / "lake", gen.expected_tables(events))


def test_schemaless_json_with_string_decimals_uses_route_types(tmp):
    events = gen.generate(600, seed=11)
    write_events(tmp / "events.jsonl", events, with_schema=False, decimal_mode="string")
    types = 'types = { ContractSubtotal = "decimal(18,4)", ContractSigningDate = "timestamp_ms" }\n'
    cfg = write_config(tmp, tmp / "events.jsonl", route_extra={"sales": types})
    lakefold("--config", cfg, "run", "--once")
    assert_tables_match(tmp / "lake", gen.expected_tables(events))
    rows = read_hudi(tmp / "lake" / "sales")
    assert str(type(rows[0]["ContractSubtotal"]).__name__) == "Decimal"


def test_appending_events_updates_file_groups_in_place_and_a_rerun_commits_nothing(tmp):
    events = gen.generate(1200, seed=3)
    first, second = events[:700], events[700:]
    path = tmp / "events.jsonl"
    write_events(path, first)
    cfg = write_config(tmp, path)
    lakefold("--config", cfg, "run", "--once")
    lake = tmp / "lake"
    assert_tables_match(lake, gen.expected_tables(first))
    groups_before = {r["_hoodie_record_key"]: r["_hoodie_file_name"].split("_")[0] for r in read_hudi(lake / "agents")}
    commits_before = commits(lake / "agents")

    write_events(path, second, append=True)
    lakefold("--config", cfg, "run", "--once")
    assert_tables_match(lake, gen.expected_tables(events))
    after = read_hudi(lake / "agents")
    for r in after:
        if r["_hoodie_record_key"] in groups_before:
            assert r["_hoodie_file_name"].split("_")[0] == groups_before[r["_hoodie_record_key"]], "an updated key moved file group"
    assert len(commits(lake / "agents")) == len(commits_before) + 1
    # the new slice replaced the old one in the same file group: prevCommit names the first commit
    meta = json.loads((lake / "agents" / ".hoodie" / commits(lake / "agents")[-1]).read_text())
    stats = [s for ss in meta["partitionToWriteStats"].values() for s in ss]
    assert any(s["prevCommit"] == commits_before[-1].split(".")[0] and s["numUpdateWrites"] > 0 for s in stats)

    snapshot = {t: commits(lake / t) for t in os.listdir(lake)}
    proc = lakefold("--config", cfg, "run", "--once")
    assert {t: commits(lake / t) for t in os.listdir(lake)} == snapshot, "a rerun with nothing new wrote a commit"
    assert "0 records read" in proc.stderr


def test_replayed_file_with_checkpoint_ahead_writes_no_duplicates(tmp):
    events = gen.generate(400, seed=5)
    path = tmp / "events.jsonl"
    write_events(path, events)
    cfg = write_config(tmp, path)
    lakefold("--config", cfg, "run", "--once")
    # the same events delivered again (a replayed topic): positions at or below the stored ones change nothing
    write_events(path, events, append=True)
    lakefold("--config", cfg, "run", "--once")
    assert_tables_match(tmp / "lake", gen.expected_tables(events))


def test_small_max_file_size_spreads_inserts_over_file_groups_and_later_fills_small_files(tmp):
    events = gen.generate(9000, seed=9, duplicates=0)
    first, second = events[:7000], events[7000:]
    assert len(gen.expected_tables(first)["sales"]) > 1024
    path = tmp / "events.jsonl"
    write_events(path, first)
    sales = [r for r in gen.ROUTES if r[0] == "sales"]
    cfg = write_config(tmp, path, routes=sales, route_extra={"sales": 'max_file_size = "1MiB"\nsmall_file_limit = "1MiB"\n'})
    lakefold("--config", cfg, "run", "--once")
    # no file yet to estimate from: Hudi's 1024-byte estimate gives 1024 rows per new file group
    groups_first = {r["_hoodie_file_name"].split("_")[0] for r in read_hudi(tmp / "lake" / "sales")}
    assert len(groups_first) >= 2, groups_first

    write_events(path, second, append=True)
    lakefold("--config", cfg, "run", "--once")
    assert_tables_match(tmp / "lake", {"sales": gen.expected_tables(events)["sales"]}, routes=sales)
    rows = read_hudi(tmp / "lake" / "sales")
    # the files are far below 1 MiB, so new sales went into the existing (small) file groups
    assert {r["_hoodie_file_name"].split("_")[0] for r in rows} == groups_first
    for name in {r["_hoodie_file_name"] for r in rows}:
        assert re.fullmatch(r"[0-9a-f-]{36}-0_\d+-\d+-0_\d{17}\.parquet", name), name


def test_max_bytes_bounds_what_the_fold_holds_not_what_was_read(tmp):
    """`[commit] max_bytes` counts the folded rows: 3 MB of events that fold into five statuses are one
    commit under a 256 KiB limit, while the same events folded into ~2,900 sales rows commit early, more
    than once, and both tables still hold exactly the expected fold."""
    events = gen.generate(3000, seed=21, duplicates=0)
    path = tmp / "events.jsonl"
    write_events(path, events)
    assert path.stat().st_size > 3_000_000
    commit = '[commit]\nmax_bytes = "256KiB"\n'
    statuses = [r for r in gen.ROUTES if r[0] == "statuses"]
    cfg = write_config(tmp, path, routes=statuses, commit=commit)
    lakefold("--config", cfg, "run", "--once")
    assert len(commits(tmp / "lake" / "statuses")) == 1
    assert_tables_match(tmp / "lake", gen.expected_tables(events), routes=statuses)

    sales = [r for r in gen.ROUTES if r[0] == "sales"]
    cfg = write_config(tmp, path, routes=sales, commit=commit)
    lakefold("--config", cfg, "run", "--once")
    n = len(commits(tmp / "lake" / "sales"))
    assert 2 <= n <= 20, n
    assert_tables_match(tmp / "lake", gen.expected_tables(events), routes=sales)
