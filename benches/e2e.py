"""End-to-end throughput harness: lakefold's release binary against the peers it replaces, on the same data
in the same run (this machine is shared and noisy: read the ratios, and the medians of --repeat runs).

Scenarios (see benches/README.md):
  p1-schemaless  N Debezium events without schema -> six SALES routes (lakefold `run --once`)
                 vs the Python peer: json.loads -> last image per key -> deltalake.write_deltalake, ONE table
  p1-schema      the same with the Connect schema embedded in every event
  p2-uniform     upsert 10k keyed changes into an M-row `sales` table (uniform keys): lakefold `run --once`
                 vs delta-rs MERGE (Python `deltalake`) of the same rows into a same-sized Delta table
  p2-recent      the same with 90 % of the changes on the newest 10 % of keys
  p2-*-delta     the same upserts with `format = "delta"` (lakefold's Delta sink) against the same MERGE
  p4-load        the initial load of M insert events into `sales` (peak RSS is the P4 figure)
  p5-restart     restart + one commit of 100 changes on an M/10-row table with a full active timeline

    python3 benches/e2e.py --bin target/release/lakefold [--events 200000] [--rows 1000000] [--repeat 3]

Prints one line per run and a summary table: seconds, events/s, peak RSS, and the ratio peer/lakefold
(above 1: lakefold is faster).
"""
import argparse
import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
import gen_sales_events as gen  # noqa: E402

SALES_COLUMNS = ["SaleId", "UnitId", "StatusId", "ContractSubtotal", "ContractSigningDate", "AgentId"]

PEER_FOLD = r'''
import json, sys
import pyarrow as pa
from deltalake import write_deltalake
src, out = sys.argv[1], sys.argv[2]
cols = ["SaleId", "UnitId", "StatusId", "ContractSubtotal", "ContractSigningDate", "AgentId"]
last = {}
with open(src, "rb") as f:
    for line in f:
        m = json.loads(line)
        if m is None:
            continue
        p = m.get("payload", m)
        s = p["source"]
        pos = (s["commit_lsn"], s["change_lsn"], s["event_serial_no"])
        img = p["after"] if p["op"] != "d" else p["before"]
        k = img["SaleId"]
        old = last.get(k)
        if old is None or old[0] < pos:
            last[k] = (pos, p["op"] == "d", img)
rows = [{c: img[c] for c in cols} for _, deleted, img in last.values() if not deleted]
write_deltalake(out, pa.Table.from_pylist(rows), mode="overwrite")
print(len(rows))
'''

PEER_MERGE_SETUP = r'''
import sys
import pyarrow as pa
from deltalake import write_deltalake
out, rows = sys.argv[1], int(sys.argv[2])
ids = pa.array(range(1, rows + 1), pa.int32())
t = pa.table({"SaleId": ids, "UnitId": pa.array([i % 80 + 1 for i in range(rows)], pa.int32()),
              "StatusId": pa.array([1] * rows, pa.int32()),
              "ContractSubtotal": pa.array([str(i * 7) for i in range(rows)]),
              "ContractSigningDate": pa.array([1_700_000_000_000 + i for i in range(rows)], pa.int64()),
              "AgentId": pa.array([i % 25 + 1 for i in range(rows)], pa.int32())})
write_deltalake(out, t, mode="overwrite")
'''

PEER_MERGE = r'''
import json, sys
import pyarrow as pa
from deltalake import DeltaTable
table, changes = sys.argv[1], sys.argv[2]
rows = [json.loads(l) for l in open(changes)]
src = pa.table({"SaleId": pa.array([r["SaleId"] for r in rows], pa.int32()),
                "UnitId": pa.array([r["UnitId"] for r in rows], pa.int32()),
                "StatusId": pa.array([r["StatusId"] for r in rows], pa.int32()),
                "ContractSubtotal": pa.array([str(r["ContractSubtotal"]) for r in rows]),
                "ContractSigningDate": pa.array([r["ContractSigningDate"] for r in rows], pa.int64()),
                "AgentId": pa.array([r["AgentId"] for r in rows], pa.int32())})
(DeltaTable(table).merge(source=src, predicate="t.SaleId = s.SaleId", source_alias="s", target_alias="t")
 .when_matched_update_all().when_not_matched_insert_all().execute())
'''


def timed(argv, cwd=None):
    """(seconds, peak RSS MiB) of one child process, measured with wait4 (its own rusage only)."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    secs = time.perf_counter() - start
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit("%s exited %d:\n%s" % (argv[:3], code, err[-3000:]))
    timed.last_stderr = err
    return secs, usage.ru_maxrss / 1024


def store_requests():
    """lakefold's own count of object-store requests of its last run (`object store: N requests (...)`)."""
    for line in getattr(timed, "last_stderr", "").splitlines():
        if line.startswith("object store:"):
            return line[len("object store:"):].strip()
    return "?"


