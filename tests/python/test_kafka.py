"""Debezium on Kafka, against a real broker (tansu): a 3-partition topic keyed by SaleId, exactly-once
across runs and kill -9, Avro through a Schema Registry, dead letters with topic/partition/offset."""
import decimal
import json
import os
import signal
import subprocess
import time

import pytest

from conftest import BIN, assert_tables_match, gen, kill_after, lakefold, read_hudi
from kafka_fixtures import broker, registry  # noqa: F401  (fixtures)

TOPIC_N = iter(range(1, 10_000))


def key_of(event):
    img = event["after"] or event["before"]
    return json.dumps({"schema": {"type": "struct", "name": "mssql.dbo.SALES.Key", "optional": False,
                                  "fields": [{"type": "int32", "optional": False, "field": "SaleId"}]},
                       "payload": {"SaleId": img["SaleId"]}}).encode()


def as_messages(events, with_schema=True):
    """Debezium's records: value = envelope, key = the primary key; a tombstone repeats the delete's key."""
    out, last_key = [], None
    for e in events:
        if e is None:
            out.append((last_key, None))
        else:
            last_key = key_of(e)
            out.append((last_key, gen.encode(e, with_schema).encode()))
    return out


def kafka_config(tmp, brokers, topic, extra_source="", commit=""):
    text = '[lake]\nuri = "%s"\n%s\n[sources.erp]\ntype = "debezium-kafka"\nbrokers = "%s"\ntopics = ["%s"]\ngroup_id = "lakefold-test"\n%s\n' % (
        tmp / "lake", commit, brokers, topic, extra_source)
    for table, key, columns, on_delete in gen.ROUTES:
        text += '\n[[route]]\ntable = "%s"\nsource = "erp"\nfrom = "dbo.SALES"\nkey = %s\ncolumns = %s\non_delete = "%s"\n' % (
            table, json.dumps(key), json.dumps(columns), on_delete)
    cfg = tmp / "lakefold.toml"
    cfg.write_text(text)
    return cfg


def new_topic(broker, partitions=3):
    name = "mssql.dbo.SALES.t%d" % next(TOPIC_N)
    broker.create_topic(name, partitions)
    return name


def test_three_partitions_with_renames_across_partitions_fold_by_lsn_then_more_events_later(tmp, broker):
    topic = new_topic(broker)
    events = gen.generate(1500, seed=41, duplicates=0.03)
    first, second = events[:900], events[900:]
    broker.produce(topic, as_messages(first))
    counts = broker.partition_counts(topic)
    assert len([c for c in counts.values() if c > 0]) == 3, counts
    cfg = kafka_config(tmp, broker.bootstrap, topic)
    proc = lakefold("--config", cfg, "run", "--once", timeout=240)
    assert "0 dead letters" in proc.stderr, proc.stderr[-2000:]
    assert_tables_match(tmp / "lake", gen.expected_tables(first))
    meta = json.loads(sorted((tmp / "lake" / "sales" / ".hoodie").glob("*.commit"))[-1].read_text())["extraMetadata"]
    cp = json.loads(meta["lakefold.checkpoint"])["erp"]
    assert cp["type"] == "debezium-kafka" and sum(cp["offsets"][topic].values()) == sum(counts.values())
    assert meta["deltastreamer.checkpoint.key"].startswith(topic + ",")
    # consumer-group offsets follow the table commits (advisory, for lag monitoring)
    assert broker.committed("lakefold-test", topic) == {int(p): o for p, o in cp["offsets"][topic].items()}

    broker.produce(topic, as_messages(second))
    lakefold("--config", cfg, "run", "--once", timeout=240)
    assert_tables_match(tmp / "lake", gen.expected_tables(events))
    # nothing new: no new commit
    before = sorted(p.name for p in (tmp / "lake" / "sales" / ".hoodie").glob("*.commit"))
    lakefold("--config", cfg, "run", "--once", timeout=240)
    assert sorted(p.name for p in (tmp / "lake" / "sales" / ".hoodie").glob("*.commit")) == before


