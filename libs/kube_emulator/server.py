"""The HTTP face of the emulator: Kubernetes REST paths, discovery, watch streams, Status errors."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import re
from typing import Any

import yaml
from aiohttp import web

from . import errors as E
from . import protobuf, tables
from .cluster import FIELD_VALIDATION, WARNINGS, Cluster
from .kinds import ResourceType
from .patching import PATCH_TYPES, decode_json
from .rbac import Rbac, User, request_attributes
from .selectors import make_selector

JSON = dict[str, Any]
log = logging.getLogger(__name__)
USER_KEY = web.RequestKey("user", User)

GIT_VERSION = "v1.32.0"
_VERSION_RE = re.compile(r"^v(\d+)(?:(alpha|beta)(\d+))?$")


def version_priority(version: str) -> tuple[int, int, int, str]:
    """Kubernetes' version ordering: GA > beta > alpha, higher numbers first, others last."""
    m = _VERSION_RE.match(version)
    if not m:
        return (3, 0, 0, version)
    major = int(m.group(1))
    stage = {"None": 0, "beta": 1, "alpha": 2}[str(m.group(2))]
    minor = int(m.group(3) or 0)
    return (stage, -major, -minor, version)


def _json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=json.dumps(body, separators=(",", ":")).encode(),
        status=status,
        content_type="application/json",
    )


def _status_response(err: E.ApiError) -> web.Response:
    return _json_response(err.status(), err.code)


def _flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "").lower() in ("true", "1")


def _manager_from_agent(user_agent: str) -> str:
    return (user_agent.split("/", 1)[0] or "unknown")[:128]


