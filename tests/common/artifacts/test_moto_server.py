"""The S3 dev server itself: it answers S3, stops cleanly, and explains a failed start."""

import boto3
import pytest

from libs.devservers.procs import ServerStartError
from libs.devservers.s3 import MotoS3Server
from tests.harness.hygiene import child_pids

pytestmark = pytest.mark.integration


def test_starts_answers_s3_and_is_reaped_on_exit() -> None:
    with MotoS3Server() as server:
        pid = server.pid
        assert pid is not None and pid in child_pids()
        assert server.endpoint_url.startswith("http://127.0.0.1:")
        client = boto3.client(
            "s3",
            endpoint_url=server.endpoint_url,
            aws_access_key_id=server.access_key,
            aws_secret_access_key=server.secret_key,
            region_name=server.region,
        )
        client.create_bucket(Bucket="dev-server-test")
        assert [b["Name"] for b in client.list_buckets()["Buckets"]] == ["dev-server-test"]
        server.reset()
        assert client.list_buckets()["Buckets"] == []
        log_dir = server._log_dir
        assert log_dir is not None and log_dir.is_dir()
    assert server.pid is None
    assert pid not in child_pids()
    assert not log_dir.exists()
    server.stop()  # idempotent


def test_a_failed_start_reports_the_server_output() -> None:
    # 192.0.2.1 (TEST-NET-1) is not an address of this machine: the bind fails at once.
    server = MotoS3Server(host="192.0.2.1", startup_timeout=15)
    with pytest.raises(ServerStartError, match="moto-s3: exited") as err:
        server.start()
    assert "assign requested address" in err.value.output_tail.lower()
    assert server.pid is None
    server.stop()