def test_crashes_while_committing_then_once_gives_exactly_the_fold(tmp, broker):
    topic = new_topic(broker)
    events = gen.generate(4000, seed=43)
    broker.produce(topic, as_messages(events))
    cfg = kafka_config(tmp, broker.bootstrap, topic, commit='[commit]\ninterval = "100ms"\nmax_events = 200\n')
    logs = []
    # Exact crash points inside a commit (the process aborts there, like kill -9): after the data files,
    # and after the commit was decided but before `.commit` was published; in the first and the last table.
    for n, point in enumerate(["agents:after-data", "sales:after-fate", "units:after-fate", "sales:after-data"]):
        log = tmp / ("crash-%d.log" % n)
        env = dict(os.environ, LAKEFOLD_FAILPOINT=point)
        with open(log, "w") as err:
            proc = subprocess.run([BIN, "--config", str(cfg), "run"], env=env, stderr=err, timeout=120)
        assert proc.returncode != 0 and ("failpoint %s reached" % point) in log.read_text()
        logs.append(log)
    # Real kill -9s of the daemon, right after it logs a table's commit.
    for n, table in enumerate(["agents", "statuses", "sales"]):
        log = tmp / ("kill-%d.log" % n)
        assert kill_after(cfg, "committed table=%s " % table, log)
        logs.append(log)
    proc = lakefold("--config", cfg, "run", "--once", timeout=300)
    texts = [l.read_text() for l in logs] + [proc.stderr]
    rolled_back = sum(t.count("rolled back an incomplete write") for t in texts)
    rolled_forward = sum(t.count("completed a write its writer had decided to commit") for t in texts)
    assert rolled_back >= 2 and rolled_forward >= 2, (rolled_back, rolled_forward)
    assert_tables_match(tmp / "lake", gen.expected_tables(events))


def test_undecodable_messages_are_dead_lettered_with_topic_partition_offset(tmp, broker):
    topic = new_topic(broker, partitions=1)
    events = gen.generate(100, seed=47)
    msgs = as_messages(events)
    msgs.insert(10, (b"k", b"{definitely not json"))
    broker.produce(topic, msgs)
    cfg = kafka_config(tmp, broker.bootstrap, topic)
    proc = lakefold("--config", cfg, "run", "--once", timeout=240)
    assert "1 dead letters" in proc.stderr
    letters = read_hudi(tmp / "lake" / "_lakefold_dead_letters")
    assert len(letters) == 1
    assert (letters[0]["topic"], letters[0]["partition"], letters[0]["offset"]) == (topic, 0, 10)
    assert letters[0]["location"] == "%s/0/10" % topic and "invalid JSON" in letters[0]["error"]
    assert_tables_match(tmp / "lake", gen.expected_tables(events))


def test_missing_topic_is_a_clear_error_in_validate_and_run(tmp, broker):
    cfg = kafka_config(tmp, broker.bootstrap, "no.such.topic")
    v = lakefold("--config", cfg, "validate", check=False, timeout=120)
    assert v.returncode == 78 and "no.such.topic" in v.stderr and "does not exist" in v.stderr, v.stderr
    r = lakefold("--config", cfg, "run", "--once", check=False, timeout=120)
    assert r.returncode == 1 and "topic `no.such.topic` does not exist" in r.stderr, r.stderr[-2000:]


def test_unreachable_brokers_are_retried_with_backoff_and_sigterm_stops_cleanly(tmp):
    from servers import free_port
    cfg = kafka_config(tmp, "127.0.0.1:%d" % free_port(), "mssql.dbo.SALES")
    proc = subprocess.Popen([BIN, "--config", str(cfg), "run"], stderr=subprocess.PIPE, text=True)
    time.sleep(10)
    proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    retries = err.count("kafka brokers unreachable; retrying")
    # 4 s attempts with backoff from 0.5 s: about two in 10 s, never a busy loop
    assert 1 <= retries <= 4, err[-3000:]
    assert "ERROR" not in err, err[-3000:]
    assert proc.returncode == 0, err[-2000:]


AVRO_ROW = {"type": "record", "name": "Value", "namespace": "mssql.dbo.SALES", "connect.name": "mssql.dbo.SALES.Value", "fields": [
    {"name": "SaleId", "type": "int"},
    {"name": "AgentId", "type": ["null", "int"], "default": None},
    {"name": "AgentName", "type": ["null", "string"], "default": None},
    {"name": "UnitId", "type": ["null", "int"], "default": None},
    {"name": "UnitName", "type": ["null", "string"], "default": None},
    {"name": "BuildingId", "type": ["null", "int"], "default": None},
    {"name": "BuildingName", "type": ["null", "string"], "default": None},
    {"name": "ProjectId", "type": ["null", "int"], "default": None},
    {"name": "ProjectName", "type": ["null", "string"], "default": None},
    {"name": "StatusId", "type": ["null", "int"], "default": None},
    {"name": "StatusName", "type": ["null", "string"], "default": None},
    {"name": "ContractSubtotal", "default": None, "type": ["null", {
        "type": "bytes", "scale": 4, "precision": 18, "connect.version": 1,
        "connect.parameters": {"scale": "4", "connect.decimal.precision": "18"},
        "connect.name": "org.apache.kafka.connect.data.Decimal", "logicalType": "decimal"}]},
    {"name": "ContractSigningDate", "default": None, "type": ["null", {
        "type": "long", "connect.version": 1, "connect.name": "io.debezium.time.Timestamp"}]},
]}

