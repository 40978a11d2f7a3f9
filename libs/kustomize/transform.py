"""The built-in transformers and the final name-reference fix-up."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from libs.kustomize.config import FieldSpec, TransformerConfig, apply_fieldspec, collect_map_targets
from libs.kustomize.errors import KustomizeError
from libs.kustomize.resource import Gvk, Resource, as_text

# ------------------------------------------------------------------------------------------------
# namespace
# ------------------------------------------------------------------------------------------------

_ROLE_BINDINGS = ("RoleBinding", "ClusterRoleBinding")


def transform_namespace(resources: list[Resource], namespace: str, specs: list[FieldSpec]) -> None:
    for r in resources:
        r.store_previous_id()
        obj = r.obj
        gvk = r.gvk
        api_version = obj.get("apiVersion")
        if not gvk.cluster_scoped:
            r.metadata()["namespace"] = namespace
        role_binding = gvk.kind in _ROLE_BINDINGS
        if role_binding:
            subjects = obj.get("subjects")
            if isinstance(subjects, list):
                for subject in subjects:
                    if isinstance(subject, dict) and subject.get("name") == "default":
                        subject["namespace"] = namespace
        for spec in specs:
            if spec.path == "metadata/namespace":
                continue
            if spec.path == "metadata/name" and api_version != "v1":
                continue
            if role_binding and spec.path == "subjects":
                continue
            apply_fieldspec(obj, spec, _scalar_setter(namespace), create_map=False)
    seen: set[tuple[Gvk, str, str]] = set()
    for r in resources:
        cur = r.cur_id()
        if cur.key in seen:
            raise KustomizeError(f"namespace transformation produces ID conflict: {cur}")
        seen.add(cur.key)


def _scalar_setter(value: str) -> Callable[[dict[str, Any], str], None]:
    def setter(container: dict[str, Any], key: str) -> None:
        if isinstance(container.get(key), dict | list):
            raise KustomizeError(f"namespace field specs must target scalar nodes (field {key!r})")
        container[key] = value

    return setter


# ------------------------------------------------------------------------------------------------
# namePrefix / nameSuffix
# ------------------------------------------------------------------------------------------------

_PREFIX_SUFFIX_SKIP = (
    Gvk(kind="CustomResourceDefinition"),
    Gvk(group="apiregistration.k8s.io", kind="APIService"),
    Gvk(kind="Namespace"),
)


def transform_name_affix(
    resources: list[Resource], affix: str, specs: list[FieldSpec], *, suffix: bool
) -> None:
    def setter(container: dict[str, Any], key: str) -> None:
        value = container.get(key)
        if isinstance(value, str):
            container[key] = value + affix if suffix else affix + value

    for r in resources:
        org = r.org_id()
        if any(org.gvk.is_selected(skip) for skip in _PREFIX_SUFFIX_SKIP):
            continue
        for spec in specs:
            if not org.gvk.is_selected(spec.gvk):
                continue
            if spec.path == "metadata/name":
                (r.name_suffixes if suffix else r.name_prefixes).append(affix)
                r.store_previous_id()
            apply_fieldspec(r.obj, spec, setter, create_map=False)


# ------------------------------------------------------------------------------------------------
# labels / annotations
# ------------------------------------------------------------------------------------------------


def transform_map_entries(resources: list[Resource], entries: dict[str, str], specs: list[FieldSpec]) -> None:
    """LabelTransformer / AnnotationsTransformer: set ``entries`` in every map the specs name.

    kustomize (kyaml) gives every entry this call creates in one object the same YAML value
    node per key, and later overwrites existing entries in place; so an overlay changing a
    label the base added everywhere (commonLabels) changes it in selectors and templates too.
    ``Resource.links`` reproduces that aliasing.
    """
    if not entries:
        return
    items = sorted(entries.items())
    for r in resources:
        new_groups: dict[str, list[tuple[tuple[str | int, ...], str]]] = {}
        for spec in specs:
            for target, path in collect_map_targets(r.obj, spec):
                for k, v in items:
                    if k in target:
                        target[k] = v
                        r.set_linked(path, k, v)
                    else:
                        target[k] = v
                        group = new_groups.setdefault(k, [])
                        group.append((path, k))
                        r.links[(path, k)] = group


# ------------------------------------------------------------------------------------------------
# images
# ------------------------------------------------------------------------------------------------


def split_image(image: str) -> tuple[str, str, str]:
    """kustomize's image.Split: (name, tag, digest)."""
    search = image
    slash = image.find("/")
    if slash > 0:
        search = image[slash:]
    else:
        slash = 0
    at = search.find("@")
    colon = search.find(":")
    if colon < 0 and at < 0:
        return image, "", ""
    if at >= 0 and (at < colon or colon < 0):
        at += slash
        return image[:at], "", image[at + 1 :]
    if at >= 0 and colon >= 0:
        at += slash
        colon += slash
        return image[:colon], image[colon + 1 : at], image[at + 1 :]
    colon += slash
    return image[:colon], image[colon + 1 :], ""


