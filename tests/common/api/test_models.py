from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from libs.common.api import ValidationFailed, validate_object
from libs.common.api.helm.helmrelease import HelmRelease
from libs.common.api.image.imagepolicy import ImagePolicy, ImagePolicyV1beta2, ImageRef
from libs.common.api.image.imagerepository import ImageRepository, ImageRepositoryV1beta2
from libs.common.api.image.imageupdateautomation import ImageUpdateAutomationV1beta2
from libs.common.api.kustomize.kustomization import Kustomization
from libs.common.api.notification.alert import Alert
from libs.common.api.notification.provider import PROVIDER_TYPES, Provider
from libs.common.api.notification.receiver import Receiver
from libs.common.api.source.bucket import Bucket
from libs.common.api.source.gitrepository import GitRepository, GitRepositorySpec
from libs.common.api.source.helmchart import HelmChart
from libs.common.api.source.helmrepository import HelmRepository
from libs.common.api.source.ocirepository import OCIRepository
from tests.common.api.manifests import MANIFESTS, manifest

pytestmark = pytest.mark.unit


def _contains(whole: Any, part: Any) -> bool:
    """Whether every key/value of ``part`` is present in ``whole`` (recursively)."""
    if isinstance(part, dict):
        return isinstance(whole, dict) and all(k in whole and _contains(whole[k], v) for k, v in part.items())
    return bool(whole == part)


@pytest.mark.parametrize("doc", MANIFESTS, ids=lambda d: f"{d['kind']}-{d['apiVersion'].rsplit('/', 1)[1]}")
def test_round_trip_keeps_every_field(doc: dict[str, Any]) -> None:
    obj = validate_object(doc)
    dumped = obj.to_k8s()
    assert _contains(dumped, doc), "a field written by the user was dropped or changed"
    again = type(obj).model_validate(dumped)
    assert again == obj
    assert again.to_k8s() == dumped


def test_image_update_guide_objects_parse_into_typed_models() -> None:
    policy = validate_object(manifest("ImagePolicy", "image.toolkit.fluxcd.io/v1beta2"))
    assert isinstance(policy, ImagePolicyV1beta2)
    assert policy.spec.policy.semver is not None
    assert policy.spec.policy.semver.range == ">=1.0.0"
    assert policy.spec.image_repository_ref.name == "podinfo"

    iua = validate_object(manifest("ImageUpdateAutomation", "image.toolkit.fluxcd.io/v1beta2"))
    assert isinstance(iua, ImageUpdateAutomationV1beta2)
    assert iua.spec.git is not None
    assert iua.spec.git.checkout is not None
    assert iua.spec.git.checkout.ref.branch == "main"
    assert iua.spec.git.commit.author.email == "fluxcdbot@users.noreply.github.com"
    assert iua.spec.git.push is not None and iua.spec.git.push.branch == "main"
    assert iua.spec.update.path == "./clusters/my-cluster"
    assert iua.spec.update.strategy == "Setters"
    assert iua.namespaced_name == "flux-system/flux-system"

    repo = validate_object(manifest("ImageRepository", "image.toolkit.fluxcd.io/v1beta2"))
    assert isinstance(repo, ImageRepositoryV1beta2)
    assert repo.api_version() == "image.toolkit.fluxcd.io/v1beta2"
    assert repo.to_k8s()["apiVersion"] == "image.toolkit.fluxcd.io/v1beta2"