def lakefold_config(work, events, routes, fmt="hudi"):
    text = '[lake]\nuri = "%s"\nformat = "%s"\n\n[sources.events]\ntype = "debezium-file"\npath = "%s"\n' % (work / "lake", fmt, events)
    for table, key, columns, on_delete in routes:
        text += '\n[[route]]\ntable = "%s"\nsource = "events"\nfrom = "dbo.SALES"\nkey = %s\ncolumns = %s\non_delete = "%s"\n' % (
            table, json.dumps(key), json.dumps(columns), on_delete)
        if table == "sales":
            text += 'types = { ContractSubtotal = "decimal(18,4)", ContractSigningDate = "timestamp_ms" }\n'
    cfg = work / "lakefold.toml"
    cfg.write_text(text)
    return cfg


def write_stream(path, n, with_schema, seed=1):
    """Generated in a child process: the harness stays small, so the children it forks start small (a
    forked child's peak RSS counts the parent's memory until it execs)."""
    argv = [sys.executable, str(REPO / "scripts" / "gen_sales_events.py"), "--events", str(n), "--seed", str(seed)]
    if not with_schema:
        argv += ["--no-schema", "--decimal-mode", "string"]
    with open(path, "w") as f:
        subprocess.run(argv, stdout=f, check=True)


def insert_event(i, lsn):
    img = {"SaleId": i, "AgentId": i % 25 + 1, "AgentName": "Agent %d" % (i % 25 + 1), "UnitId": i % 80 + 1,
           "UnitName": "Unit %d" % (i % 80 + 1), "BuildingId": i % 16 + 1, "BuildingName": "Building %d" % (i % 16 + 1),
           "ProjectId": i % 5 + 1, "ProjectName": "Project %d" % (i % 5 + 1), "StatusId": 1, "StatusName": "Reserved",
           "ContractSubtotal": i * 7, "ContractSigningDate": 1_700_000_000_000 + i}
    return {"op": "c", "before": None, "after": img, "ts_ms": 1_700_000_000_000 + i,
            "commit_lsn": gen.lsn_text(lsn), "change_lsn": gen.lsn_text(lsn), "event_serial_no": 1}


