"""Tables on S3 (moto): the same code path as local disk, read back from S3 by hudi-rs and daft;
completed instants published with create-only PUTs."""
import json

from aws_fixtures import moto  # noqa: F401  (fixture)
from conftest import as_table, gen, lakefold, write_events


def s3_config(tmp, bucket, events_path, routes, extra_routes=""):
    text = '[lake]\nuri = "s3://%s/warehouse/erp"\n\n[sources.events]\ntype = "debezium-file"\npath = "%s"\n' % (bucket, events_path)
    for table, key, columns, on_delete in routes:
        text += '\n[[route]]\ntable = "%s"\nsource = "events"\nfrom = "dbo.SALES"\nkey = %s\ncolumns = %s\non_delete = "%s"\n' % (
            table, json.dumps(key), json.dumps(columns), on_delete)
    text += extra_routes
    cfg = tmp / "lakefold.toml"
    cfg.write_text(text)
    return cfg


BY_PROJECT = '''
[[route]]
table = "sales_by_project"
source = "events"
from = "dbo.SALES"
key = ["SaleId"]
columns = ["SaleId", "ProjectId", "StatusId", "ContractSubtotal"]
partition_by = ["ProjectId"]
on_delete = "delete"
'''


def test_six_routes_and_a_partitioned_route_land_on_s3_and_read_back(tmp, moto):
    import subprocess
    from conftest import BIN
    bucket = moto.new_bucket()
    events = gen.generate(900, seed=61)
    write_events(tmp / "events.jsonl", events[:500])
    cfg = s3_config(tmp, bucket, tmp / "events.jsonl", gen.ROUTES, BY_PROJECT)

    def run():
        proc = subprocess.run([BIN, "--config", str(cfg), "run", "--once"], env=moto.env(), capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc

    run()
    write_events(tmp / "events.jsonl", events[500:], append=True)
    run()
    expected = gen.expected_tables(events)
    base = "s3://%s/warehouse/erp" % bucket
    for table, key, columns, _ in gen.ROUTES:
        assert as_table(moto.read_hudi("%s/%s" % (base, table)), key, columns) == expected[table], table
        assert as_table(moto.read_daft("%s/%s" % (base, table), columns), key, columns) == expected[table], table
    rows = moto.read_hudi(base + "/sales_by_project")
    assert {r["SaleId"] for r in rows} == {k[0] for k in expected["sales"]}
    assert {r["_hoodie_partition_path"] for r in rows} == {"ProjectId=%d" % r["ProjectId"] for r in rows}
    listing = moto.client("s3").list_objects_v2(Bucket=bucket, Prefix="warehouse/erp/sales/.hoodie/")
    names = [o["Key"].rsplit("/", 1)[1] for o in listing.get("Contents", [])]
    assert "hoodie.properties" in names and len([n for n in names if n.endswith(".commit")]) == 2
