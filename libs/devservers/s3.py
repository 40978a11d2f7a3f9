"""An S3 endpoint on loopback: moto's server (``moto[server]``) as a subprocess.

Moto accepts any credentials; :attr:`MotoS3Server.access_key` and :attr:`MotoS3Server.secret_key`
are fixed test values so clients sign requests the way they would against MinIO or AWS.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from libs.devservers.ports import LOOPBACK_OPENER, http_status
from libs.devservers.procs import ManagedProcess, Server, launch_on_free_port

__all__ = ["MotoS3Server"]

TEST_ACCESS_KEY = "sluice-test-access-key"
TEST_SECRET_KEY = "sluice-test-secret-key"
TEST_REGION = "us-east-1"


class MotoS3Server(Server):
    """moto's S3-compatible server on a free loopback port.

    Logs go to ``log_dir/moto-s3.log`` (a temporary directory, removed on :meth:`stop`, when none is
    given). Use as a context manager or call :meth:`start` and :meth:`stop`.
    """

    access_key = TEST_ACCESS_KEY
    secret_key = TEST_SECRET_KEY
    region = TEST_REGION

    def __init__(
        self, host: str = "127.0.0.1", *, log_dir: Path | None = None, startup_timeout: float = 20.0
    ) -> None:
        super().__init__()
        self.host = host
        self._startup_timeout = startup_timeout
        self._own_log_dir = log_dir is None
        self._log_dir = Path(log_dir) if log_dir is not None else None
        self._port: int | None = None

    def __repr__(self) -> str:
        where = f"{self.host}:{self._port}" if self._port is not None else "not started"
        return f"MotoS3Server({where})"

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("MotoS3Server has not been started")
        return self._port

    @property
    def endpoint_url(self) -> str:
        """``http://HOST:PORT`` — the S3 endpoint for boto3's ``endpoint_url``."""
        return f"http://{self.host}:{self.port}"

    def _argv(self, port: int) -> list[str]:
        executable = Path(sys.executable).parent / "moto_server"
        if executable.exists():
            return [str(executable), "-H", self.host, "-p", str(port)]
        return [sys.executable, "-m", "moto.server", "-H", self.host, "-p", str(port)]

    def _launch(self) -> ManagedProcess:
        if self._log_dir is None:
            self._log_dir = Path(tempfile.mkdtemp(prefix="sluice-moto-s3-"))
        process, port = launch_on_free_port(
            "moto-s3",
            self._argv,
            # Any HTTP answer means the server is up; moto answers the service root itself.
            ready=lambda _process, port: http_status(f"http://{self.host}:{port}/moto-api/") is not None,
            log_path=self._log_dir / "moto-s3.log",
            timeout=self._startup_timeout,
        )
        self._port = port
        return process

    def reset(self) -> None:
        """Forget every bucket and object (moto's reset API), for a clean slate between tests."""
        request = LOOPBACK_OPENER.open(f"{self.endpoint_url}/moto-api/reset", data=b"", timeout=10)
        request.close()

    def stop(self, timeout: float = 5.0) -> None:
        super().stop(timeout)
        if self._own_log_dir and self._log_dir is not None:
            shutil.rmtree(self._log_dir, ignore_errors=True)
            self._log_dir = None
