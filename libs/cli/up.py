"""`sluice up`: the whole system on this machine, on embedded defaults.

Starts nats-server (JetStream store in DIR/nats), the Kubernetes API emulator (state in
DIR/kube/state.json, Sluice's CRDs installed), a docker-registry (DIR/registry), a directory of
bare Git repositories (DIR/git, file:// URLs), the artifact store (DIR/artifacts) and the six
services as child processes (logs in DIR/logs). When everything reports ready it writes
DIR/endpoints.json atomically, then runs until SIGINT/SIGTERM and stops everything it started.
Running it again on the same DIR resumes the stored state.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from libs.common.api.crd import crd_documents
from libs.common.kube import Kube
from libs.devservers.nats import NatsServer
from libs.devservers.ports import free_port, http_status
from libs.devservers.procs import ManagedProcess, launch_on_free_port
from libs.devservers.registry import DockerRegistry

SERVICES = ("source", "build", "apply", "image_scan", "image_update", "notify")
SYSTEM_NAMESPACE = "flux-system"


def _http_ok(url: str) -> bool:
    """The URL answers 200 (loopback, never through a proxy from the environment)."""
    return http_status(url) == 200


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


@dataclass
class Stack:
    """Everything `sluice up` runs; `start()` brings it up, `stop()` tears it all down."""

    state_dir: Path
    log: Callable[[str], None] = print
    nats: NatsServer | None = None
    registry: DockerRegistry | None = None
    kube: ManagedProcess | None = None
    kube_url: str = ""
    services: dict[str, ManagedProcess] = field(default_factory=dict)
    service_urls: dict[str, str] = field(default_factory=dict)
    extra_urls: dict[str, str] = field(default_factory=dict)
    restarts: dict[str, int] = field(default_factory=dict)

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    @property
    def git_root(self) -> Path:
        return self.state_dir / "git"

    @property
    def artifacts(self) -> Path:
        return self.state_dir / "artifacts"

    def start(self) -> dict[str, Any]:
        d = self.state_dir
        for sub in (
            "nats",
            "kube",
            "registry",
            "git",
            "git-cache",
            "git-cache-image-update",
            "artifacts",
            "logs",
        ):
            (d / sub).mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        self.nats = NatsServer(d / "nats")
        self.nats.start()
        self.log(f"► nats-server with JetStream at {self.nats.url}")
        self._start_kube()
        self.log(f"► Kubernetes API emulator at {self.kube_url} (kubeconfig {self.kubeconfig})")
        asyncio.run(self._install_crds())
        self.log("► CRDs installed")
        self.registry = DockerRegistry(d / "registry")
        self.registry.start()
        self.log(f"► docker-registry at {self.registry.host}")
        self._start_services(SERVICES)
        endpoints = self.endpoints()
        _write_atomic(d / "endpoints.json", json.dumps(endpoints, indent=2) + "\n")
        self.log(
            f"✔ all services ready in {time.monotonic() - started:.1f}s; endpoints in {d / 'endpoints.json'}"
        )
        return endpoints

    def endpoints(self) -> dict[str, Any]:
        assert self.nats is not None and self.registry is not None
        return {
            "nats": self.nats.url,
            "kubeconfig": str(self.kubeconfig),
            "kube_api": self.kube_url,
            "registry": self.registry.host,
            "git_root": str(self.git_root),
            "receiver": self.extra_urls["receiver"],
            "artifacts": self.extra_urls["artifacts"],
            "services": dict(self.service_urls),
        }

    def _start_kube(self) -> None:
        d = self.state_dir

        def argv(port: int) -> list[str]:
            return [
                sys.executable,
                "-m",
                "libs.kube_emulator",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--state",
                str(d / "kube" / "state.json"),
                "--kubeconfig",
                str(self.kubeconfig),
            ]

        self.kube, port = launch_on_free_port(
            "kube-emulator",
            argv,
            ready=lambda _p, port: _http_ok(f"http://127.0.0.1:{port}/version"),
            log_path=d / "logs" / "kube-emulator.log",
            timeout=30,
        )
        self.kube_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 10
        while not self.kubeconfig.exists() and time.monotonic() < deadline:
            time.sleep(0.05)

    async def _install_crds(self) -> None:
        kube = Kube.from_config(str(self.kubeconfig))
        try:
            for crd in crd_documents():
                await kube.apply(crd, field_manager="sluice-up")
            namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": SYSTEM_NAMESPACE}}
            await kube.apply(namespace, field_manager="sluice-up")
        finally:
            await kube.close()

    def _service_env(self, name: str, http_port: int) -> dict[str, str]:
        assert self.nats is not None
        env = dict(os.environ)
        env.update(
            {
                "SLUICE_NATS_URL": self.nats.url,
                "SLUICE_KUBECONFIG": str(self.kubeconfig),
                "SLUICE_HTTP_ADDR": f"127.0.0.1:{http_port}",
                "SLUICE_ARTIFACT_STORE": f"file://{self.artifacts}",
                "SLUICE_LOG_FORMAT": "json",
                "SLUICE_REPLICA_ID": f"{name}-0",
                "PYTHONUNBUFFERED": "1",
            }
        )
        if name == "source":
            port = self._port_for("artifacts")
            env["SLUICE_ARTIFACT_ADDR"] = f"127.0.0.1:{port}"
            env["SLUICE_ARTIFACT_BASE_URL"] = f"http://127.0.0.1:{port}"
            env["SLUICE_GIT_CACHE_DIR"] = str(self.state_dir / "git-cache")
            env["SLUICE_ALLOW_FILE_URLS"] = "true"  # single-user: the Git root is file://
        if name == "image_update":
            env["SLUICE_GIT_CACHE_DIR"] = str(self.state_dir / "git-cache-image-update")
            env["SLUICE_ALLOW_FILE_URLS"] = "true"  # automations push to the file:// Git root
        if name == "build":
            port = self._port_for("bundles")
            env["SLUICE_ARTIFACT_ADDR"] = f"127.0.0.1:{port}"
            env["SLUICE_ARTIFACT_BASE_URL"] = f"http://127.0.0.1:{port}"
        if name == "notify":
            env["SLUICE_RECEIVER_ADDR"] = f"127.0.0.1:{self._port_for('receiver')}"
        return env

    def _port_for(self, what: str) -> int:
        if what not in self.extra_urls:
            self.extra_urls[what] = f"http://127.0.0.1:{free_port()}"
        return int(self.extra_urls[what].rsplit(":", 1)[1])

    def _start_services(self, names: tuple[str, ...]) -> None:
        """Start the services together, then wait until each answers /readyz."""
        launched: dict[str, tuple[ManagedProcess, int]] = {}
        for name in names:
            port = free_port()
            process = ManagedProcess(
                f"sluice-{name}",
                [sys.executable, "-m", f"services.{name}"],
                log_path=self.state_dir / "logs" / f"{name}.log",
                env=self._service_env(name, port),
            )
            process.start()
            launched[name] = (process, port)
            self.services[name] = process
        for name, (process, port) in launched.items():
            url = f"http://127.0.0.1:{port}"
            process.wait_until(functools.partial(_http_ok, f"{url}/readyz"), 90, "ready")
            self.service_urls[name] = url
            self.log(f"✔ {name} ready at {self.service_urls[name]}")

    def supervise_once(self) -> None:
        """Restart a service that died (with its log saying why), a few times at most."""
        for name, process in list(self.services.items()):
            if process.is_running():
                continue
            count = self.restarts.get(name, 0)
            if count >= 5:
                continue
            self.restarts[name] = count + 1
            self.log(f"✗ {name} exited ({process.returncode}); restarting — see {process.log_path}")
            self._start_services((name,))

    def stop(self) -> None:
        for name in reversed(SERVICES):
            process = self.services.pop(name, None)
            if process is not None:
                process.stop(timeout=30)
        if self.registry is not None:
            self.registry.stop()
        if self.kube is not None:
            self.kube.stop(timeout=15)
        if self.nats is not None:
            self.nats.stop()


def up(state_dir: Path, *, demo: bool = False) -> int:
    state_dir = state_dir.resolve()
    stack = Stack(state_dir)
    stopping = False

    def on_signal(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            endpoints = stack.start()
        except Exception as exc:
            print(f"✗ sluice up failed: {exc}", file=sys.stderr)
            return 1
        print(json.dumps(endpoints, indent=2))
        if demo:
            from libs.cli.demo import run_demo

            run_demo(stack, lambda: stopping)
        print(
            "\nSluice is running. Try:\n"
            f"  .venv/bin/sluice --kubeconfig {stack.kubeconfig} get all -A\n"
            f"  kubectl --kubeconfig {stack.kubeconfig} get crds   (if kubectl is installed)\n"
            f"Logs: {state_dir / 'logs'}. Stop with Ctrl-C."
        )
        while not stopping:
            time.sleep(0.5)
            stack.supervise_once()
        print("► stopping")
        return 0
    finally:
        with contextlib.suppress(Exception):
            stack.stop()
        for s, handler in previous.items():
            signal.signal(s, handler)
        with contextlib.suppress(FileNotFoundError):
            (state_dir / "endpoints.json").unlink()
