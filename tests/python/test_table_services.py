"""Tables that live for months: Hudi's cleaner and archival keep them bounded while a daemon commits every
second, the `.clean` instants are Avro files with Hudi's schemas, write markers are there for JVM rollbacks,
and a table shared with a JVM writer (a foreign commit, a stale pending instant, a metadata table) is safe."""
import json
import os
import pathlib
import re
import signal
import subprocess
import time

import fastavro
import pyarrow.parquet as pq

from conftest import BIN, REPO, assert_tables_match, gen, lakefold, read_hudi, write_config, write_events

AVSC = REPO / "src" / "sink" / "hudi" / "avro"
NAME = re.compile(r"^(?P<id>[0-9a-f-]+-\d+)_(?P<token>\d+-\d+-\d+)_(?P<instant>\d{17})\.parquet$")


def hudi_schema(name):
    """A Hudi 0.14 .avsc (comments stripped, as Java's parser allows them), parsed by fastavro."""
    text = re.sub(r"/\*.*?\*/", "", (AVSC / (name + ".avsc")).read_text(), flags=re.S)
    return json.loads(text)


def reader_schema(name):
    named = {}
    if name == "HoodieCleanMetadata":
        fastavro.parse_schema(hudi_schema("HoodieCleanPartitionMetadata"), named_schemas=named)
    return fastavro.parse_schema(hudi_schema(name), named_schemas=named)


def base_files(table):
    """{(partition, file id): [(instant, path, size)]} of every parquet file."""
    out = {}
    for p in table.rglob("*.parquet"):
        if ".hoodie" in p.relative_to(table).parts:
            continue
        m = NAME.match(p.name)
        assert m, p
        key = (str(p.parent.relative_to(table)), m["id"])
        try:
            size = p.stat().st_size
        except FileNotFoundError:
            continue  # the running daemon's cleaner removed it after the listing
        out.setdefault(key, []).append((m["instant"], p, size))
    return out


def completed_instants(table):
    return sorted(p.name.split(".")[0] for p in (table / ".hoodie").iterdir() if p.name.endswith(".commit"))


def sizes(table):
    """(bytes of every base file, bytes of the latest slice of every file group)."""
    groups = base_files(table)
    total = sum(s for files in groups.values() for _, _, s in files)
    live = sum(max(files)[2] for files in groups.values())
    return total, live


def hoodie_files(table):
    """Files under .hoodie/ outside archived/ (recursively: claims, markers and all)."""
    root = table / ".hoodie"
    try:
        return [p for p in root.rglob("*") if p.is_file() and "archived" not in p.relative_to(root).parts]
    except FileNotFoundError:  # a folder (markers of a finished instant) removed while listing
        return hoodie_files(table)


def test_a_daemon_committing_every_second_keeps_tables_and_timelines_bounded_and_exact(tmp):
    events = gen.generate(5000, seed=21)
    path = tmp / "events.jsonl"
    write_events(path, events[:100])
    cfg = write_config(tmp, path, commit='[commit]\ninterval = "1s"\n')
    cfg.write_text(cfg.read_text().replace('type = "debezium-file"', 'type = "debezium-file"\npoll_interval = "100ms"'))
    lake = tmp / "lake"
    log = open(tmp / "daemon.log", "w")
    proc = subprocess.Popen([BIN, "--config", str(cfg), "run"], stdout=subprocess.DEVNULL, stderr=log)
    worst = {}
    try:
        written, deadline = 100, time.time() + 240
        commits = 0
        # About 60 events a second for 80 s: a commit every second, each touching every table.
        while time.time() < deadline and written < len(events):
            n = min(24, len(events) - written)
            write_events(path, events[written:written + n], append=True)
            written += n
            time.sleep(0.4)
            commits = sum(1 for line in open(tmp / "daemon.log") if "committed" in line and "table=sales" in line)
            for table in ("sales", "agents", "statuses"):
                t = lake / table
                if not (t / ".hoodie").exists():
                    continue
                total, live = sizes(t)
                ratio = total / live if live else 0
                w = worst.setdefault(table, [0, 0])
                w[0] = max(w[0], ratio)
                w[1] = max(w[1], len(hoodie_files(t)))
        assert commits >= 60, "only %d commits of sales in time" % commits
        # Let the daemon catch up with the end of the file, then stop it: SIGTERM commits and exits 0.
        time.sleep(3)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    print("worst data/live ratio and .hoodie file count per table:", worst)
    daemon_log = (tmp / "daemon.log").read_text()
    assert "cleaned" in daemon_log and "archived" in daemon_log, daemon_log[-3000:]
    for table, (ratio, entries) in worst.items():
        # Default retention: 10 commits, so at most 10 retained + 1 before them + 1 being written per group.
        assert ratio <= 12, "%s: data files reached %.1f x the live slices" % (table, ratio)
        # At most 31 commits and about ten cleans of three files each, plus the bookkeeping.
        assert entries <= 150, "%s: .hoodie held %d files" % (table, entries)
    for table in ("sales", "agents"):
        t = lake / table
        # Archival keeps between 20 and 30 completed commits; a pending instant never stays behind.
        assert 20 <= len(completed_instants(t)) <= 31
        assert not list((t / ".hoodie").glob("*.inflight")) or all(
            (t / ".hoodie" / (p.name.split(".")[0] + ".commit")).exists() for p in (t / ".hoodie").glob("*.inflight")
            if not p.name.endswith(".clean.inflight"))
        # Markers are gone once their instants completed; lakefold's own bookkeeping stays small.
        temp = t / ".hoodie" / ".temp"
        assert not temp.exists() or not list(temp.iterdir()), "markers (or their folders) left behind"
        assert len(list((t / ".hoodie" / ".lakefold").iterdir())) <= 4
        check_clean_files(t)
    assert_tables_match(lake, gen.expected_tables(events))


