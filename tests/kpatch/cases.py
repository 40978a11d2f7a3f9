"""Strategic-merge-patch cases shared by the unit tests and the kubectl parity check.

Every expected result here was checked against ``kubectl patch --local --type strategic`` (kubectl
v1.32, which runs k8s.io/apimachinery's strategicpatch on the raw JSON) — except the few cases
marked ``kubectl_differs``, where this library is deliberately more lenient (see strategic.py) —
and the ``style="kustomize"`` results against ``kubectl kustomize`` (kustomize v5.5.0), except
those marked ``kustomize_differs``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Case:
    id: str
    original: dict[str, Any]
    patch: dict[str, Any]
    expected: dict[str, Any] | None = None
    """The patched object; ``None`` when the patch must fail."""
    error: str = ""
    """A fragment of the PatchError message when the patch must fail."""
    kubectl_differs: bool = False
    """This library is deliberately more lenient than kubectl here."""
    kustomize_expected: dict[str, Any] | None = None
    """The result with ``style="kustomize"`` when it differs from ``expected``."""
    kustomize_differs: bool = False
    """kustomize itself does something this library does not imitate (it leaks directives, say)."""
    server_drops_markers: bool = False
    """kubectl prints directive keys apimachinery copied verbatim; the API server's decoding drops
    them, and ``expected`` is what it stores."""


def container(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "image": name, **fields}


def pod(spec: dict[str, Any], **metadata: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", **metadata}, "spec": spec}


def pod_spec_patch(**spec: Any) -> dict[str, Any]:
    return {"spec": spec}


def deployment(pod_spec: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "patch-demo"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "nginx"}},
            "template": {"metadata": {"labels": {"app": "nginx"}}, "spec": pod_spec},
            **spec,
        },
    }


def template_patch(**pod_spec: Any) -> dict[str, Any]:
    return {"spec": {"template": {"spec": pod_spec}}}


A, B, C, D = (container(name) for name in "abcd")

CASES: list[Case] = [
    # --- Kubernetes docs, "Update API Objects in Place Using kubectl patch" ---------------------
    Case(
        "docs: add a container by name (new element leads)",
        deployment({"containers": [container("patch-demo-ctr", image="nginx")]}),
        template_patch(containers=[container("patch-demo-ctr-2", image="redis")]),
        deployment(
            {
                "containers": [
                    container("patch-demo-ctr-2", image="redis"),
                    container("patch-demo-ctr", image="nginx"),
                ]
            }
        ),
    ),
    Case(
        "docs: tolerations have no patch strategy and are replaced",
        deployment(
            {
                "containers": [A],
                "tolerations": [{"effect": "NoSchedule", "key": "dedicated", "value": "test-team"}],
            }
        ),
        template_patch(tolerations=[{"effect": "NoSchedule", "key": "disktype", "value": "ssd"}]),
        deployment(
            {"containers": [A], "tolerations": [{"effect": "NoSchedule", "key": "disktype", "value": "ssd"}]}
        ),
    ),
    Case(
        "docs: $retainKeys clears the other strategy fields",
        deployment({"containers": [A]}, strategy={"rollingUpdate": {"maxSurge": "30%"}}),
        {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}},
        deployment({"containers": [A]}, strategy={"type": "Recreate"}),
        kustomize_differs=True,
    ),
    # --- lists merged by key ------------------------------------------------------------------
    Case(
        "containers: update one by name, keep the others",
        pod({"containers": [A, B]}),
        pod_spec_patch(containers=[{"name": "b", "image": "b:2"}]),
        pod({"containers": [A, container("b", image="b:2")]}),
        kustomize_expected=pod({"containers": [container("b", image="b:2"), A]}),
    ),
    Case(
        "containers: named elements take the patch order, an unnamed one keeps its lead",
        pod({"containers": [A, B, C]}),
        pod_spec_patch(containers=[C, A]),
        pod({"containers": [B, C, A]}),
        kustomize_expected=pod({"containers": [C, A, B]}),
    ),
    Case(
        "containers: new element before a known one",
        pod({"containers": [A, B, C]}),
        pod_spec_patch(containers=[D, B]),
        pod({"containers": [D, A, B, C]}),
        kustomize_expected=pod({"containers": [D, B, A, C]}),
    ),
    Case(
        "containers: known element before a new one",
        pod({"containers": [A, B, C]}),
        pod_spec_patch(containers=[B, D]),
        pod({"containers": [A, B, D, C]}),
        kustomize_expected=pod({"containers": [B, D, A, C]}),
    ),
    Case(
        "ports merge by containerPort",
        pod(
            {
                "containers": [
                    container("a", ports=[{"containerPort": 80}, {"containerPort": 443, "name": "tls"}])
                ]
            }
        ),
        pod_spec_patch(containers=[{"name": "a", "ports": [{"containerPort": 443, "name": "https"}]}]),
        pod(
            {
                "containers": [
                    container("a", ports=[{"containerPort": 80}, {"containerPort": 443, "name": "https"}])
                ]
            }
        ),
        kustomize_expected=pod(
            {
                "containers": [
                    container("a", ports=[{"containerPort": 443, "name": "https"}, {"containerPort": 80}])
                ]
            }
        ),
    ),
    Case(
        "ports: a new port leads",
        pod({"containers": [container("a", ports=[{"containerPort": 80}, {"containerPort": 443}])]}),
        pod_spec_patch(containers=[{"name": "a", "ports": [{"containerPort": 8080}]}]),
        pod(
            {
                "containers": [
                    container(
                        "a", ports=[{"containerPort": 8080}, {"containerPort": 80}, {"containerPort": 443}]
                    )
                ]
            }
        ),
    ),
    Case(
        "env merges by name",
        pod({"containers": [container("a", env=[{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}])]}),
        pod_spec_patch(
            containers=[{"name": "a", "env": [{"name": "Y", "value": "3"}, {"name": "Z", "value": "4"}]}]
        ),
        pod(
            {
                "containers": [
                    container(
                        "a",
                        env=[
                            {"name": "X", "value": "1"},
                            {"name": "Y", "value": "3"},
                            {"name": "Z", "value": "4"},
                        ],
                    )
                ]
            }
        ),
        kustomize_expected=pod(
            {
                "containers": [
                    container(
                        "a",
                        env=[
                            {"name": "Y", "value": "3"},
                            {"name": "Z", "value": "4"},
                            {"name": "X", "value": "1"},
                        ],
                    )
                ]
            }
        ),
    ),
    Case(
        "null inside a keyed element deletes that field",
        pod({"containers": [container("a", command=["sh"], args=["-c"])]}),
        pod_spec_patch(containers=[{"name": "a", "command": None}]),
        pod({"containers": [container("a", args=["-c"])]}),
    ),
    Case(
        "topologySpreadConstraints merge by topologyKey",
        pod(
            {
                "containers": [A],
                "topologySpreadConstraints": [
                    {"topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule", "maxSkew": 1}
                ],
            }
        ),
        pod_spec_patch(topologySpreadConstraints=[{"topologyKey": "zone", "maxSkew": 2}]),
        pod(
            {
                "containers": [A],
                "topologySpreadConstraints": [
                    {"topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule", "maxSkew": 2}
                ],
            }
        ),
        kustomize_differs=True,
    ),
    Case(
        "envFrom is atomic and replaced",
        pod({"containers": [container("a", envFrom=[{"configMapRef": {"name": "x"}}])]}),
        pod_spec_patch(containers=[{"name": "a", "envFrom": [{"secretRef": {"name": "y"}}]}]),
        pod({"containers": [container("a", envFrom=[{"secretRef": {"name": "y"}}])]}),
    ),
    # --- primitive lists ----------------------------------------------------------------------
    Case(
        "finalizers (strategy merge) become a union, new values first",
        pod({"containers": [A]}, finalizers=["x", "y"]),
        {"metadata": {"finalizers": ["y", "q", "x"]}},
        pod({"containers": [A]}, finalizers=["y", "q", "x"]),
    ),
    Case(
        "finalizers: an unnamed original value keeps its place",
        pod({"containers": [A]}, finalizers=["a", "b"]),
        {"metadata": {"finalizers": ["c"]}},
        pod({"containers": [A]}, finalizers=["c", "a", "b"]),
    ),
    Case(
        "command (no strategy) is replaced",
        pod({"containers": [container("a", command=["a", "b"])]}),
        pod_spec_patch(containers=[{"name": "a", "command": ["c"]}]),
        pod({"containers": [container("a", command=["c"])]}),
    ),
    # --- maps and nulls -----------------------------------------------------------------------
    Case(
        "maps merge, null deletes, unmatched nulls vanish",
        pod({"containers": [A], "hostname": "h"}, labels={"a": "1", "b": "2"}),
        {"metadata": {"labels": {"a": None, "c": "3"}}, "spec": {"hostname": None, "subdomain": None}},
        pod({"containers": [A]}, labels={"b": "2", "c": "3"}),
    ),
    Case(
        "a new nested map loses its nulls",
        pod({"containers": [A]}),
        pod_spec_patch(securityContext={"runAsUser": 1, "fsGroup": None}),
        pod({"containers": [A], "securityContext": {"runAsUser": 1}}),
    ),
    Case(
        "a value of another type replaces",
        pod({"containers": [A]}, labels={"a": "1"}),
        {"metadata": {"labels": ["x"]}},
        pod({"containers": [A]}, labels=["x"]),
        kustomize_differs=True,
    ),
    # --- $patch directives --------------------------------------------------------------------
    Case(
        "$patch: delete removes the keyed element",
        pod({"containers": [A, B]}),
        pod_spec_patch(containers=[{"name": "a", "$patch": "delete"}]),
        pod({"containers": [B]}),
    ),
    Case(
        "$patch: delete of one element and an update of another",
        pod({"containers": [A, B, C]}),
        pod_spec_patch(containers=[{"name": "b", "$patch": "delete"}, {"name": "c", "image": "c:2"}]),
        pod({"containers": [A, container("c", image="c:2")]}),
        kustomize_expected=pod({"containers": [container("c", image="c:2"), A]}),
    ),
    Case(
        "$patch: replace in a list replaces it with the other elements",
        pod({"containers": [A, B]}),
        pod_spec_patch(containers=[container("z"), {"$patch": "replace"}]),
        pod({"containers": [container("z")]}),
    ),
    Case(
        "$patch: replace on a map replaces it",
        pod({"containers": [A], "securityContext": {"runAsUser": 1}}),
        pod_spec_patch(securityContext={"$patch": "replace", "fsGroup": 2}),
        pod({"containers": [A], "securityContext": {"fsGroup": 2}}),
    ),
    Case(
        "$patch: delete on a map empties it",
        pod({"containers": [A]}, labels={"a": "1"}),
        {"metadata": {"labels": {"$patch": "delete"}}},
        pod({"containers": [A]}, labels={}),
        kustomize_expected=pod({"containers": [A]}),
    ),
    Case(
        "$patch: merge on a map is the default merge",
        pod({"containers": [A]}),
        pod_spec_patch(**{"$patch": "merge", "hostname": "h"}),
        pod({"containers": [A], "hostname": "h"}),
        kubectl_differs=True,
    ),
    Case(
        "$patch: merge on a list element is the default merge",
        pod({"containers": [A]}),
        pod_spec_patch(containers=[{"name": "a", "$patch": "merge", "image": "x"}]),
        pod({"containers": [container("a", image="x")]}),
        kubectl_differs=True,
    ),
    Case(
        "$retainKeys on a volume switches its source",
        pod({"containers": [A], "volumes": [{"name": "v", "emptyDir": {}}]}),
        pod_spec_patch(
            volumes=[{"name": "v", "$retainKeys": ["name", "hostPath"], "hostPath": {"path": "/x"}}]
        ),
        pod({"containers": [A], "volumes": [{"name": "v", "hostPath": {"path": "/x"}}]}),
        kustomize_differs=True,
    ),
    Case(
        "a map with $patch that is new to the original is left out",
        pod({"containers": [A]}),
        pod_spec_patch(
            securityContext={"$patch": "replace", "runAsUser": 1},
            dnsConfig={"$patch": "delete"},
            affinity={"nodeAffinity": {"$patch": "merge", "x": 1}},
        ),
        pod({"containers": [A], "affinity": {}}),
        kustomize_expected=pod(
            {"containers": [A], "securityContext": {"runAsUser": 1}, "affinity": {"nodeAffinity": {"x": 1}}}
        ),
    ),
    Case(
        "a map with $patch in a new field of a known element is left out",
        pod({"containers": [A]}),
        pod_spec_patch(
            containers=[
                {
                    "name": "a",
                    "resources": {"limits": {"$patch": "replace", "cpu": "1"}, "requests": {"cpu": "2"}},
                }
            ]
        ),
        pod({"containers": [container("a", resources={"requests": {"cpu": "2"}})]}),
        kustomize_expected=pod(
            {"containers": [container("a", resources={"limits": {"cpu": "1"}, "requests": {"cpu": "2"}})]}
        ),
    ),
    Case(
        "a new element keeps what its directive maps hold, without the marker",
        pod({"containers": [A]}),
        pod_spec_patch(containers=[container("b", resources={"limits": {"$patch": "replace", "cpu": "1"}})]),
        pod({"containers": [container("b", resources={"limits": {"cpu": "1"}}), A]}),
        server_drops_markers=True,
    ),
    Case(
        "$patch: replace takes the map as sent, without nested markers",
        pod({"containers": [A], "securityContext": {"runAsUser": 1}}),
        pod_spec_patch(
            securityContext={"$patch": "replace", "seLinuxOptions": {"$patch": "delete", "level": "s0"}}
        ),
        pod({"containers": [A], "securityContext": {"seLinuxOptions": {"level": "s0"}}}),
        server_drops_markers=True,
        kustomize_expected=pod({"containers": [A], "securityContext": {}}),
    ),
    # --- $setElementOrder and $deleteFromPrimitiveList ----------------------------------------
    Case(
        "$setElementOrder reorders and merges",
        pod({"containers": [A, B, C]}),
        pod_spec_patch(
            **{"$setElementOrder/containers": [{"name": "c"}, {"name": "b"}, {"name": "a"}]},
            containers=[{"name": "b", "image": "b:2"}],
        ),
        pod({"containers": [C, container("b", image="b:2"), A]}),
        kustomize_differs=True,
    ),
    Case(
        "$setElementOrder: an unnamed element keeps its lead over later named ones",
        pod({"containers": [A, B, C]}),
        pod_spec_patch(**{"$setElementOrder/containers": [{"name": "c"}, {"name": "a"}]}),
        pod({"containers": [B, C, A]}),
        kustomize_differs=True,
    ),
    Case(
        "$setElementOrder places a new element",
        pod({"containers": [A, B]}),
        pod_spec_patch(
            **{"$setElementOrder/containers": [{"name": "a"}, {"name": "n"}, {"name": "b"}]},
            containers=[container("n")],
        ),
        pod({"containers": [A, container("n"), B]}),
        kustomize_differs=True,
    ),
    Case(
        "$setElementOrder on a primitive list",
        pod({"containers": [A]}, finalizers=["x", "y", "z"]),
        {"metadata": {"$setElementOrder/finalizers": ["z", "x", "y"]}},
        pod({"containers": [A]}, finalizers=["z", "x", "y"]),
        kustomize_differs=True,
    ),
    Case(
        "$deleteFromPrimitiveList removes values, the list still merges",
        pod({"containers": [A]}, finalizers=["x", "y", "z"]),
        {"metadata": {"$deleteFromPrimitiveList/finalizers": ["y"], "finalizers": ["w"]}},
        pod({"containers": [A]}, finalizers=["w", "x", "z"]),
        kustomize_differs=True,
    ),
    Case(
        "$deleteFromPrimitiveList with $setElementOrder, as kubectl apply sends it",
        pod({"containers": [A]}, finalizers=["a", "b", "c"]),
        {
            "metadata": {
                "$setElementOrder/finalizers": ["c", "a"],
                "$deleteFromPrimitiveList/finalizers": ["b"],
            }
        },
        pod({"containers": [A]}, finalizers=["c", "a"]),
        kustomize_differs=True,
    ),
    Case(
        "$setElementOrder: a sidecar the patch does not name keeps its lead over a replacement",
        pod({"containers": [container("sidecar"), C]}),
        pod_spec_patch(
            **{"$setElementOrder/containers": [{"name": "a"}]},
            containers=[A, {"name": "c", "$patch": "delete"}],
        ),
        pod({"containers": [container("sidecar"), A]}),
        kustomize_differs=True,
    ),
    Case(
        "$setElementOrder: an empty order keeps the original order and puts new elements last",
        pod({"containers": [C, B, D, container("e")]}),
        pod_spec_patch(
            **{"$setElementOrder/containers": []},
            containers=[container("f"), container("d", image="d:2"), C],
        ),
        pod({"containers": [C, B, container("d", image="d:2"), container("e"), container("f")]}),
        kustomize_differs=True,
    ),
    Case(
        "$setElementOrder: an empty order, a new element merged last sorts first",
        pod({"containers": [C, container("f")]}),
        pod_spec_patch(
            **{"$setElementOrder/containers": []},
            containers=[{"name": "a", "$patch": "delete"}, C, {"name": "a"}],
        ),
        pod({"containers": [{"name": "a"}, C, container("f")]}),
        kustomize_differs=True,
    ),
    Case(
        "$deleteFromPrimitiveList applies after the field's patch list",
        pod({"containers": [A]}, finalizers=["x", "w", "z"]),
        {"metadata": {"finalizers": ["x"], "$deleteFromPrimitiveList/finalizers": ["y", "x"]}},
        pod({"containers": [A]}, finalizers=["w", "z"]),
        kubectl_differs=True,  # apimachinery's order here follows Go's random map iteration
        kustomize_differs=True,
    ),
    # --- errors -------------------------------------------------------------------------------
    Case(
        "error: $retainKeys must name every field the patch sets",
        pod({"containers": [A], "volumes": [{"name": "v", "emptyDir": {}}]}),
        pod_spec_patch(volumes=[{"name": "v", "$retainKeys": ["hostPath"], "hostPath": {"path": "/x"}}]),
        error="does not retain it",
        kustomize_differs=True,
    ),
    Case(
        "error: patch order contradicts $setElementOrder",
        pod({"containers": [A, B]}),
        pod_spec_patch(**{"$setElementOrder/containers": [{"name": "a"}, {"name": "b"}]}, containers=[B, A]),
        error="$setElementOrder",
        kustomize_differs=True,
    ),
    Case(
        "error: unknown $patch in a map",
        pod({"containers": [A]}),
        pod_spec_patch(**{"$patch": "bogus"}),
        error="unknown $patch directive 'bogus'",
    ),
    Case(
        "error: unknown $patch in a list",
        pod({"containers": [A]}),
        pod_spec_patch(containers=[{"$patch": "bogus", "name": "a"}]),
        error="unknown $patch directive 'bogus'",
    ),
    Case(
        "error: element without the merge key",
        pod({"containers": [A]}),
        pod_spec_patch(containers=[{"image": "x"}]),
        error="no merge key 'name'",
        kustomize_differs=True,
    ),
    Case(
        "error: $patch: delete without the merge key",
        pod({"containers": [A]}),
        pod_spec_patch(containers=[{"$patch": "delete"}]),
        error="needs the merge key 'name'",
    ),
]
