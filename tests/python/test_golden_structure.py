"""lakefold's tables compared in structure with the Spark Hudi 0.14 golden tables in tests/data/hudi-golden
(vendored from shared/hudi-golden, Apache-2.0, with its LICENSE and NOTICE):
hoodie.properties keys and checksum, timeline files, commit JSON shape, base file naming, meta columns,
partition metadata and parquet footer keys."""
import json
import pathlib
import re
import zipfile
import zlib

import pyarrow.parquet as pq
import pytest

from conftest import REPO, gen, lakefold, write_config, write_events

GOLDEN = REPO / "tests" / "data" / "hudi-golden"

NAME = re.compile(r"^(?P<id>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}-\d+)_(?P<token>\d+-\d+-\d+)_(?P<instant>\d{17})\.parquet$")


def golden(tmp_path_factory, name):
    out = tmp_path_factory.mktemp("golden")
    with zipfile.ZipFile(GOLDEN / (name + ".zip")) as z:
        z.extractall(out)
    return out / name


def props(table):
    out = {}
    for line in (table / ".hoodie" / "hoodie.properties").read_text().splitlines():
        if line and not line.startswith("#"):
            k, v = line.split("=", 1)
            out[k] = v.replace("\\:", ":").replace("\\=", "=")
    return out


def base_files(table):
    return [p for p in table.rglob("*.parquet") if "__MACOSX" not in str(p) and ".hoodie" not in p.parts]


