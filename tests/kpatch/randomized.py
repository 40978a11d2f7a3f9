"""Seeded random strategic-merge patches against Deployments, for parity checks with kubectl.

The generators stay inside what both implementations define the same way: they never ask to
delete and update the same element in one patch, never put an element into a
``$deleteFromPrimitiveList`` and the field's patch list at once (apimachinery's order there is
random), and never send an empty ``$setElementOrder`` list next to an empty patch list.
"""

from __future__ import annotations

import random
from typing import Any

CONTAINER_NAMES = "abcd"
ENV_NAMES = "ABCD"
PORTS = (80, 443, 8080, 9090)
FINALIZERS = "wxyz"


class PatchGenerator:
    """``kustomize=True`` leaves out the directives kustomize copies into its output instead of
    applying ($retainKeys, $setElementOrder, $deleteFromPrimitiveList)."""

    def __init__(self, seed: int, *, kustomize: bool = False) -> None:
        self.random = random.Random(seed)
        self.kustomize = kustomize

    def chance(self, probability: float) -> bool:
        return self.random.random() < probability

    def ports(self, count: int) -> list[dict[str, Any]]:
        chosen = self.random.sample(PORTS, count)
        return [
            {"containerPort": port, **({"name": f"p{port}"} if self.chance(0.5) else {})} for port in chosen
        ]

    def env(self, count: int) -> list[dict[str, Any]]:
        return [
            {"name": name, "value": self.random.choice("12")} for name in self.random.sample(ENV_NAMES, count)
        ]

    def scalar(self) -> Any:
        return self.random.choice(["x", 2, False, [3], {"q": 1}])

    def patch_map(self, depth: int = 0) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key in self.random.sample("abcd", self.random.randint(0, 3)):
            roll = self.random.random()
            if roll < 0.2:
                result[key] = None
            elif roll < 0.45 and depth < 2:
                result[key] = self.patch_map(depth + 1)
            else:
                result[key] = self.scalar()
        if self.chance(0.1):
            result["$patch"] = self.random.choice(["replace", "delete"])
        return result

    def container(self, name: str, *, patch: bool) -> dict[str, Any]:
        container: dict[str, Any] = {"name": name}
        if not patch or self.chance(0.5):
            container["image"] = f"{name}:{self.random.randint(1, 3)}"
        if self.chance(0.5):
            container["ports"] = self.ports(
                self.random.choice([1, 2, 4]) if not patch else self.random.randint(0, 2)
            )
        if self.chance(0.5):
            container["env"] = self.env(
                self.random.choice([1, 2, 4]) if not patch else self.random.randint(0, 2)
            )
            named = {entry["name"] for entry in container["env"]}
            free = [name for name in ENV_NAMES if name not in named]
            if patch and free and self.chance(0.3):
                container["env"].append({"name": self.random.choice(free), "$patch": "delete"})
        if patch and self.chance(0.3):
            container["resources"] = self.patch_map()
        if patch and self.chance(0.15):
            container["command"] = None
        return container

    def volume(self, name: str, *, patch: bool) -> dict[str, Any]:
        source = self.random.choice(["emptyDir", "hostPath", "configMap"])
        volume: dict[str, Any] = {
            "name": name,
            source: {"emptyDir": {}, "hostPath": {"path": "/x"}, "configMap": {"name": "cm"}}[source],
        }
        if patch and not self.kustomize and self.chance(0.5):
            volume["$retainKeys"] = ["name", source]
        return volume

    def case(self, number: int) -> tuple[dict[str, Any], dict[str, Any]]:
        """One Deployment named ``case-<number>`` and one patch for it."""
        spec: dict[str, Any] = {
            "containers": [
                self.container(name, patch=False)
                for name in self.random.sample("abc", self.random.choice([1, 2]))
            ]
        }
        if self.chance(0.5):
            spec["volumes"] = [self.volume(name, patch=False) for name in self.random.sample("vw", 2)]
        if self.chance(0.3):
            spec["tolerations"] = [{"key": "k"}]
        metadata: dict[str, Any] = {"name": f"case-{number}", "labels": {"a": "1", "b": "2"}}
        if self.chance(0.4):
            metadata["finalizers"] = self.random.sample(FINALIZERS, self.random.choice([1, 2, 4]))
        original = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": metadata,
            "spec": {"template": {"metadata": {"labels": {"app": "x"}}, "spec": spec}},
        }

        pod_patch: dict[str, Any] = {}
        if self.chance(0.8):
            names = self.random.sample(CONTAINER_NAMES, self.random.randint(1, 2))
            containers = [self.container(name, patch=True) for name in names]
            free = [name for name in "abc" if name not in names]
            if free and self.chance(0.2):
                containers.append({"name": self.random.choice(free), "$patch": "delete"})
            pod_patch["containers"] = containers
            if not self.kustomize and self.chance(0.3):
                order = [
                    {"name": name} for name in self.random.sample(CONTAINER_NAMES, 4) if name not in names
                ]
                order = order[: self.random.randint(0, len(order))]
                for name in names:
                    order.insert(self.random.randint(0, len(order)), {"name": name})
                position = {entry["name"]: index for index, entry in enumerate(order)}
                ordinary = sorted(
                    (c for c in containers if "$patch" not in c), key=lambda c: position[c["name"]]
                )
                pod_patch["containers"] = ordinary + [c for c in containers if "$patch" in c]
                pod_patch["$setElementOrder/containers"] = order
        if self.chance(0.3):
            pod_patch["volumes"] = [self.volume(name, patch=True) for name in self.random.sample("vwx", 1)]
        if self.chance(0.3):
            pod_patch["securityContext"] = self.patch_map()
        if self.chance(0.15):
            pod_patch["tolerations"] = [{"key": "j"}]
        patch: dict[str, Any] = {"spec": {"template": {"spec": pod_patch}}}
        meta_patch: dict[str, Any] = {}
        if self.chance(0.3):
            meta_patch["labels"] = {"a": None, "c": "3"}
        if self.chance(0.3):
            meta_patch["finalizers"] = self.random.sample("wx", self.random.randint(1, 2))
        elif not self.kustomize and self.chance(0.3):
            meta_patch["$deleteFromPrimitiveList/finalizers"] = self.random.sample("yz", 1)
        if not self.kustomize and self.chance(0.2):
            meta_patch["$setElementOrder/finalizers"] = self.random.sample(FINALIZERS, 4)
        if meta_patch:
            patch["metadata"] = meta_patch
        return original, patch
