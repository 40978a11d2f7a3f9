"""The API semantics of the emulated cluster: create/get/list/update/patch/apply/delete, CRDs, GC.

HTTP-free: `server.py` turns requests into calls here and `ApiError`s into `Status` responses.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import uuid
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from . import errors as E
from . import immutable, managed, schema
from .defaults import Defaulter, ShapeError
from .kinds import ResourceType, builtin_types, crd_resource_type
from .selectors import Selector
from .store import Event, Store, TypeKey, Watcher

JSON = dict[str, Any]

# Per-request settings, set by the HTTP layer for the task serving the request.
FIELD_VALIDATION: ContextVar[str] = ContextVar("field_validation", default="Ignore")
WARNINGS: ContextVar[list[str] | None] = ContextVar("warnings", default=None)

CRD_KEY: TypeKey = ("apiextensions.k8s.io", "customresourcedefinitions")
NS_KEY: TypeKey = ("", "namespaces")
FOREGROUND = "foregroundDeletion"
INITIAL_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
    "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
    "start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
    "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
_DNS_LABEL_KINDS = {("", "namespaces"), ("", "services")}
# RBAC objects only need names usable as a path segment (`system:discovery`), as on the real server
_PATH_SEGMENT_KINDS = {
    ("rbac.authorization.k8s.io", r) for r in ("roles", "clusterroles", "rolebindings", "clusterrolebindings")
}
_SERVER_OWNED_META = (
    "uid",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
    "resourceVersion",
    "selfLink",
)


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _strip_for_compare(obj: JSON, keep_status: bool) -> JSON:
    out = {k: v for k, v in obj.items() if k not in ("metadata", "apiVersion", "kind")}
    if not keep_status:
        out.pop("status", None)
    return out


def _meta_for_noop(obj: JSON) -> JSON:
    meta = dict(obj.get("metadata") or {})
    meta.pop("resourceVersion", None)
    meta.pop("managedFields", None)
    return meta


def _dig(obj: JSON, json_path: str) -> Any:
    cur: Any = obj
    for part in (p for p in json_path.split(".") if p):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


@dataclass
class ListResult:
    items: list[JSON]
    resource_version: int
    continue_token: str | None
    remaining: int | None


class Cluster:
    def __init__(self, history_size: int = 10_000) -> None:
        self.store = Store(history_size)
        self.defaulter = Defaulter()
        self.types: dict[TypeKey, ResourceType] = {}
        for rt in builtin_types():
            self.types[rt.key] = rt
        for name in INITIAL_NAMESPACES:
            self.create(self.types[NS_KEY], "v1", None, {"metadata": {"name": name}}, "kube-apiserver")

    # -- type resolution -----------------------------------------------------------------------
    def resolve(self, group: str, version: str, resource: str) -> ResourceType:
        rt = self.types.get((group, resource))
        if rt is None or version not in rt.versions:
            raise E.ApiError(404, "NotFound", "the server could not find the requested resource")
        return rt

    def output(self, obj: JSON, rt: ResourceType, version: str) -> JSON:
        """The object as served at `version` (conversion strategy None: only apiVersion changes)."""
        api_version = rt.api_version(version)
        if obj.get("apiVersion") == api_version:
            return obj
        out = dict(obj)
        out["apiVersion"] = api_version
        return out

    # -- reads ---------------------------------------------------------------------------------
    def get(self, rt: ResourceType, ns: str | None, name: str) -> JSON:
        obj = self.store.get(rt.key, ns or "", name)
        if obj is None:
            raise E.not_found(rt.resource, rt.group, name)
        return obj

    def list_objects(
        self,
        rt: ResourceType,
        ns: str | None,
        selector: Selector,
        limit: int | None = None,
        continue_token: str | None = None,
    ) -> ListResult:
        start_after: tuple[str, str] | None = None
        if continue_token:
            try:
                decoded = json.loads(base64.urlsafe_b64decode(continue_token.encode()))
                start_after = (decoded["ns"], decoded["name"])
                token_rv = int(decoded["rv"])
            except (ValueError, KeyError, TypeError):
                raise E.bad_request("continue key is not valid: malformed token")
            if self.store.too_old(token_rv):
                raise E.ApiError(
                    410,
                    "Expired",
                    "The provided continue parameter is too old to display a consistent list result. "
                    "You can start a new list without the continue parameter.",
                )
        items: list[JSON] = []
        token: str | None = None
        remaining: int | None = None
        matched = 0
        for obj in self.store.iter(rt.key, ns):
            meta = obj["metadata"]
            if start_after is not None and (meta.get("namespace", ""), meta["name"]) <= start_after:
                continue
            if not selector.matches(obj):
                continue
            matched += 1
            if limit and len(items) >= limit:
                continue
            items.append(obj)
        if limit and matched > len(items):
            last = items[-1]["metadata"]
            token = base64.urlsafe_b64encode(
                json.dumps(
                    {"rv": self.store.rv, "ns": last.get("namespace", ""), "name": last["name"]}
                ).encode()
            ).decode()
            remaining = matched - len(items)
        return ListResult(items, self.store.rv, token, remaining)

    def watch(self, rt: ResourceType, ns: str | None, selector: Selector, since: int | None) -> Watcher:
        if since is not None and self.store.too_old(since):
            raise E.gone(f"too old resource version: {since} ({self.store.history_floor})")
        watcher = Watcher(rt.key, ns, selector)
        self.store.add_watcher(watcher, since)
        return watcher

    # -- create --------------------------------------------------------------------------------
    def create(
        self,
        rt: ResourceType,
        version: str,
        ns: str | None,
        body: JSON,
        manager: str,
        dry_run: bool = False,
        operation: str = "Update",
        managed_fields: list[JSON] | None = None,
    ) -> JSON:
        obj = copy.deepcopy(body)
        if not isinstance(obj, dict):
            raise E.bad_request("the body of the request must be a JSON object")
        self._check_type(rt, version, obj)
        meta = obj.get("metadata")
        if meta is None:
            meta = obj["metadata"] = {}
        if not isinstance(meta, dict):
            raise E.bad_request(
                f'{rt.kind} in version "{version}" cannot be handled as a {rt.kind}: metadata must be an object'
            )
        for field in ("name", "generateName", "namespace"):
            if field in meta and not isinstance(meta[field], str):
                raise E.bad_request(
                    f'{rt.kind} in version "{version}" cannot be handled as a {rt.kind}: json: cannot '
                    f"unmarshal {type(meta[field]).__name__} into Go struct field ObjectMeta.metadata.{field} of type string"
                )
        ns = self._check_namespace(rt, ns, meta)
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        name = meta.get("name")
        if not name:
            raise E.invalid(
                rt.kind,
                rt.group,
                "",
                [
                    E.cause(
                        "FieldValueRequired",
                        "metadata.name",
                        "Required value: name or generateName is required",
                    )
                ],
            )
        self._validate_name(rt, name)
        if ns is not None:
            self._check_namespace_open(rt, ns, name)
        if self.store.get(rt.key, ns or "", name) is not None:
            raise E.already_exists(rt.resource, rt.group, name)
        if meta.get("resourceVersion"):
            raise E.bad_request("resourceVersion should not be set on objects to be created")
        for field in _SERVER_OWNED_META:
            meta.pop(field, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now()
        meta["generation"] = 1
        if rt.has_status:
            obj.pop("status", None)
        obj["apiVersion"] = rt.api_version()
        obj["kind"] = rt.kind
        self._admit(rt, version, obj, None)
        if managed_fields is not None:
            meta["managedFields"] = managed.prune_entries(managed_fields, obj)
        else:
            meta["managedFields"] = managed.record_update(
                rt, version, None, obj, [], manager, operation, None
            )
        if not meta["managedFields"]:
            del meta["managedFields"]
        if dry_run:
            return obj
        meta["resourceVersion"] = str(self.store.next_rv())
        self.store.put(rt.key, obj, "ADDED", None)
        self._after_write(rt, None, obj)
        return obj

    def _check_type(self, rt: ResourceType, version: str, obj: JSON) -> None:
        expected = rt.api_version(version)
        if obj.get("apiVersion") and obj["apiVersion"] != expected:
            raise E.bad_request(
                f"the API version in the data ({obj['apiVersion']}) does not match the expected API version ({expected})"
            )
        if obj.get("kind") and obj["kind"] != rt.kind:
            raise E.bad_request(
                f"the kind in the data ({obj['kind']}) does not match the expected kind ({rt.kind})"
            )

    def _check_namespace(self, rt: ResourceType, ns: str | None, meta: JSON) -> str | None:
        if not rt.namespaced:
            meta.pop("namespace", None)
            return None
        if ns is None:
            raise E.method_not_allowed()
        if meta.get("namespace") and meta["namespace"] != ns:
            raise E.bad_request(
                "the namespace of the provided object does not match the namespace sent on the request"
            )
        meta["namespace"] = ns
        return ns

    def _check_namespace_open(self, rt: ResourceType, ns: str, name: str) -> None:
        namespace = self.store.get(NS_KEY, "", ns)
        if namespace is None:
            raise E.not_found("namespaces", "", ns)
        if namespace["metadata"].get("deletionTimestamp"):
            raise E.forbidden(
                rt.resource,
                rt.group,
                name,
                f"unable to create new content in namespace {ns} because it is being terminated",
            )

    def _validate_name(self, rt: ResourceType, name: str) -> None:
        if rt.key in _PATH_SEGMENT_KINDS:
            if name in ("", ".", "..") or "/" in name or "%" in name:
                why = f"Invalid value: {json.dumps(name)}: may not be '.' or '..' or contain '/' or '%'"
                raise E.invalid(rt.kind, rt.group, name, [E.cause("FieldValueInvalid", "metadata.name", why)])
            return
        label = rt.key in _DNS_LABEL_KINDS
        pattern, limit, msg = (_DNS_LABEL, 63, _LABEL_MSG) if label else (_DNS_SUBDOMAIN, 253, _SUBDOMAIN_MSG)
        if len(name) > limit or not pattern.match(name):
            raise E.invalid(
                rt.kind,
                rt.group,
                name,
                [E.cause("FieldValueInvalid", "metadata.name", f"Invalid value: {json.dumps(name)}: {msg}")],
            )

    def _admit(self, rt: ResourceType, version: str, obj: JSON, old: JSON | None) -> None:
        """Kind-specific defaulting and validation (CR schemas, Namespaces, CRDs)."""
        meta = obj["metadata"]
        for key in ("labels", "annotations"):
            value = meta.get(key)
            if value is None:
                continue
            if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
                raise E.bad_request(
                    f'{rt.kind} in version "{version}" cannot be handled as a {rt.kind}: '
                    f"json: cannot unmarshal into Go struct field ObjectMeta.metadata.{key} of type map[string]string"
                )
        self._check_metadata(rt, meta)
        if not rt.is_custom:
            try:
                self.defaulter(rt.key, obj, old)
            except ShapeError as exc:
                raise E.bad_request(
                    f'{rt.kind} in version "{version}" cannot be handled as a {rt.kind}: {exc}'
                )
        if rt.key == NS_KEY:
            status = obj.setdefault("status", {})
            status["phase"] = "Terminating" if meta.get("deletionTimestamp") else "Active"
        elif rt.key == CRD_KEY:
            self._admit_crd(obj, old)
        elif rt.is_custom:
            schema_doc = rt.schemas.get(version) or rt.schemas.get(rt.storage_version)
            if schema_doc is not None:
                dropped: list[str] = []
                schema.prune(obj, schema_doc, root=True, dropped=dropped)
                if dropped:
                    self._unknown_fields(rt, version, dropped)
                schema.apply_defaults(obj, schema_doc, root=True)
                causes = schema.validate(obj, schema_doc, root=True)
                if causes:
                    raise E.invalid(rt.kind, rt.group, meta.get("name", ""), causes)

    def _check_metadata(self, rt: ResourceType, meta: JSON) -> None:
        """The shape of ObjectMeta fields the emulator relies on (finalizers, ownerReferences)."""
        name = str(meta.get("name", ""))
        finalizers = meta.get("finalizers")
        if finalizers is not None and (
            not isinstance(finalizers, list) or not all(isinstance(f, str) for f in finalizers)
        ):
            raise E.bad_request(
                f"{rt.kind} cannot be decoded: json: cannot unmarshal into Go struct field "
                "ObjectMeta.metadata.finalizers of type []string"
            )
        refs = meta.get("ownerReferences")
        if refs is None:
            return
        if not isinstance(refs, list) or not all(isinstance(r, dict) for r in refs):
            raise E.bad_request(
                f"{rt.kind} cannot be decoded: json: cannot unmarshal into Go struct field "
                "ObjectMeta.metadata.ownerReferences of type []v1.OwnerReference"
            )
        causes: list[JSON] = []
        for ref in refs:
            for field in ("apiVersion", "kind", "name", "uid"):
                if not isinstance(ref.get(field), str) or not ref.get(field):
                    causes.append(
                        E.cause(
                            "FieldValueInvalid",
                            f"metadata.ownerReferences.{field}",
                            f'Invalid value: "": {field} must not be empty',
                        )
                    )
        if causes:
            raise E.invalid(rt.kind, rt.group, name, causes)

    def _unknown_fields(self, rt: ResourceType, version: str, dropped: list[str]) -> None:
        """Honour the request's fieldValidation for pruned fields: Strict fails, Warn warns."""
        mode = FIELD_VALIDATION.get()
        listed = ", ".join(f'unknown field "{path}"' for path in dropped)
        if mode == "Strict":
            raise E.bad_request(
                f'{rt.kind} in version "{version}" cannot be handled as a {rt.kind}: strict decoding error: {listed}'
            )
        warnings = WARNINGS.get()
        if mode == "Warn" and warnings is not None:
            warnings.extend(f'unknown field "{path}"' for path in dropped)

    def _admit_crd(self, obj: JSON, old: JSON | None) -> None:
        spec = obj.get("spec") or {}
        name = obj["metadata"].get("name", "")
        names = spec.get("names") or {}
        causes: list[JSON] = []
        if not spec.get("group"):
            causes.append(E.cause("FieldValueRequired", "spec.group", "Required value"))
        if not names.get("plural"):
            causes.append(E.cause("FieldValueRequired", "spec.names.plural", "Required value"))
        if not names.get("kind"):
            causes.append(E.cause("FieldValueRequired", "spec.names.kind", "Required value"))
        if spec.get("scope") not in ("Namespaced", "Cluster"):
            causes.append(
                E.cause(
                    "FieldValueNotSupported",
                    "spec.scope",
                    f'Unsupported value: {json.dumps(spec.get("scope", ""))}: supported values: "Cluster", "Namespaced"',
                )
            )
        versions = spec.get("versions") or []
        if not versions:
            causes.append(E.cause("FieldValueRequired", "spec.versions", "Required value"))
        elif sum(1 for v in versions if v.get("storage")) != 1:
            causes.append(
                E.cause(
                    "FieldValueInvalid",
                    "spec.versions",
                    "Invalid value: []apiextensions.CustomResourceDefinitionVersion: must have exactly one version marked as storage version",
                )
            )
        if names.get("plural") and spec.get("group") and name != f"{names['plural']}.{spec['group']}":
            causes.append(
                E.cause(
                    "FieldValueInvalid",
                    "metadata.name",
                    f'Invalid value: {json.dumps(name)}: must be spec.names.plural+"."+spec.group',
                )
            )
        if old is not None and (old.get("spec") or {}).get("group") != spec.get("group"):
            causes.append(E.cause("FieldValueInvalid", "spec.group", "Invalid value: field is immutable"))
        if causes:
            raise E.invalid("CustomResourceDefinition", "apiextensions.k8s.io", name, causes)
        existing = self.types.get((spec["group"], names["plural"]))
        if existing is not None and not existing.is_custom:
            raise E.invalid(
                "CustomResourceDefinition",
                "apiextensions.k8s.io",
                name,
                [
                    E.cause(
                        "FieldValueInvalid",
                        "spec.names.plural",
                        "Invalid value: conflicts with a built-in resource",
                    )
                ],
            )
        accepted = dict(names)
        accepted.setdefault("singular", names["kind"].lower())
        accepted.setdefault("listKind", names["kind"] + "List")
        previous = (old or {}).get("status") or {}
        stamp = now()

        def condition(ctype: str, reason: str, message: str) -> JSON:
            for c in previous.get("conditions") or []:
                if c.get("type") == ctype and c.get("status") == "True":
                    return dict(c)
            return {
                "type": ctype,
                "status": "True",
                "lastTransitionTime": stamp,
                "reason": reason,
                "message": message,
            }

        storage = next(v["name"] for v in versions if v.get("storage"))
        stored = list(previous.get("storedVersions") or [])
        if storage not in stored:
            stored.append(storage)
        obj["status"] = {
            "conditions": [
                condition("NamesAccepted", "NoConflicts", "no conflicts found"),
                condition("Established", "InitialNamesAccepted", "the initial names have been accepted"),
            ],
            "acceptedNames": accepted,
            "storedVersions": stored,
        }

    # -- update --------------------------------------------------------------------------------
    def update(
        self,
        rt: ResourceType,
        version: str,
        ns: str | None,
        name: str,
        body: JSON,
        manager: str,
        subresource: str | None = None,
        dry_run: bool = False,
    ) -> JSON:
        if not isinstance(body, dict):
            raise E.bad_request("the body of the request must be a JSON object")
        self._check_type(rt, version, body)
        old = self.get(rt, ns, name)
        meta = body.get("metadata") or {}
        if meta.get("name") and meta["name"] != name:
            raise E.bad_request(
                f"the name of the object ({meta['name']}) does not match the name on the URL ({name})"
            )
        if rt.namespaced and meta.get("namespace") and meta["namespace"] != ns:
            raise E.bad_request(
                "the namespace of the provided object does not match the namespace sent on the request"
            )
        rv = meta.get("resourceVersion")
        if rv and rv != old["metadata"]["resourceVersion"]:
            raise E.stale_conflict(rt.resource, rt.group, name)
        return self.write(rt, version, old, body, manager, "Update", subresource, dry_run)

    def write(
        self,
        rt: ResourceType,
        version: str,
        old: JSON,
        body: JSON,
        manager: str,
        operation: str,
        subresource: str | None,
        dry_run: bool,
        managed_fields: list[JSON] | None = None,
    ) -> JSON:
        """Store a new state of an existing object (the shared tail of PUT, PATCH and apply)."""
        new = self.prepare(rt, version, old, body, subresource)
        if managed_fields is not None:
            managed_fields = managed.prune_entries(managed_fields, new)
        else:
            managed_fields = managed.record_update(
                rt,
                version,
                old,
                new,
                old["metadata"].get("managedFields") or [],
                manager,
                operation,
                subresource,
            )
        if managed_fields:
            new["metadata"]["managedFields"] = managed_fields
        else:
            new["metadata"].pop("managedFields", None)
        return self.commit(rt, old, new, dry_run)

    def prepare(self, rt: ResourceType, version: str, old: JSON, body: JSON, subresource: str | None) -> JSON:
        """Merge a requested new state with what the server owns: status split, metadata, generation."""
        old_meta = old["metadata"]
        if subresource == "status":
            new = copy.deepcopy(old)
            if "status" in body:
                new["status"] = copy.deepcopy(body["status"])
            else:
                new.pop("status", None)
        else:
            new = copy.deepcopy(body)
            new["apiVersion"] = rt.api_version()
            new["kind"] = rt.kind
            meta = new.get("metadata")
            if not isinstance(meta, dict):
                meta = new["metadata"] = {}
            for field in _SERVER_OWNED_META:
                if field in old_meta:
                    meta[field] = old_meta[field]
                else:
                    meta.pop(field, None)
            meta["name"] = old_meta["name"]
            if "namespace" in old_meta:
                meta["namespace"] = old_meta["namespace"]
            else:
                meta.pop("namespace", None)
            meta.pop("generateName", None)
            if "generateName" in old_meta:
                meta["generateName"] = old_meta["generateName"]
            if rt.has_status:
                if "status" in old:
                    new["status"] = copy.deepcopy(old["status"])
                else:
                    new.pop("status", None)
            if old_meta.get("deletionTimestamp"):
                added = set(meta.get("finalizers") or []) - set(old_meta.get("finalizers") or [])
                if added:
                    raise E.forbidden(
                        rt.resource,
                        rt.group,
                        old_meta["name"],
                        "no new finalizers can be added if the object is being deleted, found new finalizers "
                        + json.dumps(sorted(added)),
                    )
        self._admit(rt, version, new, old)
        if subresource != "status":
            causes = immutable.check(rt.key, old, new)
            if causes:
                raise E.invalid(rt.kind, rt.group, old_meta["name"], causes)
        if _strip_for_compare(new, not rt.has_status) != _strip_for_compare(old, not rt.has_status):
            new["metadata"]["generation"] = int(old_meta.get("generation", 1)) + 1
        return new

    def commit(self, rt: ResourceType, old: JSON, new: JSON, dry_run: bool) -> JSON:
        unchanged = (
            _strip_for_compare(new, True) == _strip_for_compare(old, True)
            and _meta_for_noop(new) == _meta_for_noop(old)
            and managed.same_sets(new["metadata"].get("managedFields"), old["metadata"].get("managedFields"))
        )
        if unchanged:
            return old
        meta = new["metadata"]
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            if dry_run:
                return new
            meta["resourceVersion"] = str(self.store.next_rv())
            self._remove(rt, new)
            return new
        if dry_run:
            return new
        meta["resourceVersion"] = str(self.store.next_rv())
        self.store.put(rt.key, new, "MODIFIED", old)
        self._after_write(rt, old, new)
        return new

    def _after_write(self, rt: ResourceType, old: JSON | None, new: JSON) -> None:
        if rt.key == CRD_KEY:
            self._register_crd(new, old)

    # -- patch & apply -------------------------------------------------------------------------
    def patch(
        self,
        rt: ResourceType,
        version: str,
        ns: str | None,
        name: str,
        content_type: str,
        raw: bytes,
        manager: str | None,
        user_agent_manager: str,
        force: bool = False,
        subresource: str | None = None,
        dry_run: bool = False,
    ) -> tuple[JSON, bool]:
        """Apply a PATCH; returns (object, created). Created only happens for server-side apply."""
        from . import patching

        if content_type == "application/apply-patch+yaml":
            if not manager:
                raise E.bad_request(
                    "PATCH, application/apply-patch+yaml: fieldManager is required for apply requests"
                )
            applied = patching.decode_apply(raw)
            return self.apply(rt, version, ns, name, applied, manager, force, subresource, dry_run)
        old = self.get(rt, ns, name)
        served = self.output(old, rt, version)
        patched = patching.apply_patch(rt, served, content_type, raw)
        meta = patched.get("metadata") or {}
        if meta.get("name") not in (None, name):
            raise E.bad_request(
                f"the name of the object ({meta['name']}) does not match the name on the URL ({name})"
            )
        rv = meta.get("resourceVersion")
        if rv and rv != old["metadata"]["resourceVersion"]:
            raise E.stale_conflict(rt.resource, rt.group, name)
        if not isinstance(patched.get("metadata"), dict):
            patched["metadata"] = {}
        result = self.write(
            rt, version, old, patched, manager or user_agent_manager, "Update", subresource, dry_run
        )
        return result, False

    def apply(
        self,
        rt: ResourceType,
        version: str,
        ns: str | None,
        name: str,
        applied: JSON,
        manager: str,
        force: bool,
        subresource: str | None,
        dry_run: bool,
    ) -> tuple[JSON, bool]:
        if not isinstance(applied, dict):
            raise E.bad_request("the body of an apply request must be an object")
        self._check_type(rt, version, applied)
        if not applied.get("apiVersion") or not applied.get("kind"):
            raise E.bad_request("apply requests must set apiVersion and kind")
        meta = applied.get("metadata")
        if not isinstance(meta, dict):
            meta = applied["metadata"] = {}
        if meta.get("name") and meta["name"] != name:
            raise E.bad_request(
                f"the name of the object ({meta['name']}) does not match the name on the URL ({name})"
            )
        if rt.namespaced and meta.get("namespace") and meta["namespace"] != ns:
            raise E.bad_request(
                "the namespace of the provided object does not match the namespace sent on the request"
            )
        old = self.store.get(rt.key, ns or "", name)
        if old is None:
            if subresource == "status":
                raise E.not_found(rt.resource, rt.group, name)
            base: JSON = {"apiVersion": rt.api_version(version), "kind": rt.kind, "metadata": {"name": name}}
            merged, fields = managed.apply(rt, version, base, applied, [], manager, force, subresource)
            body = dict(merged)
            body["metadata"] = dict(merged["metadata"], name=name)
            return self.create(rt, version, ns, body, manager, dry_run, managed_fields=fields), True
        rv = meta.get("resourceVersion")
        if rv and rv != old["metadata"]["resourceVersion"]:
            raise E.stale_conflict(rt.resource, rt.group, name)
        live = self.output(old, rt, version)
        merged, fields = managed.apply(
            rt,
            version,
            live,
            applied,
            old["metadata"].get("managedFields") or [],
            manager,
            force,
            subresource,
        )
        return self.write(rt, version, old, merged, manager, "Apply", subresource, dry_run, fields), False

    # -- reviews -------------------------------------------------------------------------------
    def review(self, rt: ResourceType, version: str, body: Any) -> JSON:
        """Answer an access or token review: nothing is enforced, so everything is allowed."""
        if not isinstance(body, dict):
            raise E.bad_request("the body of the request must be a JSON object")
        self._check_type(rt, version, body)
        answer = copy.deepcopy(body)
        answer["apiVersion"] = rt.api_version(version)
        answer["kind"] = rt.kind
        answer.setdefault("metadata", {})
        user = {"username": "system:admin", "groups": ["system:masters", "system:authenticated"]}
        if rt.kind == "TokenReview":
            answer["status"] = {
                "authenticated": True,
                "user": user,
                "audiences": (body.get("spec") or {}).get("audiences") or [],
            }
        elif rt.kind == "SelfSubjectReview":
            answer["status"] = {"userInfo": user}
        elif rt.kind == "SelfSubjectRulesReview":
            answer["status"] = {
                "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
                "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
                "incomplete": False,
            }
        else:
            answer["status"] = {"allowed": True, "reason": "the emulator enforces no RBAC"}
        return answer

    # -- scale subresource ---------------------------------------------------------------------
    def get_scale(self, rt: ResourceType, ns: str | None, name: str) -> JSON:
        return self._scale_of(rt, self.get(rt, ns, name))

    def _scale_of(self, rt: ResourceType, obj: JSON) -> JSON:
        paths = rt.scale or {}
        meta = obj["metadata"]
        spec_replicas = _dig(obj, paths.get("specReplicasPath", ".spec.replicas"))
        status_replicas = _dig(obj, paths.get("statusReplicasPath", ".status.replicas"))
        if paths.get("labelSelectorPath"):
            selector = _dig(obj, paths["labelSelectorPath"])
        else:
            spec_selector = (obj.get("spec") or {}).get("selector") or {}
            labels = (
                spec_selector.get("matchLabels", spec_selector) if isinstance(spec_selector, dict) else {}
            )
            selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()) if isinstance(v, str))
        scale_meta = {
            k: meta[k]
            for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if k in meta
        }
        status: JSON = {"replicas": int(status_replicas or 0)}
        if selector:
            status["selector"] = selector
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": scale_meta,
            "spec": {"replicas": int(spec_replicas or 0)},
            "status": status,
        }

    def update_scale(
        self,
        rt: ResourceType,
        ns: str | None,
        name: str,
        scale: JSON,
        manager: str,
        dry_run: bool,
    ) -> JSON:
        old = self.get(rt, ns, name)
        rv = (scale.get("metadata") or {}).get("resourceVersion")
        if rv and rv != old["metadata"]["resourceVersion"]:
            raise E.stale_conflict(rt.resource, rt.group, name)
        replicas = (scale.get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise E.invalid(
                "Scale",
                "autoscaling",
                name,
                [
                    E.cause(
                        "FieldValueInvalid",
                        "spec.replicas",
                        f"Invalid value: {json.dumps(replicas)}: must be greater than or equal to 0",
                    )
                ],
            )
        new = copy.deepcopy(old)
        path = [p for p in (rt.scale or {}).get("specReplicasPath", ".spec.replicas").split(".") if p]
        target = new
        for part in path[:-1]:
            target = target.setdefault(part, {})
        target[path[-1]] = replicas
        result = self.write(rt, rt.storage_version, old, new, manager, "Update", None, dry_run)
        return self._scale_of(rt, result)

    def patch_scale(
        self,
        rt: ResourceType,
        ns: str | None,
        name: str,
        content_type: str,
        raw: bytes,
        manager: str,
        dry_run: bool,
    ) -> JSON:
        from . import patching

        current = self.get_scale(rt, ns, name)
        scale_type = ResourceType(
            group="autoscaling", versions=["v1"], resource="scale", kind="Scale", namespaced=True
        )
        patched = patching.apply_patch(scale_type, current, content_type, raw)
        return self.update_scale(rt, ns, name, patched, manager, dry_run)

    # -- delete --------------------------------------------------------------------------------
    def delete(
        self,
        rt: ResourceType,
        ns: str | None,
        name: str,
        options: JSON | None = None,
        dry_run: bool = False,
    ) -> tuple[JSON, int]:
        """Delete (or start deleting) an object; returns (object, HTTP code 200|202)."""
        options = options or {}
        old = self.get(rt, ns, name)
        pre = options.get("preconditions") or {}
        if pre.get("uid") and pre["uid"] != old["metadata"].get("uid"):
            raise E.conflict(
                rt.resource,
                rt.group,
                name,
                f"Precondition failed: UID in precondition: {pre['uid']}, UID in object meta: {old['metadata'].get('uid')}",
            )
        if pre.get("resourceVersion") and pre["resourceVersion"] != old["metadata"].get("resourceVersion"):
            raise E.conflict(
                rt.resource,
                rt.group,
                name,
                f"Precondition failed: ResourceVersion in precondition: {pre['resourceVersion']}, "
                f"ResourceVersion in object meta: {old['metadata'].get('resourceVersion')}",
            )
        policy = options.get("propagationPolicy") or (
            "Orphan" if options.get("orphanDependents") else "Background"
        )
        if policy not in ("Orphan", "Background", "Foreground"):
            raise E.invalid(
                "DeleteOptions",
                "",
                "",
                [
                    E.cause(
                        "FieldValueNotSupported",
                        "propagationPolicy",
                        f'Unsupported value: "{policy}": supported values: "Foreground", "Background", "Orphan"',
                    )
                ],
            )
        if dry_run:
            if rt.key == NS_KEY and name in ("default", "kube-system", "kube-public"):
                raise E.forbidden("namespaces", "", name, "this namespace may not be deleted")
            return old, 200
        if policy == "Orphan":
            self._orphan_dependents(old)
            old = self.get(rt, ns, name)
        elif policy == "Foreground" and self.store.dependents.get(old["metadata"].get("uid", "")):
            return self._delete_foreground(rt, old)
        return self._delete_object(rt, old)

    def _delete_foreground(self, rt: ResourceType, old: JSON) -> tuple[JSON, int]:
        """Foreground cascading: the owner waits (finalizer `foregroundDeletion`) for its dependents."""
        meta = old["metadata"]
        uid = meta.get("uid", "")
        new = copy.deepcopy(old)
        new_meta = new["metadata"]
        new_meta.setdefault("deletionTimestamp", now())
        new_meta["deletionGracePeriodSeconds"] = 0
        if FOREGROUND not in (new_meta.get("finalizers") or []):
            new_meta["finalizers"] = [*(new_meta.get("finalizers") or []), FOREGROUND]
        new_meta["resourceVersion"] = str(self.store.next_rv())
        self.store.put(rt.key, new, "MODIFIED", old)
        for dep_key, dep_ns, dep_name in list(self.store.dependents.get(uid, ())):
            dep = self.store.get(dep_key, dep_ns, dep_name)
            dep_type = self.types.get(dep_key)
            if dep is not None and dep_type is not None and not dep["metadata"].get("deletionTimestamp"):
                self._delete_object(dep_type, dep)
        self._finish_foreground(uid)
        current = self.store.get(rt.key, meta.get("namespace", ""), meta["name"])
        return (current, 202) if current is not None else (new, 200)

    def _finish_foreground(self, owner_uid: str) -> None:
        """Drop the `foregroundDeletion` finalizer once an owner has no dependents left."""
        owner = self.store.lookup_uid(owner_uid)
        if owner is None or FOREGROUND not in (owner["metadata"].get("finalizers") or []):
            return
        if self.store.dependents.get(owner_uid):
            return
        key = self.store.uids[owner_uid][0]
        rt = self.types.get(key)
        if rt is None:
            return
        new = copy.deepcopy(owner)
        remaining = [f for f in new["metadata"]["finalizers"] if f != FOREGROUND]
        if remaining:
            new["metadata"]["finalizers"] = remaining
        else:
            new["metadata"].pop("finalizers")
        self.commit(rt, owner, new, False)

    def _delete_object(self, rt: ResourceType, old: JSON) -> tuple[JSON, int]:
        meta = old["metadata"]
        if rt.key == NS_KEY:
            return self._delete_namespace(old)
        if meta.get("finalizers"):
            if meta.get("deletionTimestamp"):
                return old, 202
            new = copy.deepcopy(old)
            new["metadata"]["deletionTimestamp"] = now()
            new["metadata"]["deletionGracePeriodSeconds"] = 0
            new["metadata"]["resourceVersion"] = str(self.store.next_rv())
            self.store.put(rt.key, new, "MODIFIED", old)
            return new, 202
        final = copy.deepcopy(old)
        final["metadata"]["resourceVersion"] = str(self.store.next_rv())
        self._remove(rt, final)
        return final, 200

    def _remove(self, rt: ResourceType, final: JSON) -> None:
        self.store.remove(rt.key, final)
        meta = final["metadata"]
        if rt.key == CRD_KEY:
            self._unregister_crd(final)
        uid = meta.get("uid", "")
        for dep_key, dep_ns, dep_name in list(self.store.dependents.get(uid, ())):
            dep = self.store.get(dep_key, dep_ns, dep_name)
            dep_type = self.types.get(dep_key)
            if dep is None or dep_type is None or dep["metadata"].get("deletionTimestamp"):
                continue
            owners = [o.get("uid") for o in dep["metadata"].get("ownerReferences") or []]
            if all(self.store.lookup_uid(o or "") is None for o in owners):
                self._delete_object(dep_type, dep)
        for owner in meta.get("ownerReferences") or []:
            self._finish_foreground(str(owner.get("uid", "")))
        ns = meta.get("namespace")
        if ns:
            namespace = self.store.get(NS_KEY, "", ns)
            if namespace is not None and namespace["metadata"].get("deletionTimestamp"):
                self._finish_namespace(namespace)

    def _orphan_dependents(self, owner: JSON) -> None:
        uid = owner["metadata"].get("uid", "")
        for dep_key, dep_ns, dep_name in list(self.store.dependents.get(uid, ())):
            dep = self.store.get(dep_key, dep_ns, dep_name)
            if dep is None:
                continue
            new = copy.deepcopy(dep)
            refs = [r for r in new["metadata"].get("ownerReferences") or [] if r.get("uid") != uid]
            if refs:
                new["metadata"]["ownerReferences"] = refs
            else:
                new["metadata"].pop("ownerReferences", None)
            new["metadata"]["resourceVersion"] = str(self.store.next_rv())
            self.store.put(dep_key, new, "MODIFIED", dep)

    def _delete_namespace(self, old: JSON) -> tuple[JSON, int]:
        name = old["metadata"]["name"]
        if name in ("default", "kube-system", "kube-public"):
            raise E.forbidden("namespaces", "", name, "this namespace may not be deleted")
        if not old["metadata"].get("deletionTimestamp"):
            new = copy.deepcopy(old)
            new["metadata"]["deletionTimestamp"] = now()
            new["metadata"]["deletionGracePeriodSeconds"] = 0
            new["status"] = {"phase": "Terminating"}
            new["metadata"]["resourceVersion"] = str(self.store.next_rv())
            self.store.put(NS_KEY, new, "MODIFIED", old)
            old = new
        for key in self.store.namespaced_keys(name):
            rt = self.types.get(key)
            if rt is None:
                continue
            for obj in list(self.store.iter(key, name)):
                current = self.store.get(key, name, obj["metadata"]["name"])
                if current is not None and not current["metadata"].get("deletionTimestamp"):
                    self._delete_object(rt, current)
        current_ns = self.store.get(NS_KEY, "", name)
        if current_ns is not None:
            self._finish_namespace(current_ns)
        return old, 200

    def _finish_namespace(self, namespace: JSON) -> None:
        name = namespace["metadata"]["name"]
        if self.store.namespaced_keys(name):
            return
        final = copy.deepcopy(namespace)
        final["metadata"]["resourceVersion"] = str(self.store.next_rv())
        final.setdefault("spec", {})["finalizers"] = []
        self._remove(self.types[NS_KEY], final)

    def delete_collection(
        self, rt: ResourceType, ns: str | None, selector: Selector, options: JSON | None, dry_run: bool
    ) -> list[JSON]:
        deleted: list[JSON] = []
        for obj in list(self.store.iter(rt.key, ns)):
            if not selector.matches(obj):
                continue
            meta = obj["metadata"]
            current = self.store.get(rt.key, meta.get("namespace", ""), meta["name"])
            if current is None:
                continue
            result, _ = self.delete(rt, meta.get("namespace"), meta["name"], options, dry_run)
            deleted.append(result)
        return deleted

    # -- CRDs ----------------------------------------------------------------------------------
    def _register_crd(self, crd: JSON, old: JSON | None) -> None:
        rt = crd_resource_type(crd)
        if old is not None:
            old_rt = crd_resource_type(old)
            if old_rt.key != rt.key:
                self.types.pop(old_rt.key, None)
        self.types[rt.key] = rt

    def _unregister_crd(self, crd: JSON) -> None:
        rt = crd_resource_type(crd)
        existing = self.types.get(rt.key)
        if existing is None or not existing.is_custom:
            return
        for obj in list(self.store.iter(rt.key, None)):
            final = copy.deepcopy(obj)
            final["metadata"]["resourceVersion"] = str(self.store.next_rv())
            self.store.remove(rt.key, final)
        self.types.pop(rt.key, None)
        self.store.drop_type(rt.key)

    # -- persistence ---------------------------------------------------------------------------
    def snapshot(self) -> JSON:
        objects: list[JSON] = []
        order = [NS_KEY, CRD_KEY] + [k for k in self.store.objects if k not in (NS_KEY, CRD_KEY)]
        for key in order:
            rt = self.types.get(key)
            if rt is None:
                continue
            for obj in self.store.iter(key, None):
                objects.append({"group": key[0], "resource": key[1], "object": obj})
        return {"resourceVersion": self.store.rv, "objects": objects}

    def restore(self, state: JSON) -> None:
        for key in list(self.store.objects):
            self.store.objects.pop(key)
        self.store.uids.clear()
        self.store.dependents.clear()
        for entry in state.get("objects") or []:
            key = (str(entry["group"]), str(entry["resource"]))
            obj = entry["object"]
            if key == CRD_KEY:
                self._register_crd(obj, None)
            if key in self.types:
                self.store.load(key, obj)
        self.store.rv = max(self.store.rv, int(state.get("resourceVersion", 0)))
        self.defaulter.services.skip_allocated(
            str(((svc.get("spec") or {}).get("clusterIP")) or "")
            for svc in self.store.iter(("", "services"), None)
        )
        self.store.history.clear()
        self.store.history_floor = self.store.rv

    def add_listener(self, listener: Any) -> None:
        self.store.listeners.append(listener)

    def remove_listener(self, listener: Any) -> None:
        if listener in self.store.listeners:
            self.store.listeners.remove(listener)


__all__ = ["Cluster", "Event", "ListResult"]
