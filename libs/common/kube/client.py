"""Kubernetes access over the official client, kept off the event loop.

Objects are plain dicts in Kubernetes JSON form; typed Flux models are built on top by callers
(`libs.common.api`). Paths are resolved through API discovery (cached, refreshed on a miss so
kinds from CRDs installed later are found).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import AsyncIterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal, cast

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

log = logging.getLogger("sluice.kube")

Obj = dict[str, Any]
PatchType = Literal["merge", "json", "strategic"]
_PATCH_CONTENT_TYPES: dict[str, str] = {
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
    "strategic": "application/strategic-merge-patch+json",
}


class KubeError(RuntimeError):
    """A Kubernetes API call failed; `status` is the API's Status object when there was one."""

    def __init__(
        self, message: str, *, code: int = 0, reason: str = "", status: Mapping[str, Any] | None = None
    ):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.status = dict(status or {})


class NotFound(KubeError):
    pass


class Conflict(KubeError):
    """409: a stale resourceVersion, an existing name, or a server-side apply field conflict."""


class Invalid(KubeError):
    """422: the object failed validation; `causes` name the fields."""

    @property
    def causes(self) -> list[dict[str, Any]]:
        details = self.status.get("details") or {}
        return list(details.get("causes") or [])


class Gone(KubeError):
    """410: a watch asked for a resourceVersion older than the server keeps."""


def _error(exc: ApiException) -> KubeError:
    status: dict[str, Any] = {}
    with contextlib.suppress(Exception):
        status = json.loads(exc.body) if exc.body else {}
    message = str(status.get("message") or exc.reason or "request failed")
    reason = str(status.get("reason") or "")
    cls = {404: NotFound, 409: Conflict, 422: Invalid, 410: Gone}.get(int(exc.status or 0), KubeError)
    return cls(message, code=int(exc.status or 0), reason=reason, status=status)


