"""The image-update demo that `make run` seeds: Flux's "automate image updates to Git" guide, locally.

Once `sluice up` is ready it creates a Git repository (in the stack's Git root) holding
`clusters/demo/podinfo.yaml`, a Deployment whose image line carries the `$imagepolicy` marker;
pushes podinfo 0.0.1 and 0.0.2 to the local registry; and applies the guide's objects
(GitRepository, Kustomization, ImageRepository, ImagePolicy `>=1.0.0`, ImageUpdateAutomation,
Receiver). It shows the policy not ready on the 0.0.x tags, pushes 1.0.1 (scanned on request,
like `flux reconcile image repository`), then 1.0.2 announced by a webhook to the Receiver, and
prints when each hop happened. Every interval is an hour: nothing here waits for a poll.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from libs.common.api import meta
from libs.common.kube import Kube
from libs.devservers.git import init_bare, seed_repo
from libs.devservers.registry import push_image

if TYPE_CHECKING:
    from libs.cli.up import Stack

NS = "flux-system"
TOKEN = "demo-webhook-token"
IMAGE_V1 = "image.toolkit.fluxcd.io/v1"
MARKER = '# {"$imagepolicy": "flux-system:podinfo"}'


def deployment(image: str) -> str:
    return f"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: podinfo
  namespace: default
spec:
  replicas: 1
  selector:
    matchLabels:
      app: podinfo
  template:
    metadata:
      labels:
        app: podinfo
    spec:
      containers:
        - name: podinfod
          image: {image} {MARKER}
          ports:
            - containerPort: 9898
"""


def guide_objects(git_url: str, image: str) -> list[dict[str, Any]]:
    """The objects of Flux's image-update guide (image kinds as v1beta2, as the guide writes them)."""
    m = {"namespace": NS}
    return [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "webhook-token", **m},
            "stringData": {"token": TOKEN},
        },
        {
            "apiVersion": "source.toolkit.fluxcd.io/v1",
            "kind": "GitRepository",
            "metadata": {"name": "flux-system", **m},
            "spec": {"url": git_url, "interval": "1h", "ref": {"branch": "main"}},
        },
        {
            "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
            "kind": "Kustomization",
            "metadata": {"name": "demo", **m},
            "spec": {
                "interval": "1h",
                "path": "./clusters/demo",
                "prune": True,
                "sourceRef": {"kind": "GitRepository", "name": "flux-system"},
            },
        },
        {
            "apiVersion": "image.toolkit.fluxcd.io/v1beta2",
            "kind": "ImageRepository",
            "metadata": {"name": "podinfo", **m},
            "spec": {"image": image, "interval": "1h", "insecure": True},
        },
        {
            "apiVersion": "image.toolkit.fluxcd.io/v1beta2",
            "kind": "ImagePolicy",
            "metadata": {"name": "podinfo", **m},
            "spec": {"imageRepositoryRef": {"name": "podinfo"}, "policy": {"semver": {"range": ">=1.0.0"}}},
        },
        {
            "apiVersion": "image.toolkit.fluxcd.io/v1beta2",
            "kind": "ImageUpdateAutomation",
            "metadata": {"name": "flux-system", **m},
            "spec": {
                "interval": "1h",
                "sourceRef": {"kind": "GitRepository", "name": "flux-system"},
                "git": {
                    "checkout": {"ref": {"branch": "main"}},
                    "commit": {
                        "author": {"email": "fluxcdbot@users.noreply.github.com", "name": "fluxcdbot"},
                        "messageTemplate": "{{range .Changed.Changes}}{{print .OldValue}} -> {{println .NewValue}}{{end}}",
                    },
                    "push": {"branch": "main"},
                },
                "update": {"path": "./clusters/demo", "strategy": "Setters"},
            },
        },
        {
            "apiVersion": "notification.toolkit.fluxcd.io/v1",
            "kind": "Receiver",
            "metadata": {"name": "registry", **m},
            "spec": {
                "type": "generic",
                "secretRef": {"name": "webhook-token"},
                "resources": [
                    {
                        "apiVersion": "image.toolkit.fluxcd.io/v1beta2",
                        "kind": "ImageRepository",
                        "name": "podinfo",
                    }
                ],
            },
        },
    ]