def check_clean_files(table):
    hoodie = table / ".hoodie"
    cleans = sorted(hoodie.glob("*.clean"))
    assert cleans, "no completed clean in %s" % table
    plan_schema = reader_schema("HoodieCleanerPlan")
    meta_schema = reader_schema("HoodieCleanMetadata")
    live = {p.name for p in table.rglob("*.parquet")}
    retained = completed_instants(table)
    for c in cleans:
        instant = c.name.split(".")[0]
        with open(c, "rb") as f:
            r = fastavro.reader(f, reader_schema=meta_schema)
            assert r.writer_schema["name"] == "org.apache.hudi.avro.model.HoodieCleanMetadata"
            [meta] = list(r)
        assert meta["startCleanTime"] == instant and meta["version"] == 2
        assert meta["totalFilesDeleted"] == sum(len(p["successDeleteFiles"]) for p in meta["partitionMetadata"].values())
        for part in meta["partitionMetadata"].values():
            assert part["policy"] == "KEEP_LATEST_COMMITS" and not part["failedDeleteFiles"]
            assert not set(part["successDeleteFiles"]) & live, "a cleaned file is still there"
        for suffix in (".clean.requested", ".clean.inflight"):
            with open(hoodie / (instant + suffix), "rb") as f:
                r = fastavro.reader(f, reader_schema=plan_schema)
                assert r.writer_schema["name"] == "org.apache.hudi.avro.model.HoodieCleanerPlan"
                [plan] = list(r)
            assert plan["policy"] == "KEEP_LATEST_COMMITS" and plan["version"] == 2
            assert plan["earliestInstantToRetain"]["timestamp"] == meta["earliestCommitToRetain"]
            assert plan["earliestInstantToRetain"]["state"] == "COMPLETED"
            for files in plan["filePathsToBeDeletedPerPartition"].values():
                for info in files:
                    assert info["filePath"].startswith("file:/") and info["filePath"].endswith(".parquet")
    # The newest clean retained a commit that is still on the active timeline.
    with open(cleans[-1], "rb") as f:
        [meta] = list(fastavro.reader(f))
    assert meta["earliestCommitToRetain"] in retained


def test_a_commit_by_another_writer_does_not_make_the_source_replay(tmp):
    events = gen.generate(800, seed=5)
    path = tmp / "events.jsonl"
    write_events(path, events[:500])
    cfg = write_config(tmp, path)
    lakefold("--config", cfg, "run", "--once")
    # A JVM writer (a Spark backfill) commits to `sales` without lakefold's checkpoint.
    hoodie = tmp / "lake" / "sales" / ".hoodie"
    last = json.loads((hoodie / (completed_instants(tmp / "lake" / "sales")[-1] + ".commit")).read_text())
    foreign = time.strftime("%Y%m%d%H%M%S", time.gmtime(time.time() + 1)) + "000"
    (hoodie / (foreign + ".commit.requested")).write_text("")
    (hoodie / (foreign + ".inflight")).write_text("{}")
    (hoodie / (foreign + ".commit")).write_text(json.dumps({
        "partitionToWriteStats": {}, "compacted": False, "operationType": "UPSERT",
        "extraMetadata": {"schema": last["extraMetadata"]["schema"]}}))
    time.sleep(1.1)
    write_events(path, events[500:], append=True)
    new_lines = len(events) - 500
    proc = lakefold("--config", cfg, "run", "--once")
    read = int(re.search(r"(\d+) records read", proc.stderr).group(1))
    assert read == new_lines, "the source replayed: %d records read, %d new" % (read, new_lines)
    assert_tables_match(tmp / "lake", gen.expected_tables(events))


