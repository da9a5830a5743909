"""TLS to SQL Server: lakefold-mssql-fixture with a test certificate (tests/data/tls, signed by a test CA)
answers TDS 7.x encryption negotiated in PRELOGIN (the handshake inside PRELOGIN packets, then TLS on the
wire) and TDS 8 strict (TLS first); tiberius verifies the certificate against `ca_file`. pymssql (FreeTDS),
a client written by others, speaks the same TLS to it."""
import json
import pathlib

import pytest

from conftest import assert_tables_match, gen, lakefold
from test_sqlserver import distinct_changes, records_read, start_fixture, write_cdc_config
TLS = pathlib.Path(__file__).resolve().parents[1] / "data" / "tls"


@pytest.fixture
def tls_fixture(tmp):
    events = gen.generate(800, seed=29)
    data = tmp / "history.json"
    data.write_text(json.dumps(gen.cdc_history(events)))
    server, port = start_fixture(tmp, data, "--tls-cert", str(TLS / "server.pem"), "--tls-key", str(TLS / "server.key"))
    try:
        yield port, events
    finally:
        server.stop()


@pytest.mark.parametrize("encrypt", ["true", "strict"])
def test_tls_with_a_trusted_ca_reads_the_history_into_the_tables(tmp, tls_fixture, encrypt):
    port, events = tls_fixture
    cfg = write_cdc_config(tmp, port, encrypt=encrypt, extra='ca_file = "%s"' % (TLS / "ca.pem"))
    assert lakefold("--config", cfg, "validate").returncode == 0
    out = lakefold("--config", cfg, "run", "--once")
    assert records_read(out) == distinct_changes(events)
    assert_tables_match(tmp / "lake", gen.expected_tables(events))


def test_a_certificate_the_configured_ca_did_not_sign_is_refused_at_once(tmp, tls_fixture):
    port, _ = tls_fixture
    cfg = write_cdc_config(tmp, port, encrypt="true", extra='ca_file = "%s"' % (TLS / "other-ca.pem"))
    proc = lakefold("--config", cfg, "run", "--once", check=False, timeout=60)
    err = proc.stderr + proc.stdout
    assert proc.returncode == 1, err[-3000:]
    assert "TLS handshake failed" in err and "ca_file" in err, err[-3000:]
    assert "retrying" not in err, "a certificate problem is not retried: %s" % err[-3000:]
    assert not list((tmp / "lake").glob("*/.hoodie/*.commit")), "nothing was committed"
    # Accepting any certificate is possible, but only when asked for.
    cfg = write_cdc_config(tmp, port, encrypt="true", extra="trust_server_certificate = true")
    assert lakefold("--config", cfg, "run", "--once").returncode == 0


def test_a_plain_client_still_works_against_a_fixture_that_offers_tls(tmp, tls_fixture):
    port, events = tls_fixture
    cfg = write_cdc_config(tmp, port, encrypt="false")
    out = lakefold("--config", cfg, "run", "--once")
    assert records_read(out) == distinct_changes(events)


@pytest.mark.parametrize("encryption", ["require", "request"])
def test_freetds_speaks_tls_to_the_fixture(tmp, tls_fixture, encryption):
    pymssql = pytest.importorskip("pymssql")
    port, events = tls_fixture
    conn = pymssql.connect(server="127.0.0.1", port=str(port), user="someone", password="x", database="MYCOMPANY",
                           login_timeout=10, timeout=10, tds_version="7.4", encryption=encryption)
    try:
        cur = conn.cursor()
        cur.execute("SELECT sys.fn_cdc_get_max_lsn() AS max_lsn")
        [(max_lsn,)] = cur.fetchall()
        assert "0x" + bytes(max_lsn).hex().upper() == max(gen.lsn_hex(e["commit_lsn"]) for e in events if e)
    finally:
        conn.close()
