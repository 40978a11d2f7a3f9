"""Kubernetes API fixtures: the in-process emulator, or a real cluster named by SLUICE_TEST_KUBECONFIG."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

if TYPE_CHECKING:
    from libs.kube_emulator import KubeEmulator

__all__ = ["KUBECONFIG_ENV", "KubeApi", "kube_cluster", "kube_emulator", "kubeconfig_server"]

KUBECONFIG_ENV = "SLUICE_TEST_KUBECONFIG"


@dataclass(frozen=True)
class KubeApi:
    """A Kubernetes API to test against: :attr:`url`, and :attr:`kubeconfig` (a file clients load).
    :attr:`emulator` is the running :class:`libs.kube_emulator.KubeEmulator`, or ``None`` for a real
    cluster."""

    url: str
    kubeconfig: Path
    emulator: KubeEmulator | None = None


def kubeconfig_server(kubeconfig: Path) -> str:
    """The API server URL of a kubeconfig's current context."""
    config: dict[str, Any] = yaml.safe_load(kubeconfig.read_text())
    contexts = {c["name"]: c["context"] for c in config.get("contexts", [])}
    clusters = {c["name"]: c["cluster"] for c in config.get("clusters", [])}
    context = contexts[config["current-context"]]
    return str(clusters[context["cluster"]]["server"])


@pytest.fixture(scope="session")
def kube_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeApi]:
    """The Kubernetes API emulator, running in a background thread for the whole session."""
    from libs.kube_emulator import KubeEmulator

    with KubeEmulator.in_thread() as emulator:
        kubeconfig = emulator.write_kubeconfig(tmp_path_factory.mktemp("kube") / "kubeconfig")
        yield KubeApi(url=emulator.url, kubeconfig=kubeconfig, emulator=emulator)


@pytest.fixture(scope="session")
def kube_cluster(request: pytest.FixtureRequest) -> KubeApi:
    """The cluster end-to-end tests run against: the one ``SLUICE_TEST_KUBECONFIG`` points at when
    set, else the emulator (started only then)."""
    configured = os.environ.get(KUBECONFIG_ENV)
    if configured:
        path = Path(configured).expanduser().resolve()
        return KubeApi(url=kubeconfig_server(path), kubeconfig=path)
    emulated: KubeApi = request.getfixturevalue("kube_emulator")
    return emulated
