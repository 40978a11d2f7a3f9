"""kustomize-controller's kustomization.yaml handling (fluxcd/pkg ``kustomize.Generator``).

When the build path has no kustomization file, one is generated listing every ``.yaml``/``.yml``
file under the path (recursively, in lexical walk order); a sub-directory holding its own
kustomization file is listed as one resource and not descended into. Every listed file must hold
Kubernetes objects — a file that does not (a CI config, a values file) fails the build naming it,
as in Flux. The Kustomization's spec-level settings are then written into the (generated or
existing) kustomization file: ``namespace`` (targetNamespace), ``namePrefix``/``nameSuffix``
(replacing the file's own), ``patches`` and ``components`` (appended), ``images`` (replacing an
entry of the same name, else appended) and ``buildMetadata``.
"""

from __future__ import annotations

import os
import posixpath
from pathlib import Path
from typing import Any

from libs.fluxbuild.errors import FluxBuildError
from libs.fluxbuild.spec import BuildSpec
from libs.kustomize import KustomizeError
from libs.kustomize.loader import KUSTOMIZATION_FILE_NAMES
from libs.kustomize.target import parse_resources
from libs.kustomize.yamlio import YAMLInputError, dump_document, load_all

KUSTOMIZE_API_VERSION = "kustomize.config.k8s.io/v1beta1"


def find_kustomization_file(directory: Path) -> Path | None:
    for name in KUSTOMIZATION_FILE_NAMES:
        candidate = directory / name
        if candidate.is_file():
            return candidate
    return None


def scan_manifests(directory: Path, root: Path) -> list[str]:
    """The resources of a generated kustomization: ``./file.yaml``, ``./sub/x.yml``, ``./withkust``."""
    found: list[str] = []

    def walk(current: Path, rel: str) -> None:
        with os.scandir(current) as entries:
            children = sorted(entries, key=lambda e: e.name)
        for entry in children:
            child_rel = f"{rel}/{entry.name}"
            if entry.is_dir(follow_symlinks=False):
                if find_kustomization_file(Path(entry.path)) is not None:
                    found.append(child_rel)
                    continue
                walk(Path(entry.path), child_rel)
                continue
            if posixpath.splitext(entry.name)[1] not in (".yaml", ".yml"):
                continue
            shown = _relative(Path(entry.path), root)
            try:
                parse_resources(Path(entry.path).read_bytes(), shown)
            except (KustomizeError, YAMLInputError) as exc:
                detail = str(exc).removeprefix(f"{shown}: ")
                raise FluxBuildError(f"failed to decode Kubernetes YAML from {shown}: {detail}") from None
            except OSError as exc:
                raise FluxBuildError(f"failed to read {shown}: {exc.strerror}") from None
            found.append(child_rel)

    walk(directory, ".")
    return found


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.name


def write_kustomization(directory: Path, spec: BuildSpec, root: Path) -> Path:
    """Generate the kustomization file when missing, then write the spec's settings into it.

    Returns the kustomization file. An existing file is rewritten only when the spec sets
    something to add, so a plain Kustomization builds the user's file byte for byte.
    """
    existing = find_kustomization_file(directory)
    if existing is None:
        kfile = directory / "kustomization.yaml"
        kus: dict[str, Any] = {
            "apiVersion": KUSTOMIZE_API_VERSION,
            "kind": "Kustomization",
            "resources": scan_manifests(directory, root),
        }
        changed = True
    else:
        kfile = existing
        kus = _load(existing, root)
        changed = False
    changed = _overlay(kus, spec, directory, root) or changed
    if changed:
        kfile.write_text(dump_document(kus), encoding="utf-8")
    return kfile


def _load(path: Path, root: Path) -> dict[str, Any]:
    shown = _relative(path, root)
    try:
        docs = [d for d in load_all(path.read_text(encoding="utf-8"), timestamps=False) if d is not None]
    except (YAMLInputError, UnicodeDecodeError) as exc:
        raise FluxBuildError(f"invalid Kustomization: {shown}: {exc}") from None
    if not docs:
        return {}
    if len(docs) > 1 or not isinstance(docs[0], dict):
        raise FluxBuildError(f"invalid Kustomization: {shown}: expected one mapping")
    return docs[0]


def _overlay(kus: dict[str, Any], spec: BuildSpec, directory: Path, root: Path) -> bool:
    changed = False
    if spec.target_namespace:
        kus["namespace"] = spec.target_namespace
        changed = True
    if spec.name_prefix:
        kus["namePrefix"] = spec.name_prefix
        changed = True
    if spec.name_suffix:
        kus["nameSuffix"] = spec.name_suffix
        changed = True
    if spec.patches:
        patches = _list(kus, "patches")
        for p in spec.patches:
            entry: dict[str, Any] = {"patch": p.get("patch", "")}
            target = {k: v for k, v in (p.get("target") or {}).items() if v not in (None, "")}
            if target:
                entry["target"] = target
            patches.append(entry)
        changed = True
    for component in spec.components:
        if component.startswith("/") or "://" in component:
            raise FluxBuildError(f"component path '{component}' must be local and relative")
        if spec.ignore_missing_components and not (directory / component).exists():
            continue
        _list(kus, "components").append(component)
        changed = True
    if spec.images:
        images = _list(kus, "images")
        for image in spec.images:
            new = {k: image[k] for k in ("name", "newName", "newTag", "digest") if image.get(k)}
            same = [
                i
                for i, old in enumerate(images)
                if isinstance(old, dict) and old.get("name") == new.get("name")
            ]
            if same:
                images[same[0]] = new
            else:
                images.append(new)
        changed = True
    if spec.build_metadata:
        metadata = _list(kus, "buildMetadata")
        for option in spec.build_metadata:
            if option not in metadata:
                metadata.append(option)
        changed = True
    return changed


def _list(kus: dict[str, Any], key: str) -> list[Any]:
    value = kus.get(key)
    if value is None:
        value = kus[key] = []
    if not isinstance(value, list):
        raise FluxBuildError(f"invalid Kustomization: {key} must be a list")
    return value
