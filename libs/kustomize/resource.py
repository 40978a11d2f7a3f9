"""Resources, their identities and the lookups kustomize's resource map offers.

A :class:`Resource` is a plain JSON-shaped ``dict`` plus the bookkeeping kustomize keeps in
internal annotations: every id the object had before a transformer renamed or moved it (so
overlays and name references can still find it by its original name), the name prefixes and
suffixes applied so far, the generator options (hash suffix, behavior), and build metadata.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Any

from libs.kustomize.errors import KustomizeError

CLUSTER_SCOPED_KINDS = frozenset(
    {
        "APIService",
        "CSIDriver",
        "CSINode",
        "CertificateSigningRequest",
        "Cluster",
        "ClusterRole",
        "ClusterRoleBinding",
        "ComponentStatus",
        "CustomResourceDefinition",
        "MutatingWebhookConfiguration",
        "Namespace",
        "Node",
        "PersistentVolume",
        "PodSecurityPolicy",
        "PriorityClass",
        "RuntimeClass",
        "SelfSubjectAccessReview",
        "SelfSubjectRulesReview",
        "StorageClass",
        "SubjectAccessReview",
        "TokenReview",
        "ValidatingWebhookConfiguration",
        "VolumeAttachment",
    }
)

_TOTALLY_NOT_A_NAMESPACE = "_non_namespaceable_"
_INTERNAL = "internal.config.kubernetes.io/"
ORIGIN_ANNOTATION = "config.kubernetes.io/origin"
TRANSFORMATIONS_ANNOTATION = "alpha.config.kubernetes.io/transformations"
_DEFAULT_NAMESPACE = "default"


def as_text(value: Any) -> str:
    """A kustomization value used as text (``None`` is empty, as Go's zero value)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def resolve_path(obj: Any, path: tuple[str | int, ...]) -> Any:
    """The value at ``path`` (keys and list indices) in ``obj``, or None if it no longer exists."""
    node = obj
    for step in path:
        if isinstance(step, int):
            if not isinstance(node, list) or step >= len(node):
                return None
        elif not isinstance(node, dict) or step not in node:
            return None
        node = node[step]
    return node


def split_api_version(api_version: str) -> tuple[str, str]:
    """``apps/v1`` -> (``apps``, ``v1``); ``v1`` -> (``""``, ``v1``)."""
    group, slash, version = api_version.rpartition("/")
    if not slash:
        return "", api_version
    return group, version


@dataclass(frozen=True, slots=True)
class Gvk:
    group: str = ""
    version: str = ""
    kind: str = ""

    @classmethod
    def of(cls, obj: dict[str, Any]) -> Gvk:
        return _gvk_of(obj.get("apiVersion"), obj.get("kind"))

    def is_selected(self, selector: Gvk) -> bool:
        """Every non-empty field of ``selector`` equals ours."""
        return (
            (not selector.group or selector.group == self.group)
            and (not selector.version or selector.version == self.version)
            and (not selector.kind or selector.kind == self.kind)
        )

    @property
    def cluster_scoped(self) -> bool:
        return self.kind in CLUSTER_SCOPED_KINDS

    def __str__(self) -> str:
        return f"{self.kind or '[noKind]'}.{self.version or '[noVer]'}.{self.group or '[noGrp]'}"


@functools.lru_cache(maxsize=1024)
def _gvk_of(api_version: Any, kind: Any) -> Gvk:
    group, version = split_api_version(str(api_version or ""))
    return Gvk(group, version, str(kind or ""))


@dataclass(frozen=True, slots=True)
class ResId:
    gvk: Gvk
    name: str
    namespace: str

    @property
    def effective_namespace(self) -> str:
        if self.gvk.cluster_scoped:
            return _TOTALLY_NOT_A_NAMESPACE
        if self.namespace in ("", _DEFAULT_NAMESPACE):
            return _DEFAULT_NAMESPACE
        return self.namespace

    @property
    def key(self) -> tuple[Gvk, str, str]:
        """Equal keys <=> ``equals``."""
        return (self.gvk, self.name, self.effective_namespace)

    def equals(self, other: ResId) -> bool:
        return (
            self.name == other.name
            and self.gvk == other.gvk
            and self.effective_namespace == other.effective_namespace
        )

    def ns_equals(self, other: ResId) -> bool:
        return self.effective_namespace == other.effective_namespace

    def __str__(self) -> str:
        return f"{self.gvk}/{self.name or '[noName]'}.{self.namespace or '[noNs]'}"


@dataclass(slots=True)
class Resource:
    obj: dict[str, Any]
    prev_ids: list[ResId] = field(default_factory=list)
    name_prefixes: list[str] = field(default_factory=list)
    name_suffixes: list[str] = field(default_factory=list)
    needs_hash: bool = False
    behavior: str = ""
    generated: bool = False
    origin: str | None = None
    transformations: list[str] = field(default_factory=list)
    has_untyped: bool = False  # replacements created fields typed only when printed
    # (path of a map, key) -> every (path, key) whose value shares one YAML node with it;
    # see transform.transform_map_entries
    links: dict[tuple[tuple[str | int, ...], str], list[tuple[tuple[str | int, ...], str]]] = field(
        default_factory=dict
    )

    def transformations_text(self) -> str:
        return "".join("- " + t.replace("\n", "\n  ").rstrip(" ") for t in self.transformations)

    def internal_annotations(
        self, *, with_origin: bool, with_transformations: bool = False
    ) -> dict[str, str]:
        """The bookkeeping annotations kustomize keeps on the object while it builds."""
        result: dict[str, str] = {}
        if self.prev_ids:
            result[_INTERNAL + "previousKinds"] = ",".join(i.gvk.kind for i in self.prev_ids)
            result[_INTERNAL + "previousNames"] = ",".join(i.name for i in self.prev_ids)
            result[_INTERNAL + "previousNamespaces"] = ",".join(
                i.namespace or _DEFAULT_NAMESPACE for i in self.prev_ids
            )
        if self.name_prefixes:
            result[_INTERNAL + "prefixes"] = ",".join(self.name_prefixes)
        if self.name_suffixes:
            result[_INTERNAL + "suffixes"] = ",".join(self.name_suffixes)
        if self.generated:
            result[_INTERNAL + "generatorBehavior"] = self.behavior or "unspecified"
            if self.needs_hash:
                result[_INTERNAL + "needsHashSuffix"] = "enabled"
        if with_origin and self.origin is not None:
            result[ORIGIN_ANNOTATION] = self.origin
        if with_transformations and self.transformations:
            result[TRANSFORMATIONS_ANNOTATION] = self.transformations_text()
        return result

    def strip_internal_annotations(self, *, with_origin: bool, with_transformations: bool = False) -> None:
        """Undo ``internal_annotations`` after a JSON patch; a removed origin or transformation
        history is forgotten, as kustomize keeps those as ordinary annotations."""
        meta = self.obj.get("metadata")
        annotations = meta.get("annotations") if isinstance(meta, dict) else None
        if not isinstance(annotations, dict):
            if with_origin:
                self.origin = None
            if with_transformations:
                self.transformations = []
            return
        if with_transformations and annotations.pop(TRANSFORMATIONS_ANNOTATION, None) is None:
            self.transformations = []
        for key in [k for k in annotations if k.startswith(_INTERNAL)]:
            del annotations[key]
        if with_origin:
            origin = annotations.pop(ORIGIN_ANNOTATION, None)
            self.origin = origin if isinstance(origin, str) else None

    def set_linked(self, path: tuple[str | int, ...], key: str, value: Any) -> None:
        """Write ``value`` to every entry sharing a value node with ``path``/``key``."""
        for other_path, other_key in self.links.get((path, key), ()):
            target = resolve_path(self.obj, other_path)
            if isinstance(target, dict) and other_key in target:
                target[other_key] = value

    def snapshot_links(self) -> list[tuple[list[tuple[tuple[str | int, ...], str]], list[Any]]]:
        """The current value of every linked entry, group by group (for patches)."""
        groups: dict[int, list[tuple[tuple[str | int, ...], str]]] = {}
        for group in self.links.values():
            groups[id(group)] = group
        result = []
        for group in groups.values():
            values = []
            for path, key in group:
                target = resolve_path(self.obj, path)
                values.append(target.get(key) if isinstance(target, dict) else None)
            result.append((group, values))
        return result

    def propagate_link_changes(
        self, before: list[tuple[list[tuple[tuple[str | int, ...], str]], list[Any]]]
    ) -> None:
        """After a strategic merge patch: a value the patch changed in one linked entry changes in all
        (kyaml overwrites the shared node in place)."""
        for group, old_values in before:
            for (path, key), old in zip(group, old_values, strict=True):
                target = resolve_path(self.obj, path)
                if isinstance(target, dict) and key in target and target[key] != old:
                    self.set_linked(path, key, target[key])
                    break

    # -- identity ---------------------------------------------------------------------------
    @property
    def gvk(self) -> Gvk:
        return Gvk.of(self.obj)

    @property
    def kind(self) -> str:
        return str(self.obj.get("kind") or "")

    @property
    def name(self) -> str:
        meta = self.obj.get("metadata")
        return str(meta.get("name") or "") if isinstance(meta, dict) else ""

    @name.setter
    def name(self, value: str) -> None:
        self.metadata()["name"] = value

    @property
    def namespace(self) -> str:
        meta = self.obj.get("metadata")
        return str(meta.get("namespace") or "") if isinstance(meta, dict) else ""

    @namespace.setter
    def namespace(self, value: str) -> None:
        if value:
            self.metadata()["namespace"] = value
        else:
            self.metadata().pop("namespace", None)

    def metadata(self) -> dict[str, Any]:
        meta = self.obj.get("metadata")
        if not isinstance(meta, dict):
            meta = {}
            self.obj["metadata"] = meta
        return meta

    def cur_id(self) -> ResId:
        return ResId(self.gvk, self.name, self.namespace)

    def org_id(self) -> ResId:
        return self.prev_ids[0] if self.prev_ids else self.cur_id()

    def all_ids(self) -> list[ResId]:
        return [*self.prev_ids, self.cur_id()]

    def store_previous_id(self) -> None:
        self.prev_ids.append(self.cur_id())

    # -- labels and annotations -------------------------------------------------------------
    def labels(self) -> dict[str, Any]:
        meta = self.obj.get("metadata")
        value = meta.get("labels") if isinstance(meta, dict) else None
        return value if isinstance(value, dict) else {}

    def annotations(self) -> dict[str, Any]:
        meta = self.obj.get("metadata")
        value = meta.get("annotations") if isinstance(meta, dict) else None
        return value if isinstance(value, dict) else {}

    def prefixes_suffixes_equal(self, other: Resource, allow_empty: bool) -> bool:
        if allow_empty:
            prefixes = (
                not self.name_prefixes
                or not other.name_prefixes
                or _same_ending(self.name_prefixes, other.name_prefixes)
            )
            suffixes = (
                not self.name_suffixes
                or not other.name_suffixes
                or _same_ending(self.name_suffixes, other.name_suffixes)
            )
            return prefixes and suffixes
        return _same_ending(self.name_prefixes, other.name_prefixes) and _same_ending(
            self.name_suffixes, other.name_suffixes
        )

    def copy_bookkeeping_from(self, other: Resource) -> None:
        self.prev_ids = list(other.prev_ids)
        self.name_prefixes = list(other.name_prefixes)
        self.name_suffixes = list(other.name_suffixes)
        self.needs_hash = other.needs_hash
        self.behavior = other.behavior
        self.has_untyped = self.has_untyped or other.has_untyped


def _same_ending(a: list[str], b: list[str]) -> bool:
    shortest, longest = (a, b) if len(a) <= len(b) else (b, a)
    diff = len(longest) - len(shortest)
    if not shortest:
        return diff == 0
    return all(longest[i + diff] == shortest[i] for i in range(len(shortest)))


# ------------------------------------------------------------------------------------------------
# Lookups over a list of resources (kustomize's ResMap)
# ------------------------------------------------------------------------------------------------


def matching_by_any_id(resources: list[Resource], wanted: ResId) -> list[Resource]:
    return [r for r in resources if any(i.equals(wanted) for i in r.all_ids())]


def get_by_id(resources: list[Resource], wanted: ResId) -> Resource:
    """A unique match by any current or previous id, with kustomize's error text."""
    found = matching_by_any_id(resources, wanted)
    if len(found) == 1:
        return found[0]
    problem = "multiple matches" if found else "no matches"
    raise KustomizeError(f"{problem} for Id {wanted}; failed to find unique target for patch {wanted}")


@dataclass(frozen=True, slots=True)
class Selector:
    """A patch target: group/version/kind/name/namespace are anchored regexes."""

    group: str = ""
    version: str = ""
    kind: str = ""
    name: str = ""
    namespace: str = ""
    label_selector: str = ""
    annotation_selector: str = ""

    @classmethod
    def parse(cls, raw: Any, where: str) -> Selector:
        if not isinstance(raw, dict):
            raise KustomizeError(f"{where}: target must be a mapping")
        known = {
            "group",
            "version",
            "kind",
            "name",
            "namespace",
            "labelSelector",
            "annotationSelector",
        }
        unknown = set(raw) - known
        if unknown:
            raise KustomizeError(f"{where}: unknown target field(s) {', '.join(sorted(unknown))}")
        return cls(
            group=str(raw.get("group") or ""),
            version=str(raw.get("version") or ""),
            kind=str(raw.get("kind") or ""),
            name=str(raw.get("name") or ""),
            namespace=str(raw.get("namespace") or ""),
            label_selector=str(raw.get("labelSelector") or ""),
            annotation_selector=str(raw.get("annotationSelector") or ""),
        )

    def __str__(self) -> str:
        parts = [
            f"{k}={v}"
            for k, v in (
                ("group", self.group),
                ("version", self.version),
                ("kind", self.kind),
                ("name", self.name),
                ("namespace", self.namespace),
                ("labelSelector", self.label_selector),
                ("annotationSelector", self.annotation_selector),
            )
            if v
        ]
        return "{" + ", ".join(parts) + "}"


def _anchored(pattern: str, where: str) -> re.Pattern[str] | None:
    if not pattern:
        return None
    try:
        return re.compile(f"^(?:{pattern})$")
    except re.error as exc:
        raise KustomizeError(f"{where}: invalid regular expression {pattern!r}: {exc}") from None


def select(resources: list[Resource], selector: Selector, where: str) -> list[Resource]:
    """kustomize's ResMap.Select: original or current name/namespace, current GVK, selectors."""
    name_re = _anchored(selector.name, where)
    ns_re = _anchored(selector.namespace, where)
    group_re = _anchored(selector.group, where)
    version_re = _anchored(selector.version, where)
    kind_re = _anchored(selector.kind, where)
    labels = parse_label_selector(selector.label_selector, where) if selector.label_selector else None
    annotations = (
        parse_label_selector(selector.annotation_selector, where) if selector.annotation_selector else None
    )
    result = []
    for r in resources:
        cur, org = r.cur_id(), r.org_id()
        if ns_re is not None and not (
            ns_re.match(org.effective_namespace) or ns_re.match(cur.effective_namespace)
        ):
            continue
        if name_re is not None and not (name_re.match(org.name) or name_re.match(cur.name)):
            continue
        gvk = cur.gvk
        if group_re is not None and not group_re.match(gvk.group):
            continue
        if version_re is not None and not version_re.match(gvk.version):
            continue
        if kind_re is not None and not kind_re.match(gvk.kind):
            continue
        if labels is not None and not selector_matches(labels, r.labels()):
            continue
        if annotations is not None and not selector_matches(annotations, r.annotations()):
            continue
        result.append(r)
    return result


# A parsed requirement: (key, operator, values); operators: in, notin, exists, !exists.
Requirement = tuple[str, str, tuple[str, ...]]

_REQUIREMENT = re.compile(
    r"""\s*(?:
        (?P<not>!)\s*(?P<nkey>[^\s,!=()]+)
      | (?P<key>[^\s,!=()]+)\s*
        (?:
          (?P<op>==|=|!=)\s*(?P<value>[^\s,!=()]*)
        | (?P<setop>in|notin)\s*\((?P<values>[^)]*)\)
        )?
    )\s*(?:,|$)""",
    re.VERBOSE,
)


def parse_label_selector(text: str, where: str) -> list[Requirement]:
    """Kubernetes label selector syntax: ``a=b,c!=d,e in (x,y),f notin (z),g,!h``."""
    requirements: list[Requirement] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _REQUIREMENT.match(text, pos)
        if not m or m.end() == pos:
            raise KustomizeError(f"{where}: unable to parse requirement in selector {text!r}")
        pos = m.end()
        if m["not"]:
            requirements.append((m["nkey"], "!exists", ()))
        elif m["op"]:
            op = "notin" if m["op"] == "!=" else "in"
            requirements.append((m["key"], op, (m["value"],)))
        elif m["setop"]:
            values = tuple(v.strip() for v in m["values"].split(",") if v.strip())
            requirements.append((m["key"], m["setop"], values))
        else:
            requirements.append((m["key"], "exists", ()))
    return requirements


def selector_matches(requirements: list[Requirement], labels: dict[str, Any]) -> bool:
    for key, op, values in requirements:
        present = key in labels
        value = str(labels[key]) if present else None
        if op == "exists" and not present:
            return False
        if op == "!exists" and present:
            return False
        if op == "in" and (not present or value not in values):
            return False
        if op == "notin" and present and value in values:
            return False
    return True