def test_defaults_are_applied_as_flux_does() -> None:
    git = GitRepository.model_validate(manifest("GitRepository"))
    assert git.spec.timeout == "60s"
    assert git.spec.provider == "generic"
    assert git.status.observed_generation == -1
    assert git.to_k8s()["status"] == {"observedGeneration": -1}

    repo = ImageRepository.model_validate(manifest("ImageRepository", "image.toolkit.fluxcd.io/v1"))
    assert repo.spec.exclusion_list == ["^.*\\.sig$"]
    assert repo.spec.provider == "generic"
    assert repo.spec.timeout_seconds() == 300.0

    alert = Alert.model_validate(
        {
            **manifest("Alert"),
            "spec": {"providerRef": {"name": "p"}, "eventSources": [{"kind": "Bucket", "name": "*"}]},
        }
    )
    assert alert.spec.event_severity == "info"

    receiver = Receiver.model_validate(manifest("Receiver"))
    assert receiver.spec.interval == "10m"

    hr = HelmRelease.model_validate(manifest("HelmRelease"))
    assert hr.spec.max_history == 5
    assert hr.spec.chart is not None
    assert hr.spec.chart.spec.reconcile_strategy == "ChartVersion"
    hr_minimal = HelmRelease.model_validate(
        {
            "metadata": {"name": "x", "namespace": "apps"},
            "spec": {"interval": "1m", "chartRef": {"kind": "OCIRepository", "name": "x"}},
        }
    )
    assert hr_minimal.spec.timeout == "5m0s"
    assert hr_minimal.spec.timeout_seconds() == 300.0
    assert hr_minimal.release_name() == "x"

    chart = HelmChart.model_validate(
        {"spec": {"chart": "c", "interval": "1m", "sourceRef": {"kind": "HelmRepository", "name": "r"}}}
    )
    assert chart.spec.version == "*"

    oci = OCIRepository.model_validate(manifest("OCIRepository"))
    assert oci.spec.timeout == "60s"
    assert oci.spec.verify is not None and oci.spec.verify.match_oidc_identity is not None
    assert oci.spec.verify.match_oidc_identity[0].issuer.startswith("^https://token")

    bucket = Bucket.model_validate(manifest("Bucket"))
    assert bucket.spec.provider == "generic"
    assert HelmRepository.model_validate(manifest("HelmRepository")).spec.timeout == "60s"

    policy = ImagePolicy.model_validate(manifest("ImagePolicy", "image.toolkit.fluxcd.io/v1"))
    assert policy.spec.interval_seconds() == 600.0

    ks = Kustomization.model_validate(manifest("Kustomization"))
    assert ks.spec.force is False
    assert ks.spec.timeout_seconds() == 600.0
    assert ks.spec.retry_interval_seconds() == 600.0


def test_python_construction_uses_snake_case_and_fills_type_meta() -> None:
    git = GitRepository(
        metadata={"name": "app", "namespace": "apps"},  # type: ignore[arg-type]
        spec=GitRepositorySpec(url="https://example.com/app.git", interval="1m"),
    )
    data = git.to_k8s()
    assert data["apiVersion"] == "source.toolkit.fluxcd.io/v1"
    assert data["kind"] == "GitRepository"
    assert data["spec"] == {
        "url": "https://example.com/app.git",
        "provider": "generic",
        "interval": "1m",
        "timeout": "60s",
    }
    assert git.namespaced_name == "apps/app"
    assert git.generation == 0


def test_unknown_fields_from_a_newer_flux_are_tolerated_and_kept() -> None:
    doc = manifest("GitRepository")
    doc["spec"]["someFutureField"] = {"enabled": True}
    doc["metadata"]["managedFields"] = [{"manager": "kubectl"}]
    dumped = validate_object(doc).to_k8s()
    assert dumped["spec"]["someFutureField"] == {"enabled": True}
    assert dumped["metadata"]["managedFields"] == [{"manager": "kubectl"}]


def _problems(doc: dict[str, Any]) -> str:
    with pytest.raises(ValidationFailed) as info:
        validate_object(doc)
    return str(info.value)


