"""No secret ever reaches a log line, `/status` or `/metrics`: runs with known secrets (the SQL Server password,
AWS keys, a Kafka SASL password) at debug level in JSON, and every output is searched for them. JSON log lines
carry their fields (source, table, instant)."""
import json
import signal
import subprocess
import time

from aws_fixtures import moto  # noqa: F401  (fixture)
from conftest import BIN, gen, lakefold, route_toml
from servers import free_port
from test_service import get
from test_sqlserver import start_fixture

SQL_PASSWORD = "Sq1-pa55-7f3b9c"
AWS_SECRET = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYzEXAMPLEKEY"
SASL_PASSWORD = "sasl-pa55-19de42"


def test_secrets_never_appear_in_logs_status_or_metrics(tmp, moto):
    data = tmp / "history.json"
    events = gen.generate(400, seed=13)
    data.write_text(json.dumps(gen.cdc_history(events)))
    server, sql_port = start_fixture(tmp, data, "--password", SQL_PASSWORD)
    bucket = moto.new_bucket()
    port = free_port()
    cfg = tmp / "lakefold.toml"
    text = ('[lake]\nuri = "s3://%s/lake"\n\n[metrics]\nlisten = "127.0.0.1:%d"\n\n[commit]\ninterval = "1s"\n\n'
            '[sources.erp]\ntype = "sqlserver-cdc"\nsnapshot = "never"\n'
            'connection = "server=tcp:127.0.0.1,%d;database=MYCOMPANY;user=cdc;encrypt=false"\n' % (bucket, port, sql_port))
    for table, key, columns, on_delete in gen.ROUTES:
        text += route_toml(table, key, columns, on_delete, source="erp")
    cfg.write_text(text)
    env = dict(moto.env(), AWS_SECRET_ACCESS_KEY=AWS_SECRET, LAKEFOLD_SQLSERVER_PASSWORD=SQL_PASSWORD, LAKEFOLD_LOG="debug")
    # Debug logs go to files: a pipe nobody reads would fill and stall the daemon's logging.
    proc = subprocess.Popen([BIN, "--config", str(cfg), "--log-format", "json", "run"], env=env,
                            stdout=open(tmp / "out.log", "w"), stderr=open(tmp / "err.log", "w"))
    try:
        deadline = time.time() + 60
        status, committed_all = "", False
        while time.time() < deadline and not committed_all:
            try:
                code, status = get(port, "/status")
                # Before the pipeline is open, /status lists no route yet: wait for all of them.
                routes = json.loads(status)["routes"] if code == 200 else []
                committed_all = len(routes) == len(gen.ROUTES) and all(r["last_instant"] for r in routes)
            except OSError:
                pass
            time.sleep(0.2)
        metrics = get(port, "/metrics")[1]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        server.stop()
    out, err = (tmp / "out.log").read_text(), (tmp / "err.log").read_text()
    assert proc.returncode == 0, err[-3000:]
    assert committed_all, "no commit of every route within 60 s: %s" % status
    for secret in (SQL_PASSWORD, AWS_SECRET):
        for name, text in (("stdout", out), ("stderr", err), ("/status", status), ("/metrics", metrics)):
            assert secret not in text, "%s leaks a secret" % name
    # Freshness from the transactions' tran_end_time, lag in seconds behind the max LSN.
    for table, *_ in gen.ROUTES:
        assert 'lakefold_table_freshness_seconds{table="%s"}' % table in metrics, table
    assert 'lakefold_source_lag_seconds{source="erp"} 0' in metrics, [l for l in metrics.splitlines() if "lag" in l]
    lines = [json.loads(l) for l in err.splitlines() if l.startswith("{")]
    committed = [l for l in lines if l.get("fields", {}).get("message") == "committed"]
    assert committed and all({"table", "instant", "checkpoint"} <= set(l["fields"]) for l in committed), committed[:2]
    assert any(l.get("fields", {}).get("source") == "erp" for l in lines)


def test_a_kafka_sasl_password_never_appears_in_logs(tmp):
    dead = free_port()
    cfg = tmp / "lakefold.toml"
    cfg.write_text('[lake]\nuri = "%s"\n\n[sources.erp]\ntype = "debezium-kafka"\nbrokers = "127.0.0.1:%d"\n'
                   'topics = ["mssql.dbo.SALES"]\ngroup_id = "g"\nproperties = { "security.protocol" = "SASL_PLAINTEXT", '
                   '"sasl.mechanism" = "PLAIN", "sasl.username" = "lakefold", "sasl.password" = "${MSK_PASSWORD}" }\n'
                   % (tmp / "lake", dead) + route_toml("sales", ["SaleId"], ["SaleId"], "delete", source="erp"))
    env = dict(__import__("os").environ, MSK_PASSWORD=SASL_PASSWORD, LAKEFOLD_LOG="debug")
    proc = subprocess.Popen([BIN, "--config", str(cfg), "--log-format", "json", "run"], env=env,
                            stdout=open(tmp / "out.log", "w"), stderr=open(tmp / "err.log", "w"))
    time.sleep(6)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    out, err = (tmp / "out.log").read_text(), (tmp / "err.log").read_text()
    assert proc.returncode == 0, err[-3000:]
    assert "unreachable" in err or "retrying" in err, err[-2000:]
    assert SASL_PASSWORD not in out + err
    v = lakefold("--config", cfg, "validate", "--no-environment")
    assert SASL_PASSWORD not in v.stdout + v.stderr