class ApiServer:
    """aiohttp application serving a `Cluster`."""

    def __init__(self, cluster: Cluster, bookmark_interval: float = 1.0, rbac: bool = False) -> None:
        self.cluster = cluster
        # tokens are always issued (TokenRequest works either way); rules are enforced only with rbac
        self.rbac = Rbac(cluster.store)
        self.enforce_rbac = rbac
        self.bookmark_interval = bookmark_interval
        self.address = "127.0.0.1:0"
        self.app = web.Application(client_max_size=64 * 1024 * 1024)
        self.app.router.add_route("*", "/{tail:.*}", self.dispatch)
        self.closing = False

    # -- entry ---------------------------------------------------------------------------------
    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        mode = request.query.get("fieldValidation", "Warn")
        warnings: list[str] = []
        FIELD_VALIDATION.set(mode)
        WARNINGS.set(warnings)
        try:
            if mode not in ("Ignore", "Warn", "Strict"):
                raise E.bad_request(
                    f'fieldValidation parameter unsupported: "{mode}", must be one of "Ignore", "Warn", "Strict"'
                )
            if self.enforce_rbac:
                self._authorize(request)
            response = await self._route(request)
        except E.ApiError as err:
            response = _status_response(err)
        except (web.HTTPException, ConnectionResetError):
            raise
        except Exception as exc:
            log.exception("internal error serving %s %s", request.method, request.path_qs)
            response = _status_response(E.ApiError(500, "InternalError", f"Internal error occurred: {exc}"))
        if warnings and not response.prepared:
            for warning in warnings:
                response.headers.add("Warning", "299 - " + json.dumps(warning))
        return response

    def _authorize(self, request: web.Request) -> None:
        """401 without a known bearer token, 403 when no RBAC rule allows the request."""
        user = self.rbac.authenticate(request.headers.get("Authorization", ""))
        if user is None:
            raise E.ApiError(401, "Unauthorized", "Unauthorized")
        request[USER_KEY] = user
        self.rbac.check(user, request_attributes(request.method, request.path, dict(request.query)))

    async def _route(self, request: web.Request) -> web.StreamResponse:
        parts = [p for p in request.path.split("/") if p]
        if request.path in ("/version", "/version/"):
            return _json_response(
                {
                    "major": "1",
                    "minor": "32",
                    "gitVersion": GIT_VERSION,
                    "gitCommit": "sluice-kube-emulator",
                    "gitTreeState": "clean",
                    "buildDate": "2024-12-11T00:00:00Z",
                    "goVersion": "go1.23.4",
                    "compiler": "gc",
                    "platform": "linux/amd64",
                }
            )
        if request.path in ("/healthz", "/readyz", "/livez"):
            return web.Response(text="ok")
        if parts[:2] == ["openapi", "v3"]:
            return self._openapi_v3("/".join(parts[2:]))
        if not parts or parts[0] not in ("api", "apis"):
            raise E.ApiError(404, "NotFound", "the server could not find the requested resource")
        if parts[0] == "api":
            if len(parts) == 1:
                return self._api_versions(request)
            group, version, rest = "", parts[1], parts[2:]
            if version != "v1":
                raise E.ApiError(404, "NotFound", "the server could not find the requested resource")
        else:
            if len(parts) == 1:
                return self._group_list(request)
            if len(parts) == 2:
                return self._group(parts[1])
            group, version, rest = parts[1], parts[2], parts[3:]
        if not rest:
            return self._resource_list(request, group, version)
        watch = False
        if rest[0] == "watch":
            watch, rest = True, rest[1:]
        if not rest:
            raise E.ApiError(404, "NotFound", "the server could not find the requested resource")
        ns: str | None = None
        name: str | None = None
        sub: str | None = None
        if rest[0] == "namespaces" and len(rest) >= 3 and group == "" and rest[2] in ("status", "finalize"):
            resource, name, sub = "namespaces", rest[1], rest[2]
        elif rest[0] == "namespaces" and len(rest) >= 3:
            ns, resource = rest[1], rest[2]
            name = rest[3] if len(rest) > 3 else None
            sub = rest[4] if len(rest) > 4 else None
        else:
            resource = rest[0]
            name = rest[1] if len(rest) > 1 else None
            sub = rest[2] if len(rest) > 2 else None
        if len(rest) > 5:
            raise E.ApiError(404, "NotFound", "the server could not find the requested resource")
        rt = self.cluster.resolve(group, version, resource)
        if rt.namespaced and ns is None and name is not None and resource != "namespaces":
            raise E.ApiError(404, "NotFound", "the server could not find the requested resource")
        if not rt.namespaced and ns is not None:
            raise E.ApiError(404, "NotFound", "the server could not find the requested resource")
        if sub == "token" and rt.key == ("", "serviceaccounts") and ns is not None and name is not None:
            return await self._token_request(request, ns, name)
        if (
            sub is not None
            and not (sub == "status" and rt.has_status)
            and not (sub == "scale" and rt.scale is not None)
            and not (sub == "finalize" and resource == "namespaces")
        ):
            raise E.ApiError(404, "NotFound", "the server could not find the requested resource")
        if sub == "scale" and rt.scale is not None and name is not None:
            return await self._scale(request, rt, ns, name)
        if sub == "finalize":
            sub = None
        method = request.method
        if rt.review and not (name is None and method == "POST"):
            raise E.method_not_allowed()
        if name is None:
            if method == "GET":
                if watch or _flag(request, "watch"):
                    return await self._watch(request, rt, version, ns)
                return self._list(request, rt, version, ns)
            if method == "POST":
                return await self._create(request, rt, version, ns)
            if method == "DELETE":
                return await self._delete_collection(request, rt, version, ns)
            raise E.method_not_allowed()
        if method == "GET":
            if watch:
                return await self._watch(request, rt, version, ns, name)
            return self._get(request, rt, version, ns, name)
        if method == "PUT":
            return await self._update(request, rt, version, ns, name, sub)
        if method == "PATCH":
            return await self._patch(request, rt, version, ns, name, sub)
        if method == "DELETE" and sub is None:
            return await self._delete(request, rt, version, ns, name)
        raise E.method_not_allowed()

    # -- discovery -----------------------------------------------------------------------------
    def _versions_by_group(self) -> dict[str, list[str]]:
        groups: dict[str, set[str]] = {}
        for rt in self.cluster.types.values():
            groups.setdefault(rt.group, set()).update(rt.versions)
        return {g: sorted(vs, key=version_priority) for g, vs in groups.items()}

    def _api_versions(self, request: web.Request) -> web.Response:
        if self._wants_aggregated(request):
            return self._aggregated(core=True)
        return _json_response(
            {
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": self.address}],
            }
        )

    def _group_doc(self, group: str, versions: list[str]) -> JSON:
        entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        return {"name": group, "versions": entries, "preferredVersion": entries[0]}

    def _group_list(self, request: web.Request) -> web.Response:
        if self._wants_aggregated(request):
            return self._aggregated(core=False)
        groups = [self._group_doc(g, vs) for g, vs in sorted(self._versions_by_group().items()) if g]
        return _json_response({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})

    def _group(self, group: str) -> web.Response:
        versions = self._versions_by_group().get(group)
        if not versions or not group:
            raise E.ApiError(404, "NotFound", "the server could not find the requested resource")
        doc = self._group_doc(group, versions)
        doc.update({"kind": "APIGroup", "apiVersion": "v1"})
        return _json_response(doc)

    def _types_at(self, group: str, version: str) -> list[ResourceType]:
        return sorted(
            (rt for rt in self.cluster.types.values() if rt.group == group and version in rt.versions),
            key=lambda rt: rt.resource,
        )

    def _resource_list(self, request: web.Request, group: str, version: str) -> web.Response:
        types = self._types_at(group, version)
        if not types:
            raise E.ApiError(404, "NotFound", "the server could not find the requested resource")
        resources: list[JSON] = []
        for rt in types:
            entry: JSON = {
                "name": rt.resource,
                "singularName": rt.singular,
                "namespaced": rt.namespaced,
                "kind": rt.kind,
                "verbs": rt.verbs,
            }
            if rt.short_names:
                entry["shortNames"] = list(rt.short_names)
            if rt.categories:
                entry["categories"] = list(rt.categories)
            resources.append(entry)
            if rt.scale is not None:
                resources.append(
                    {
                        "name": f"{rt.resource}/scale",
                        "singularName": "",
                        "namespaced": rt.namespaced,
                        "group": "autoscaling",
                        "version": "v1",
                        "kind": "Scale",
                        "verbs": ["get", "patch", "update"],
                    }
                )
            if rt.has_status:
                resources.append(
                    {
                        "name": f"{rt.resource}/status",
                        "singularName": "",
                        "namespaced": rt.namespaced,
                        "kind": rt.kind,
                        "verbs": ["get", "patch", "update"],
                    }
                )
        gv = f"{group}/{version}" if group else version
        return _json_response(
            {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}
        )

    def _wants_aggregated(self, request: web.Request) -> bool:
        accept = request.headers.get("Accept", "")
        return "as=APIGroupDiscoveryList" in accept and "v=v2;" in accept.replace(" ", "") + ";"

    def _aggregated(self, core: bool) -> web.Response:
        items: list[JSON] = []
        for group, versions in sorted(self._versions_by_group().items()):
            if (group == "") != core:
                continue
            version_docs: list[JSON] = []
            for version in versions:
                resources: list[JSON] = []
                for rt in self._types_at(group, version):
                    entry: JSON = {
                        "resource": rt.resource,
                        "responseKind": {"group": group, "version": version, "kind": rt.kind},
                        "scope": "Namespaced" if rt.namespaced else "Cluster",
                        "singularResource": rt.singular,
                        "verbs": rt.verbs,
                    }
                    if rt.short_names:
                        entry["shortNames"] = list(rt.short_names)
                    if rt.categories:
                        entry["categories"] = list(rt.categories)
                    subresources: list[JSON] = []
                    if rt.has_status:
                        subresources.append(
                            {
                                "subresource": "status",
                                "responseKind": {"group": group, "version": version, "kind": rt.kind},
                                "verbs": ["get", "patch", "update"],
                            }
                        )
                    if rt.scale is not None:
                        subresources.append(
                            {
                                "subresource": "scale",
                                "responseKind": {"group": "autoscaling", "version": "v1", "kind": "Scale"},
                                "verbs": ["get", "patch", "update"],
                            }
                        )
                    if subresources:
                        entry["subresources"] = subresources
                    resources.append(entry)
                version_docs.append({"version": version, "resources": resources, "freshness": "Current"})
            items.append({"metadata": {"name": group, "creationTimestamp": None}, "versions": version_docs})
        body = {
            "kind": "APIGroupDiscoveryList",
            "apiVersion": "apidiscovery.k8s.io/v2",
            "metadata": {},
            "items": items,
        }
        return web.Response(
            body=json.dumps(body).encode(),
            headers={"Content-Type": "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"},
        )

    # -- OpenAPI v3 (only what kubectl needs to use server-side field validation) --------------
    def _openapi_hash(self, group: str, version: str) -> str:
        described = [(rt.resource, rt.kind, rt.namespaced) for rt in self._types_at(group, version)]
        return hashlib.sha256(json.dumps([group, version, described]).encode()).hexdigest()[:16].upper()

    def _openapi_v3(self, gv_path: str) -> web.Response:
        if not gv_path:
            paths: JSON = {}
            for group, versions in self._versions_by_group().items():
                for version in versions:
                    key = f"apis/{group}/{version}" if group else f"api/{version}"
                    paths[key] = {
                        "serverRelativeURL": f"/openapi/v3/{key}?hash={self._openapi_hash(group, version)}"
                    }
            return _json_response({"paths": paths})
        pieces = gv_path.split("/")
        if pieces[0] == "api" and len(pieces) == 2:
            group, version = "", pieces[1]
        elif pieces[0] == "apis" and len(pieces) == 3:
            group, version = pieces[1], pieces[2]
        else:
            raise E.ApiError(404, "NotFound", "the server could not find the requested resource")
        types = self._types_at(group, version)
        if not types:
            raise E.ApiError(404, "NotFound", "the server could not find the requested resource")
        prefix = f"/apis/{group}/{version}" if group else f"/api/{version}"
        params = [
            {"name": name, "in": "query", "schema": {"type": "string"}, "uniqueItems": True}
            for name in ("dryRun", "fieldManager", "fieldValidation", "force")
        ]
        doc_paths: JSON = {}
        for rt in types:
            base = (
                f"{prefix}/namespaces/{{namespace}}/{rt.resource}"
                if rt.namespaced
                else f"{prefix}/{rt.resource}"
            )
            gvk = {"group": group, "version": version, "kind": rt.kind}
            operation = {
                "operationId": f"patch{rt.kind}",
                "parameters": params,
                "x-kubernetes-action": "patch",
                "x-kubernetes-group-version-kind": gvk,
                "responses": {"200": {"description": "OK"}},
            }
            doc_paths[base + "/{name}"] = {"patch": operation}
        return _json_response(
            {
                "openapi": "3.0.0",
                "info": {"title": "Kubernetes", "version": GIT_VERSION},
                "paths": doc_paths,
                "components": {"schemas": {}},
            }
        )

    # -- helpers -------------------------------------------------------------------------------
    async def _body(self, request: web.Request) -> Any:
        raw = await request.read()
        ctype = request.content_type
        if ctype in ("application/yaml", "application/x-yaml", "text/yaml"):
            try:
                return yaml.safe_load(raw.decode("utf-8"))
            except (yaml.YAMLError, UnicodeDecodeError) as exc:
                raise E.bad_request(f"error decoding YAML: {exc}")
        if ctype == "application/vnd.kubernetes.protobuf":
            try:
                return protobuf.decode(raw)
            except protobuf.ProtobufError as exc:
                raise E.unsupported_media_type(ctype, f"application/json, application/yaml ({exc})")
        if raw and ctype not in ("", "application/json", "application/octet-stream", "text/plain"):
            raise E.unsupported_media_type(ctype, "application/json, application/yaml")
        return decode_json(raw)

    def _manager(self, request: web.Request) -> str:
        return request.query.get("fieldManager") or _manager_from_agent(request.headers.get("User-Agent", ""))

    def _dry_run(self, request: web.Request) -> bool:
        values = request.query.getall("dryRun", [])
        for value in values:
            if value != "All":
                raise E.bad_request(f'Invalid dry run value: "{value}"; the only supported value is "All"')
        return bool(values)

    def _wants_table(self, request: web.Request) -> bool:
        return "as=Table" in request.headers.get("Accept", "")

    def _table(self, rt: ResourceType, version: str, objects: list[JSON], list_rv: str | None) -> JSON:
        return tables.table(rt, version, objects, list_rv)

    def _table_response(self, body: JSON) -> web.Response:
        return web.Response(
            body=json.dumps(body).encode(),
            headers={"Content-Type": "application/json;as=Table;v=v1;g=meta.k8s.io"},
        )

    # -- verbs ---------------------------------------------------------------------------------
    def _get(
        self, request: web.Request, rt: ResourceType, version: str, ns: str | None, name: str
    ) -> web.Response:
        obj = self.cluster.output(self.cluster.get(rt, ns, name), rt, version)
        if self._wants_table(request):
            return self._table_response(self._table(rt, version, [obj], None))
        return _json_response(obj)

    def _list(self, request: web.Request, rt: ResourceType, version: str, ns: str | None) -> web.Response:
        selector = make_selector(
            request.query.get("labelSelector"), request.query.get("fieldSelector"), rt.kind
        )
        limit_text = request.query.get("limit")
        try:
            limit = int(limit_text) if limit_text else None
        except ValueError:
            raise E.bad_request(f"invalid limit: {limit_text}")
        result = self.cluster.list_objects(rt, ns, selector, limit, request.query.get("continue") or None)
        items = [self.cluster.output(obj, rt, version) for obj in result.items]
        if self._wants_table(request):
            table = self._table(rt, version, items, str(result.resource_version))
            if result.continue_token:
                table["metadata"]["continue"] = result.continue_token
            return self._table_response(table)
        meta: JSON = {"resourceVersion": str(result.resource_version)}
        if result.continue_token:
            meta["continue"] = result.continue_token
            meta["remainingItemCount"] = result.remaining
        return _json_response(
            {
                "kind": rt.list_kind,
                "apiVersion": rt.api_version(version),
                "metadata": meta,
                "items": [self._list_item(rt, item) for item in items],
            }
        )

    @staticmethod
    def _list_item(rt: ResourceType, obj: JSON) -> JSON:
        """Items of built-in lists carry no apiVersion/kind on the real server (custom ones do)."""
        if rt.is_custom:
            return obj
        return {k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}

    async def _create(
        self, request: web.Request, rt: ResourceType, version: str, ns: str | None
    ) -> web.Response:
        if rt.review:
            # the answer never depends on the question, so a protobuf body (kubectl auth can-i
            # sends one) need not be decoded
            if "protobuf" in request.content_type:
                raw = await request.read()
                # the answer to a SelfSubjectReview (`kubectl auth whoami`) depends on no field
                decode = self.enforce_rbac and rt.kind != "SelfSubjectReview"
                body: Any = self._review_from_protobuf(raw) if decode else {}
            else:
                body = await self._body(request)
            if self.enforce_rbac:
                self.cluster.review(rt, version, body)  # validates the body's apiVersion/kind
                user = request[USER_KEY]
                return _json_response(self.rbac.review(rt.kind, rt.api_version(version), body, user), 201)
            return _json_response(self.cluster.review(rt, version, body), 201)
        body = await self._body(request)
        obj = self.cluster.create(rt, version, ns, body, self._manager(request), self._dry_run(request))
        return _json_response(self.cluster.output(obj, rt, version), 201)

    async def _update(
        self, request: web.Request, rt: ResourceType, version: str, ns: str | None, name: str, sub: str | None
    ) -> web.Response:
        body = await self._body(request)
        obj = self.cluster.update(
            rt, version, ns, name, body, self._manager(request), sub, self._dry_run(request)
        )
        return _json_response(self.cluster.output(obj, rt, version))

    async def _patch(
        self, request: web.Request, rt: ResourceType, version: str, ns: str | None, name: str, sub: str | None
    ) -> web.Response:
        ctype = request.content_type
        if ctype not in PATCH_TYPES:
            raise E.unsupported_media_type(ctype)
        raw = await request.read()
        obj, created = self.cluster.patch(
            rt,
            version,
            ns,
            name,
            ctype,
            raw,
            request.query.get("fieldManager"),
            _manager_from_agent(request.headers.get("User-Agent", "")),
            _flag(request, "force"),
            sub,
            self._dry_run(request),
        )
        return _json_response(self.cluster.output(obj, rt, version), 201 if created else 200)

    @staticmethod
    def _review_from_protobuf(raw: bytes) -> Any:
        try:
            return protobuf.decode(raw)
        except protobuf.ProtobufError as exc:
            raise E.unsupported_media_type("application/vnd.kubernetes.protobuf", f"application/json ({exc})")

    async def _token_request(self, request: web.Request, ns: str, name: str) -> web.Response:
        """POST .../serviceaccounts/{name}/token: a bearer token for an existing ServiceAccount."""
        if request.method != "POST":
            raise E.method_not_allowed()
        body = await self._body(request) if request.can_read_body else {}
        account = self.cluster.get(self.cluster.resolve("", "v1", "serviceaccounts"), ns, name)
        return _json_response(self.rbac.issue(account, body), 201)

    async def _scale(self, request: web.Request, rt: ResourceType, ns: str | None, name: str) -> web.Response:
        if request.method == "GET":
            return _json_response(self.cluster.get_scale(rt, ns, name))
        if request.method == "PUT":
            body = await self._body(request)
            if not isinstance(body, dict):
                raise E.bad_request("the body of the request must be a JSON object")
            scale = self.cluster.update_scale(
                rt, ns, name, body, self._manager(request), self._dry_run(request)
            )
            return _json_response(scale)
        if request.method == "PATCH":
            ctype = request.content_type
            if ctype not in PATCH_TYPES or ctype == "application/apply-patch+yaml":
                raise E.unsupported_media_type(ctype)
            raw = await request.read()
            scale = self.cluster.patch_scale(
                rt, ns, name, ctype, raw, self._manager(request), self._dry_run(request)
            )
            return _json_response(scale)
        raise E.method_not_allowed()

    async def _delete_options(self, request: web.Request) -> JSON:
        raw = await request.read()
        options: JSON = {}
        if raw.strip():
            parsed = decode_json(raw)
            if isinstance(parsed, dict):
                options = parsed
        if "propagationPolicy" in request.query:
            options["propagationPolicy"] = request.query["propagationPolicy"]
        if "orphanDependents" in request.query:
            options["orphanDependents"] = _flag(request, "orphanDependents")
        return options

    async def _delete(
        self, request: web.Request, rt: ResourceType, version: str, ns: str | None, name: str
    ) -> web.Response:
        options = await self._delete_options(request)
        obj, code = self.cluster.delete(rt, ns, name, options, self._dry_run(request))
        return _json_response(self.cluster.output(obj, rt, version), code)

    async def _delete_collection(
        self, request: web.Request, rt: ResourceType, version: str, ns: str | None
    ) -> web.Response:
        options = await self._delete_options(request)
        selector = make_selector(
            request.query.get("labelSelector"), request.query.get("fieldSelector"), rt.kind
        )
        deleted = self.cluster.delete_collection(rt, ns, selector, options, self._dry_run(request))
        items = [self._list_item(rt, self.cluster.output(obj, rt, version)) for obj in deleted]
        return _json_response(
            {
                "kind": rt.list_kind,
                "apiVersion": rt.api_version(version),
                "metadata": {"resourceVersion": str(self.cluster.store.rv)},
                "items": items,
            }
        )

    # -- watch ---------------------------------------------------------------------------------
    async def _watch(
        self, request: web.Request, rt: ResourceType, version: str, ns: str | None, name: str | None = None
    ) -> web.StreamResponse:
        field_selector = request.query.get("fieldSelector")
        if name is not None:
            extra = f"metadata.name={name}"
            field_selector = f"{field_selector},{extra}" if field_selector else extra
        selector = make_selector(request.query.get("labelSelector"), field_selector, rt.kind)
        rv_text = request.query.get("resourceVersion", "")
        since: int | None = None
        if rv_text not in ("", "0"):
            try:
                since = int(rv_text)
            except ValueError:
                raise E.bad_request(f"invalid resource version: {rv_text}")
        timeout_text = request.query.get("timeoutSeconds")
        try:
            timeout = float(timeout_text) if timeout_text else None
        except ValueError:
            raise E.bad_request(f"invalid timeoutSeconds: {timeout_text}")
        bookmarks = _flag(request, "allowWatchBookmarks")
        as_table = self._wants_table(request)
        content_type = "application/json;as=Table;v=v1;g=meta.k8s.io" if as_table else "application/json"
        response = web.StreamResponse(status=200, headers={"Content-Type": content_type})
        response.enable_chunked_encoding()
        await response.prepare(request)
        initial_events = _flag(request, "sendInitialEvents")
        try:
            watcher = self.cluster.watch(rt, ns, selector, None if initial_events else since)
        except E.ApiError as err:
            await response.write(self._frame("ERROR", err.status()))
            await response.write_eof()
            return response
        if initial_events:
            # watch-list streaming: the current state as ADDED, then a bookmark marking its end
            marker = {
                "kind": rt.kind,
                "apiVersion": rt.api_version(version),
                "metadata": {
                    "resourceVersion": str(self.cluster.store.rv),
                    "annotations": {"k8s.io/initial-events-end": "true"},
                },
            }
            watcher.queue.put_nowait(("BOOKMARK", marker))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout if timeout is not None else None
        try:
            while not self.closing:
                wait = self.bookmark_interval if bookmarks else None
                if deadline is not None:
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        break
                    wait = remaining if wait is None else min(wait, remaining)
                try:
                    # asyncio.timeout, not wait_for, which on 3.11 can drop a cancellation (and an
                    # item) that races with the timeout, leaving a closed watch's loop running.
                    async with asyncio.timeout(wait):
                        item = await watcher.queue.get()
                except TimeoutError:
                    if bookmarks and watcher.queue.empty() and (deadline is None or loop.time() < deadline):
                        bookmark = {
                            "kind": rt.kind,
                            "apiVersion": rt.api_version(version),
                            "metadata": {"resourceVersion": str(self.cluster.store.rv)},
                        }
                        await response.write(self._frame("BOOKMARK", bookmark))
                    continue
                if item is None:
                    break
                event_type, obj = item
                served = self.cluster.output(obj, rt, version)
                if as_table and event_type != "BOOKMARK":
                    served = self._table(rt, version, [served], served["metadata"].get("resourceVersion"))
                await response.write(self._frame(event_type, served))
            with contextlib.suppress(ConnectionResetError, RuntimeError):
                await response.write_eof()
        except ConnectionResetError:
            pass
        finally:
            self.cluster.store.remove_watcher(watcher)
        return response

    @staticmethod
    def _frame(event_type: str, obj: JSON) -> bytes:
        return json.dumps({"type": event_type, "object": obj}, separators=(",", ":")).encode() + b"\n"

    def close_watches(self) -> None:
        self.closing = True
        self.cluster.store.close_all_watchers()
