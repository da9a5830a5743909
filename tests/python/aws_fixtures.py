"""A moto server (S3 and Glue) on 127.0.0.1, started and stopped by PID, and readers that go through it."""
import os
import sys
import uuid

import pytest

from servers import ServerProcess, free_port

KEYS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1"}


class Moto:
    def __init__(self, workdir):
        port = free_port()
        self.endpoint = "http://127.0.0.1:%d" % port
        server = os.path.join(os.path.dirname(sys.executable), "moto_server")
        self.server = ServerProcess("moto_server", [server, "-H", "127.0.0.1", "-p", str(port)], port,
                                    workdir / "moto.log", env=dict(os.environ, **KEYS))

    def stop(self):
        self.server.stop()

    def env(self):
        """The environment lakefold runs with: the standard AWS variables pointing at moto."""
        return dict(os.environ, AWS_ENDPOINT_URL=self.endpoint, AWS_ALLOW_HTTP="true", **KEYS)

    def client(self, service):
        import boto3
        return boto3.client(service, endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def new_bucket(self):
        name = "lake-%s" % uuid.uuid4().hex[:10]
        self.client("s3").create_bucket(Bucket=name)
        return name

    def storage_options(self):
        return {"aws_endpoint_url": self.endpoint, "aws_allow_http": "true", "aws_access_key_id": "testing",
                "aws_secret_access_key": "testing", "aws_region": "us-east-1"}

    def read_hudi(self, uri):
        from hudi import HudiTableBuilder
        import pyarrow as pa
        batches = HudiTableBuilder.from_base_uri(uri).with_storage_options(self.storage_options()).build().read()
        return pa.Table.from_batches(batches).to_pylist() if batches else []

    def read_daft(self, uri, columns):
        import daft
        from daft.io import IOConfig, S3Config
        io = IOConfig(s3=S3Config(endpoint_url=self.endpoint, key_id="testing", access_key="testing",
                                  region_name="us-east-1", use_ssl=False))
        return daft.read_hudi(uri, io_config=io).select(*columns).to_pylist()


@pytest.fixture(scope="session")
def moto(tmp_path_factory):
    m = Moto(tmp_path_factory.mktemp("moto"))
    yield m
    m.stop()