@dataclass
class Hop:
    label: str
    check: Callable[[dict[str, Any]], bool]
    at: float | None = None


def scanned(snap: dict[str, Any]) -> tuple[Any, Any]:
    """When the ImageRepository was last scanned and what it found (scanTime has 1 s precision,
    so the tag list's revision tells two scans in one second apart)."""
    result = (snap["repo"].get("status") or {}).get("lastScanResult") or {}
    return result.get("scanTime"), result.get("revision")


def pushed(snap: dict[str, Any]) -> str | None:
    push = (snap["update"].get("status") or {}).get("lastPushCommit")
    return str(push) if push else None


def policy_tag(snap: dict[str, Any]) -> str | None:
    tag = ((snap["policy"].get("status") or {}).get("latestRef") or {}).get("tag")
    return str(tag) if tag else None


def fetched(snap: dict[str, Any], previous_push: str | None) -> bool:
    """Source's artifact is at the automation's newest pushed commit (not the one before)."""
    push = pushed(snap)
    revision = str(((snap["source"].get("status") or {}).get("artifact") or {}).get("revision", ""))
    return bool(push) and push != previous_push and revision.endswith(str(push))


def _ready(obj: dict[str, Any] | None) -> dict[str, str]:
    for cond in ((obj or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == meta.READY:
            return dict(cond)
    return {}


class Demo:
    def __init__(self, stack: Stack, say: Callable[[str], None]) -> None:
        assert stack.registry is not None
        self.stack = stack
        self.say = say
        self.registry = stack.registry
        self.image = f"{self.registry.host}/podinfo"
        self.bare = stack.git_root / "flux-image-updates.git"
        self.git_url = self.bare.as_uri()

    async def snapshot(self, kube: Kube) -> dict[str, Any]:
        async def get(api: str, kind: str, name: str, ns: str = NS) -> dict[str, Any]:
            return (await kube.get(api, kind, name, ns)) or {}

        deploy = await get("apps/v1", "Deployment", "podinfo", "default")
        containers = (((deploy.get("spec") or {}).get("template") or {}).get("spec") or {}).get(
            "containers"
        ) or [{}]
        return {
            "repo": await get(IMAGE_V1, "ImageRepository", "podinfo"),
            "policy": await get(IMAGE_V1, "ImagePolicy", "podinfo"),
            "update": await get(IMAGE_V1, "ImageUpdateAutomation", "flux-system"),
            "source": await get("source.toolkit.fluxcd.io/v1", "GitRepository", "flux-system"),
            "ks": await get("kustomize.toolkit.fluxcd.io/v1", "Kustomization", "demo"),
            "image": containers[0].get("image"),
        }

    async def follow(
        self, kube: Kube, tag: str, started: float, before: dict[str, Any], timeout: float = 60
    ) -> None:
        """Poll the objects every few milliseconds and print when each hop of the chain happened
        (`before` is the snapshot taken before the trigger)."""
        want = f"{self.image}:{tag}"

        scan0 = scanned(before)
        push0 = pushed(before)
        hops = [
            Hop("registry scanned", lambda s: scanned(s) != scan0),
            Hop(f"ImagePolicy selected {tag}", lambda s: policy_tag(s) == tag),
            Hop("ImageUpdateAutomation pushed a commit", lambda s: pushed(s) not in (None, push0)),
            Hop("GitRepository fetched it", lambda s: fetched(s, push0)),
            Hop(f"Deployment runs {tag}", lambda s: s["image"] == want),
        ]
        deadline = time.monotonic() + timeout
        while any(h.at is None for h in hops):
            if time.monotonic() > deadline:
                missing = ", ".join(h.label for h in hops if h.at is None)
                raise TimeoutError(f"not reached within {timeout:.0f}s: {missing}")
            snap = await self.snapshot(kube)
            now = time.monotonic()
            for hop in hops:
                if hop.at is None and hop.check(snap):
                    hop.at = now
            await asyncio.sleep(0.005)
        for hop in sorted(hops, key=lambda h: h.at or 0.0):
            self.say(f"  ✔ +{((hop.at or 0.0) - started) * 1000:6.0f} ms  {hop.label}")

    async def run(self) -> None:
        say, stack = self.say, self.stack
        say("\n► seeding the image-update demo (Flux's guide, locally)")
        if not self.bare.exists():
            await asyncio.to_thread(init_bare, self.bare)
            await asyncio.to_thread(
                seed_repo, self.git_url, {"clusters/demo/podinfo.yaml": deployment(f"{self.image}:0.0.1")}
            )
        for tag in ("0.0.1", "0.0.2"):
            await asyncio.to_thread(push_image, self.registry.url, "podinfo", tag)
        say(f"  Git repository {self.git_url}\n  images {self.image}:0.0.1, :0.0.2")
        kube = Kube.from_config(str(stack.kubeconfig))
        try:
            for obj in guide_objects(self.git_url, self.image):
                await kube.apply(obj, field_manager="sluice-demo")
            say(
                "  applied GitRepository, Kustomization, ImageRepository, ImagePolicy (>=1.0.0), "
                "ImageUpdateAutomation, Receiver"
            )
            await self.wait(
                kube, lambda s: s["image"] == f"{self.image}:0.0.1", "the Deployment running 0.0.1"
            )
            say(f"✔ the cluster runs {self.image}:0.0.1")
            snap = await self.wait(
                kube, lambda s: _ready(s["policy"]).get("status") == "False", "the policy verdict"
            )
            say(f"✗ ImagePolicy podinfo not ready: {_ready(snap['policy']).get('message')}")

            say(
                "\n► pushing podinfo:1.0.1 and asking for a scan (like `flux reconcile image repository podinfo`)"
            )
            await asyncio.to_thread(push_image, self.registry.url, "podinfo", "1.0.1")
            before = await self.snapshot(kube)
            started = time.monotonic()
            stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            await kube.patch(
                IMAGE_V1,
                "ImageRepository",
                "podinfo",
                {"metadata": {"annotations": {meta.RECONCILE_REQUEST_ANNOTATION: stamp}}},
                namespace=NS,
            )
            await self.follow(kube, "1.0.1", started, before)

            say("\n► pushing podinfo:1.0.2; the registry's webhook calls the Receiver")
            await asyncio.to_thread(push_image, self.registry.url, "podinfo", "1.0.2")
            receiver = (await kube.get("notification.toolkit.fluxcd.io/v1", "Receiver", "registry", NS)) or {}
            path = (receiver.get("status") or {}).get("webhookPath")
            before = await self.snapshot(kube)
            started = time.monotonic()
            await asyncio.to_thread(self.call_receiver, str(path))
            await self.follow(kube, "1.0.2", started, before)
        finally:
            await kube.close()
        say(
            "\nTry more:\n"
            f'  .venv/bin/python -c "from libs.devservers.registry import push_image; '
            f"push_image('{self.registry.url}', 'podinfo', '1.0.3')\"\n"
            f"  curl -X POST {stack.extra_urls['receiver']}{path}\n"
            f"  git --git-dir {self.bare} log --oneline main\n"
            f"  .venv/bin/sluice --kubeconfig {stack.kubeconfig} get all -A"
        )

    def call_receiver(self, path: str) -> None:
        request = urllib.request.Request(
            f"{self.stack.extra_urls['receiver']}{path}",
            data=json.dumps({"push_data": {"tag": "1.0.2"}}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as resp:
            if resp.status != 200:
                raise RuntimeError(f"the Receiver answered {resp.status}")

    async def wait(
        self, kube: Kube, check: Callable[[dict[str, Any]], bool], what: str, timeout: float = 60
    ) -> dict[str, Any]:
        """The first snapshot of the demo's objects for which `check` holds."""
        deadline = time.monotonic() + timeout
        while True:
            snap = await self.snapshot(kube)
            if check(snap):
                return snap
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out waiting for {what}")
            await asyncio.sleep(0.05)


def run_demo(stack: Stack, stopping: Callable[[], bool], say: Callable[[str], None] = print) -> bool:
    """Seed and walk the demo; False (with the reason printed) when a step did not happen."""
    try:
        asyncio.run(Demo(stack, say).run())
    except Exception as exc:
        say(f"✗ the demo stopped: {exc}")
        return False
    return True


__all__ = ["Demo", "guide_objects", "run_demo"]
