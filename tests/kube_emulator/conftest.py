"""Fixtures: an emulator on its own thread and the official kubernetes client pointed at it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from libs.kube_emulator import KubeEmulator


@pytest.fixture
def emu() -> Iterator[KubeEmulator]:
    with KubeEmulator.in_thread(rollout=False, bookmark_interval=0.2) as running:
        yield running


@pytest.fixture
def api(emu: KubeEmulator, tmp_path: Path) -> Iterator[client.ApiClient]:
    kubeconfig = emu.write_kubeconfig(tmp_path / "kubeconfig")
    api_client = config.new_client_from_config(str(kubeconfig))
    yield api_client
    api_client.close()


def wait_for(condition: Callable[[], Any], timeout: float = 5.0, interval: float = 0.02) -> Any:
    """Poll until `condition()` is truthy (returning it) or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


def deployment(
    name: str, replicas: int = 1, image: str = "nginx:1.27", annotations: dict[str, str] | None = None
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if annotations:
        meta["annotations"] = annotations
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": image}]},
            },
        },
    }


GITREPO_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "gitrepositories.source.toolkit.fluxcd.io"},
    "spec": {
        "group": "source.toolkit.fluxcd.io",
        "names": {
            "kind": "GitRepository",
            "listKind": "GitRepositoryList",
            "plural": "gitrepositories",
            "singular": "gitrepository",
            "shortNames": ["gitrepo"],
            "categories": ["fluxcd"],
        },
        "scope": "Namespaced",
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "additionalPrinterColumns": [
                    {"name": "URL", "type": "string", "jsonPath": ".spec.url"},
                    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                ],
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "apiVersion": {"type": "string"},
                            "kind": {"type": "string"},
                            "metadata": {"type": "object"},
                            "spec": {
                                "type": "object",
                                "required": ["interval", "url"],
                                "properties": {
                                    "url": {"type": "string", "pattern": "^(http|https|ssh)://.*$"},
                                    "interval": {
                                        "type": "string",
                                        "pattern": "^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$",
                                    },
                                    "timeout": {"type": "string", "default": "60s"},
                                    "suspend": {"type": "boolean"},
                                    "depth": {"type": "integer", "minimum": 0, "maximum": 10},
                                    "ratio": {"type": "number"},
                                    "provider": {
                                        "type": "string",
                                        "enum": ["generic", "azure", "github"],
                                        "default": "generic",
                                    },
                                    "name": {"type": "string", "minLength": 1, "maxLength": 5},
                                    "ignore": {"type": "string", "nullable": True},
                                    "port": {"x-kubernetes-int-or-string": True},
                                    "include": {
                                        "type": "array",
                                        "maxItems": 2,
                                        "items": {
                                            "type": "object",
                                            "required": ["repository"],
                                            "properties": {
                                                "repository": {
                                                    "type": "object",
                                                    "properties": {"name": {"type": "string"}},
                                                },
                                                "toPath": {"type": "string"},
                                            },
                                        },
                                    },
                                    "topics": {
                                        "type": "array",
                                        "minItems": 1,
                                        "items": {"type": "string"},
                                        "x-kubernetes-list-type": "set",
                                    },
                                    "hosts": {
                                        "type": "array",
                                        "items": {
                                            "type": "object",
                                            "properties": {
                                                "name": {"type": "string"},
                                                "ip": {"type": "string"},
                                            },
                                        },
                                        "x-kubernetes-list-type": "map",
                                        "x-kubernetes-list-map-keys": ["name"],
                                    },
                                    "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                                    "since": {"type": "string", "format": "date-time"},
                                },
                            },
                            "status": {
                                "type": "object",
                                "properties": {
                                    "observedGeneration": {"type": "integer"},
                                    "conditions": {
                                        "type": "array",
                                        "items": {
                                            "type": "object",
                                            "x-kubernetes-preserve-unknown-fields": True,
                                        },
                                    },
                                },
                            },
                        },
                    }
                },
            },
            {
                "name": "v1beta2",
                "served": True,
                "storage": False,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                },
            },
        ],
    },
}
