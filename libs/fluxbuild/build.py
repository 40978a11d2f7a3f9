"""Render a Flux Kustomization from an extracted source artifact (kustomize-controller steps 2 to 5).

1. ``spec.path`` is resolved inside the artifact root (a path leaving it is an error).
2. A kustomization.yaml is generated when the path has none; the spec's settings are written in.
3. ``kustomize build`` (libs.kustomize).
4. Every object must have apiVersion, kind and metadata.name.
5. Post-build substitution, per object, unless it opts out with the label or annotation
   ``kustomize.toolkit.fluxcd.io/substitute: disabled``.
6. ``commonMetadata`` labels and annotations are set on every object.

Everything here is blocking and CPU-bound: async callers use ``asyncio.to_thread``.
"""

from __future__ import annotations

import os
import posixpath
import re
import shutil
import tempfile
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from libs.fluxbuild.envsubst import SubstitutionError, evaluate
from libs.fluxbuild.errors import ARTIFACT_FAILED, FluxBuildError
from libs.fluxbuild.generate import write_kustomization
from libs.fluxbuild.spec import ALWAYS, BuildSpec, merge_variables
from libs.kustomize import KustomizeError
from libs.kustomize import build as kustomize_build
from libs.kustomize.loader import KUSTOMIZATION_FILE_NAMES
from libs.kustomize.yamlio import YAMLInputError, dump_stream, load_all, resolve_plain_v3

SUBSTITUTE_KEY = "kustomize.toolkit.fluxcd.io/substitute"
SUBSTITUTE_DISABLED = "disabled"
VAR_NAME_PATTERN = "^[_[:alpha:]][_[:alpha:][:digit:]]*$"
_VAR_NAME = re.compile(r"[_A-Za-z][_A-Za-z0-9]*")
_MASK = "***"


@dataclass(frozen=True)
class Rendered:
    """The rendered objects, in kustomize output order, and their multi-document YAML."""

    resources: list[dict[str, Any]]
    yaml: str

    @property
    def object_count(self) -> int:
        return len(self.resources)


def resolve_path(root: Path, path: str) -> Path:
    """``spec.path`` inside ``root``; leaving the root (by ``..`` or a symlink) is an error."""
    rel = posixpath.normpath("./" + path.lstrip("/")) if path else "."
    if rel == ".." or rel.startswith("../"):
        raise FluxBuildError(f"spec.path '{path}' points outside the source artifact", ARTIFACT_FAILED)
    real_root = os.path.realpath(root)
    target = os.path.realpath(os.path.join(real_root, rel))
    if target != real_root and not target.startswith(real_root.rstrip(os.sep) + os.sep):
        raise FluxBuildError(f"spec.path '{path}' points outside the source artifact", ARTIFACT_FAILED)
    if not os.path.exists(target):
        raise FluxBuildError(
            f"kustomization path not found: stat {rel}: no such file or directory", ARTIFACT_FAILED
        )
    if not os.path.isdir(target):
        raise FluxBuildError(f"kustomization path {rel} is not a directory", ARTIFACT_FAILED)
    return Path(target)


def render(
    root: Path,
    spec: BuildSpec,
    *,
    sources: Iterable[Mapping[str, str]] = (),
    sensitive: Collection[str] = (),
    in_place: bool = False,
) -> Rendered:
    """Render ``spec`` over the artifact extracted at ``root``.

    ``sources`` are the data of ``postBuild.substituteFrom`` ConfigMaps/Secrets in spec order
    (the caller reads them); ``spec.substitute`` wins over them. Values in ``sensitive`` (Secret
    data) are masked in error messages. Unless ``in_place``, the tree is copied first, so the
    caller's directory is never modified.
    """
    root = Path(root)
    if in_place:
        return _render(root, spec, sources, sensitive)
    with tempfile.TemporaryDirectory(prefix="sluice-fluxbuild-") as tmp:
        work = Path(tmp) / "root"
        shutil.copytree(root, work, symlinks=True)
        return _render(work, spec, sources, sensitive)