AVRO_ENVELOPE = {"type": "record", "name": "Envelope", "namespace": "mssql.dbo.SALES", "connect.name": "mssql.dbo.SALES.Envelope", "fields": [
    {"name": "before", "type": ["null", AVRO_ROW], "default": None},
    {"name": "after", "type": ["null", "Value"], "default": None},
    {"name": "source", "type": {"type": "record", "name": "Source", "namespace": "io.debezium.connector.sqlserver", "fields": [
        {"name": "version", "type": "string"}, {"name": "connector", "type": "string"}, {"name": "name", "type": "string"},
        {"name": "ts_ms", "type": "long"}, {"name": "db", "type": "string"}, {"name": "schema", "type": "string"},
        {"name": "table", "type": "string"}, {"name": "change_lsn", "type": ["null", "string"], "default": None},
        {"name": "commit_lsn", "type": ["null", "string"], "default": None},
        {"name": "event_serial_no", "type": ["null", "long"], "default": None}]}},
    {"name": "op", "type": "string"},
    {"name": "ts_ms", "type": ["null", "long"], "default": None},
]}


def avro_record(e):
    def row(img):
        if img is None:
            return None
        r = dict(img)
        r["ContractSubtotal"] = decimal.Decimal(r["ContractSubtotal"]).scaleb(-4)
        return r
    return {"before": row(e["before"]), "after": row(e["after"]), "op": e["op"], "ts_ms": e["ts_ms"],
            "source": {"version": "2.7.0.Final", "connector": "sqlserver", "name": "mssql", "ts_ms": e["ts_ms"],
                       "db": "MYCOMPANY", "schema": "dbo", "table": "SALES", "change_lsn": e["change_lsn"],
                       "commit_lsn": e["commit_lsn"], "event_serial_no": e["event_serial_no"]}}


def test_avro_with_confluent_serializer_and_schema_registry(tmp, broker, registry):
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    topic = new_topic(broker)
    client = SchemaRegistryClient({"url": registry.url})
    serializer = AvroSerializer(client, json.dumps(AVRO_ENVELOPE), conf={"auto.register.schemas": True})
    events = gen.generate(700, seed=53)
    msgs, last_key = [], None
    for e in events:
        if e is None:
            msgs.append((last_key, None))
            continue
        last_key = str((e["after"] or e["before"])["SaleId"]).encode()
        msgs.append((last_key, serializer(avro_record(e), SerializationContext(topic, MessageField.VALUE))))
    assert msgs[0][1][0] == 0, "not Confluent wire format"
    broker.produce(topic, msgs)
    cfg = kafka_config(tmp, broker.bootstrap, topic, extra_source='format = "avro"\nschema_registry = "%s"\n' % registry.url)
    proc = lakefold("--config", cfg, "run", "--once", timeout=240)
    assert "0 dead letters" in proc.stderr, proc.stderr[-2000:]
    assert_tables_match(tmp / "lake", gen.expected_tables(events))
    sales = read_hudi(tmp / "lake" / "sales")
    assert isinstance(sales[0]["ContractSubtotal"], decimal.Decimal)


def test_a_daemon_reports_lag_per_partition_down_to_zero(tmp, broker):
    from servers import free_port
    from test_service import get, scrape
    topic = new_topic(broker, partitions=2)
    events = gen.generate(600, seed=53)
    broker.produce(topic, as_messages(events))
    port = free_port()
    cfg = kafka_config(tmp, broker.bootstrap, topic,
                       commit='[metrics]\nlisten = "127.0.0.1:%d"\n\n[commit]\ninterval = "1s"\n' % port)
    log = open(tmp / "daemon.log", "w")
    proc = subprocess.Popen([BIN, "--config", str(cfg), "run"], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline, lag = time.time() + 90, {}
        while time.time() < deadline:
            try:
                samples, _ = scrape(port)
                lag = {dict(l)["partition"]: v for (n, l), v in samples.items() if n == "lakefold_source_lag_messages"}
                if set(lag) == {"0", "1"} and all(v == 0 for v in lag.values()):
                    break
            except OSError:
                pass
            time.sleep(0.5)
        assert set(lag) == {"0", "1"} and all(v == 0 for v in lag.values()), lag
        records = samples[("lakefold_source_records_total", (("source", "erp"),))]
        assert records == len(events), records
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        log.close()
    assert proc.returncode == 0, (tmp / "daemon.log").read_text()[-3000:]
    assert_tables_match(tmp / "lake", gen.expected_tables(events))