@dataclass(frozen=True)
class Resource:
    """Where a kind lives in the REST API."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(
        self, namespace: str | None = None, name: str | None = None, subresource: str | None = None
    ) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name:
            base += f"/{name}"
            if subresource:
                base += f"/{subresource}"
        return base


@dataclass(frozen=True)
class WatchEvent:
    type: Literal["ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"]
    object: Obj


def _split(api_version: str) -> tuple[str, str]:
    if "/" in api_version:
        group, version = api_version.split("/", 1)
        return group, version
    return "", api_version


class Kube:
    """An async facade over one `kubernetes.client.ApiClient`."""

    def __init__(self, api: k8s.ApiClient, *, max_workers: int = 16) -> None:
        self.api = api
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="kube")
        self._resources: dict[tuple[str, str], Resource] = {}
        self._discovered: set[str] = set()
        self._discovery_lock = threading.Lock()

    @classmethod
    def from_config(cls, kubeconfig: str | None = None, *, context: str | None = None) -> Kube:
        """KUBECONFIG-style file when given (or in the environment), else the in-cluster config."""
        configuration = k8s.Configuration()
        try:
            if kubeconfig:
                k8s_config.load_kube_config(
                    config_file=kubeconfig, context=context, client_configuration=configuration
                )
            else:
                try:
                    k8s_config.load_incluster_config(client_configuration=configuration)
                except ConfigException:
                    k8s_config.load_kube_config(context=context, client_configuration=configuration)
        except (ConfigException, OSError) as exc:
            raise KubeError(f"no usable Kubernetes configuration: {exc}") from None
        configuration.connection_pool_maxsize = 32
        return cls(k8s.ApiClient(configuration))

    @property
    def host(self) -> str:
        return str(self.api.configuration.host)

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._pool, self.api.close)
        self._pool.shutdown(wait=False, cancel_futures=True)

    # --- plumbing -----------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        content_type: str | None = None,
        timeout: float | None = 30,
    ) -> Any:
        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        params = [(k, v) for k, v in (query or {}).items() if v is not None]
        try:
            resp = self.api.call_api(
                path,
                method,
                query_params=params,
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
                _preload_content=False,
                _return_http_data_only=True,
                _request_timeout=timeout,
            )
        except ApiException as exc:
            raise _error(exc) from None
        data = resp.data
        return json.loads(data) if data else None

    async def _run(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, partial(fn, *args, **kwargs))

    def _discover(self, group_version: str) -> None:
        path = f"/apis/{group_version}" if "/" in group_version else f"/api/{group_version}"
        group, version = _split(group_version)
        try:
            doc = self._call("GET", path)
        except NotFound:
            return
        for res in doc.get("resources", []):
            if "/" in res["name"]:
                continue  # subresources
            self._resources[(group_version, res["kind"])] = Resource(
                group, version, res["name"], res["kind"], bool(res.get("namespaced"))
            )

    def resource_sync(self, api_version: str, kind: str) -> Resource:
        key = (api_version, kind)
        with self._discovery_lock:
            if key not in self._resources:
                # A miss may be a CRD installed after we last looked: ask the server again.
                self._discover(api_version)
            if key not in self._resources:
                raise NotFound(
                    f"the server does not serve {kind} in {api_version}", code=404, reason="NotFound"
                )
            return self._resources[key]

    async def resource(self, api_version: str, kind: str) -> Resource:
        return cast(Resource, await self._run(self.resource_sync, api_version, kind))

    # --- reads --------------------------------------------------------------------------------

    async def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> Obj | None:
        """The object, or None when it does not exist."""
        res = await self.resource(api_version, kind)
        try:
            return cast(Obj, await self._run(self._call, "GET", res.path(namespace, name)))
        except NotFound:
            return None

    async def list_objects(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> tuple[list[Obj], str]:
        """All matching objects (following `continue`) and the list's resourceVersion."""
        res = await self.resource(api_version, kind)
        items: list[Obj] = []
        cont: str | None = None
        while True:
            query = {
                "labelSelector": label_selector,
                "fieldSelector": field_selector,
                "limit": 500,
                "continue": cont,
            }
            doc = await self._run(self._call, "GET", res.path(namespace), query=query)
            for item in doc.get("items") or []:
                item.setdefault("apiVersion", api_version)
                item.setdefault("kind", kind)
                items.append(item)
            cont = (doc.get("metadata") or {}).get("continue")
            if not cont:
                return items, str((doc.get("metadata") or {}).get("resourceVersion", ""))

    async def watch(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        *,
        resource_version: str | None = None,
        label_selector: str | None = None,
        timeout_seconds: int = 300,
        bookmarks: bool = True,
    ) -> AsyncIterator[WatchEvent]:
        """Stream watch events until the server ends the watch (then the caller re-lists/re-watches).

        Raises Gone when `resource_version` is too old. The HTTP stream is read in a dedicated
        thread so a long watch never occupies the shared worker pool.
        """
        res = await self.resource(api_version, kind)
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[WatchEvent | BaseException | None] = asyncio.Queue()
        stop = threading.Event()
        holder: dict[str, Any] = {}
        query = {
            "watch": "true",
            "resourceVersion": resource_version,
            "labelSelector": label_selector,
            "timeoutSeconds": timeout_seconds,
            "allowWatchBookmarks": "true" if bookmarks else None,
        }

        def pump() -> None:
            try:
                resp = self.api.call_api(
                    res.path(namespace),
                    "GET",
                    query_params=[(k, v) for k, v in query.items() if v is not None],
                    header_params={"Accept": "application/json"},
                    auth_settings=["BearerToken"],
                    _preload_content=False,
                    _return_http_data_only=True,
                    _request_timeout=(10, timeout_seconds + 30),
                )
                holder["resp"] = resp
                buf = b""
                for chunk in resp.stream(65536, decode_content=True):
                    if stop.is_set():
                        break
                    buf += chunk
                    while b"\n" in buf:
                        line, buf = buf.split(b"\n", 1)
                        if line.strip():
                            doc = json.loads(line)
                            ev = WatchEvent(doc["type"], doc["object"])
                            loop.call_soon_threadsafe(events.put_nowait, ev)
                loop.call_soon_threadsafe(events.put_nowait, None)
            except ApiException as exc:
                loop.call_soon_threadsafe(events.put_nowait, _error(exc))
            except BaseException as exc:
                if not stop.is_set():
                    loop.call_soon_threadsafe(events.put_nowait, KubeError(f"watch of {kind} failed: {exc}"))
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(events.put_nowait, None)

        thread = threading.Thread(target=pump, name=f"watch-{kind}", daemon=True)
        thread.start()
        try:
            while True:
                item = await events.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                if item.type == "ERROR":
                    code = int(item.object.get("code") or 0)
                    msg = str(item.object.get("message") or "watch error")
                    if code == 410:
                        raise Gone(msg, code=410, reason="Expired", status=item.object)
                    raise KubeError(msg, code=code, status=item.object)
                yield item
        finally:
            stop.set()
            resp = holder.get("resp")
            if resp is not None:
                with contextlib.suppress(Exception):
                    resp.shutdown() if hasattr(resp, "shutdown") else resp.close()
            await asyncio.get_running_loop().run_in_executor(None, thread.join, 5)

    # --- writes -------------------------------------------------------------------------------

    async def create(self, obj: Obj, *, field_manager: str | None = None, dry_run: bool = False) -> Obj:
        res = await self.resource(obj["apiVersion"], obj["kind"])
        ns = obj.get("metadata", {}).get("namespace")
        query = {"fieldManager": field_manager, "dryRun": "All" if dry_run else None}
        return cast(Obj, await self._run(self._call, "POST", res.path(ns), query=query, body=obj))

    async def replace(
        self, obj: Obj, *, field_manager: str | None = None, subresource: str | None = None
    ) -> Obj:
        """PUT; the object's resourceVersion is the precondition (Conflict when stale)."""
        res = await self.resource(obj["apiVersion"], obj["kind"])
        meta = obj["metadata"]
        path = res.path(meta.get("namespace"), meta["name"], subresource)
        query = {"fieldManager": field_manager}
        return cast(Obj, await self._run(self._call, "PUT", path, query=query, body=obj))

    async def patch(
        self,
        api_version: str,
        kind: str,
        name: str,
        patch: Any,
        *,
        namespace: str | None = None,
        patch_type: PatchType = "merge",
        subresource: str | None = None,
        field_manager: str | None = None,
    ) -> Obj:
        res = await self.resource(api_version, kind)
        path = res.path(namespace, name, subresource)
        query = {"fieldManager": field_manager}
        content_type = _PATCH_CONTENT_TYPES[patch_type]
        return cast(
            Obj,
            await self._run(self._call, "PATCH", path, query=query, body=patch, content_type=content_type),
        )

    async def apply(
        self,
        obj: Obj,
        *,
        field_manager: str,
        force: bool = True,
        dry_run: bool = False,
        subresource: str | None = None,
    ) -> Obj:
        """Server-side apply (`application/apply-patch+yaml`; JSON is YAML)."""
        res = await self.resource(obj["apiVersion"], obj["kind"])
        meta = obj["metadata"]
        path = res.path(meta.get("namespace"), meta["name"], subresource)
        query = {
            "fieldManager": field_manager,
            "force": "true" if force else "false",
            "dryRun": "All" if dry_run else None,
        }
        return cast(
            Obj,
            await self._run(
                self._call, "PATCH", path, query=query, body=obj, content_type="application/apply-patch+yaml"
            ),
        )

    async def patch_status(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str | None,
        status: Mapping[str, Any],
        *,
        field_manager: str,
        previous: Mapping[str, Any] | None = None,
    ) -> Obj:
        """Write `.status` through the status subresource with a merge patch.

        Keys present in `previous` but gone from `status` are sent as null so they are removed.
        """
        body: dict[str, Any] = dict(status)
        for key in previous or {}:
            body.setdefault(key, None)
        return await self.patch(
            api_version,
            kind,
            name,
            {"status": body},
            namespace=namespace,
            subresource="status",
            field_manager=field_manager,
        )

    async def delete(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str | None = None,
        *,
        propagation: Literal["Background", "Foreground", "Orphan"] = "Background",
        dry_run: bool = False,
    ) -> Obj | None:
        """Delete; returns the server's answer, or None when the object was already gone."""
        res = await self.resource(api_version, kind)
        body = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": propagation}
        query = {"dryRun": "All" if dry_run else None}
        try:
            return cast(
                Obj, await self._run(self._call, "DELETE", res.path(namespace, name), query=query, body=body)
            )
        except NotFound:
            return None

    async def server_version(self) -> dict[str, Any]:
        return cast(dict[str, Any], await self._run(self._call, "GET", "/version"))

    async def ping(self) -> bool:
        """Readiness: the API server answers."""
        try:
            await self._run(self._call, "GET", "/version", timeout=5)
        except Exception:
            return False
        return True