class ImageUpdate:
    def __init__(self, entry: dict[str, Any], where: str) -> None:
        name = entry.get("name")
        if not isinstance(name, str) or not name:
            raise KustomizeError(f"{where}: images entries need a 'name'")
        unknown = set(entry) - {"name", "newName", "newTag", "digest", "tagSuffix"}
        if unknown:
            raise KustomizeError(f"{where}: unknown images field(s) {', '.join(sorted(unknown))}")
        if "tagSuffix" in entry:
            raise KustomizeError(f"{where}: images tagSuffix is not supported")
        self.name = name
        self.new_name = as_text(entry.get("newName"))
        self.new_tag = as_text(entry.get("newTag"))
        self.digest = as_text(entry.get("digest"))
        try:
            self.pattern = re.compile("^" + name + r"(:[a-zA-Z0-9_.{}-]*)?(@sha256:[a-zA-Z0-9_.{}-]*)?$")
        except re.error as exc:
            raise KustomizeError(f"{where}: invalid image name {name!r}: {exc}") from None

    def apply(self, value: Any) -> Any:
        if not isinstance(value, str) or not self.pattern.match(value):
            return value
        name, tag, digest = split_image(value)
        if self.new_name:
            name = self.new_name
        if self.new_tag and self.digest:
            tag, digest = self.new_tag, self.digest
        elif self.new_tag:
            tag, digest = self.new_tag, ""
        elif self.digest:
            tag, digest = "", self.digest
        if tag:
            name += ":" + tag
        if digest:
            name += "@" + digest
        return name


def transform_images(resources: list[Resource], updates: list[ImageUpdate], specs: list[FieldSpec]) -> None:
    """The ImageTagTransformers of one kustomization, one per ``images`` entry, in order.

    Each kustomize ImageTagTransformer first updates every ``image`` of every element of any
    ``containers``/``initContainers`` list (its legacy filter), then the fields of the
    ``images`` fieldSpecs. The set of fields does not depend on their values, so the fields
    are found once and every update is applied to them in the same order.
    """
    if not updates:
        return
    for r in resources:
        holders: list[tuple[dict[str, Any], str]] = []
        _legacy_image_holders(r.obj, holders)
        legacy_count = len(holders)

        def collect(
            container: dict[str, Any], key: str, holders: list[tuple[dict[str, Any], str]] = holders
        ) -> None:
            holders.append((container, key))

        for spec in specs:
            apply_fieldspec(r.obj, spec, collect, create_map=False)
        if not holders:
            continue
        for update in updates:
            for index, (container, key) in enumerate(holders):
                if index < legacy_count or key in container:
                    container[key] = update.apply(container[key])


