"""Partitioned routes (hive-style paths), composite keys (ComplexKeyGenerator), soft deletes, renames."""
import json

from conftest import as_table, gen, lakefold, read_daft, read_hudi, write_config, write_events


def props(table_dir):
    out = {}
    for line in (table_dir / ".hoodie" / "hoodie.properties").read_text().splitlines():
        if line and not line.startswith("#"):
            k, v = line.split("=", 1)
            out[k] = v
    return out


def test_partitioned_route_writes_hive_style_partitions_with_metadata_and_moves_keys(tmp):
    events = gen.generate(1500, seed=13)
    path = tmp / "events.jsonl"
    write_events(path, events)
    route = ("sales_by_project", ["SaleId"], ["SaleId", "ProjectId", "BuildingId", "StatusId", "ContractSubtotal"], "delete")
    cfg = write_config(tmp, path, routes=[route], route_extra={"sales_by_project": 'partition_by = ["ProjectId"]\n'})
    lakefold("--config", cfg, "run", "--once")
    table = tmp / "lake" / "sales_by_project"
    p = props(table)
    assert p["hoodie.table.partition.fields"] == "ProjectId"
    assert p["hoodie.table.keygenerator.class"] == "org.apache.hudi.keygen.SimpleKeyGenerator"
    expected = {}
    for line, e in enumerate(events, 1):
        if e is None:
            continue
        img = e["before"] if e["op"] == "d" else e["after"]
        pos = gen.lsn_key(e, line)
        if img["SaleId"] not in expected or pos > expected[img["SaleId"]][0]:
            expected[img["SaleId"]] = (pos, None if e["op"] == "d" else img)
    want = {k: v for k, (_, v) in expected.items() if v is not None}
    rows = read_hudi(table)
    got = as_table(rows, ["SaleId"], ["SaleId", "ProjectId"])
    assert got == {(k,): {"SaleId": k, "ProjectId": v["ProjectId"]} for k, v in want.items()}
    for r in rows:
        assert r["_hoodie_partition_path"] == "ProjectId=%d" % r["ProjectId"]
    dirs = sorted(d.name for d in table.iterdir() if d.is_dir() and not d.name.startswith("."))
    assert dirs == sorted({"ProjectId=%d" % v["ProjectId"] for v in want.values()})
    for d in dirs:
        meta = (table / d / ".hoodie_partition_metadata").read_text()
        assert "partitionDepth=1" in meta and "commitTime=" in meta
    assert len(read_daft(table, ["SaleId", "ProjectId"])) == len(want)


def test_composite_keys_use_the_complex_key_format_and_renamed_columns(tmp):
    events = gen.generate(500, seed=17)
    path = tmp / "events.jsonl"
    write_events(path, events)
    cfg = write_config(tmp, path, routes=[], extra_routes='''
[[route]]
table = "unit_status"
source = "events"
from = "dbo.SALES"
key = ["unit", "status"]
columns = { unit = "UnitId", status = "StatusId", status_name = "StatusName" }
partition_by = ["status"]
''')
    lakefold("--config", cfg, "run", "--once")
    table = tmp / "lake" / "unit_status"
    assert props(table)["hoodie.table.keygenerator.class"] == "org.apache.hudi.keygen.ComplexKeyGenerator"
    rows = read_hudi(table)
    assert rows and list(rows[0])[5:8] == ["unit", "status", "status_name"]
    for r in rows:
        assert r["_hoodie_record_key"] == "unit:%d,status:%d" % (r["unit"], r["status"])
    keys = {(r["unit"], r["status"]) for r in rows}
    want = {(e["after"]["UnitId"], e["after"]["StatusId"]) for e in events if e is not None and e["op"] != "d"}
    assert keys == want


def test_soft_deletes_keep_the_last_image_marked_deleted(tmp):
    events = gen.generate(800, seed=19)
    path = tmp / "events.jsonl"
    write_events(path, events)
    route = ("sales_history", ["SaleId"], ["SaleId", "StatusId"], "soft")
    cfg = write_config(tmp, path, routes=[route])
    lakefold("--config", cfg, "run", "--once")
    rows = {r["SaleId"]: r for r in read_hudi(tmp / "lake" / "sales_history")}
    last = {}
    for line, e in enumerate(events, 1):
        if e is not None:
            img = e["before"] if e["op"] == "d" else e["after"]
            pos = gen.lsn_key(e, line)
            if img["SaleId"] not in last or pos > last[img["SaleId"]][0]:
                last[img["SaleId"]] = (pos, e["op"] == "d", img["StatusId"])
    assert set(rows) == set(last)
    assert any(d for _, d, _ in last.values())
    for k, (_, deleted, status) in last.items():
        assert rows[k]["_lakefold_deleted"] is deleted
        assert rows[k]["StatusId"] == status