def test_data_files_have_markers_until_their_instant_completes_or_is_rolled_back(tmp):
    events = gen.generate(400, seed=9)
    path = tmp / "events.jsonl"
    write_events(path, events[:200])
    cfg = write_config(tmp, path)
    lakefold("--config", cfg, "run", "--once")
    write_events(path, events[200:], append=True)
    env = dict(os.environ, LAKEFOLD_FAILPOINT="sales:after-data")
    crashed = subprocess.run([BIN, "--config", str(cfg), "run", "--once"], env=env, capture_output=True, text=True, timeout=120)
    assert crashed.returncode != 0
    table = tmp / "lake" / "sales"
    [pending] = [p.name.split(".")[0] for p in (table / ".hoodie").glob("*.inflight")
                 if not (table / ".hoodie" / (p.name.split(".")[0] + ".commit")).exists()]
    markers = table / ".hoodie" / ".temp" / pending
    assert (markers / "MARKERS.type").read_bytes() == b"TIMELINE_SERVER_BASED"
    lines = (markers / "MARKERS0").read_text().splitlines()
    written = sorted(str(p.relative_to(table)) for p in table.rglob("*_%s.parquet" % pending))
    assert written and sorted(l.rsplit(".marker.", 1)[0] for l in lines) == written
    assert all(l.endswith(".marker.MERGE") or l.endswith(".marker.CREATE") for l in lines)
    # The next run rolls the instant back: its files and its markers go.
    lakefold("--config", cfg, "run", "--once")
    assert not markers.exists()
    assert not list(table.rglob("*_%s.parquet" % pending))
    assert_tables_match(tmp / "lake", gen.expected_tables(events))


def test_a_pending_instant_older_than_the_first_commit_is_rolled_back_before_writing(tmp):
    events = gen.generate(300, seed=13)
    path = tmp / "events.jsonl"
    write_events(path, events[:150])
    cfg = write_config(tmp, path)
    lakefold("--config", cfg, "run", "--once")
    table = tmp / "lake" / "agents"
    current = next(table.glob("*.parquet"))
    # A writer that died before lakefold's first commit: readers would take its file as committed
    # (older than the first instant), so it must go before anything else is written.
    stale = "20000101000000000"
    (table / ".hoodie" / (stale + ".commit.requested")).write_text("")
    (table / ".hoodie" / (stale + ".inflight")).write_text("{}")
    orphan = table / ("%s_0-0-0_%s.parquet" % (current.name.split("_")[0], stale))
    orphan.write_bytes(current.read_bytes())
    write_events(path, events[150:], append=True)
    lakefold("--config", cfg, "run", "--once")
    assert not orphan.exists()
    assert not (table / ".hoodie" / (stale + ".inflight")).exists()
    assert_tables_match(tmp / "lake", gen.expected_tables(events))


def test_a_table_with_a_metadata_table_is_refused_naming_the_property(tmp):
    events = gen.generate(100, seed=2)
    write_events(tmp / "events.jsonl", events)
    cfg = write_config(tmp, tmp / "events.jsonl")
    lakefold("--config", cfg, "run", "--once")
    props = tmp / "lake" / "units" / ".hoodie" / "hoodie.properties"
    props.write_text(props.read_text() + "hoodie.table.metadata.partitions=files\n")
    proc = lakefold("--config", cfg, "run", "--once", check=False)
    assert proc.returncode == 1
    assert "hoodie.table.metadata.partitions" in proc.stderr and "units" in proc.stderr


def test_create_schema_and_bloom_filters_are_written_as_spark_writes_them(tmp):
    events = gen.generate(300, seed=3)
    write_events(tmp / "events.jsonl", events)
    cfg = write_config(tmp, tmp / "events.jsonl")
    lakefold("--config", cfg, "run", "--once")
    table = tmp / "lake" / "sales"
    props = dict(l.split("=", 1) for l in (table / ".hoodie" / "hoodie.properties").read_text().splitlines() if "=" in l and not l.startswith("#"))
    create = json.loads(props["hoodie.table.create.schema"].replace("\\:", ":").replace("\\=", "="))
    last = json.loads((table / ".hoodie" / (completed_instants(table)[-1] + ".commit")).read_text())
    assert create == json.loads(last["extraMetadata"]["schema"])
    assert not any(f["name"].startswith("_hoodie_") for f in create["fields"])
    for p in table.glob("*.parquet"):
        meta = pq.ParquetFile(p).metadata.metadata
        assert meta[b"hoodie_bloom_filter_type_code"] == b"DYNAMIC_V0"
        assert len(meta[b"org.apache.hudi.bloomfilter"]) == 431380  # 60,000 entries at fpp 1e-9, as Spark's
        assert meta[b"hoodie_min_record_key"] <= meta[b"hoodie_max_record_key"]
    assert len(read_hudi(table)) == len(gen.expected_tables(events)["sales"])