def _legacy_image_holders(node: Any, out: list[tuple[dict[str, Any], str]]) -> None:
    """Every ``image`` of every element of any ``containers``/``initContainers`` list."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("containers", "initContainers") and isinstance(value, list):
                out.extend(
                    (element, "image")
                    for element in value
                    if isinstance(element, dict) and "image" in element
                )
            elif isinstance(value, dict | list):
                _legacy_image_holders(value, out)
    elif isinstance(node, list):
        for element in node:
            if isinstance(element, dict | list):
                _legacy_image_holders(element, out)


# ------------------------------------------------------------------------------------------------
# replicas
# ------------------------------------------------------------------------------------------------


def transform_replicas(resources: list[Resource], name: str, count: int, specs: list[FieldSpec]) -> None:
    def setter(container: dict[str, Any], key: str) -> None:
        container[key] = count

    found = False
    for spec in specs:
        matched = [
            r for r in resources if any(i.name == name and i.gvk.is_selected(spec.gvk) for i in r.all_ids())
        ]
        if matched:
            found = True
        for r in matched:
            apply_fieldspec(r.obj, spec, setter, create_map=False)
    if not found:
        gvks = " ".join(str(s.gvk) for s in specs)
        raise KustomizeError(
            f"resource with name {name} does not match a config with the following GVK [{gvks}]"
        )


# ------------------------------------------------------------------------------------------------
# name references (FixBackReferences)
# ------------------------------------------------------------------------------------------------


def fix_name_references(resources: list[Resource], config: TransformerConfig) -> None:
    org_gvks = [r.org_id().gvk for r in resources]
    for index, referrer in enumerate(resources):
        filters: list[tuple[Gvk, FieldSpec]] = [
            (target, spec)
            for target, specs in config.name_reference
            for spec in specs
            if org_gvks[index].is_selected(spec.gvk)
        ]
        if not filters:
            continue
        candidates = _could_be_referenced(resources, referrer)
        for target, spec in filters:
            _NameRefFilter(referrer, spec, target, candidates).run()


def _could_be_referenced(resources: list[Resource], referrer: Resource) -> list[Resource]:
    ref_id = referrer.cur_id()
    if ref_id.gvk.cluster_scoped:
        return resources
    sa_namespaces: set[str] = set()
    if referrer.kind == "RoleBinding":
        subjects = referrer.obj.get("subjects")
        if isinstance(subjects, list):
            for s in subjects:
                if isinstance(s, dict) and s.get("kind") == "ServiceAccount" and "namespace" in s:
                    sa_namespaces.add(str(s["namespace"]))
    result = []
    for r in resources:
        rid = r.cur_id()
        if rid.gvk.cluster_scoped or rid.ns_equals(ref_id) or r.namespace in sa_namespaces:
            result.append(r)
    return result


class _NameRefFilter:
    def __init__(self, referrer: Resource, spec: FieldSpec, target: Gvk, candidates: list[Resource]):
        self.referrer = referrer
        self.spec = spec
        self.target = target
        self.candidates = candidates

    def run(self) -> None:
        _walk_unchecked(self.referrer.obj, self.spec.parts, 0, self._set)

    def _set(self, container: dict[str, Any], key: str) -> None:
        value = container.get(key)
        if value is None:
            return
        if isinstance(value, str):
            container[key] = self._scalar(value)
        elif isinstance(value, dict):
            self._mapping(value)
        elif isinstance(value, list):
            for i, element in enumerate(value):
                if isinstance(element, str):
                    value[i] = self._scalar(element)
                elif isinstance(element, dict):
                    self._mapping(element)

    def _scalar(self, old: str) -> str:
        referral = self._select(old, self.candidates, with_namespace=False)
        return old if referral is None else referral.name

    def _mapping(self, node: dict[str, Any]) -> None:
        if "name" not in node:
            raise KustomizeError(
                f"updating name reference in '{self.spec.path}' field of "
                f"'{self.referrer.cur_id()}': path config error; no 'name' field in node"
            )
        old = node["name"]
        if not isinstance(old, str):
            return
        candidates = self._by_namespace(node)
        referral = self._select(old, candidates, with_namespace=True)
        if referral is None:
            return
        if referral.name == old and not referral.namespace:
            return
        node["name"] = referral.name
        if referral.namespace:
            node["namespace"] = referral.namespace

    def _by_namespace(self, node: dict[str, Any]) -> list[Resource]:
        if "namespace" not in node:
            return self.candidates
        namespace = str(node["namespace"])
        by_original = [
            r
            for r in self.candidates
            if not r.org_id().gvk.cluster_scoped and r.org_id().effective_namespace == namespace
        ]
        if by_original:
            return by_original
        return [
            r
            for r in self.candidates
            if not r.cur_id().gvk.cluster_scoped and r.cur_id().effective_namespace == namespace
        ]

    def _select(self, old: str, candidates: list[Resource], *, with_namespace: bool) -> Resource | None:
        found = [r for r in candidates if any(i.name == old for i in r.prev_ids)]
        found = [r for r in found if any(i.gvk.is_selected(self.target) for i in r.prev_ids)]
        if self.spec.path.endswith("roleRef/name"):
            role_ref = self.referrer.obj.get("roleRef")
            if isinstance(role_ref, dict):
                gvk = Gvk(group=str(role_ref.get("apiGroup") or ""), kind=str(role_ref.get("kind") or ""))
                found = [r for r in found if any(i.gvk.is_selected(gvk) for i in r.prev_ids)]
        ref_id = self.referrer.cur_id()
        if not ref_id.gvk.cluster_scoped:
            found = [
                r
                for r in found
                if r.cur_id().gvk.cluster_scoped or r.kind == "ServiceAccount" or ref_id.ns_equals(r.cur_id())
            ]
        if len(found) == 1:
            return found[0]
        found = [r for r in found if r.prefixes_suffixes_equal(self.referrer, True)]
        if len(found) == 1:
            return found[0]
        found = [r for r in found if r.prefixes_suffixes_equal(self.referrer, False)]
        if len(found) > 1:
            first = found[0]
            if all(
                r.name == first.name and (not with_namespace or r.namespace == first.namespace) for r in found
            ):
                return first
            ids = ", ".join(str(r.cur_id()) for r in found)
            raise KustomizeError(
                f"updating name reference in '{self.spec.path}' field of '{ref_id}': "
                f"considering field '{self.spec.path}' of object {ref_id}: "
                f"found multiple possible referrals: {ids}"
            )
        return found[0] if found else None


def _walk_unchecked(
    node: Any, parts: tuple[str, ...], i: int, setter: Callable[[dict[str, Any], str], None]
) -> None:
    if isinstance(node, list):
        for element in node:
            _walk_unchecked(element, parts, i, setter)
        return
    if not isinstance(node, dict):
        return
    part = parts[i]
    key = part[:-2] if part.endswith("[]") else part
    if key not in node:
        return
    if i == len(parts) - 1:
        setter(node, key)
    else:
        _walk_unchecked(node[key], parts, i + 1, setter)