@pytest.mark.parametrize(
    ("kind", "api_version", "patch", "expected"),
    [
        (
            "GitRepository",
            None,
            {"url": "git@github.com:org/repo.git"},
            "GitRepository/flux-system/flux-system: spec.url: must match ^(http|https|ssh|file)://.*$",
        ),
        (
            "GitRepository",
            None,
            {"interval": "1 minute"},
            "GitRepository/flux-system/flux-system: spec.interval: must match ^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$",
        ),
        (
            "GitRepository",
            None,
            {"timeout": "1h"},
            "spec.timeout: must match ^([0-9]+(\\.[0-9]+)?(ms|s|m))+$",
        ),
        (
            "GitRepository",
            None,
            {"serviceAccountName": "sa"},
            "GitRepository/flux-system/flux-system: spec.serviceAccountName: can only be set when provider is 'azure' or 'aws'",
        ),
        (
            "GitRepository",
            None,
            {"provider": "gitlab"},
            "spec.provider: must be one of 'generic', 'aws', 'azure' or 'github'",
        ),
        ("OCIRepository", None, {"url": "https://ghcr.io/x"}, "spec.url: must match ^oci://.*$"),
        ("HelmRepository", None, {"url": "ftp://x"}, "spec.url: must match ^(http|https|oci)://.*$"),
        ("Kustomization", None, {"prune": None}, "spec.prune"),
        (
            "Kustomization",
            None,
            {"sourceRef": {"kind": "HelmRepository", "name": "x"}},
            "spec.sourceRef.kind: must be one of",
        ),
        (
            "Kustomization",
            None,
            {"targetNamespace": "x" * 64},
            "spec.targetNamespace: must be at most 63 characters",
        ),
        (
            "HelmRelease",
            None,
            {"chartRef": {"kind": "OCIRepository", "name": "x"}},
            "spec.chart: either chart or chartRef must be set",
        ),
        (
            "Bucket",
            None,
            {"sts": {"provider": "aws", "endpoint": "https://sts.amazonaws.com"}},
            "spec.sts.provider: 'ldap' is the only supported STS provider for the 'generic' Bucket provider",
        ),
        ("Receiver", None, {"secretRef": None}, "spec.secretRef: is required for the 'github' receiver type"),
        ("Provider", None, {"type": "teams"}, "spec.type: must be one of"),
        (
            "Provider",
            None,
            {"commitStatusExpr": "event.metadata.x"},
            "spec.commitStatusExpr: is only supported for the 'github'",
        ),
        (
            "Alert",
            None,
            {"eventSources": [{"kind": "Deployment", "name": "*"}]},
            "spec.eventSources[0].kind: must be one of",
        ),
        ("Alert", None, {"eventSeverity": "warning"}, "spec.eventSeverity: must be one of 'info' or 'error'"),
        (
            "ImageRepository",
            "image.toolkit.fluxcd.io/v1",
            {"exclusionList": ["x"] * 26},
            "spec.exclusionList: must have at most 25 items",
        ),
        (
            "ImagePolicy",
            "image.toolkit.fluxcd.io/v1",
            {"digestReflectionPolicy": "Never"},
            "spec.interval: is only accepted when spec.digestReflectionPolicy is set to 'Always'",
        ),
        (
            "ImageUpdateAutomation",
            "image.toolkit.fluxcd.io/v1",
            {"git": {"commit": {"author": {"name": "bot"}}}},
            "spec.git.commit.author.email: Required value",
        ),
        (
            "ImageUpdateAutomation",
            "image.toolkit.fluxcd.io/v1",
            {
                "git": {
                    "commit": {"author": {"email": "a@b"}},
                    "push": {"refspec": "+refs/heads/x:refs/heads/y"},
                }
            },
            "spec.git.push.refspec: must match ^$|^[^+:]",
        ),
    ],
)
def test_validation_errors_name_the_field(
    kind: str, api_version: str | None, patch: dict[str, Any], expected: str
) -> None:
    doc = manifest(kind, api_version)
    for key, value in patch.items():
        if value is None:
            doc["spec"].pop(key, None)
        else:
            doc["spec"][key] = value
    assert expected in _problems(doc)


def test_validation_lists_every_problem_on_its_own_line() -> None:
    doc = manifest("GitRepository")
    doc["spec"]["url"] = "ftp://example.com/x"
    del doc["spec"]["interval"]
    lines = _problems(doc).splitlines()
    assert sorted(lines) == [
        "GitRepository/flux-system/flux-system: spec.interval: Required value",
        "GitRepository/flux-system/flux-system: spec.url: must match ^(http|https|ssh|file)://.*$",
    ]


def test_validate_object_rejects_unknown_kinds_and_versions() -> None:
    doc = manifest("ImagePolicy")
    doc["apiVersion"] = "image.toolkit.fluxcd.io/v1alpha1"
    assert "no Flux kind 'ImagePolicy' is served as 'image.toolkit.fluxcd.io/v1alpha1'" in _problems(doc)
    assert "apiVersion and kind" in _problems({"metadata": {"name": "x"}})


def test_model_validate_checks_type_meta() -> None:
    with pytest.raises(ValidationError, match="kind: must be 'GitRepository'"):
        GitRepository.model_validate({**manifest("GitRepository"), "kind": "Bucket"})
    with pytest.raises(ValidationError, match=r"apiVersion: must be 'source\.toolkit\.fluxcd\.io/v1'"):
        GitRepository.model_validate(
            {**manifest("GitRepository"), "apiVersion": "source.toolkit.fluxcd.io/v1beta2"}
        )


def test_provider_types_cover_flux() -> None:
    assert len(PROVIDER_TYPES) == 34
    for provider_type in (
        "slack",
        "msteams",
        "generic-hmac",
        "github",
        "githubdispatch",
        "incident.io",
        "nats",
        "otel",
    ):
        Provider.model_validate({"spec": {"type": provider_type}})


def test_helmrelease_values_are_free_form_and_release_name_is_shortened() -> None:
    hr = HelmRelease.model_validate(manifest("HelmRelease"))
    assert hr.spec.values == {
        "replicaCount": 2,
        "ingress": {
            "enabled": True,
            "hosts": [{"host": "podinfo.local", "paths": [{"path": "/", "pathType": "Prefix"}]}],
        },
    }
    assert hr.release_name() == "podinfo"
    long = HelmRelease.model_validate(
        {
            "metadata": {"name": "a" * 40, "namespace": "apps"},
            "spec": {
                "interval": "1m",
                "targetNamespace": "b" * 20,
                "chartRef": {"kind": "HelmChart", "name": "c"},
            },
        }
    )
    name = long.release_name()
    assert len(name) == 53
    assert name.startswith("b" * 20 + "-" + "a" * 19 + "-")
    assert long.storage_namespace() == "apps"


