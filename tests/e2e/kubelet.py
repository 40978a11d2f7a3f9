"""A stand-in kubelet for the emulator, faithful to what the cluster holds.

The emulator stores Deployments and StatefulSets but runs nothing. End-to-end tests of the install
need the pods, so this plays the kubelet: when the StatefulSet `sluice-nats` appears it starts a real
nats-server with the nats.conf mounted from the cluster's ConfigMap and the password variables its
container declares, resolved from the cluster's Secret; when a Deployment `sluice-<component>`
appears it starts that service in process with the settings its container's env resolves to.

Only what cannot be the cluster's is made local, the way a pod's network and disks are: listen
addresses become loopback with a free port, in-cluster Service addresses the stand-in serves become
the local server's, volumes become directories under the test's own, the kubeconfig is the
emulator's (the ServiceAccount's stand-in). Everything else — users, passwords, settings — comes
from the cluster, so a wrong Secret key, a missing ConfigMap or a typo'd variable in deploy/k8s
fails the test instead of being papered over by the test's own values.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from libs.common.app import InProcess, ServiceSpec
from libs.common.kube import Kube
from libs.devservers.nats import NatsServer
from libs.devservers.procs import ServerStartError
from tests.harness.services import running_service

NATS = "sluice-nats"
# The ports nats.conf declares (`port:`, `http_port:`); NatsServer moves both to free loopback ports.
NATS_CLIENT_PORT = 4222
NATS_MONITOR_PORT = 8222


class PodConfigError(Exception):
    """A ConfigMap, Secret or key the pod needs is not in the cluster (yet): a kubelet reports
    CreateContainerConfigError and tries again, and so does the stand-in."""


class Unsupported(Exception):
    """The manifest uses a pod feature the stand-in does not reproduce: fail loudly, never guess."""


async def container_env(kube: Kube, namespace: str, container: Mapping[str, Any]) -> dict[str, str]:
    """The container's environment as a kubelet builds it: `envFrom` sources in order, then `env`
    (which wins); values, secretKeyRef and configMapKeyRef. Raises PodConfigError when a required
    source is missing, so the caller retries."""
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        env |= await _env_from(kube, namespace, source)
    for var in container.get("env") or []:
        value = await _env_value(kube, namespace, var)
        if value is not None:
            env[var["name"]] = value
    return env


async def _env_from(kube: Kube, namespace: str, source: Mapping[str, Any]) -> dict[str, str]:
    prefix = source.get("prefix", "")
    for key, kind in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
        if key in source:
            ref = source[key]
            data = await _data(kube, kind, namespace, ref["name"], optional=bool(ref.get("optional")))
            return {prefix + k: v for k, v in (data or {}).items()}
    raise Unsupported(f"envFrom source {sorted(source)}")


async def _env_value(kube: Kube, namespace: str, var: Mapping[str, Any]) -> str | None:
    if "valueFrom" not in var:
        return str(var.get("value", ""))
    value_from = var["valueFrom"]
    for key, kind in (("secretKeyRef", "Secret"), ("configMapKeyRef", "ConfigMap")):
        if key in value_from:
            ref = value_from[key]
            optional = bool(ref.get("optional"))
            data = await _data(kube, kind, namespace, ref["name"], optional=optional)
            if data is not None and ref["key"] in data:
                return data[ref["key"]]
            if optional:
                return None
            raise PodConfigError(f"{var['name']}: key {ref['key']!r} not in {kind} {ref['name']}")
    raise Unsupported(f"{var['name']}: valueFrom {sorted(value_from)}")


async def _data(kube: Kube, kind: str, namespace: str, name: str, *, optional: bool) -> dict[str, str] | None:
    """The decoded data of a ConfigMap or Secret; None when it is absent and optional."""
    obj = await kube.get("v1", kind, name, namespace)
    if obj is None:
        if optional:
            return None
        raise PodConfigError(f"{kind} {namespace}/{name} not found")
    data: dict[str, str] = obj.get("data") or {}
    if kind == "Secret":
        return {k: base64.b64decode(v).decode() for k, v in data.items()}
    return dict(data)


@dataclass
class Kubelet:
    """Runs the pods of `namespace` once each, as they appear; stops them all when the test ends
    (in the task that started them). `specs` maps a Deployment's name to the service it runs."""

    kube: Kube
    kubeconfig: str
    root: Path
    specs: Mapping[str, ServiceSpec]
    namespace: str = "flux-system"
    nats: NatsServer | None = None
    started: list[str] = field(default_factory=list)
    pods: dict[str, InProcess] = field(default_factory=dict)
    waiting: dict[str, str] = field(default_factory=dict)
    """Why a pod has not started yet (a missing ConfigMap or Secret), for a failing test's message."""
    crashed: dict[str, str] = field(default_factory=dict)
    """Pods whose process exited at start: a kubelet would crash-loop them, and nothing in the
    cluster changes to make a retry succeed, so the stand-in reports it once and stops trying."""
    crash: asyncio.Event = field(default_factory=asyncio.Event)
    _nats_service: str = ""
    _endpoints: dict[str, str] = field(default_factory=dict)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        async with contextlib.AsyncExitStack() as stack:
            while not self._stop.is_set():
                await self._sync(stack)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), 0.1)

    def stop(self) -> None:
        self._stop.set()

    async def _sync(self, stack: contextlib.AsyncExitStack) -> None:
        if self.nats is None and NATS not in self.crashed:
            await self._try(NATS, self._start_nats(stack))
        if self.nats is None:
            return  # the services would only crash-loop until NATS is up
        deployments, _ = await self.kube.list_objects("apps/v1", "Deployment", self.namespace)
        for deployment in sorted(deployments, key=lambda d: str(d["metadata"]["name"])):
            name = deployment["metadata"]["name"]
            if name in self.specs and name not in self.started and name not in self.crashed:
                await self._try(name, self._start_service(stack, deployment))

    async def _try(self, name: str, starting: Any) -> None:
        try:
            await starting
        except PodConfigError as exc:
            self.waiting[name] = str(exc)
        except (ServerStartError, RuntimeError, TimeoutError, Unsupported) as exc:
            self.crashed[name] = str(exc)
            self.crash.set()
        else:
            self.waiting.pop(name, None)

    async def _start_nats(self, stack: contextlib.AsyncExitStack) -> None:
        sts = await self.kube.get("apps/v1", "StatefulSet", NATS, self.namespace)
        if sts is None:
            return
        pod = sts["spec"]["template"]["spec"]
        [container] = pod["containers"]
        claims = {t["metadata"]["name"] for t in sts["spec"].get("volumeClaimTemplates") or []}
        pod_dir = self.root / f"{NATS}-0"
        mounts = await self._mounts(pod, container, pod_dir, claims)
        env = await container_env(self.kube, self.namespace, container)
        config = _relocate(_flag(container.get("args") or [], "--config"), mounts)
        # The store directory and ports are the test's (NatsServer's options win over the file's);
        # the environment is the container's alone, so the passwords can only come from the Secret.
        server = NatsServer(
            pod_dir / "store", config_file=Path(config), env={"PATH": os.environ["PATH"], **env}
        )
        await asyncio.to_thread(server.start)
        stack.callback(server.stop)
        self.nats = server
        self._nats_service = sts["spec"]["serviceName"]

    async def _route_nats_service(self) -> None:
        """In-cluster addresses of the NATS Service → the local server, as cluster DNS would
        (a pod started before the Service exists cannot resolve it: wait)."""
        if self._endpoints:
            return
        server, name = self.nats, self._nats_service
        assert server is not None
        service = await self.kube.get("v1", "Service", name, self.namespace)
        if service is None:
            raise PodConfigError(f"Service {self.namespace}/{name} not found")
        local = {
            NATS_CLIENT_PORT: server.url.removeprefix("nats://"),
            NATS_MONITOR_PORT: server.monitor_url.removeprefix("http://"),
        }
        named = {"client": NATS_CLIENT_PORT, "monitor": NATS_MONITOR_PORT}
        for port in service["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            container_port = named.get(target) if isinstance(target, str) else int(target)
            if container_port in local:
                for host in (f"{name}.{self.namespace}.svc", f"{name}.{self.namespace}.svc.cluster.local"):
                    self._endpoints[f"{host}:{port['port']}"] = local[container_port]

    async def _start_service(self, stack: contextlib.AsyncExitStack, deployment: dict[str, Any]) -> None:
        name = deployment["metadata"]["name"]
        spec = self.specs[name]
        pod = deployment["spec"]["template"]["spec"]
        [container] = pod["containers"]
        await self._route_nats_service()
        mounts = await self._mounts(pod, container, self.root / f"{name}-0", set())
        env = {
            k: self._localize(k, v, mounts)
            for k, v in (await container_env(self.kube, self.namespace, container)).items()
        }
        env |= {"SLUICE_KUBECONFIG": self.kubeconfig, "SLUICE_REPLICA_ID": f"{name}-0"}
        if ".svc" in env.get("SLUICE_NATS_URL", ""):
            raise Unsupported(f"{name}: SLUICE_NATS_URL names no Service the stand-in runs")
        unknown = spec.settings.unknown_env(env)
        if unknown:
            raise Unsupported(f"{name} sets variables no setting reads (typos?): {unknown}")
        settings = spec.settings.from_env(env)
        values = {k: getattr(settings, k) for k in settings.model_fields_set}
        self.started.append(name)
        self.pods[name] = await stack.enter_async_context(running_service(spec, **values))

    def _localize(self, key: str, value: str, mounts: Mapping[str, Path]) -> str:
        """One env value as it must be here: listen addresses on loopback (a free port), routed
        Service addresses to their local servers, mounted paths to their local directories."""
        if key.endswith("_ADDR"):
            return "127.0.0.1:0"
        if key == "SLUICE_ARTIFACT_BASE_URL":
            return ""  # cluster DNS does not resolve here; empty = the service's own address
        for cluster, local in self._endpoints.items():
            value = value.replace(cluster, local)
        return _relocate(value, mounts)

    async def _mounts(
        self, pod: Mapping[str, Any], container: Mapping[str, Any], pod_dir: Path, claims: set[str]
    ) -> dict[str, Path]:
        """mountPath → the local directory standing in for that volume. A PVC is shared by every
        pod that claims it (as one ReadWriteOnce volume on a one-node cluster); an emptyDir is the
        pod's own; a ConfigMap is written out, key by key, as the kubelet projects it."""
        volumes = {v["name"]: v for v in pod.get("volumes") or []}
        mounts: dict[str, Path] = {}
        files: dict[Path, str] = {}
        for mount in container.get("volumeMounts") or []:
            volume = volumes.get(mount["name"])
            if volume is None and mount["name"] in claims:
                local = pod_dir / "claims" / mount["name"]
            elif volume is None:
                raise Unsupported(f"volumeMount {mount['name']} names no volume")
            elif "persistentVolumeClaim" in volume:
                local = self.root / "pvc" / volume["persistentVolumeClaim"]["claimName"]
            elif "emptyDir" in volume:
                local = pod_dir / "volumes" / mount["name"]
            elif "configMap" in volume:
                local = pod_dir / "volumes" / mount["name"]
                files |= await self._projected(volume["configMap"], local)
            else:
                raise Unsupported(f"volume {mount['name']}: {sorted(volume)}")
            mounts[mount["mountPath"]] = local
        await asyncio.to_thread(_materialize, list(mounts.values()), files)
        return mounts

    async def _projected(self, source: Mapping[str, Any], directory: Path) -> dict[Path, str]:
        """The files a ConfigMap volume shows: every key, or just its `items`."""
        data = await _data(self.kube, "ConfigMap", self.namespace, source["name"], optional=False)
        assert data is not None
        items = source.get("items") or [{"key": k, "path": k} for k in data]
        return {directory / item["path"]: data[item["key"]] for item in items}


def _materialize(directories: list[Path], files: Mapping[Path, str]) -> None:
    for directory in directories:
        directory.mkdir(parents=True, exist_ok=True)
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def _flag(args: list[str], name: str) -> str:
    """The value of `--name VALUE` or `--name=VALUE` in a container's args."""
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    raise Unsupported(f"no {name} in the container's args")


def _relocate(value: str, mounts: Mapping[str, Path]) -> str:
    """A path (or file:// URL) under a mountPath, moved to that volume's local directory."""
    for mount_path in sorted(mounts, key=len, reverse=True):
        found = re.match(rf"^(file://)?{re.escape(mount_path.rstrip('/'))}(?=/|$)", value)
        if found:
            return (found.group(1) or "") + str(mounts[mount_path]) + value[found.end() :]
    return value
