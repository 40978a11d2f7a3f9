"""`KubeEmulator`: the server's lifecycle, kubeconfig, persistence and the background-thread mode."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml
from aiohttp import web

from .cluster import Cluster
from .rbac import ADMIN_TOKEN, BOOTSTRAP, Denial
from .rollout import Rollout
from .server import ApiServer
from .tls import ServingCert, self_signed


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class KubeEmulator:
    """A Kubernetes API server emulator speaking the real HTTP API on loopback.

    Runs on the caller's event loop (`async with KubeEmulator() as emu`), or on its own loop in a
    background thread (`with KubeEmulator.in_thread() as emu`) for synchronous clients.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        state_file: Path | None = None,
        rollout: bool = True,
        *,
        rollout_delay: float = 0.05,
        bookmark_interval: float = 1.0,
        history_size: int = 10_000,
        rbac: bool = False,
        tls: bool = False,
    ) -> None:
        self.host = host
        self.port = port
        self.state_file = Path(state_file) if state_file is not None else None
        self.cluster = Cluster(history_size=history_size)
        self.server = ApiServer(self.cluster, bookmark_interval=bookmark_interval, rbac=rbac)
        self.rollout = Rollout(self.cluster, delay=rollout_delay) if rollout else None
        self._runner: web.AppRunner | None = None
        self._url: str | None = None
        self.tls = tls
        # the self-signed serving certificate with tls=True (made on start)
        self.cert: ServingCert | None = None
        # the private loop of in_thread() mode; None when running on the caller's loop
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- lifecycle -----------------------------------------------------------------------------
    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError("the emulator is not running")
        return self._url

    @property
    def bookmark_interval(self) -> float:
        return self.server.bookmark_interval

    @bookmark_interval.setter
    def bookmark_interval(self, value: float) -> None:
        self.server.bookmark_interval = value

    async def start(self) -> None:
        if self._runner is not None:
            return
        if self.state_file is not None and self.state_file.exists():
            self.cluster.restore(json.loads(self.state_file.read_text()))
        if self.server.enforce_rbac:
            self._bootstrap_rbac()
        self.server.closing = False
        # handler_cancellation: a watch whose client went away is cancelled and unregistered at once
        runner = web.AppRunner(
            self.server.app,
            handle_signals=False,
            access_log=None,
            shutdown_timeout=1.0,
            handler_cancellation=True,
        )
        await runner.setup()
        ssl_context = None
        if self.tls:
            self.cert = self.cert or self_signed(self.host)
            ssl_context = self.cert.server_context()
        site = web.TCPSite(runner, self.host, self.port, ssl_context=ssl_context)
        await site.start()
        self._runner = runner
        port = self.port
        for address in runner.addresses:
            if isinstance(address, tuple):
                port = int(address[1])
                break
        self.port = port
        host = f"[{self.host}]" if ":" in self.host else self.host
        self._url = f"{'https' if self.tls else 'http'}://{host}:{port}"
        self.server.address = f"{self.host}:{port}"
        if self.rollout is not None:
            self.rollout.start()

    async def stop(self) -> None:
        if self._runner is None:
            return
        if self.rollout is not None:
            await self.rollout.stop()
        self.server.close_watches()
        await self._runner.cleanup()
        self._runner = None
        self._url = None
        if self.state_file is not None:
            self.save(self.state_file)

    def _bootstrap_rbac(self) -> None:
        """The roles and bindings a real cluster starts with (cluster-admin, discovery), if missing."""
        for obj in BOOTSTRAP:
            resource = "clusterroles" if obj["kind"] == "ClusterRole" else "clusterrolebindings"
            rt = self.cluster.resolve("rbac.authorization.k8s.io", "v1", resource)
            if self.cluster.store.get(rt.key, "", obj["metadata"]["name"]) is None:
                body = {"apiVersion": "rbac.authorization.k8s.io/v1", **obj}
                self.cluster.create(rt, "v1", None, body, "kube-apiserver")

    @property
    def denials(self) -> list[Denial]:
        """Every request refused by RBAC so far (for tests: a component needed more than its role)."""
        return self.server.rbac.denials

    @property
    def grants(self) -> set[tuple[str, str, str, str]]:
        """(user, verb, group, resource[/subresource]) of every request RBAC allowed a non-admin."""
        return self.server.rbac.grants

    async def __aenter__(self) -> KubeEmulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- state ---------------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        """Write all objects and the resourceVersion counter atomically (temp file + rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = json.dumps(self.call(self.cluster.snapshot), separators=(",", ":"))
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def write_kubeconfig(
        self, path: Path, context: str = "sluice", *, service_account: tuple[str, str] | None = None
    ) -> Path:
        """A kubeconfig for the admin, or for `service_account=(namespace, name)` with a token
        from the TokenRequest API (the ServiceAccount must exist)."""
        path = Path(path)
        token = ADMIN_TOKEN
        namespace = "default"
        if service_account is not None:
            token = self.call(self._service_account_token, *service_account)
            namespace = service_account[0]
        path.parent.mkdir(parents=True, exist_ok=True)
        cluster: dict[str, Any] = {"server": self.url}
        if self.cert is not None:
            cluster["certificate-authority-data"] = base64.b64encode(self.cert.cert_pem).decode()
        config: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": context, "cluster": cluster}],
            "users": [{"name": context, "user": {"token": token}}],
            "contexts": [
                {"name": context, "context": {"cluster": context, "user": context, "namespace": namespace}}
            ],
            "current-context": context,
            "preferences": {},
        }
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def _service_account_token(self, namespace: str, name: str) -> str:
        account = self.cluster.get(self.cluster.resolve("", "v1", "serviceaccounts"), namespace, name)
        return str(self.server.rbac.issue(account, {})["status"]["token"])

    # -- background thread ---------------------------------------------------------------------
    @classmethod
    @contextlib.contextmanager
    def in_thread(
        cls,
        host: str = "127.0.0.1",
        port: int = 0,
        state_file: Path | None = None,
        rollout: bool = True,
        **options: Any,
    ) -> Iterator[KubeEmulator]:
        """Run on a private event loop in a background thread; stops and joins it on exit."""
        loop = asyncio.new_event_loop()
        started = threading.Event()
        failure: list[BaseException] = []
        holder: list[KubeEmulator] = []

        def run() -> None:
            asyncio.set_event_loop(loop)

            async def boot() -> None:
                emu = cls(host=host, port=port, state_file=state_file, rollout=rollout, **options)
                await emu.start()
                holder.append(emu)

            try:
                loop.run_until_complete(boot())
            except BaseException as exc:
                failure.append(exc)
                started.set()
                loop.close()
                return
            started.set()
            try:
                loop.run_forever()
            finally:
                pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
                for task in pending:
                    task.cancel()
                if pending:
                    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        thread = threading.Thread(target=run, name="kube-emulator", daemon=True)
        thread.start()
        started.wait()
        if failure:
            thread.join()
            raise failure[0]
        emu = holder[0]
        emu._loop = loop
        try:
            yield emu
        finally:
            asyncio.run_coroutine_threadsafe(emu.stop(), loop).result(timeout=30)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=30)

    def call(self, func: Any, *args: Any) -> Any:
        """Run a plain function on the emulator's loop (in-thread mode) and return its result."""
        if self._loop is None or _running_loop() is self._loop:
            return func(*args)

        async def invoke() -> Any:
            return func(*args)

        return asyncio.run_coroutine_threadsafe(invoke(), self._loop).result(timeout=30)
