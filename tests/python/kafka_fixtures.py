"""Kafka test servers: the tansu broker (started and stopped by PID, 127.0.0.1 only) and a minimal
Confluent Schema Registry (register + GET /schemas/ids/{id}), plus a Debezium-like producer."""
import http.server
import itertools
import json
import os
import shutil
import threading
import time

import pytest

from servers import ServerProcess, free_port


class Broker:
    def __init__(self, tansu, workdir):
        port = free_port()
        self.bootstrap = "127.0.0.1:%d" % port
        env = dict(os.environ, RUST_LOG=os.environ.get("TANSU_LOG", "warn"))
        # tansu resolves the sqlite path against its working directory
        self.server = ServerProcess(
            "tansu", [tansu, "broker", "--listener-url", "tcp://127.0.0.1:%d" % port,
                      "--advertised-listener-url", "tcp://127.0.0.1:%d" % port, "--storage-engine", "sqlite://tansu.db"],
            port, workdir / "tansu.log", env=env, cwd=workdir)

    def stop(self):
        self.server.stop()

    def create_topic(self, name, partitions=3):
        from confluent_kafka.admin import AdminClient, NewTopic
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        futures = admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)], request_timeout=20)
        for f in futures.values():
            f.result(timeout=30)
        deadline = time.time() + 30
        while time.time() < deadline:
            md = admin.list_topics(timeout=10)
            if name in md.topics and len(md.topics[name].partitions) == partitions:
                return
            time.sleep(0.2)
        raise RuntimeError("topic %s did not appear" % name)

    def produce(self, topic, messages):
        """messages: (key bytes, value bytes or None). One record per producer batch (tansu-friendly)."""
        from confluent_kafka import Producer
        p = Producer({"bootstrap.servers": self.bootstrap, "batch.num.messages": 1, "linger.ms": 0,
                      "partitioner": "murmur2_random", "enable.idempotence": False, "acks": "all"})
        errors = []
        for key, value in messages:
            while True:
                try:
                    p.produce(topic, key=key, value=value, on_delivery=lambda err, msg: err and errors.append(err))
                    break
                except BufferError:
                    p.poll(0.1)
            p.poll(0)
        remaining = p.flush(60)
        assert remaining == 0 and not errors, (remaining, errors[:3])

    def committed(self, group, topic):
        from confluent_kafka import Consumer, TopicPartition
        c = Consumer({"bootstrap.servers": self.bootstrap, "group.id": group, "enable.auto.commit": False})
        md = c.list_topics(topic, timeout=10)
        got = c.committed([TopicPartition(topic, p) for p in md.topics[topic].partitions], timeout=10)
        c.close()
        return {tp.partition: tp.offset for tp in got}

    def partition_counts(self, topic):
        from confluent_kafka import Consumer, TopicPartition
        c = Consumer({"bootstrap.servers": self.bootstrap, "group.id": "inspector"})
        md = c.list_topics(topic, timeout=10)
        out = {}
        for p in md.topics[topic].partitions:
            lo, hi = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            out[p] = hi - lo
        c.close()
        return out


class SchemaRegistry:
    """Just enough of the Confluent Schema Registry for AvroSerializer and lakefold."""

    def __init__(self):
        self.schemas = {}
        self.by_text = {}
        self.ids = itertools.count(1)
        registry = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def reply(self, code, body):
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                path = self.path.split("?")[0]
                if path.startswith("/subjects/") and path.endswith("/versions"):
                    text = body["schema"]
                    sid = registry.by_text.get(text)
                    if sid is None:
                        sid = next(registry.ids)
                        registry.by_text[text] = sid
                        registry.schemas[sid] = text
                    return self.reply(200, {"id": sid})
                if path.startswith("/subjects/"):  # lookup
                    sid = registry.by_text.get(body.get("schema"))
                    if sid is None:
                        return self.reply(404, {"error_code": 40403, "message": "Schema not found"})
                    return self.reply(200, {"subject": path.split("/")[2], "id": sid, "version": 1, "schema": body["schema"]})
                self.reply(404, {"error_code": 404, "message": "not found"})

            def do_GET(self):
                path = self.path.split("?")[0]
                if path.startswith("/schemas/ids/"):
                    sid = int(path.rsplit("/", 1)[1])
                    if sid in registry.schemas:
                        return self.reply(200, {"schema": registry.schemas[sid]})
                    return self.reply(404, {"error_code": 40403, "message": "Schema %d not found" % sid})
                self.reply(404, {"error_code": 404, "message": "not found"})

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="session")
def broker(tmp_path_factory):
    tansu = os.environ.get("TANSU_BIN") or shutil.which("tansu")
    if not tansu or not os.path.exists(tansu):
        if os.environ.get("LAKEFOLD_REQUIRE_KAFKA"):
            raise RuntimeError("TANSU_BIN is not set or missing; scripts/test.sh installs tansu")
        pytest.skip("no tansu broker (run scripts/test.sh)")
    b = Broker(tansu, tmp_path_factory.mktemp("tansu"))
    yield b
    b.stop()


@pytest.fixture
def registry():
    r = SchemaRegistry()
    yield r
    r.stop()
