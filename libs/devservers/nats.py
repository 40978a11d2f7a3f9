"""nats-server with JetStream on loopback."""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path

from libs.devservers.ports import http_status, stable_port
from libs.devservers.procs import ManagedProcess, Server, ServerStartError, launch

__all__ = ["NatsServer"]

_PORT_ATTEMPTS = 5


class NatsServer(Server):
    """``nats-server -js`` storing JetStream data in ``store_dir``.

    :meth:`restart` (and :meth:`start` after :meth:`stop` or :meth:`kill`) reuses the store
    directory, so streams and their messages survive, and asks for the same port again, so clients
    reconnect to the URL they already know. With ``port=-1`` that port is chosen below the kernel's
    ephemeral range (:func:`~libs.devservers.ports.stable_port`): a port the server let the kernel
    pick could be handed to someone's outgoing connection or ``bind(0)`` while the server is down,
    and the restart would then have to move. Should the chosen port be taken before the server
    binds it, another is tried. The URL always comes from the server's own ports file.
    """

    def __init__(
        self,
        store_dir: Path,
        host: str = "127.0.0.1",
        port: int = -1,
        *,
        executable: str = "nats-server",
        startup_timeout: float = 10.0,
        config_file: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        """``config_file`` runs the server with that configuration (``-c``), for example
        deploy/k8s/nats/nats.conf with its per-service users; the command-line options here (address,
        port, store directory) still win over the file's. ``env`` is the server's whole environment
        (the file's ``$VARIABLES`` are read from it); default: this process's."""
        super().__init__()
        self.store_dir = Path(store_dir).resolve()
        self.host = host
        self._requested_port = port
        self._executable = executable
        self._startup_timeout = startup_timeout
        self._config_file = Path(config_file).resolve() if config_file is not None else None
        self._env = dict(env) if env is not None else None
        self._port: int | None = None
        self._monitor_url: str | None = None
        self._url: str | None = None

    @property
    def url(self) -> str:
        """``nats://HOST:PORT`` of the running server (stays the same across restarts when possible)."""
        if self._url is None:
            raise RuntimeError("NatsServer has not been started")
        return self._url

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("NatsServer has not been started")
        return self._port

    @property
    def monitor_url(self) -> str:
        """The HTTP monitoring endpoint (``/varz``, ``/jsz``, ``/healthz``)."""
        if self._monitor_url is None:
            raise RuntimeError("NatsServer has not been started")
        return self._monitor_url

    def _argv(self, port: int) -> list[str]:
        config = ["-c", str(self._config_file)] if self._config_file is not None else []
        return [
            shutil.which(self._executable) or self._executable,
            *config,
            "-js",
            "-a",
            self.host,
            "-p",
            str(port),
            "-m",
            "-1",
            "--server_name",
            "sluice-dev",
            "--store_dir",
            str(self.store_dir),
            "--ports_file_dir",
            str(self.store_dir),
        ]

    def _launch(self) -> ManagedProcess:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        # A restart asks for the port clients already know; a first start for the requested one.
        preferred = self._port if self._port is not None else self._requested_port
        if preferred != -1:
            try:
                return self._launch_on(preferred)
            except ServerStartError as exc:
                if not exc.address_in_use or self._requested_port != -1:
                    raise
        last_error: ServerStartError | None = None
        for _ in range(_PORT_ATTEMPTS):
            try:
                return self._launch_on(stable_port(self.host))
            except ServerStartError as exc:
                if not exc.address_in_use:
                    raise
                last_error = exc
        assert last_error is not None
        raise last_error

    def _launch_on(self, port: int) -> ManagedProcess:
        def ready(process: ManagedProcess) -> bool:
            endpoints = self._read_ports_file(process.pid)
            # /healthz answers 200 once the server, JetStream included, is ready.
            return endpoints is not None and http_status(f"{endpoints[1]}/healthz") == 200

        process = launch(
            "nats-server",
            self._argv(port),
            log_path=self.store_dir / "nats-server.log",
            ready=ready,
            timeout=self._startup_timeout,
            env=self._env,
        )
        endpoints = self._read_ports_file(process.pid)
        assert endpoints is not None  # ready() saw it
        self._url, self._monitor_url = endpoints
        self._port = int(self._url.rsplit(":", 1)[1])
        return process

    def _ports_file(self, pid: int) -> Path:
        return self.store_dir / f"nats-server_{pid}.ports"

    def _read_ports_file(self, pid: int | None) -> tuple[str, str] | None:
        if pid is None:
            return None
        try:
            data = json.loads(self._ports_file(pid).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None  # not written yet, or caught mid-write
        clients = data.get("nats") or []
        monitors = data.get("monitoring") or []
        if not clients or not monitors:
            return None
        return str(clients[0]), str(monitors[0])

    def stop(self, timeout: float = 5.0) -> None:
        pid = self.pid
        super().stop(timeout)
        self._forget_ports_file(pid)

    def kill(self) -> None:
        pid = self.pid
        super().kill()
        self._forget_ports_file(pid)

    def _forget_ports_file(self, pid: int | None) -> None:
        # The server removes it on a clean shutdown; a killed server leaves it behind.
        if pid is not None:
            self._ports_file(pid).unlink(missing_ok=True)

    def restart(self, timeout: float = 5.0) -> None:
        """Stop gracefully and start again on the same store directory and (if possible) port."""
        self.stop(timeout)
        self.start()