@pytest.fixture(scope="module")
def ours(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ours")
    events = gen.generate(800, seed=31)
    write_events(tmp / "events.jsonl", events[:500])
    extra = '''
[[route]]
table = "by_project"
source = "events"
from = "dbo.SALES"
key = ["SaleId", "AgentId"]
columns = ["SaleId", "AgentId", "ProjectId", "BuildingId", "ContractSubtotal"]
partition_by = ["ProjectId", "BuildingId"]
on_delete = "delete"
'''
    cfg = write_config(tmp, tmp / "events.jsonl", extra_routes=extra)
    lakefold("--config", cfg, "run", "--once")
    write_events(tmp / "events.jsonl", events[500:], append=True)
    lakefold("--config", cfg, "run", "--once")
    return tmp / "lake"


@pytest.mark.parametrize("golden_name,our_table", [
    ("v6_nonpartitioned", "sales"),
    ("v6_complexkeygen_hivestyle", "by_project"),
])
def test_hoodie_properties_have_the_golden_keys_values_and_checksum(tmp_path_factory, ours, golden_name, our_table):
    g = props(golden(tmp_path_factory, golden_name))
    o = props(ours / our_table)
    required = set(g) - {"hoodie.table.create.schema"}
    assert required <= set(o), required - set(o)
    for key in ["hoodie.table.type", "hoodie.table.version", "hoodie.timeline.layout.version", "hoodie.archivelog.folder",
                "hoodie.table.keygenerator.class", "hoodie.datasource.write.hive_style_partitioning",
                "hoodie.datasource.write.partitionpath.urlencode", "hoodie.datasource.write.drop.partition.columns"]:
        assert o[key] == g[key], key
    for p in (g, o):
        assert int(p["hoodie.table.checksum"]) == zlib.crc32(("%s.%s" % (p["hoodie.database.name"], p["hoodie.table.name"])).encode())
    assert "hoodie.table.metadata.partitions" not in o
    assert o["hoodie.table.timeline.timezone"] == "UTC"
    assert o["hoodie.table.precombine.field"] == "_lakefold_position"
    if our_table == "by_project":
        assert o["hoodie.table.partition.fields"] == "ProjectId,BuildingId"


def test_timeline_and_commit_json_have_the_golden_shape(tmp_path_factory, ours):
    g = golden(tmp_path_factory, "v6_nonpartitioned")
    o = ours / "sales"
    for table in (g, o):
        names = sorted(p.name for p in (table / ".hoodie").iterdir() if p.is_file() and p.name[0].isdigit())
        instants = sorted({n.split(".")[0] for n in names})
        assert len(instants) == 2
        for i in instants:
            assert {i + ".commit.requested", i + ".inflight", i + ".commit"} <= set(names)
            assert (table / ".hoodie" / (i + ".commit.requested")).stat().st_size == 0
    gc = json.loads(sorted((g / ".hoodie").glob("*.commit"))[-1].read_text())
    oc = json.loads(sorted((o / ".hoodie").glob("*.commit"))[-1].read_text())
    assert set(oc) == set(gc)
    g_stat = next(iter(gc["partitionToWriteStats"].values()))[0]
    o_stat = next(iter(oc["partitionToWriteStats"].values()))[0]
    assert set(o_stat) == set(g_stat)
    assert list(oc["partitionToWriteStats"]) == [""]
    assert o_stat["partitionPath"] == "" and o_stat["path"] == pathlib.Path(o_stat["path"]).name
    assert o_stat["prevCommit"] != "null" and o_stat["numUpdateWrites"] > 0
    assert (o / o_stat["path"]).stat().st_size == o_stat["fileSizeInBytes"] == o_stat["totalWriteBytes"]
    assert oc["operationType"] == gc["operationType"] == "UPSERT"
    schema = json.loads(oc["extraMetadata"]["schema"])
    gschema = json.loads(gc["extraMetadata"]["schema"])
    assert schema["type"] == gschema["type"] == "record"
    assert schema["name"] == "sales_record" and schema["namespace"] == "hoodie.sales"
    assert gschema["name"].endswith("_record") and gschema["namespace"].startswith("hoodie.")
    for f in schema["fields"]:
        assert f["type"][0] == "null" and f["default"] is None
    assert not any(f["name"].startswith("_hoodie_") for f in schema["fields"])
    checkpoint = json.loads(oc["extraMetadata"]["lakefold.checkpoint"])
    assert checkpoint["events"]["type"] == "debezium-file"


def test_base_files_meta_columns_and_footers_match_spark(tmp_path_factory, ours):
    g = golden(tmp_path_factory, "v6_complexkeygen_hivestyle")
    o = ours / "by_project"
    for table in (g, o):
        files = base_files(table)
        assert files
        for f in files:
            m = NAME.match(f.name)
            assert m, f.name
            schema = pq.read_schema(f)
            assert schema.names[:5] == ["_hoodie_commit_time", "_hoodie_commit_seqno", "_hoodie_record_key",
                                        "_hoodie_partition_path", "_hoodie_file_name"]
            assert all(str(t) in ("string", "large_string") for t in schema.types[:5])
            meta = pq.read_metadata(f).metadata
            for key in (b"hoodie_min_record_key", b"hoodie_max_record_key", b"parquet.avro.schema"):
                assert key in meta, (f, key)
            rows = pq.read_table(f).to_pylist()
            rel = f.parent.relative_to(table).as_posix()
            for r in rows:
                assert r["_hoodie_file_name"] == f.name
                assert r["_hoodie_partition_path"] == rel
                assert re.fullmatch(r"\d{17}_\d+_\d+", r["_hoodie_commit_seqno"])
                assert r["_hoodie_commit_time"] <= m.group("instant")
                assert r["_hoodie_commit_seqno"].startswith(r["_hoodie_commit_time"] + "_")
                assert re.fullmatch(r"[^:,]+:[^:,]+,[^:,]+:[^:,]+", r["_hoodie_record_key"]), r["_hoodie_record_key"]
            keys = sorted(r["_hoodie_record_key"] for r in rows)
            if keys:
                assert meta[b"hoodie_min_record_key"].decode() == keys[0]
                assert meta[b"hoodie_max_record_key"].decode() == keys[-1]
    # decimals are FIXED_LEN_BYTE_ARRAY as Spark writes them
    f = base_files(o)[0]
    col = pq.ParquetFile(f).schema.column(pq.read_schema(f).names.index("ContractSubtotal"))
    gcol = pq.ParquetFile(base_files(g)[0]).schema.column(pq.read_schema(base_files(g)[0]).names.index("decimalField"))
    assert col.physical_type == gcol.physical_type == "FIXED_LEN_BYTE_ARRAY"


def test_partition_metadata_matches_spark(tmp_path_factory, ours):
    g = golden(tmp_path_factory, "v6_complexkeygen_hivestyle")
    o = ours / "by_project"
    for table, depth in ((g, 2), (o, 2)):
        metas = [p for p in table.rglob(".hoodie_partition_metadata") if "__MACOSX" not in str(p)]
        assert metas
        for p in metas:
            kv = dict(l.split("=", 1) for l in p.read_text().splitlines() if l and not l.startswith("#"))
            assert set(kv) == {"commitTime", "partitionDepth"}
            assert int(kv["partitionDepth"]) == depth == len(p.parent.relative_to(table).parts)
            assert re.fullmatch(r"\d{17}", kv["commitTime"])
            assert all("=" in part for part in p.parent.relative_to(table).parts)
    nonpart = props(ours / "sales")
    assert "hoodie.table.partition.fields" not in nonpart
    kv = (ours / "sales" / ".hoodie_partition_metadata").read_text()
    assert "partitionDepth=0" in kv
