"""Tables on S3 (moto): the same code path as local disk, read back from S3 by hudi-rs and daft;
completed instants published with create-only PUTs."""
import json

from aws_fixtures import moto  # noqa: F401  (fixture)
from conftest import as_table, gen, lakefold, write_events


def s3_config(tmp, bucket, events_path, routes, extra_routes="", catalog=""):
    text = '[lake]\nuri = "s3://%s/warehouse/erp"\n%s\n[sources.events]\ntype = "debezium-file"\npath = "%s"\n' % (bucket, catalog, events_path)
    for table, key, columns, on_delete in routes:
        text += '\n[[route]]\ntable = "%s"\nsource = "events"\nfrom = "dbo.SALES"\nkey = %s\ncolumns = %s\non_delete = "%s"\n' % (
            table, json.dumps(key), json.dumps(columns), on_delete)
    text += extra_routes
    cfg = tmp / "lakefold.toml"
    cfg.write_text(text)
    return cfg


def glue_database(moto, prefix):
    """A new bucket and a Glue database named after it: (bucket, glue client, database)."""
    bucket = moto.new_bucket()
    glue = moto.client("glue")
    database = "%s_%s" % (prefix, bucket.split("-")[1])
    glue.create_database(DatabaseInput={"Name": database})
    return bucket, glue, database


def glue_catalog(database):
    return '[catalog]\ntype = "glue"\ndatabase = "%s"\nregion = "us-east-1"\n' % database


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
    bucket, glue, database = glue_database(moto, "mycompany")
    events = gen.generate(900, seed=61)
    write_events(tmp / "events.jsonl", events[:500])
    cfg = s3_config(tmp, bucket, tmp / "events.jsonl", gen.ROUTES, BY_PROJECT,
                    catalog=glue_catalog(database))

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

    # Glue holds each table as Hudi's own sync registers a COW table
    for table, key, columns, _ in gen.ROUTES + [("sales_by_project", ["SaleId"], ["SaleId", "StatusId", "ContractSubtotal"], "delete")]:
        t = glue.get_table(DatabaseName=database, Name=table)["Table"]
        sd = t["StorageDescriptor"]
        assert t["TableType"] == "EXTERNAL_TABLE"
        assert sd["InputFormat"] == "org.apache.hudi.hadoop.HoodieParquetInputFormat"
        assert sd["OutputFormat"] == "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"
        assert sd["SerdeInfo"]["SerializationLibrary"] == "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
        assert sd["SerdeInfo"]["Parameters"] == {"serialization.format": "1", "path": "%s/%s" % (base, table)}
        assert sd["Location"] == "%s/%s" % (base, table)
        names = [c["Name"] for c in sd["Columns"]]
        assert names[:5] == ["_hoodie_commit_time", "_hoodie_commit_seqno", "_hoodie_record_key", "_hoodie_partition_path", "_hoodie_file_name"]
        assert all(c in names for c in columns)
        params = t["Parameters"]
        assert params["EXTERNAL"] == "TRUE" and params["spark.sql.sources.provider"] == "hudi"
        commits = sorted(o["Key"].rsplit("/", 1)[1] for o in moto.client("s3").list_objects_v2(
            Bucket=bucket, Prefix="warehouse/erp/%s/.hoodie/" % table)["Contents"] if o["Key"].endswith(".commit"))
        assert params["last_commit_time_sync"] == commits[-1].split(".")[0], table
        spark = json.loads(params["spark.sql.sources.schema.part.0"])
        assert [f["name"] for f in spark["fields"]][:5] == names[:5]
    types = {c["Name"]: c["Type"] for c in glue.get_table(DatabaseName=database, Name="sales")["Table"]["StorageDescriptor"]["Columns"]}
    assert types["ContractSubtotal"] == "decimal(18,4)" and types["ContractSigningDate"] == "timestamp" and types["SaleId"] == "int"
    part = glue.get_table(DatabaseName=database, Name="sales_by_project")["Table"]
    assert [k["Name"] for k in part["PartitionKeys"]] == ["ProjectId"]
    assert "ProjectId" not in [c["Name"] for c in part["StorageDescriptor"]["Columns"]]
    partitions = glue.get_partitions(DatabaseName=database, TableName="sales_by_project")["Partitions"]
    assert sorted(p["Values"][0] for p in partitions) == sorted({str(r["ProjectId"]) for r in rows})
    for p in partitions:
        assert p["StorageDescriptor"]["Location"] == "%s/sales_by_project/ProjectId=%s" % (base, p["Values"][0])


