"""Riding out an outage: S3 (moto) behind a proxy that resets every connection for 60 s while the daemon
commits every second. The process keeps running, `/readyz` and `lakefold_degraded` show the outage, and
afterwards every table equals the expected fold (nothing lost, nothing committed twice)."""
import json
import signal
import subprocess
import time
import urllib.parse

from aws_fixtures import moto  # noqa: F401  (fixture)
from conftest import BIN, as_table, gen, wait_for, write_events
from faults import ResettingProxy
from servers import free_port
from test_s3 import s3_config
from test_service import get, scrape



def test_s3_unreachable_for_60_seconds_is_ridden_out_and_the_tables_equal_the_fold(tmp, moto):
    bucket = moto.new_bucket()
    target = urllib.parse.urlparse(moto.endpoint)
    proxy = ResettingProxy(target.hostname, target.port)
    events = gen.generate(2400, seed=83)
    path = tmp / "events.jsonl"
    write_events(path, events[:800])
    port = free_port()
    cfg = s3_config(tmp, bucket, path, gen.ROUTES)
    cfg.write_text(cfg.read_text().replace("[sources.events]", '[metrics]\nlisten = "127.0.0.1:%d"\n\n[commit]\ninterval = "1s"\n\n'
                                           '[sources.events]\npoll_interval = "200ms"' % port))
    env = dict(moto.env(), AWS_ENDPOINT_URL=proxy.endpoint)
    log = open(tmp / "daemon.log", "w")
    proc = subprocess.Popen([BIN, "--config", str(cfg), "run"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        status = lambda: json.loads(get(port, "/status")[1])

        def committed_line(n):
            try:
                routes = status()["routes"]  # empty until the pipeline is open
                return bool(routes) and all(r["checkpoint"] and r["checkpoint"].endswith("line %d" % n) for r in routes)
            except OSError:
                return False
        lines = lambda: sum(1 for _ in open(path))
        first = lines()
        wait_for("the first commit", lambda: committed_line(first), 60)

        proxy.start_resetting()
        write_events(path, events[800:1600], append=True)
        outage_ends = time.time() + 60
        wait_for("/readyz to report the outage", lambda: get(port, "/readyz")[0] == 503, 55)
        samples, _ = scrape(port)
        assert samples[("lakefold_degraded", ())] == 1
        while time.time() < outage_ends:
            assert proc.poll() is None, "the daemon exited during the outage"
            time.sleep(1)
        assert proxy.resets > 0
        proxy.stop_resetting()

        write_events(path, events[1600:], append=True)
        total = lines()
        wait_for("every line committed after the outage", lambda: committed_line(total), 120)
        # Readiness returns once the commit round (tables, then catalog) has finished.
        wait_for("/readyz to recover", lambda: get(port, "/readyz")[0] == 200, 30)
        samples, _ = scrape(port)
        assert samples[("lakefold_degraded", ())] == 0
        assert samples[("lakefold_outage_retries_total", ())] >= 1
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
        log.close()
        proxy.close()
    assert proc.returncode == 0, (tmp / "daemon.log").read_text()[-3000:]
    expected = gen.expected_tables(events)
    for table, key, columns, _ in gen.ROUTES:
        rows = moto.read_hudi("s3://%s/warehouse/erp/%s" % (bucket, table))
        assert as_table(rows, key, columns) == expected[table], table