def _render(
    root: Path, spec: BuildSpec, sources: Iterable[Mapping[str, str]], sensitive: Collection[str]
) -> Rendered:
    real_root = Path(os.path.realpath(root))
    directory = resolve_path(real_root, spec.path)
    write_kustomization(directory, spec, real_root)
    check_confined(real_root)
    try:
        built = kustomize_build(directory)
    except KustomizeError as exc:
        raise FluxBuildError(f"kustomize build failed: {_relativize(str(exc), real_root)}") from None
    resources = built.resources
    for obj in resources:
        _check_object(obj)
        if _sops_encrypted(obj):
            raise FluxBuildError(
                f"{object_id(obj)} is SOPS encrypted, configuring decryption is required for this secret"
                " to be reconciled (spec.decryption is not supported yet)"
            )
    if spec.post_build:
        variables = merge_variables(sources, spec.substitute)
        for name in variables:
            if not _VAR_NAME.fullmatch(name):
                raise FluxBuildError(f"'{name}' var name is invalid, must match '{VAR_NAME_PATTERN}'")
        if variables or spec.substitute_strategy == ALWAYS:
            quoted = quoted_templates(real_root, (str(p.get("patch") or "") for p in spec.patches))
            resources = [_substitute(obj, variables, spec.strict, sensitive, quoted) for obj in resources]
    if spec.common_labels or spec.common_annotations:
        for obj in resources:
            _set_common_metadata(obj, spec.common_labels, spec.common_annotations)
    return Rendered(resources, dump_stream(resources) if resources else "")


_DIRECTORY_FIELDS = ("resources", "bases", "components")


def check_confined(root: Path) -> None:
    """Refuse a kustomization under ``root`` whose resources, bases or components leave ``root``.

    Flux builds on a file system rooted at the artifact, so nothing outside it can be read;
    kustomize on its own would load another kustomization directory anywhere on the disk.
    """
    real_root = os.path.realpath(root)
    prefix = real_root.rstrip(os.sep) + os.sep
    for directory, _dirs, files in os.walk(real_root):
        for name in files:
            if name not in KUSTOMIZATION_FILE_NAMES:
                continue
            path = os.path.join(directory, name)
            try:
                docs = load_all(Path(path).read_text(encoding="utf-8"), timestamps=False)
            except (OSError, UnicodeDecodeError, YAMLInputError):
                continue  # kustomize reports it, naming the file
            doc = docs[0] if len(docs) == 1 else None
            if not isinstance(doc, dict):
                continue
            for field in _DIRECTORY_FIELDS:
                entries = doc.get(field)
                if not isinstance(entries, list):
                    continue
                for entry in entries:
                    if not isinstance(entry, str) or "://" in entry or entry.startswith("git@"):
                        continue
                    target = os.path.realpath(os.path.join(directory, entry))
                    if target != real_root and not target.startswith(prefix):
                        shown = os.path.relpath(path, real_root)
                        raise FluxBuildError(
                            f"kustomize build failed: {shown}: {field} entry '{entry}' points outside the source artifact"
                        )


def _relativize(message: str, root: Path) -> str:
    text = str(root)
    return message.replace(text + os.sep, "").replace(text, ".")


def object_id(obj: Mapping[str, Any]) -> str:
    """``Kind/namespace/name`` (``Kind/name`` for cluster-scoped objects)."""
    meta = obj.get("metadata") or {}
    parts = [str(obj.get("kind") or "?"), str(meta.get("namespace") or ""), str(meta.get("name") or "?")]
    return "/".join(p for p in parts if p)


def _check_object(obj: Any) -> None:
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    if not (
        isinstance(obj, dict)
        and obj.get("apiVersion")
        and obj.get("kind")
        and isinstance(meta, dict)
        and meta.get("name")
    ):
        raise FluxBuildError(
            f"failed to decode Kubernetes apiVersion, kind and name from: {object_id(obj or {})}"
        )


def _sops_encrypted(obj: Mapping[str, Any]) -> bool:
    """A manifest encrypted with SOPS carries a top-level ``sops`` map with its MAC."""
    sops = obj.get("sops")
    return isinstance(sops, dict) and ("mac" in sops or "lastmodified" in sops)


def _opted_out(obj: Mapping[str, Any]) -> bool:
    meta = obj.get("metadata") or {}
    labels = meta.get("labels") or {}
    annotations = meta.get("annotations") or {}
    return SUBSTITUTE_DISABLED in (labels.get(SUBSTITUTE_KEY), annotations.get(SUBSTITUTE_KEY))


