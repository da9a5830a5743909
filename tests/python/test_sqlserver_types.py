"""SQL Server read directly and through Debezium land alike: every supported SQL Server type, once as the
change history lakefold-mssql-fixture serves to tiberius and once as the Debezium event (Connect schema as
Debezium's SqlServerValueConverters writes it under its defaults), both into Hudi tables in one run, read
back with hudi-rs and compared column by column: types and values. Also a schema change through a second
capture instance: the new column reaches the Hudi table and the Glue table."""
import re
import base64
import datetime
import json

import pytest

from aws_fixtures import moto  # noqa: F401  (fixture)
from conftest import BIN, gen, lakefold, read_daft
from test_sqlserver import start_fixture
EPOCH = datetime.datetime(1970, 1, 1)

# (column, SQL Server type, fixture value, Connect schema type, semantic name, parameters, Debezium value)
def _ts(text):
    return datetime.datetime.fromisoformat(text) - EPOCH


def _micros(text):
    d = _ts(text)
    return (d.days * 86400 + d.seconds) * 1_000_000 + d.microseconds


def _dec(text, scale):
    unscaled = int(text.replace(".", "")) if "." in text else int(text) * 10 ** scale
    return gen.decimal_b64(unscaled)


def _b64hex(h):
    return base64.b64encode(bytes.fromhex(h[2:])).decode()


