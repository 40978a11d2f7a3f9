from __future__ import annotations

import pytest

from libs.common.api.image.imagepolicy import ImagePolicy, ImagePolicyV1beta2
from libs.common.api.image.imagerepository import ImageRepository
from libs.common.api.image.imageupdateautomation import ImageUpdateAutomation
from libs.common.api.kustomize.kustomization import Kustomization
from libs.common.api.registry import (
    ALL_KINDS,
    STORAGE_KINDS,
    UnknownKind,
    by_name,
    kind_for,
    storage_version,
    versions_of,
)
from libs.common.api.source.gitrepository import GitRepository
from libs.common.api.source.helmchart import HelmChart

pytestmark = pytest.mark.unit


def test_all_thirteen_kinds_are_served_with_image_kinds_in_two_versions() -> None:
    assert len({cls.KIND for cls in ALL_KINDS}) == 13
    assert len(STORAGE_KINDS) == 13
    assert len(ALL_KINDS) == 16
    served = {(cls.api_version(), cls.KIND) for cls in ALL_KINDS}
    for expected in [
        ("source.toolkit.fluxcd.io/v1", "GitRepository"),
        ("source.toolkit.fluxcd.io/v1", "OCIRepository"),
        ("source.toolkit.fluxcd.io/v1", "HelmRepository"),
        ("source.toolkit.fluxcd.io/v1", "HelmChart"),
        ("source.toolkit.fluxcd.io/v1", "Bucket"),
        ("kustomize.toolkit.fluxcd.io/v1", "Kustomization"),
        ("helm.toolkit.fluxcd.io/v2", "HelmRelease"),
        ("notification.toolkit.fluxcd.io/v1beta3", "Provider"),
        ("notification.toolkit.fluxcd.io/v1beta3", "Alert"),
        ("notification.toolkit.fluxcd.io/v1", "Receiver"),
        ("image.toolkit.fluxcd.io/v1", "ImagePolicy"),
        ("image.toolkit.fluxcd.io/v1beta2", "ImagePolicy"),
        ("image.toolkit.fluxcd.io/v1beta2", "ImageRepository"),
        ("image.toolkit.fluxcd.io/v1beta2", "ImageUpdateAutomation"),
    ]:
        assert expected in served


def test_kind_for() -> None:
    assert kind_for("image.toolkit.fluxcd.io/v1beta2", "ImagePolicy") is ImagePolicyV1beta2
    assert kind_for("image.toolkit.fluxcd.io/v1", "ImagePolicy") is ImagePolicy
    with pytest.raises(UnknownKind):
        kind_for("source.toolkit.fluxcd.io/v1beta2", "GitRepository")
    with pytest.raises(UnknownKind):
        kind_for("apps/v1", "Deployment")


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("gitrepository", GitRepository),
        ("gitrepositories", GitRepository),
        ("gitrepo", GitRepository),
        ("GitRepository", GitRepository),
        ("GITREPO", GitRepository),
        ("gitrepositories.source.toolkit.fluxcd.io", GitRepository),
        ("ks", Kustomization),
        ("kustomizations", Kustomization),
        ("hc", HelmChart),
        ("imagepolicy", ImagePolicy),
        ("imagepol", ImagePolicy),
        ("imgpol", ImagePolicy),
        ("imagerepo", ImageRepository),
        ("imgrepo", ImageRepository),
        ("iua", ImageUpdateAutomation),
        ("imgauto", ImageUpdateAutomation),
        ("imageupdateautomations", ImageUpdateAutomation),
    ],
)
def test_by_name_returns_the_storage_version(name: str, cls: type) -> None:
    assert by_name(name) is cls


def test_by_name_rejects_unknown_names() -> None:
    with pytest.raises(UnknownKind, match="unknown Flux kind 'deployment'"):
        by_name("deployment")
    with pytest.raises(UnknownKind):
        by_name("gitrepositories.helm.toolkit.fluxcd.io")


def test_storage_version_and_versions_of() -> None:
    assert storage_version("ImagePolicy") is ImagePolicy
    assert storage_version("imagepolicies") is ImagePolicy
    assert versions_of("ImagePolicy") == (ImagePolicy, ImagePolicyV1beta2)
    assert versions_of("GitRepository") == (GitRepository,)


def test_class_constants_follow_flux() -> None:
    for cls in ALL_KINDS:
        assert cls.api_version() == f"{cls.GROUP}/{cls.VERSION}"
        assert cls.KIND.lower() == cls.SINGULAR
        assert cls.CATEGORIES[:2] == ("all", "fluxcd")
        assert cls.NAMESPACED
        assert any(col.name == "Age" for col in cls.PRINTER_COLUMNS)
    assert [c.name for c in GitRepository.PRINTER_COLUMNS] == ["URL", "Age", "Ready", "Status"]
    assert GitRepository.CATEGORIES == ("all", "fluxcd", "fluxcd-sources")
    assert ImagePolicy.CATEGORIES == ("all", "fluxcd", "fluxcd-images")
    assert [c.name for c in ImagePolicyV1beta2.PRINTER_COLUMNS] == ["LatestImage", "Ready", "Status", "Age"]
    assert not by_name("provider").STATUS_SUBRESOURCE
    assert not by_name("alert").STATUS_SUBRESOURCE
    assert by_name("receiver").STATUS_SUBRESOURCE