def test_validate_checks_the_glue_database_exists(tmp, moto):
    import subprocess
    from conftest import BIN
    write_events(tmp / "events.jsonl", gen.generate(10, seed=1))
    cfg = s3_config(tmp, moto.new_bucket(), tmp / "events.jsonl", gen.ROUTES[:1],
                    catalog='[catalog]\ntype = "glue"\ndatabase = "no_such_db"\nregion = "us-east-1"\n')
    proc = subprocess.run([BIN, "--config", str(cfg), "validate"], env=moto.env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 78 and "no_such_db" in proc.stderr, proc.stderr[-2000:]


def test_two_writers_racing_on_one_s3_table_one_wins_the_other_reports_a_conflict(tmp, moto):
    import signal
    import subprocess
    import time
    from conftest import BIN
    bucket = moto.new_bucket()
    events = gen.generate(1500, seed=67)
    write_events(tmp / "events.jsonl", events)
    sales = [r for r in gen.ROUTES if r[0] == "sales"]
    cfg = s3_config(tmp, bucket, tmp / "events.jsonl", sales)
    cfg.write_text(cfg.read_text().replace("[sources.events]", '[commit]\ninterval = "100ms"\nmax_events = 60\n\n[sources.events]'))
    logs = [open(tmp / ("writer-%d.log" % i), "w+") for i in range(2)]
    procs = [subprocess.Popen([BIN, "--config", str(cfg), "run"], env=moto.env(), stderr=logs[i]) for i in range(2)]
    expected = gen.expected_tables(events)["sales"]
    base = "s3://%s/warehouse/erp/sales" % bucket
    try:
        deadline = time.time() + 120
        while time.time() < deadline and all(p.poll() is None for p in procs):
            time.sleep(0.2)
        losers = [i for i, p in enumerate(procs) if p.poll() is not None]
        assert len(losers) == 1, "both writers kept running: no conflict detected"
        survivor = procs[1 - losers[0]]
        while time.time() < deadline:
            try:
                if as_table(moto.read_hudi(base), ["SaleId"], sales[0][2]) == expected:
                    break
            except Exception:
                pass
            time.sleep(0.5)
        assert survivor.poll() is None, "the survivor stopped"
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                p.wait(timeout=30)
    loser_log = (tmp / ("writer-%d.log" % losers[0])).read_text()
    assert procs[losers[0]].returncode == 1, loser_log[-2000:]
    assert "another writer committed to this table" in loser_log, loser_log[-2000:]
    assert survivor.returncode == 0
    assert as_table(moto.read_hudi(base), ["SaleId"], sales[0][2]) == expected
    assert as_table(moto.read_daft(base, sales[0][2]), ["SaleId"], sales[0][2]) == expected
    listing = moto.client("s3").list_objects_v2(Bucket=bucket, Prefix="warehouse/erp/sales/.hoodie/")
    names = [o["Key"].rsplit("/", 1)[1] for o in listing.get("Contents", [])]
    # No instant is left pending (commits and the cleaner's `.clean` instants alike).
    pending = {n.split(".")[0] for n in names if n.endswith(".inflight")} - {n.split(".")[0] for n in names if n.endswith((".commit", ".clean"))}
    assert not pending, pending


def test_credentials_from_a_shared_credentials_profile(tmp, moto):
    import subprocess
    from conftest import BIN
    bucket = moto.new_bucket()
    events = gen.generate(200, seed=71)
    write_events(tmp / "events.jsonl", events)
    routes = gen.ROUTES[:1]
    cfg = s3_config(tmp, bucket, tmp / "events.jsonl", routes)
    (tmp / "credentials").write_text("[lakefold]\naws_access_key_id = testing\naws_secret_access_key = testing\n")
    (tmp / "config").write_text("[profile lakefold]\nregion = us-east-1\n")
    env = {k: v for k, v in moto.env().items() if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_DEFAULT_REGION")}
    env.update(AWS_PROFILE="lakefold", AWS_SHARED_CREDENTIALS_FILE=str(tmp / "credentials"), AWS_CONFIG_FILE=str(tmp / "config"),
               AWS_EC2_METADATA_DISABLED="true")
    proc = subprocess.run([BIN, "--config", str(cfg), "run", "--once"], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    table, key, columns, _ = routes[0]
    got = as_table(moto.read_hudi("s3://%s/warehouse/erp/%s" % (bucket, table)), key, columns)
    assert got == gen.expected_tables(events)[table]


def test_a_new_column_updates_the_glue_table_and_old_rows_read_as_null(tmp, moto):
    import subprocess
    from conftest import BIN
    bucket, glue, database = glue_database(moto, "evolve")
    events = gen.generate(600, seed=73)
    write_events(tmp / "events.jsonl", events[:300])
    catalog = glue_catalog(database)
    narrow = [("sales", ["SaleId"], ["SaleId", "StatusId"], "delete")]
    cfg = s3_config(tmp, bucket, tmp / "events.jsonl", narrow, catalog=catalog)
    run = lambda: subprocess.run([BIN, "--config", str(cfg), "run", "--once"], env=moto.env(), capture_output=True, text=True, timeout=120)
    assert run().returncode == 0
    cols = [c["Name"] for c in glue.get_table(DatabaseName=database, Name="sales")["Table"]["StorageDescriptor"]["Columns"]]
    assert "AgentId" not in cols
    wide = [("sales", ["SaleId"], ["SaleId", "StatusId", "AgentId"], "delete")]
    cfg = s3_config(tmp, bucket, tmp / "events.jsonl", wide, catalog=catalog)
    write_events(tmp / "events.jsonl", events[300:], append=True)
    proc = run()
    assert proc.returncode == 0, proc.stderr[-3000:]
    cols = {c["Name"]: c["Type"] for c in glue.get_table(DatabaseName=database, Name="sales")["Table"]["StorageDescriptor"]["Columns"]}
    assert cols["AgentId"] == "int"
    rows = moto.read_hudi("s3://%s/warehouse/erp/sales" % bucket)
    expected = gen.expected_tables(events)["sales"]
    assert {r["SaleId"] for r in rows} == {k[0] for k in expected}
    assert any(r["AgentId"] is not None for r in rows)


def test_a_glue_outage_never_undoes_the_data_and_the_next_run_catches_up(tmp, moto):
    import subprocess
    from conftest import BIN
    from servers import free_port
    bucket, glue, database = glue_database(moto, "outage")
    events = gen.generate(300, seed=79)
    write_events(tmp / "events.jsonl", events)
    routes = [r for r in gen.ROUTES if r[0] == "sales"]
    dead = '[catalog]\ntype = "glue"\ndatabase = "%s"\nregion = "us-east-1"\nendpoint = "http://127.0.0.1:%d"\n' % (database, free_port())
    cfg = s3_config(tmp, bucket, tmp / "events.jsonl", routes, catalog=dead)
    proc = subprocess.run([BIN, "--config", str(cfg), "run", "--once"], env=moto.env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "catalog sync failed" in proc.stderr
    base = "s3://%s/warehouse/erp/sales" % bucket
    assert as_table(moto.read_hudi(base), ["SaleId"], routes[0][2]) == gen.expected_tables(events)["sales"]
    # Glue is back: a run with nothing new to read still registers the table at its latest commit
    good = glue_catalog(database)
    cfg = s3_config(tmp, bucket, tmp / "events.jsonl", routes, catalog=good)
    proc = subprocess.run([BIN, "--config", str(cfg), "run", "--once"], env=moto.env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "0 records read" in proc.stderr, proc.stderr[-3000:]
    commits = sorted(o["Key"].rsplit("/", 1)[1] for o in moto.client("s3").list_objects_v2(
        Bucket=bucket, Prefix="warehouse/erp/sales/.hoodie/")["Contents"] if o["Key"].endswith(".commit"))
    table = glue.get_table(DatabaseName=database, Name="sales")["Table"]
    assert table["Parameters"]["last_commit_time_sync"] == commits[-1].split(".")[0]


def test_credentials_from_the_ecs_task_role_endpoint(tmp, moto):
    """The ECS container credentials endpoint (AWS_CONTAINER_CREDENTIALS_FULL_URI), served on loopback."""
    import datetime
    import http.server
    import subprocess
    import threading
    from conftest import BIN
    served = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            served.append(self.path)
            expiry = (datetime.datetime.utcnow() + datetime.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
            body = json.dumps({"AccessKeyId": "testing", "SecretAccessKey": "testing", "Token": "session-token",
                               "Expiration": expiry}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        bucket = moto.new_bucket()
        events = gen.generate(150, seed=83)
        write_events(tmp / "events.jsonl", events)
        routes = gen.ROUTES[:1]
        cfg = s3_config(tmp, bucket, tmp / "events.jsonl", routes)
        env = {k: v for k, v in moto.env().items() if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
        env.update(AWS_CONTAINER_CREDENTIALS_FULL_URI="http://127.0.0.1:%d/v2/credentials/task" % server.server_address[1],
                   AWS_SHARED_CREDENTIALS_FILE=str(tmp / "none"), AWS_CONFIG_FILE=str(tmp / "none"), AWS_EC2_METADATA_DISABLED="true")
        proc = subprocess.run([BIN, "--config", str(cfg), "run", "--once"], env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert served, "the credentials endpoint was never asked"
        table, key, columns, _ = routes[0]
        assert as_table(moto.read_hudi("s3://%s/warehouse/erp/%s" % (bucket, table)), key, columns) == gen.expected_tables(events)[table]
    finally:
        server.shutdown()
        server.server_close()


def test_the_dead_letter_table_is_registered_in_glue_only_when_asked(tmp, moto):
    import subprocess
    from conftest import BIN
    bucket, glue, database = glue_database(moto, "dl")
    events = gen.generate(200, seed=71)
    write_events(tmp / "events.jsonl", events)
    with open(tmp / "events.jsonl", "a") as f:
        f.write("{broken\n")
    catalog = glue_catalog(database)
    run = lambda cfg: subprocess.run([BIN, "--config", str(cfg), "run", "--once"], env=moto.env(), capture_output=True, text=True, timeout=120)
    proc = run(s3_config(tmp, bucket, tmp / "events.jsonl", gen.ROUTES[:1], catalog=catalog))
    assert proc.returncode == 0 and "1 dead letters" in proc.stderr, proc.stderr[-3000:]
    names = {t["Name"] for t in glue.get_tables(DatabaseName=database)["TableList"]}
    assert names == {gen.ROUTES[0][0]}, names
    # Opted in: the next run registers it (catching up with its existing commit).
    proc = run(s3_config(tmp, bucket, tmp / "events.jsonl", gen.ROUTES[:1], catalog=catalog + "register_dead_letters = true\n"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    t = glue.get_table(DatabaseName=database, Name="_lakefold_dead_letters")["Table"]
    cols = [c["Name"] for c in t["StorageDescriptor"]["Columns"]]
    assert "raw_base64" in cols and "error" in cols and t["Parameters"]["spark.sql.sources.provider"] == "hudi"


def test_delta_tables_on_s3_read_back_with_deltalake_and_register_in_glue_as_athena_and_trino_read_them(tmp, moto):
    import subprocess
    from conftest import BIN
    from deltalake import DeltaTable
    bucket, glue, database = glue_database(moto, "deltalake")
    events = gen.generate(700, seed=63)
    write_events(tmp / "events.jsonl", events[:400])
    cfg = s3_config(tmp, bucket, tmp / "events.jsonl", gen.ROUTES, BY_PROJECT, catalog=glue_catalog(database))
    cfg.write_text(cfg.read_text().replace("[lake]\n", '[lake]\nformat = "delta"\n', 1))

    def run():
        proc = subprocess.run([BIN, "--config", str(cfg), "run", "--once"], env=moto.env(), capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]

    run()
    write_events(tmp / "events.jsonl", events[400:], append=True)
    run()
    expected = gen.expected_tables(events)
    base = "s3://%s/warehouse/erp" % bucket
    for table, key, columns, _ in gen.ROUTES:
        dt = DeltaTable("%s/%s" % (base, table), storage_options=moto.storage_options())
        assert as_table(dt.to_pyarrow_table().to_pylist(), key, columns) == expected[table], table
        assert dt.transaction_version("lakefold-events") == 1, table
    by_project = DeltaTable(base + "/sales_by_project", storage_options=moto.storage_options())
    assert by_project.metadata().partition_columns == ["ProjectId"]
    assert {r["SaleId"] for r in by_project.to_pyarrow_table().to_pylist()} == {k[0] for k in expected["sales"]}

    for table, _, columns, _ in gen.ROUTES + [("sales_by_project", ["SaleId"], ["SaleId", "StatusId", "ContractSubtotal"], "delete")]:
        t = glue.get_table(DatabaseName=database, Name=table)["Table"]
        sd = t["StorageDescriptor"]
        assert t["TableType"] == "EXTERNAL_TABLE"
        params = t["Parameters"]
        assert params["spark.sql.sources.provider"] == "delta" and params["table_type"] == "DELTA", params
        assert params["EXTERNAL"] == "TRUE"
        assert sd["Location"] == "%s/%s" % (base, table)
        assert sd["SerdeInfo"]["Parameters"] == {"serialization.format": "1", "path": "%s/%s" % (base, table)}
        assert sd["SerdeInfo"]["SerializationLibrary"] == "org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe"
        assert sd["InputFormat"] == "org.apache.hadoop.mapred.SequenceFileInputFormat"
        names = [c["Name"] for c in sd["Columns"]]
        assert not any(n.startswith("_hoodie") for n in names)
        assert all(c in names for c in columns if c != "ProjectId")
        dt = DeltaTable("%s/%s" % (base, table), storage_options=moto.storage_options())
        assert params["lakefold.delta_version_sync"] == str(dt.version()), table
    part = glue.get_table(DatabaseName=database, Name="sales_by_project")["Table"]
    assert [k["Name"] for k in part["PartitionKeys"]] == ["ProjectId"]
    assert glue.get_partitions(DatabaseName=database, TableName="sales_by_project")["Partitions"] == []
    types = {c["Name"]: c["Type"] for c in glue.get_table(DatabaseName=database, Name="sales")["Table"]["StorageDescriptor"]["Columns"]}
    assert types["ContractSubtotal"] == "decimal(18,4)" and types["ContractSigningDate"] == "timestamp"