TYPES = [
    ("c_tinyint", "tinyint", 200, "int16", None, None, 200),
    ("c_smallint", "smallint", -32000, "int16", None, None, -32000),
    ("c_int", "int", 2147483000, "int32", None, None, 2147483000),
    ("c_bigint", "bigint", 9007199254740993, "int64", None, None, 9007199254740993),
    ("c_bit", "bit", True, "boolean", None, None, True),
    ("c_decimal", "decimal(18,4)", "-70940.8467", "bytes", "org.apache.kafka.connect.data.Decimal",
     {"scale": "4", "connect.decimal.precision": "18"}, _dec("-70940.8467", 4)),
    ("c_numeric", "numeric(10,0)", "12345", "bytes", "org.apache.kafka.connect.data.Decimal",
     {"scale": "0", "connect.decimal.precision": "10"}, _dec("12345", 0)),
    ("c_money", "money", "123456.7891", "bytes", "org.apache.kafka.connect.data.Decimal",
     {"scale": "4", "connect.decimal.precision": "19"}, _dec("123456.7891", 4)),
    ("c_smallmoney", "smallmoney", "-2147.3648", "bytes", "org.apache.kafka.connect.data.Decimal",
     {"scale": "4", "connect.decimal.precision": "10"}, _dec("-2147.3648", 4)),
    ("c_float", "float", 3.141592653589793, "float64", None, None, 3.141592653589793),
    ("c_real", "real", 0.1, "float32", None, None, 0.1),
    ("c_char", "char(5)", "ab   ", "string", None, None, "ab   "),
    ("c_varchar", "varchar(20)", "plain text", "string", None, None, "plain text"),
    ("c_nchar", "nchar(3)", "日本 ", "string", None, None, "日本 "),
    ("c_nvarchar", "nvarchar(50)", "Ünïcødé 日本語", "string", None, None, "Ünïcødé 日本語"),
    ("c_binary", "binary(4)", "0x0102ABFF", "bytes", None, None, _b64hex("0x0102ABFF")),
    ("c_varbinary", "varbinary(16)", "0xDEADBEEF00", "bytes", None, None, _b64hex("0xDEADBEEF00")),
    ("c_guid", "uniqueidentifier", "6F9619FF-8B86-D011-B42D-00C04FC964FF", "string", None, None,
     "6F9619FF-8B86-D011-B42D-00C04FC964FF"),
    ("c_date", "date", "2024-03-11", "int32", "io.debezium.time.Date", None, _ts("2024-03-11").days),
    ("c_datetime", "datetime", "2024-03-11T08:40:58.500", "int64", "io.debezium.time.Timestamp", None,
     _micros("2024-03-11T08:40:58.500") // 1000),
    ("c_smalldatetime", "smalldatetime", "2024-03-11T08:41:00", "int64", "io.debezium.time.Timestamp", None,
     _micros("2024-03-11T08:41:00") // 1000),
    ("c_dt2_3", "datetime2(3)", "2024-03-11T08:40:58.123", "int64", "io.debezium.time.Timestamp", None,
     _micros("2024-03-11T08:40:58.123") // 1000),
    ("c_dt2_6", "datetime2(6)", "2024-03-11T08:40:58.123456", "int64", "io.debezium.time.MicroTimestamp", None,
     _micros("2024-03-11T08:40:58.123456")),
    ("c_dt2_7", "datetime2(7)", "2024-03-11T08:40:58.1234567", "int64", "io.debezium.time.NanoTimestamp", None,
     _micros("2024-03-11T08:40:58.123456") * 1000 + 700),
    ("c_dto", "datetimeoffset(7)", "2024-03-11T08:40:58.1234567+02:00", "string",
     "io.debezium.time.ZonedTimestamp", None, "2024-03-11T08:40:58.1234567+02:00"),
]

LSN = ("0000002b:00000e0d:0005", "0000002b:00000e0d:0002")


def debezium_line(values, serial, op="c"):
    fields = [{"type": "int32", "optional": False, "field": "Id"}]
    for name, _, _, ty, semantic, params, _ in TYPES:
        f = {"type": ty, "optional": True, "field": name}
        if semantic:
            f["name"], f["version"] = semantic, 1
        if params:
            f["parameters"] = params
        fields.append(f)
    row = {"type": "struct", "optional": True, "name": "mssql.dbo.TYPES.Value", "fields": fields}
    schema = {"type": "struct", "optional": False, "name": "mssql.dbo.TYPES.Envelope", "version": 1, "fields": [
        dict(row, field="before"), dict(row, field="after"), dict(gen.SOURCE_SCHEMA),
        {"type": "string", "optional": False, "field": "op"}, {"type": "int64", "optional": True, "field": "ts_ms"}]}
    payload = {"before": None, "after": values, "op": op, "ts_ms": 1710146458000,
               "source": {"version": "2.7.0.Final", "connector": "sqlserver", "name": "mssql", "ts_ms": 1710146458000,
                          "snapshot": "false", "db": "MYCOMPANY", "schema": "dbo", "table": "TYPES",
                          "commit_lsn": LSN[0], "change_lsn": LSN[1], "event_serial_no": serial}}
    return json.dumps({"schema": schema, "payload": payload}, ensure_ascii=False)


def types_history():
    cols = [{"name": "Id", "type": "int", "nullable": False, "key": True}]
    cols += [{"name": n, "type": t, "nullable": True, "key": False} for n, t, *_ in TYPES]
    full = {"Id": 1, **{n: v for n, _, v, *_ in TYPES}}
    nulls = {"Id": 2, **{n: None for n, *_ in TYPES}}
    start, seq = gen.lsn_hex(LSN[0]), gen.lsn_hex(LSN[1])
    changes = [{"start_lsn": start, "seqval": seq, "operation": 2, "values": v} for v in (full, nulls)]
    return {"database": "MYCOMPANY", "lsn_time_mapping": [{"start_lsn": start}],
            "capture_instances": [{"name": "dbo_TYPES", "source_schema": "dbo", "source_table": "TYPES",
                                   "start_lsn": start, "columns": cols, "changes": changes}]}


@pytest.fixture
def fixture_server(tmp):
    data = tmp / "history.json"
    data.write_text(json.dumps(types_history(), ensure_ascii=False))
    server, port = start_fixture(tmp, data)
    try:
        yield port, data
    finally:
        server.stop()


def read_with_schema(path):
    """(data column types, rows by Id, the LSN part of each row's position) as hudi-rs reads them."""
    from hudi import HudiTableBuilder
    import pyarrow as pa
    table = pa.Table.from_batches(HudiTableBuilder.from_base_uri(str(path)).build().read())
    data = [f for f in table.schema if not f.name.startswith("_")]
    rows = sorted(table.select([f.name for f in data]).to_pylist(), key=lambda r: r["Id"])
    # `2 1 <lsn triple><stream>`: the stream part (from its upper-case kind letter on) says where the record
    # came from (a line, the CDC tables); the numbers before it are lower-case length letters and hex digits.
    by_id = {r["Id"]: re.match(r"[^A-Z]*", p).group(0) for r, p in zip(table.select(["Id"]).to_pylist(),
                                                          table.column("_lakefold_position").to_pylist())}
    return {f.name: f.type for f in data}, rows, [by_id[r["Id"]] for r in rows]


def test_every_sql_server_type_lands_exactly_as_the_debezium_path_lands_it(tmp, fixture_server):
    port, _ = fixture_server
    full = {"Id": 1, **{n: dbz for n, *_, dbz in TYPES}}
    nulls = {"Id": 2, **{n: None for n, *_ in TYPES}}
    events = tmp / "types.jsonl"
    # Two changes of one (commit, change) LSN pair: Debezium numbers them 1 and 2.
    events.write_text(debezium_line(full, 1) + "\n" + debezium_line(nulls, 2) + "\n", encoding="utf-8")
    columns = json.dumps(["Id"] + [n for n, *_ in TYPES])
    cfg = tmp / "lakefold.toml"
    cfg.write_text("""[lake]
uri = "%s"

[sources.dbz]
type = "debezium-file"
path = "%s"

[sources.erp]
type = "sqlserver-cdc"
connection = "server=tcp:127.0.0.1,%d;database=MYCOMPANY;user=cdc;encrypt=false"
snapshot = "never"

[[route]]
table = "types_debezium"
source = "dbz"
from = "dbo.TYPES"
key = ["Id"]
columns = %s

[[route]]
table = "types_sqlserver"
source = "erp"
from = "dbo.TYPES"
key = ["Id"]
columns = %s
""" % (tmp / "lake", events, port, columns, columns))
    lakefold("--config", cfg, "run", "--once")
    dbz_types, dbz_rows, dbz_positions = read_with_schema(tmp / "lake" / "types_debezium")
    cdc_types, cdc_rows, cdc_positions = read_with_schema(tmp / "lake" / "types_sqlserver")
    # The same change has the same position on both paths, so they fold identically.
    assert cdc_positions == dbz_positions, (cdc_positions, dbz_positions)
    assert len(dbz_rows) == 2 and dbz_rows[1] == nulls, dbz_rows
    for name, sql_type, *_ in TYPES:
        assert cdc_types[name] == dbz_types[name], (name, sql_type, cdc_types[name], dbz_types[name])
        assert cdc_rows[0][name] == dbz_rows[0][name], (name, sql_type, cdc_rows[0][name], dbz_rows[0][name])
    assert cdc_rows == dbz_rows
    # Spot checks of the values themselves (not only their agreement).
    row = cdc_rows[0]
    assert str(row["c_decimal"]) == "-70940.8467" and str(row["c_money"]) == "123456.7891"
    assert row["c_dto"] == datetime.datetime(2024, 3, 11, 6, 40, 58, 123456, tzinfo=datetime.timezone.utc)
    assert row["c_dt2_7"].replace(tzinfo=None) == datetime.datetime(2024, 3, 11, 8, 40, 58, 123456)
    assert row["c_binary"] == bytes.fromhex("0102ABFF") and row["c_bit"] is True
    # daft reads the same values.
    assert sorted(read_daft(tmp / "lake" / "types_sqlserver", ["Id", "c_guid"]), key=lambda r: r["Id"])[0] == \
        {"Id": 1, "c_guid": "6F9619FF-8B86-D011-B42D-00C04FC964FF"}


def items_history(with_v2):
    """dbo.ITEMS: capture instance dbo_ITEMS (Id, Name, Note) from transaction 1; with `with_v2`, after
    `ALTER TABLE` (Note dropped, Price added) a second instance dbo_ITEMS_v2 from transaction 4, while the
    old one keeps capturing until it is disabled (transaction 5)."""
    lsn = lambda t: "0x0000002B00000E%02X0005" % t
    col = lambda n, t, key=False: {"name": n, "type": t, "nullable": not key, "key": key}
    v1 = [{"start_lsn": lsn(t), "seqval": lsn(t), "operation": 2,
           "values": {"Id": t, "Name": "item %d" % t, "Note": "note %d" % t}} for t in (1, 2, 3)]
    instances = [{"name": "dbo_ITEMS", "source_schema": "dbo", "source_table": "ITEMS", "start_lsn": lsn(1),
                  "columns": [col("Id", "int", True), col("Name", "nvarchar(40)"), col("Note", "nvarchar(40)")],
                  "changes": v1}]
    txs = [1, 2, 3]
    if with_v2:
        old = {"Id": 1, "Name": "item 1", "Note": "note 1"}
        instances[0]["changes"] += [
            {"start_lsn": lsn(4), "seqval": lsn(4), "operation": 3, "values": old},
            {"start_lsn": lsn(4), "seqval": lsn(4), "operation": 4, "values": dict(old, Name="item one")},
            {"start_lsn": lsn(5), "seqval": lsn(5), "operation": 2, "values": {"Id": 5, "Name": "item 5", "Note": None}}]
        new = [{"start_lsn": lsn(4), "seqval": lsn(4), "operation": 3, "values": {"Id": 1, "Name": "item 1", "Price": None}},
               {"start_lsn": lsn(4), "seqval": lsn(4), "operation": 4, "values": {"Id": 1, "Name": "item one", "Price": "9.99"}},
               {"start_lsn": lsn(5), "seqval": lsn(5), "operation": 2, "values": {"Id": 5, "Name": "item 5", "Price": "5.00"}},
               {"start_lsn": lsn(6), "seqval": lsn(6), "operation": 2, "values": {"Id": 6, "Name": "item 6", "Price": "6.50"}}]
        instances.append({"name": "dbo_ITEMS_v2", "source_schema": "dbo", "source_table": "ITEMS", "start_lsn": lsn(4),
                          "columns": [col("Id", "int", True), col("Name", "nvarchar(40)"), col("Price", "decimal(10,2)")],
                          "changes": new})
        txs += [4, 5, 6]
    return {"database": "MYCOMPANY", "capture_instances": instances,
            "lsn_time_mapping": [{"start_lsn": lsn(t)} for t in txs]}


def test_a_second_capture_instance_adds_its_new_column_to_the_hudi_and_glue_tables(tmp, moto):
    import os
    import subprocess
    import time
    data = tmp / "history.json"
    data.write_text(json.dumps(items_history(False)))
    server, port = start_fixture(tmp, data)
    bucket = moto.new_bucket()
    glue = moto.client("glue")
    database = "cdc_%s" % bucket.split("-")[1]
    glue.create_database(DatabaseInput={"Name": database})

    def run(columns):
        cfg = tmp / "lakefold.toml"
        cfg.write_text('[lake]\nuri = "s3://%s/warehouse"\n[catalog]\ntype = "glue"\ndatabase = "%s"\nregion = "us-east-1"\n'
                       '[sources.erp]\ntype = "sqlserver-cdc"\nsnapshot = "never"\n'
                       'connection = "server=tcp:127.0.0.1,%d;database=MYCOMPANY;user=cdc;encrypt=false"\n'
                       '[[route]]\ntable = "items"\nsource = "erp"\nfrom = "dbo.ITEMS"\nkey = ["Id"]\ncolumns = %s\n'
                       % (bucket, database, port, json.dumps(columns)))
        proc = subprocess.run([BIN, "--config", str(cfg), "run", "--once"], env=moto.env(), capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc

    def glue_columns():
        t = glue.get_table(DatabaseName=database, Name="items")["Table"]
        return {c["Name"]: c["Type"] for c in t["StorageDescriptor"]["Columns"]}

    try:
        run(["Id", "Name", "Note"])
        assert "Price" not in glue_columns()
        # ALTER TABLE dbo.ITEMS DROP COLUMN Note, ADD Price decimal(10,2); a new capture instance; the
        # route lists the new column (and keeps the dropped one).
        before = data.stat().st_mtime_ns
        data.write_text(json.dumps(items_history(True)))
        os.utime(data, ns=(time.time_ns(), max(time.time_ns(), before + 1_000_000)))
        proc = run(["Id", "Name", "Note", "Price"])
        assert "newer capture instance" in proc.stderr, proc.stderr[-3000:]
        assert glue_columns()["Price"] == "decimal(10,2)"
        rows = {r["Id"]: r for r in moto.read_hudi("s3://%s/warehouse/items" % bucket)}
        got = {k: (r["Name"], r["Note"], None if r["Price"] is None else str(r["Price"])) for k, r in rows.items()}
        assert got == {1: ("item one", None, "9.99"), 2: ("item 2", "note 2", None), 3: ("item 3", "note 3", None),
                       5: ("item 5", None, "5.00"), 6: ("item 6", None, "6.50")}
    finally:
        server.stop()
