"""Every Flux kind Sluice serves, and lookups by apiVersion/kind or by the names the CLI accepts."""

from __future__ import annotations

from libs.common.api.helm.helmrelease import HelmRelease
from libs.common.api.image.imagepolicy import ImagePolicy, ImagePolicyV1beta2
from libs.common.api.image.imagerepository import ImageRepository, ImageRepositoryV1beta2
from libs.common.api.image.imageupdateautomation import ImageUpdateAutomation, ImageUpdateAutomationV1beta2
from libs.common.api.kustomize.kustomization import Kustomization
from libs.common.api.meta import FluxObject
from libs.common.api.notification.alert import Alert
from libs.common.api.notification.provider import Provider
from libs.common.api.notification.receiver import Receiver
from libs.common.api.source.bucket import Bucket
from libs.common.api.source.gitrepository import GitRepository
from libs.common.api.source.helmchart import HelmChart
from libs.common.api.source.helmrepository import HelmRepository
from libs.common.api.source.ocirepository import OCIRepository

__all__ = [
    "ALL_KINDS",
    "STORAGE_KINDS",
    "UnknownKind",
    "by_name",
    "kind_for",
    "storage_version",
    "versions_of",
]

#: Every served class, all versions, in a stable order (sources, appliers, notifications, images).
ALL_KINDS: tuple[type[FluxObject], ...] = (
    GitRepository,
    OCIRepository,
    HelmRepository,
    HelmChart,
    Bucket,
    Kustomization,
    HelmRelease,
    Provider,
    Alert,
    Receiver,
    ImageRepository,
    ImageRepositoryV1beta2,
    ImagePolicy,
    ImagePolicyV1beta2,
    ImageUpdateAutomation,
    ImageUpdateAutomationV1beta2,
)

#: The storage version of each kind, one class per kind.
STORAGE_KINDS: tuple[type[FluxObject], ...] = tuple(cls for cls in ALL_KINDS if cls.STORAGE)


class UnknownKind(LookupError):
    """No served Flux kind matches."""


_BY_API_VERSION_KIND: dict[tuple[str, str], type[FluxObject]] = {
    (cls.api_version(), cls.KIND): cls for cls in ALL_KINDS
}

_BY_KIND: dict[str, type[FluxObject]] = {cls.KIND: cls for cls in STORAGE_KINDS}


def _names(cls: type[FluxObject]) -> set[str]:
    return {cls.KIND.lower(), cls.PLURAL, cls.SINGULAR, *cls.SHORT_NAMES}


_BY_NAME: dict[str, type[FluxObject]] = {name: cls for cls in STORAGE_KINDS for name in _names(cls)}


def kind_for(api_version: str, kind: str) -> type[FluxObject]:
    """The class serving `apiVersion`/`kind`, e.g. `("image.toolkit.fluxcd.io/v1beta2", "ImagePolicy")`."""
    try:
        return _BY_API_VERSION_KIND[(api_version, kind)]
    except KeyError:
        raise UnknownKind(f"no Flux kind {kind!r} is served as {api_version!r}") from None


def by_name(name: str) -> type[FluxObject]:
    """The storage-version class for a kind, plural, singular or short name, case-insensitively.

    Accepts `GitRepository`, `gitrepositories`, `gitrepo`, `ks`, `imagepol` … and also
    `<name>.<group>` forms such as `gitrepositories.source.toolkit.fluxcd.io`.
    """
    key = name.strip().lower()
    if key in _BY_NAME:
        return _BY_NAME[key]
    short, _, group = key.partition(".")
    if group:
        cls = _BY_NAME.get(short)
        if cls is not None and group == cls.GROUP:
            return cls
    raise UnknownKind(f"unknown Flux kind {name!r}")


def storage_version(kind: str) -> type[FluxObject]:
    """The storage-version class of a kind (by exact kind name, or any name `by_name` accepts)."""
    cls = _BY_KIND.get(kind)
    return cls if cls is not None else by_name(kind)


def versions_of(kind: str) -> tuple[type[FluxObject], ...]:
    """Every served version of a kind, storage version first."""
    storage = storage_version(kind)
    others = tuple(c for c in ALL_KINDS if c.KIND == storage.KIND and c is not storage)
    return (storage, *others)