def _substitute(
    obj: dict[str, Any],
    variables: Mapping[str, str],
    strict: bool,
    sensitive: Collection[str],
    quoted: Collection[tuple[str, str]],
) -> dict[str, Any]:
    """Substitute one object, value by value.

    Flux substitutes the object's YAML text and parses it again, with the scalar styles kyaml kept
    from the source files: a quoted ``"${PORT}"`` stays a string, a plain ``${REPLICAS}`` becomes a
    number. The built objects here no longer carry styles, so ``quoted`` holds the (mapping key,
    text) pairs written quoted (or as block scalars) in the artifact; every other substituted
    scalar is typed as a plain YAML scalar again.
    """
    if _opted_out(obj):
        return obj

    def lookup(name: str) -> tuple[str, bool]:
        if name in variables:
            return variables[name], True
        return "", not strict

    def walk(node: Any, key: str) -> Any:
        if isinstance(node, dict):
            return {
                (evaluate(k, lookup) if isinstance(k, str) else k): walk(v, str(k)) for k, v in node.items()
            }
        if isinstance(node, list):
            return [walk(v, key) for v in node]
        if isinstance(node, str) and "$" in node:
            new = evaluate(node, lookup)
            if (key, node) in quoted or "\n" in node:
                return new
            return _plain_value(new, sensitive)
        return node

    where = object_id(obj)
    try:
        result: dict[str, Any] = walk(obj, "")
    except SubstitutionError as exc:
        raise FluxBuildError(
            f"post build failed for '{where}': envsubst error: variable substitution failed: {exc}"
        ) from None
    except _FlowError as exc:
        raise FluxBuildError(f"post build failed for '{where}': YAMLToJSON: {exc}") from None
    _check_object(result)
    return result


class _FlowError(ValueError):
    pass


def _plain_value(text: str, sensitive: Collection[str]) -> Any:
    """A substituted plain scalar read again as YAML: numbers, booleans, null, flow collections."""
    if text.startswith(("[", "{")):
        try:
            docs = load_all(text)
        except YAMLInputError as exc:
            raise _FlowError(_mask(str(exc), sensitive)) from None
        return docs[0] if len(docs) == 1 else text
    return resolve_plain_v3(text)


_QUOTED_STYLES = frozenset({"'", '"', "|", ">"})
_MAX_SCANNED_FILE = 8 * 1024 * 1024


def quoted_templates(root: Path, extra_texts: Iterable[str] = ()) -> set[tuple[str, str]]:
    """Every (mapping key, scalar) pair whose scalar contains ``$`` and is written quoted or as a
    block scalar in a YAML file under ``root`` (or in ``extra_texts``, e.g. inline patches). Those
    stay strings after substitution, as kyaml's style-preserving nodes do in Flux; list items count
    under the key of their list."""
    found: set[tuple[str, str]] = set()

    def scan(text: str) -> None:
        if "$" not in text:
            return
        try:
            for document in yaml.compose_all(text, Loader=yaml.SafeLoader):
                stack: list[tuple[yaml.Node | None, str]] = [(document, "")]
                while stack:
                    current, key = stack.pop()
                    if isinstance(current, yaml.ScalarNode):
                        if current.style in _QUOTED_STYLES and "$" in current.value:
                            found.add((key, current.value))
                    elif isinstance(current, yaml.SequenceNode):
                        stack.extend((item, key) for item in current.value)
                    elif isinstance(current, yaml.MappingNode):
                        for k, v in current.value:
                            stack.append((k, key))
                            stack.append((v, str(k.value) if isinstance(k, yaml.ScalarNode) else ""))
        except yaml.YAMLError:
            return

    for directory, _dirs, files in os.walk(root):
        for name in files:
            path = Path(directory) / name
            try:
                if path.is_symlink() or path.stat().st_size > _MAX_SCANNED_FILE:
                    continue
                scan(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError):
                continue
    for text in extra_texts:
        scan(text)
    return found


def _mask(message: str, sensitive: Collection[str]) -> str:
    for value in sorted(sensitive, key=len, reverse=True):
        if value:
            message = message.replace(value, _MASK)
    return message


def _set_common_metadata(
    obj: dict[str, Any], labels: Mapping[str, str], annotations: Mapping[str, str]
) -> None:
    meta = obj.setdefault("metadata", {})
    if labels:
        current = meta.get("labels")
        meta["labels"] = {**(current if isinstance(current, dict) else {}), **labels}
    if annotations:
        current = meta.get("annotations")
        meta["annotations"] = {**(current if isinstance(current, dict) else {}), **annotations}
