"""Against a real SQL Server, skipped unless LAKEFOLD_TEST_MSSQL_URL is set:

    LAKEFOLD_TEST_MSSQL_URL="server=tcp:HOST,1433;database=lakefold_test;user=sa;encrypt=true;trustservercertificate=true"
    LAKEFOLD_SQLSERVER_PASSWORD=...            # the password, as lakefold itself takes it

The database must have CDC enabled (`EXEC sys.sp_cdc_enable_db`, or `msdb.dbo.rds_cdc_enable_db` on RDS) and
SQL Server Agent running; the user must be allowed to create tables and enable CDC on them. Each test creates
its own table `dbo.LF_SALES_<random>`, captures it, and drops it afterwards."""
import os
import time
import uuid

import pytest

from conftest import lakefold, read_hudi

URL = os.environ.get("LAKEFOLD_TEST_MSSQL_URL")
pytestmark = pytest.mark.skipif(not URL, reason="LAKEFOLD_TEST_MSSQL_URL is not set (no SQL Server here)")


def ado(url):
    parts = {}
    for item in url.split(";"):
        if "=" in item:
            k, v = item.split("=", 1)
            parts[k.strip().lower()] = v.strip()
    server = parts.get("server", parts.get("data source", "localhost")).removeprefix("tcp:")
    host, _, port = server.partition(",")
    return {"host": host, "port": port or "1433", "database": parts.get("database", parts.get("initial catalog")),
            "user": parts.get("user", parts.get("user id", parts.get("uid")))}


@pytest.fixture
def live_table():
    pymssql = pytest.importorskip("pymssql")
    a = ado(URL)
    conn = pymssql.connect(server=a["host"], port=a["port"], user=a["user"], database=a["database"],
                           password=os.environ.get("LAKEFOLD_SQLSERVER_PASSWORD", ""), autocommit=True,
                           login_timeout=30, timeout=120)
    name = "LF_SALES_%s" % uuid.uuid4().hex[:8]
    cur = conn.cursor()
    cur.execute("CREATE TABLE dbo.%s (SaleId int NOT NULL PRIMARY KEY, AgentId int NULL, AgentName nvarchar(100) NULL, "
                "ContractSubtotal decimal(18,4) NULL, ContractSigningDate datetime2(3) NULL, Paid bit NULL, "
                "Ref uniqueidentifier NULL, SignedAt datetimeoffset(7) NULL)" % name)
    cur.execute("EXEC sys.sp_cdc_enable_table @source_schema = N'dbo', @source_name = N'%s', @role_name = NULL, "
                "@supports_net_changes = 0" % name)
    try:
        yield conn, name
    finally:
        cur.execute("EXEC sys.sp_cdc_disable_table @source_schema = N'dbo', @source_name = N'%s', "
                    "@capture_instance = N'all'" % name)
        cur.execute("DROP TABLE dbo.%s" % name)
        conn.close()


def wait_for_capture(conn, name, timeout=120):
    """Waits until the capture job has read the log up to now (the last change is in the change table)."""
    cur = conn.cursor()
    deadline = time.time() + timeout
    while time.time() < deadline:
        cur.execute("SELECT COUNT(*) FROM cdc.dbo_%s_CT" % name)
        n = cur.fetchone()[0]
        cur.execute("SELECT COUNT(*) FROM cdc.dbo_%s_CT WHERE __$operation = 1 AND SaleId = 3" % name)
        if cur.fetchone()[0] == 1:
            return n
        time.sleep(1)
    raise AssertionError("the CDC capture job did not catch up within %ds (is SQL Server Agent running?)" % timeout)


def test_a_real_server_snapshot_then_changes_fold_into_the_hudi_table(tmp, live_table):
    conn, name = live_table
    cur = conn.cursor()
    cur.execute("INSERT INTO dbo.%s VALUES (1, 7, N'Ana', 70940.8467, '2024-03-11T08:40:58.123', 1, "
                "'6F9619FF-8B86-D011-B42D-00C04FC964FF', '2024-03-11T08:40:58.1234567+02:00')" % name)
    cfg = tmp / "lakefold.toml"
    cfg.write_text('[lake]\nuri = "%s"\n\n[sources.db]\ntype = "sqlserver-cdc"\nconnection = "%s"\n'
                   'snapshot = "initial"\n\n[[route]]\ntable = "sales"\nsource = "db"\nfrom = "dbo.%s"\n'
                   'key = ["SaleId"]\ncolumns = ["SaleId", "AgentId", "AgentName", "ContractSubtotal", '
                   '"ContractSigningDate", "Paid", "Ref", "SignedAt"]\non_delete = "delete"\n'
                   % (tmp / "lake", URL.replace('"', '\\"'), name))
    assert lakefold("--config", cfg, "validate").returncode == 0
    lakefold("--config", cfg, "run", "--once", timeout=600)
    rows = {r["SaleId"]: r for r in read_hudi(tmp / "lake" / "sales")}
    assert set(rows) == {1} and str(rows[1]["ContractSubtotal"]) == "70940.8467"
    assert rows[1]["Ref"] == "6F9619FF-8B86-D011-B42D-00C04FC964FF" and rows[1]["Paid"] is True

    cur.execute("INSERT INTO dbo.%s (SaleId, AgentId, AgentName) VALUES (2, 8, N'Bo'), (3, 9, N'Cy')" % name)
    cur.execute("UPDATE dbo.%s SET AgentName = N'Ana Maria' WHERE SaleId = 1" % name)
    cur.execute("DELETE FROM dbo.%s WHERE SaleId = 3" % name)
    wait_for_capture(conn, name)
    lakefold("--config", cfg, "run", "--once", timeout=600)
    rows = {r["SaleId"]: r for r in read_hudi(tmp / "lake" / "sales")}
    assert set(rows) == {1, 2}
    assert rows[1]["AgentName"] == "Ana Maria" and rows[2]["AgentId"] == 8
