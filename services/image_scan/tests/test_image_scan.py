"""The image-scan service against a real docker-registry (anonymous and htpasswd), a real
nats-server and the Kubernetes emulator.

What a user sees: ImageRepository and ImagePolicy status, `image.tag` and event records on the
bus, and the registry requests the service made (its `sluice_registry_requests_total` metric).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from libs.common import names
from libs.common.api.crd import crd_documents
from libs.common.api.image.imagepolicy import ImagePolicy, ImagePolicyV1beta2
from libs.common.api.image.imagerepository import ImageRepository
from libs.common.bus import Bus, Delivery
from libs.common.events import EventRecord, ImageTag, ObjectRef, ReconcileRequest
from libs.common.events import subjects as subj
from libs.common.kube import Kube
from libs.devservers.registry import DockerRegistry, delete_manifest, push_image
from libs.kube_emulator import KubeEmulator
from services.image_scan.app import SPEC
from tests.harness.registry_fixtures import AuthRegistry
from tests.harness.services import RunningService, running_service
from tests.registry.fake_registry import PASSWORD, USER, fake_registry, self_signed_tls
from tests.registry.http_proxy import http_proxy
from tests.support import eventually

pytestmark = pytest.mark.integration

REPO_GV = ImageRepository.api_version()
POLICY_GV = ImagePolicy.api_version()


@dataclass
class Env:
    kube: Kube
    bus: Bus
    svc: RunningService
    ns: str
    tags: list[ImageTag] = field(default_factory=list)
    events: list[EventRecord] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    stack: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack)

    async def start(self) -> None:
        self.svc = await self.stack.enter_async_context(running_service(SPEC, **self.settings))

    async def restart(self) -> None:
        """Stop the service and start a fresh one (same cluster, bus and artifact store)."""
        await self.stack.aclose()
        self.stack = contextlib.AsyncExitStack()
        await self.start()

    async def repository(self, name: str, image: str, **spec: Any) -> None:
        body = {"image": image, "interval": "1h", "insecure": True, **spec}
        await self.kube.create(
            {
                "apiVersion": REPO_GV,
                "kind": "ImageRepository",
                "metadata": {"name": name, "namespace": self.ns},
                "spec": body,
            }
        )

    async def policy(self, name: str, repo: str, policy: dict[str, Any], **spec: Any) -> None:
        body = {"imageRepositoryRef": {"name": repo}, "policy": policy, **spec}
        await self.kube.create(
            {
                "apiVersion": POLICY_GV,
                "kind": "ImagePolicy",
                "metadata": {"name": name, "namespace": self.ns},
                "spec": body,
            }
        )

    async def status(self, gv: str, kind: str, name: str) -> dict[str, Any]:
        obj = await self.kube.get(gv, kind, name, self.ns)
        assert obj is not None
        return dict(obj.get("status") or {})

    async def ready(self, gv: str, kind: str, name: str, status: str = "True", **want: Any) -> dict[str, Any]:
        async def check() -> dict[str, Any] | None:
            st = await self.status(gv, kind, name)
            ready = next((c for c in st.get("conditions") or [] if c["type"] == "Ready"), None)
            if ready is None or ready["status"] != status:
                return None
            for key, value in want.items():
                if key == "message" and ready["message"] != value:
                    return None
                if key == "reason" and ready["reason"] != value:
                    return None
                if key not in ("message", "reason") and st.get(key) != value:
                    return None
            return st

        result: dict[str, Any] = await eventually(check, what=f"{kind} {name} Ready={status} {want}")
        return result

    async def tag_requests(self) -> float:
        async with aiohttp.ClientSession() as session, session.get(f"{self.svc.url}/metrics") as resp:
            text = await resp.text()
        found = re.findall(r'sluice_registry_requests_total\{outcome="200",what="tags"\} ([0-9.e+]+)', text)
        return float(found[0]) if found else 0.0

    def image_tags(self, name: str) -> list[ImageTag]:
        return [t for t in self.tags if t.policy.name == name]

    async def scan_now(self, name: str) -> None:
        """What a Receiver or `sluice reconcile` does: a reconcile.request on the bus."""
        ref = ObjectRef(api_version=REPO_GV, kind="ImageRepository", namespace=self.ns, name=name)
        await self.bus.publish(
            ReconcileRequest(object=ref, reason="receiver"), msg_id=f"test-{uuid.uuid4().hex}"
        )


@pytest.fixture
async def env(nats_url: str, tmp_path: Path) -> AsyncIterator[Env]:
    ns = f"img-{uuid.uuid4().hex[:8]}"
    async with KubeEmulator() as emu:
        kubeconfig = emu.write_kubeconfig(tmp_path / "kubeconfig")
        kube = Kube.from_config(str(kubeconfig))
        for crd in crd_documents():
            await kube.apply(crd, field_manager="test")
        await kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        bus = await Bus.connect(nats_url, service="test-observer")
        state = Env(kube, bus, None, ns)  # type: ignore[arg-type]

        async def on_tag(payload: ImageTag, delivery: Delivery) -> None:
            if payload.policy.namespace == ns:
                state.tags.append(payload)

        async def on_event(payload: EventRecord, delivery: Delivery) -> None:
            if payload.involved_object.namespace == ns:
                state.events.append(payload)

        bus.subscribe(f"test-tags-{ns}", subj.family_filter(names.IMAGE_TAG), ImageTag, on_tag)
        bus.subscribe(f"test-events-{ns}", subj.family_filter(names.EVENT_RECORD), EventRecord, on_event)
        state.settings = {
            "nats_url": nats_url,
            "kubeconfig": str(kubeconfig),
            "artifact_store": f"file://{tmp_path / 'artifacts'}",
            "watch_namespace": ns,
        }
        try:
            await state.start()
            yield state
        finally:
            await state.stack.aclose()
            await bus.close(grace=1)
            await kube.close()


async def push(registry_url: str, repo: str, *tags: str, **auth: str) -> dict[str, str]:
    return {tag: await asyncio.to_thread(push_image, registry_url, repo, tag, **auth) for tag in tags}


async def test_scan_select_and_publish_once_per_change(env: Env, registry: DockerRegistry) -> None:
    repo = f"scan/{env.ns}"
    digests = await push(registry.url, repo, "1.0.0", "1.1.0", "sha256-abc.sig", "latest")
    image = f"{registry.host}/{repo}"
    await env.repository("app", image)
    st = await env.ready(REPO_GV, "ImageRepository", "app", message="successful scan: found 3 tags")
    assert st["canonicalImageName"] == image
    assert st["lastScanResult"]["tagCount"] == 3  # the cosign .sig tag is excluded by default
    assert st["lastScanResult"]["latestTags"] == ["latest", "1.1.0", "1.0.0"]
    assert st["lastScanResult"]["revision"].startswith("sha256:")
    assert st["observedExclusionList"] == ["^.*\\.sig$"]

    await env.policy("app", "app", {"semver": {"range": ">=1.0.0"}}, digestReflectionPolicy="IfNotPresent")
    st = await env.ready(
        POLICY_GV, "ImagePolicy", "app", message=f"Latest image tag for '{image}' resolved to 1.1.0"
    )
    assert st["latestRef"] == {"name": image, "tag": "1.1.0", "digest": digests["1.1.0"]}
    await eventually(lambda: env.image_tags("app"), what="the first image.tag")
    first = env.image_tags("app")[0]
    assert (first.image, first.tag, first.digest, first.previous_tag) == (
        image,
        "1.1.0",
        digests["1.1.0"],
        None,
    )

    # A new tag and a reconcile.request (a Receiver's): the scan runs at once, the policy follows.
    digests |= await push(registry.url, repo, "1.2.0")
    await env.scan_now("app")
    st = await env.ready(
        POLICY_GV,
        "ImagePolicy",
        "app",
        message=f"Latest image tag for '{image}' updated from 1.1.0 to 1.2.0",
    )
    assert st["latestRef"]["tag"] == "1.2.0"
    assert st["observedPreviousRef"] == {"name": image, "tag": "1.1.0", "digest": digests["1.1.0"]}
    await eventually(lambda: len(env.image_tags("app")) == 2, what="the second image.tag")
    second = env.image_tags("app")[1]
    assert (second.tag, second.digest, second.previous_tag) == ("1.2.0", digests["1.2.0"], "1.1.0")
    repo_status = await env.ready(REPO_GV, "ImageRepository", "app", message="successful scan: found 4 tags")

    # v1beta2 readers see latestImage.
    beta = await env.kube.get(ImagePolicyV1beta2.api_version(), "ImagePolicy", "app", env.ns)
    assert beta is not None
    assert beta["status"]["latestImage"] == f"{image}:1.2.0@{digests['1.2.0']}"

    # An unchanged scan is one tag-list request and re-evaluates nothing.
    before = await env.tag_requests()
    await env.scan_now("app")

    async def scanned_again() -> bool:
        st = await env.status(REPO_GV, "ImageRepository", "app")
        return bool(st["lastScanResult"]["scanTime"] >= repo_status["lastScanResult"]["scanTime"]) and (
            await env.tag_requests() > before
        )

    await eventually(scanned_again, what="a second scan")
    assert await env.tag_requests() == before + 1
    st = await env.status(REPO_GV, "ImageRepository", "app")
    assert st["lastScanResult"]["revision"] == repo_status["lastScanResult"]["revision"]
    assert len(env.image_tags("app")) == 2


async def test_no_match_unsupported_and_exclusions(env: Env, registry: DockerRegistry) -> None:
    repo = f"nomatch/{env.ns}"
    await push(registry.url, repo, "1.0.0", "build-7", "build-12", "main")
    image = f"{registry.host}/{repo}"
    await env.repository("app", image, exclusionList=["^main$"])
    st = await env.ready(REPO_GV, "ImageRepository", "app", message="successful scan: found 3 tags")
    assert st["lastScanResult"]["latestTags"] == ["build-7", "build-12", "1.0.0"]

    await env.policy("too-new", "app", {"semver": {"range": ">=5.0.0"}})
    await env.ready(
        POLICY_GV,
        "ImagePolicy",
        "too-new",
        status="False",
        reason="Failure",
        message="unable to determine latest version from provided list",
    )
    await env.policy(
        "builds",
        "app",
        {"numerical": {"order": "asc"}},
        filterTags={"pattern": "^build-(?P<n>[0-9]+)$", "extract": "$n"},
    )
    st = await env.ready(POLICY_GV, "ImagePolicy", "builds")
    assert st["latestRef"] == {"name": image, "tag": "build-12"}
    # A Flux v1beta2 manifest works as written and reads back its latestImage.
    beta_gv = ImagePolicyV1beta2.api_version()
    await env.kube.create(
        {
            "apiVersion": beta_gv,
            "kind": "ImagePolicy",
            "metadata": {"name": "beta", "namespace": env.ns},
            "spec": {"imageRepositoryRef": {"name": "app"}, "policy": {"alphabetical": {"order": "desc"}}},
        }
    )
    st = await env.ready(beta_gv, "ImagePolicy", "beta")
    assert st["latestImage"] == f"{image}:1.0.0"
    await env.policy("bad", "app", {"semver": {"range": "not-a-range"}})
    st = await env.ready(POLICY_GV, "ImagePolicy", "bad", status="False", reason="InvalidPolicy")
    assert any(c["type"] == "Stalled" for c in st["conditions"])
    await env.policy("orphan", "missing", {"alphabetical": {}})
    await env.ready(POLICY_GV, "ImagePolicy", "orphan", status="False", reason="DependencyNotReady")

    await env.repository("cloud", image, provider="aws")
    st = await env.ready(REPO_GV, "ImageRepository", "cloud", status="False", reason="UnsupportedField")
    ready = next(c for c in st["conditions"] if c["type"] == "Ready")
    assert "spec.provider=aws" in ready["message"]
    assert env.image_tags("too-new") == []


async def test_basic_auth_from_dockerconfigjson(env: Env, registry_auth: AuthRegistry) -> None:
    repo = f"private/{env.ns}"
    creds = {"username": registry_auth.username, "password": registry_auth.password}
    await push(registry_auth.url, repo, "0.1.0", "0.2.0", **creds)
    image = f"{registry_auth.host}/{repo}"
    await env.repository("nocreds", image)
    st = await env.ready(REPO_GV, "ImageRepository", "nocreds", status="False", reason="AuthenticationFailed")
    await env.repository("missing", image, secretRef={"name": "nope"})
    await env.ready(REPO_GV, "ImageRepository", "missing", status="False", reason="AuthenticationFailed")

    auth = base64.b64encode(f"{registry_auth.username}:{registry_auth.password}".encode()).decode()
    config = json.dumps({"auths": {registry_auth.host: {"auth": auth}}})
    await env.kube.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/dockerconfigjson",
            "metadata": {"name": "regcred", "namespace": env.ns},
            "data": {".dockerconfigjson": base64.b64encode(config.encode()).decode()},
        }
    )
    await env.repository("private", image, secretRef={"name": "regcred"})
    await env.ready(REPO_GV, "ImageRepository", "private", message="successful scan: found 2 tags")
    # The same Secret through a service account's imagePullSecrets.
    await env.kube.create(
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "puller", "namespace": env.ns},
            "imagePullSecrets": [{"name": "regcred"}],
        }
    )
    await env.repository("via-sa", image, serviceAccountName="puller")
    await env.ready(REPO_GV, "ImageRepository", "via-sa", message="successful scan: found 2 tags")
    await env.repository("no-sa", image, serviceAccountName="nobody")
    st = await env.ready(REPO_GV, "ImageRepository", "no-sa", status="False", reason="AuthenticationFailed")
    assert "service account not found" in json.dumps(st["conditions"])
    await env.policy(
        "private", "private", {"semver": {"range": "0.x"}}, digestReflectionPolicy="Always", interval="1h"
    )
    st = await env.ready(POLICY_GV, "ImagePolicy", "private")
    assert st["latestRef"]["tag"] == "0.2.0"
    assert st["latestRef"]["digest"].startswith("sha256:")
    failures = [e for e in env.events if e.involved_object.name == "nocreds"]
    assert failures and all(registry_auth.password not in e.message for e in failures)
    assert all(registry_auth.password not in json.dumps(c) for c in st.get("conditions") or [])


async def test_bearer_token_registry_and_rate_limit_in_status(env: Env) -> None:
    async with fake_registry() as fake:
        fake.tags = ["3.0.0", "1.0.0", "2.0.0"]  # unsorted, two pages
        auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        config = json.dumps({"auths": {fake.host: {"auth": auth}}})
        await env.kube.create(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "type": "kubernetes.io/dockerconfigjson",
                "metadata": {"name": "token-cred", "namespace": env.ns},
                "stringData": {".dockerconfigjson": config},
            }
        )
        image = f"{fake.host}/team/app"
        await env.repository("bearer", image, secretRef={"name": "token-cred"})
        st = await env.ready(REPO_GV, "ImageRepository", "bearer", message="successful scan: found 3 tags")
        assert st["lastScanResult"]["latestTags"] == ["3.0.0", "2.0.0", "1.0.0"]
        assert fake.token_requests == ["repository:team/app:pull"]
        await env.policy("bearer", "bearer", {"semver": {"range": "<3.0.0"}})
        st = await env.ready(POLICY_GV, "ImagePolicy", "bearer")
        assert st["latestRef"] == {"name": image, "tag": "2.0.0"}

        fake.limited, fake.retry_after = 1, "1"
        await env.scan_now("bearer")
        st = await env.ready(
            REPO_GV, "ImageRepository", "bearer", status="False", reason="ReadOperationFailed"
        )
        ready = next(c for c in st["conditions"] if c["type"] == "Ready")
        assert "rate limited" in ready["message"] and "retrying in 1s" in ready["message"]
        assert PASSWORD not in ready["message"]
        # The retry honours Retry-After and the repository recovers on its own.
        await env.ready(REPO_GV, "ImageRepository", "bearer", message="successful scan: found 3 tags")


async def test_cert_secret_ref_trusts_a_private_ca(env: Env, tmp_path: Path) -> None:
    tls, cert_pem = self_signed_tls(tmp_path)
    async with fake_registry(tls) as fake:
        fake.tags = ["1.0.0"]
        config = json.dumps({"auths": {fake.host: {"username": USER, "password": PASSWORD}}})
        await env.kube.create(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "tls-creds", "namespace": env.ns},
                "stringData": {".dockerconfigjson": config},
            }
        )
        await env.kube.create(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "registry-ca", "namespace": env.ns},
                "stringData": {"ca.crt": cert_pem.decode()},
            }
        )
        image = f"{fake.host}/team/app"
        await env.repository("untrusted", image, insecure=False, secretRef={"name": "tls-creds"})
        st = await env.ready(
            REPO_GV, "ImageRepository", "untrusted", status="False", reason="ReadOperationFailed"
        )
        assert "certificate" in json.dumps(st["conditions"]).lower()
        await env.repository(
            "trusted",
            image,
            insecure=False,
            secretRef={"name": "tls-creds"},
            certSecretRef={"name": "registry-ca"},
        )
        await env.ready(REPO_GV, "ImageRepository", "trusted", message="successful scan: found 1 tags")


async def test_cross_namespace_access_and_deletion(
    env: Env, registry: DockerRegistry, tmp_path: Path
) -> None:
    other = f"{env.ns}-other"
    await env.kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": other}})
    await env.kube.apply(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": env.ns, "labels": {"team": "apps"}}},
        field_manager="test",
    )
    for name, access in (
        ("closed", None),
        ("open", {"namespaceSelectors": [{"matchLabels": {"team": "apps"}}]}),
    ):
        spec: dict[str, Any] = {"image": f"{registry.host}/acl/{name}", "interval": "1h", "insecure": True}
        if access is not None:
            spec["accessFrom"] = access
        await env.kube.create(
            {
                "apiVersion": REPO_GV,
                "kind": "ImageRepository",
                "metadata": {"name": name, "namespace": other},
                "spec": spec,
            }
        )
    for name in ("closed", "open"):
        await env.policy(
            name, name, {"alphabetical": {}}, imageRepositoryRef={"name": name, "namespace": other}
        )
    st = await env.ready(POLICY_GV, "ImagePolicy", "closed", status="False", reason="AccessDenied")
    assert "access denied" in json.dumps(st["conditions"])
    # Admitted by accessFrom; that repository is outside this service's watched namespace, so unscanned.
    await env.ready(
        POLICY_GV,
        "ImagePolicy",
        "open",
        status="False",
        reason="DependencyNotReady",
        message="referenced ImageRepository has not been scanned yet",
    )

    repo = f"gone/{env.ns}"
    await push(registry.url, repo, "1.0.0")
    await env.repository("gone", f"{registry.host}/{repo}")
    await env.ready(REPO_GV, "ImageRepository", "gone", message="successful scan: found 1 tags")
    tags_file = tmp_path / "artifacts" / "imagerepository" / env.ns / "gone" / "tags.json"
    assert json.loads(tags_file.read_text())["tags"] == ["1.0.0"]
    await env.kube.delete(REPO_GV, "ImageRepository", "gone", env.ns)

    async def deleted() -> bool:
        return (
            await env.kube.get(REPO_GV, "ImageRepository", "gone", env.ns) is None and not tags_file.exists()
        )

    await eventually(deleted, what="the repository and its stored tags deleted")


async def test_stored_tags_survive_a_restart(env: Env, registry: DockerRegistry) -> None:
    repo = f"restart/{env.ns}"
    await push(registry.url, repo, "1.0.0", "2.0.0")
    image = f"{registry.host}/{repo}"
    await env.repository("app", image)
    await env.ready(REPO_GV, "ImageRepository", "app", message="successful scan: found 2 tags")
    assert [e.message for e in env.events if e.involved_object.name == "app"] == [
        "successful scan: found 2 tags"
    ]
    # The registry forgets the tags; the restarted service still selects from what it stored.
    await asyncio.to_thread(delete_manifest, registry.url, repo, "2.0.0")
    await asyncio.to_thread(delete_manifest, registry.url, repo, "1.0.0")
    await env.restart()
    await env.policy("app", "app", {"semver": {"range": "2.x"}})
    st = await env.ready(POLICY_GV, "ImagePolicy", "app")
    assert st["latestRef"] == {"name": image, "tag": "2.0.0"}
    assert await env.tag_requests() == 0  # selected from the stored tags, not a new scan


async def test_digest_reflection_always_follows_a_moved_tag(env: Env, registry: DockerRegistry) -> None:
    repo = f"mutable/{env.ns}"
    first = (await push(registry.url, repo, "stable"))["stable"]
    image = f"{registry.host}/{repo}"
    await env.repository("app", image)
    await env.ready(REPO_GV, "ImageRepository", "app", message="successful scan: found 1 tags")
    await env.policy("always", "app", {"alphabetical": {}}, digestReflectionPolicy="Always", interval="1h")
    await env.policy("once", "app", {"alphabetical": {}}, digestReflectionPolicy="IfNotPresent")
    for name in ("always", "once"):
        st = await env.ready(POLICY_GV, "ImagePolicy", name)
        assert st["latestRef"] == {"name": image, "tag": "stable", "digest": first}

    moved = (await push(registry.url, repo, "stable"))["stable"]
    assert moved != first
    for name in ("always", "once"):
        await env.kube.patch(
            POLICY_GV,
            "ImagePolicy",
            name,
            {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": "moved"}}},
            namespace=env.ns,
            field_manager="test",
        )
    await env.ready(POLICY_GV, "ImagePolicy", "always", lastHandledReconcileAt="moved")
    st = await env.ready(POLICY_GV, "ImagePolicy", "once", lastHandledReconcileAt="moved")
    assert st["latestRef"]["digest"] == first  # IfNotPresent: the tag did not change
    st = await env.status(POLICY_GV, "ImagePolicy", "always")
    assert st["latestRef"]["digest"] == moved
    assert st["observedPreviousRef"]["digest"] == first
    await eventually(lambda: len(env.image_tags("always")) == 2, what="image.tag for the moved digest")
    assert [(t.tag, t.digest) for t in env.image_tags("always")] == [("stable", first), ("stable", moved)]
    assert len(env.image_tags("once")) == 1


async def test_proxy_secret_ref(env: Env, registry: DockerRegistry) -> None:
    repo = f"proxied/{env.ns}"
    await push(registry.url, repo, "1.0.0")
    image = f"{registry.host}/{repo}"
    async with http_proxy() as proxy:
        for name, password in (("proxy", proxy.password), ("wrong-proxy", "nope")):
            await env.kube.create(
                {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "metadata": {"name": name, "namespace": env.ns},
                    "stringData": {"address": proxy.url, "username": proxy.username, "password": password},
                }
            )
        await env.repository("proxied", image, proxySecretRef={"name": "proxy"})
        await env.ready(REPO_GV, "ImageRepository", "proxied", message="successful scan: found 1 tags")
        assert f"GET http://{registry.host}/v2/{repo}/tags/list" in proxy.seen
        await env.repository("refused", image, proxySecretRef={"name": "wrong-proxy"})
        st = await env.ready(
            REPO_GV, "ImageRepository", "refused", status="False", reason="AuthenticationFailed"
        )
        assert "proxy refused" in json.dumps(st["conditions"]) and "nope" not in json.dumps(st)
    await env.kube.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "socks", "namespace": env.ns},
            "stringData": {"address": "socks5://127.0.0.1:1080"},
        }
    )
    await env.repository("socks", image, proxySecretRef={"name": "socks"})
    st = await env.ready(REPO_GV, "ImageRepository", "socks", status="False", reason="UnsupportedField")
    assert "socks5" in json.dumps(st["conditions"])


async def test_tags_changing_back_reach_the_policy(env: Env, registry: DockerRegistry) -> None:
    repo = f"flip/{env.ns}"
    await push(registry.url, repo, "1.0.0", "1.1.0")
    image = f"{registry.host}/{repo}"
    await env.repository("app", image)
    await env.policy("app", "app", {"semver": {"range": "1.x"}})
    await env.ready(
        POLICY_GV, "ImagePolicy", "app", message=f"Latest image tag for '{image}' resolved to 1.1.0"
    )
    await asyncio.to_thread(delete_manifest, registry.url, repo, "1.1.0")
    await env.scan_now("app")
    await env.ready(
        POLICY_GV, "ImagePolicy", "app", message=f"Latest image tag for '{image}' updated from 1.1.0 to 1.0.0"
    )
    # The same tag set as the first scan, seconds later: the policy is still told.
    await push(registry.url, repo, "1.1.0")
    await env.scan_now("app")
    st = await env.ready(
        POLICY_GV, "ImagePolicy", "app", message=f"Latest image tag for '{image}' updated from 1.0.0 to 1.1.0"
    )
    assert st["latestRef"] == {"name": image, "tag": "1.1.0"}
    # …and image-update hears of every change, the one back to 1.1.0 included.
    await eventually(lambda: len(env.image_tags("app")) == 3, what="three image.tag events")
    assert [(t.tag, t.previous_tag) for t in env.image_tags("app")] == [
        ("1.1.0", None),
        ("1.0.0", "1.1.0"),
        ("1.1.0", "1.0.0"),
    ]
