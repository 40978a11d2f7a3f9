"""Flux's kind phrases (`source git`, `kustomization`, `image policy` …) and a Kubernetes session."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from libs.common.api.image.imagepolicy import ImagePolicy
from libs.common.api.image.imagerepository import ImageRepository
from libs.common.api.image.imageupdateautomation import ImageUpdateAutomation
from libs.common.api.kustomize.kustomization import Kustomization
from libs.common.api.meta import FluxObject
from libs.common.api.registry import UnknownKind, by_name
from libs.common.api.source.gitrepository import GitRepository
from libs.common.kube import Kube

T = TypeVar("T")

#: The multi-word kind names `flux` accepts, singular and plural.
PHRASES: dict[tuple[str, ...], type[FluxObject]] = {
    ("source", "git"): GitRepository,
    ("sources", "git"): GitRepository,
    ("kustomization",): Kustomization,
    ("kustomizations",): Kustomization,
    ("image", "repository"): ImageRepository,
    ("images", "repository"): ImageRepository,
    ("image", "policy"): ImagePolicy,
    ("images", "policy"): ImagePolicy,
    ("image", "update"): ImageUpdateAutomation,
    ("images", "update"): ImageUpdateAutomation,
}

#: `get images all`
IMAGE_KINDS: tuple[type[FluxObject], ...] = (ImageRepository, ImagePolicy, ImageUpdateAutomation)


def resolve(words: list[str]) -> type[FluxObject]:
    """The kind named by `words` (a flux phrase like `source git`, or one name like `ks`)."""
    phrase = tuple(w.lower() for w in words)
    if phrase in PHRASES:
        return PHRASES[phrase]
    if len(phrase) == 1:
        return by_name(phrase[0])
    raise UnknownKind(f"unknown kind {' '.join(words)!r}")


def split_kind_name(words: list[str]) -> tuple[type[FluxObject], str]:
    """`["source", "git", "app"]` → (GitRepository, "app")."""
    if len(words) < 2:
        raise UnknownKind("expected <kind> NAME, e.g. `source git podinfo` or `kustomization apps`")
    return resolve(words[:-1]), words[-1]


def with_kube(kubeconfig: str | None, context: str | None, fn: Callable[[Kube], Awaitable[T]]) -> T:
    """Run `fn(kube)` on a fresh event loop with a client that is closed afterwards."""

    async def run() -> T:
        kube = Kube.from_config(kubeconfig, context=context)
        try:
            return await fn(kube)
        finally:
            await kube.close()

    return asyncio.run(run())