def test_image_policy_versions_have_their_own_status_fields() -> None:
    v1 = ImagePolicy.model_validate(
        {
            **manifest("ImagePolicy", "image.toolkit.fluxcd.io/v1"),
            "status": {"latestRef": {"name": "ghcr.io/x", "tag": "1.2.3", "digest": "sha256:ab"}},
        }
    )
    assert v1.status.latest_ref is not None
    assert str(v1.status.latest_ref) == "ghcr.io/x:1.2.3@sha256:ab"
    beta = ImagePolicyV1beta2.model_validate(
        {
            **manifest("ImagePolicy", "image.toolkit.fluxcd.io/v1beta2"),
            "status": {"latestImage": "ghcr.io/x:1.2.3", "observedPreviousImage": "ghcr.io/x:1.2.2"},
        }
    )
    assert beta.status.latest_image == "ghcr.io/x:1.2.3"
    assert beta.to_k8s()["status"]["observedPreviousImage"] == "ghcr.io/x:1.2.2"


def test_bucket_rejects_secret_ref_with_service_account() -> None:
    doc = manifest("Bucket")
    doc["spec"].update(provider="aws", serviceAccountName="reader")
    assert (
        "spec.serviceAccountName: cannot set both .spec.secretRef and .spec.serviceAccountName"
        in _problems(doc)
    )
    del doc["spec"]["secretRef"]
    assert validate_object(doc).to_k8s()["spec"]["serviceAccountName"] == "reader"


def test_kubeconfig_needs_exactly_one_reference() -> None:
    doc = manifest("Kustomization")
    doc["spec"]["kubeConfig"] = {}
    assert "spec.kubeConfig.secretRef: exactly one of secretRef or configMapRef must be set" in _problems(doc)
    doc["spec"]["kubeConfig"] = {"secretRef": {"name": "remote", "key": "value.yaml"}}
    assert validate_object(doc).to_k8s()["spec"]["kubeConfig"] == {
        "secretRef": {"name": "remote", "key": "value.yaml"}
    }


def test_generic_oidc_receiver_needs_oidc_providers_and_no_secret() -> None:
    doc = manifest("Receiver")
    doc["spec"]["type"] = "generic-oidc"
    assert "spec.secretRef: must not be set for the 'generic-oidc' receiver type" in _problems(doc)
    del doc["spec"]["secretRef"]
    assert "spec.oidcProviders: is required for the 'generic-oidc' receiver type" in _problems(doc)
    doc["spec"]["oidcProviders"] = [{"issuerURL": "https://token.actions.githubusercontent.com"}]
    receiver = validate_object(doc)
    assert isinstance(receiver, Receiver)
    assert receiver.spec.oidc_providers is not None
    assert receiver.spec.oidc_providers[0].audience == "notification-controller"
    assert (
        receiver.to_k8s()["spec"]["oidcProviders"][0]["issuerURL"]
        == "https://token.actions.githubusercontent.com"
    )


def test_validate_object_rejects_non_mappings() -> None:
    with pytest.raises(ValidationFailed, match="expected a Kubernetes object"):
        validate_object(["not", "an", "object"])  # type: ignore[arg-type]


def test_image_policy_status_records_latest_in_both_versions_fields() -> None:
    policy = ImagePolicy.model_validate(manifest("ImagePolicy", "image.toolkit.fluxcd.io/v1"))
    policy.status.record_latest(ImageRef(name="ghcr.io/stefanprodan/podinfo", tag="6.5.3"))
    policy.status.record_latest(
        ImageRef(name="ghcr.io/stefanprodan/podinfo", tag="6.5.4", digest="sha256:ab12")
    )
    status = policy.to_k8s()["status"]
    assert status["latestRef"] == {
        "name": "ghcr.io/stefanprodan/podinfo",
        "tag": "6.5.4",
        "digest": "sha256:ab12",
    }
    assert status["latestImage"] == "ghcr.io/stefanprodan/podinfo:6.5.4@sha256:ab12"
    assert status["observedPreviousRef"] == {"name": "ghcr.io/stefanprodan/podinfo", "tag": "6.5.3"}
    assert status["observedPreviousImage"] == "ghcr.io/stefanprodan/podinfo:6.5.3"
    # The same stored object read through v1beta2 keeps every field.
    as_beta = ImagePolicyV1beta2.model_validate(
        {**policy.to_k8s(), "apiVersion": "image.toolkit.fluxcd.io/v1beta2"}
    )
    assert as_beta.status.latest_image == "ghcr.io/stefanprodan/podinfo:6.5.4@sha256:ab12"
    policy.status.clear_previous()
    assert policy.status.observed_previous_ref is None and policy.status.observed_previous_image is None