def changes(rows, n, recent, seed=7):
    import random
    rng = random.Random(seed)
    keys = set()
    while len(keys) < n:
        if recent and rng.random() < 0.9:
            keys.add(rng.randint(rows - rows // 10 + 1, rows))
        else:
            keys.add(rng.randint(1, rows))
    return sorted(keys)


def run_p1(args, work, with_schema, results):
    name = "p1-schema" if with_schema else "p1-schemaless"
    n = args.events // 2 if with_schema else args.events
    events = work / ("%s.jsonl" % name)
    write_stream(events, n, with_schema)
    lines = sum(1 for _ in open(events))
    for _ in range(args.repeat):
        shutil.rmtree(work / "lake", ignore_errors=True)
        cfg = lakefold_config(work, events, gen.ROUTES)
        secs, rss = timed([args.bin, "--config", str(cfg), "run", "--once"])
        record(results, name, "lakefold (6 tables)", lines, secs, rss)
        shutil.rmtree(work / "peer", ignore_errors=True)
        secs, rss = timed([args.python, "-c", PEER_FOLD, str(events), str(work / "peer")])
        record(results, name, "python json.loads + delta-rs (1 table)", lines, secs, rss)


def run_p2(args, work, results):
    rows = args.rows
    events = work / "upsert.jsonl"
    with open(events, "w") as f:
        for i in range(1, rows + 1):
            f.write(gen.encode(insert_event(i, (0x27 << 48) + i * 16), False, "string") + "\n")
    sales = [r for r in gen.ROUTES if r[0] == "sales"]
    formats = args.formats.split(",")
    for variant, recent in (("p2-uniform", False), ("p2-recent", True)):
        if variant[3:] not in args.p2.split(","):
            continue
        keys = changes(rows, args.changes, recent)
        for rep in range(args.repeat):
            scenarios = []
            for fmt in formats:
                scenario = variant if fmt == "hudi" else "%s-%s" % (variant, fmt)
                scenarios.append(scenario)
                shutil.rmtree(work / "lake", ignore_errors=True)
                shutil.copy(events, work / "stream.jsonl")
                cfg = lakefold_config(work, work / "stream.jsonl", sales, fmt)
                secs, rss = timed([args.bin, "--config", str(cfg), "run", "--once"])
                if variant == "p2-uniform":
                    load = "p4-load" if fmt == "hudi" else "p4-load-%s" % fmt
                    record(results, load, "lakefold initial load (%s)" % fmt, rows, secs, rss)
                append_changes(work, keys)
                secs, rss = timed([args.bin, "--config", str(cfg), "run", "--once"])
                record(results, scenario, "lakefold upsert into %s" % fmt.capitalize(), len(keys), secs, rss)
                print("%-14s object store: %s" % (scenario, store_requests()), flush=True)
            shutil.rmtree(work / "delta", ignore_errors=True)
            timed([args.python, "-c", PEER_MERGE_SETUP, str(work / "delta"), str(rows)])
            secs, rss = timed([args.python, "-c", PEER_MERGE, str(work / "delta"), str(work / "changes.jsonl")])
            for scenario in scenarios:
                record(results, scenario, "delta-rs MERGE", len(keys), secs, rss)


def append_changes(work, keys):
    """The changes as Debezium updates appended to the stream, and as plain rows for the MERGE peer."""
    base = (0x28 << 48)
    with open(work / "stream.jsonl", "a") as f, open(work / "changes.jsonl", "w") as c:
        for j, k in enumerate(keys):
            before = insert_event(k, 0)["after"]
            after = dict(before, StatusId=2, StatusName="Signed", ContractSubtotal=before["ContractSubtotal"] + 1)
            e = {"op": "u", "before": before, "after": after, "ts_ms": 1_800_000_000_000,
                 "commit_lsn": gen.lsn_text(base + j * 16), "change_lsn": gen.lsn_text(base + j * 16), "event_serial_no": 2}
            f.write(gen.encode(e, False, "string") + "\n")
            c.write(json.dumps({col: after[col] for col in SALES_COLUMNS}) + "\n")


def run_p5(args, work, results):
    """Restarts on a table with a full active timeline: `run --once` after each append of 100 changes, 40
    times (archival keeps 20-30 commits active, the cleaner ten); each run is a restart, a resume from the
    table's checkpoint and one commit. Reports the last ten runs."""
    rows = args.rows // 10
    shutil.rmtree(work / "lake", ignore_errors=True)
    stream = work / "p5.jsonl"
    with open(stream, "w") as f:
        for i in range(1, rows + 1):
            f.write(gen.encode(insert_event(i, (0x27 << 48) + i * 16), False, "string") + "\n")
    sales = [r for r in gen.ROUTES if r[0] == "sales"]
    cfg = lakefold_config(work, stream, sales)
    timed([args.bin, "--config", str(cfg), "run", "--once"])
    base = (0x29 << 48)
    for round_ in range(40):
        with open(stream, "a") as f:
            for j in range(100):
                k = 1 + (round_ * 7919 + j * 104729) % rows
                before = insert_event(k, 0)["after"]
                after = dict(before, StatusId=3 + round_)
                lsn = base + (round_ * 100 + j) * 16
                e = {"op": "u", "before": before, "after": after, "ts_ms": 1_800_000_000_000,
                     "commit_lsn": gen.lsn_text(lsn), "change_lsn": gen.lsn_text(lsn), "event_serial_no": 1}
                f.write(gen.encode(e, False, "string") + "\n")
        secs, rss = timed([args.bin, "--config", str(cfg), "run", "--once"])
        if round_ >= 30:
            record(results, "p5-restart", "lakefold restart + 1 commit", 100, secs, rss)
    timeline = len(list((work / "lake" / "sales" / ".hoodie").iterdir()))
    print("%-14s .hoodie/ holds %d entries after 41 commits" % ("p5-restart", timeline), flush=True)


def record(results, scenario, who, n, secs, rss):
    results.setdefault((scenario, who), []).append((secs, rss, n))
    print("%-14s %-40s %9d in %7.2f s = %9.0f /s, peak RSS %6.0f MiB" % (scenario, who, n, secs, n / secs, rss), flush=True)


def summary(results):
    print("\n%-14s %-40s %9s %10s %10s %8s" % ("scenario", "who", "median s", "per s", "RSS MiB", "ratio"))
    scenarios = []
    for (s, _) in results:
        if s not in scenarios:
            scenarios.append(s)
    for s in scenarios:
        rows = [(who, v) for (sc, who), v in results.items() if sc == s]
        ours = next((statistics.median(x[0] for x in v) for who, v in rows if who.startswith("lakefold")), None)
        for who, v in rows:
            med = statistics.median(x[0] for x in v)
            rss = statistics.median(x[1] for x in v)
            ratio = "" if who.startswith("lakefold") or ours is None else "%.2fx" % (med / ours)
            print("%-14s %-40s %9.2f %10.0f %10.0f %8s" % (s, who, med, v[0][2] / med, rss, ratio))
    print("(ratio = peer seconds / lakefold seconds: above 1, lakefold is faster)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True, help="the lakefold release binary")
    ap.add_argument("--python", default=sys.executable, help="a Python with pyarrow and deltalake")
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--changes", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--p2", default="uniform,recent", help="p2 variants: uniform, recent")
    ap.add_argument("--formats", default="hudi,delta", help="p2 table formats lakefold writes: hudi, delta")
    ap.add_argument("--only", default="p1,p2,p5", help="comma-separated: p1, p2, p5")
    args = ap.parse_args()
    results = {}
    with tempfile.TemporaryDirectory(prefix="lakefold-bench-") as tmp:
        work = pathlib.Path(tmp)
        only = args.only.split(",")
        if "p1" in only:
            run_p1(args, work, False, results)
            run_p1(args, work, True, results)
        if "p2" in only:
            run_p2(args, work, results)
        if "p5" in only:
            run_p5(args, work, results)
    summary(results)


if __name__ == "__main__":
    main()
