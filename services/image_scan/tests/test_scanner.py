"""ImageRepository rules checked on the scanner itself: when a restart may skip a scan, tag hashing,
the 429 backoff, and a scan whose policy notification failed being retried."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from libs.common.api.image.imagerepository import ImageRepository
from libs.common.artifacts import LocalStore
from libs.common.reconcile import Context
from libs.devservers.registry import DockerRegistry, push_image
from libs.registry import parse_image
from services.image_scan.scanner import (
    ImageScanner,
    StoredTags,
    TagStore,
    latest_tags,
    rate_limit_delay,
    tags_revision,
)

IMAGE = "ghcr.io/team/app"


def repository(scanned_ago: timedelta, **spec: Any) -> ImageRepository:
    scan_time = (datetime.now(UTC) - scanned_ago).strftime("%Y-%m-%dT%H:%M:%SZ")
    return ImageRepository.model_validate(
        {
            "apiVersion": ImageRepository.api_version(),
            "kind": "ImageRepository",
            "metadata": {"name": "app", "namespace": "ns", "generation": 1},
            "spec": {"image": IMAGE, "interval": "10m", **spec},
            "status": {
                "canonicalImageName": IMAGE,
                "observedExclusionList": ["^.*\\.sig$"],
                "lastScanResult": {
                    "revision": tags_revision(["1.0", "2.0"]),
                    "tagCount": 2,
                    "scanTime": scan_time,
                },
            },
        }
    )


async def scanner(tmp_path: Path) -> ImageScanner:
    tags = TagStore(LocalStore(tmp_path))
    await tags.put("ns", "app", StoredTags(tags_revision(["2.0", "1.0"]), IMAGE, ["2.0", "1.0"]))
    # No Kubernetes, no bus: a skipped scan must not touch either.
    return ImageScanner(kube=None, bus=None, tags=tags)  # type: ignore[arg-type]


@pytest.mark.unit
async def test_a_restart_skips_a_recent_scan(tmp_path: Path) -> None:
    ctx = Context(
        obj=repository(timedelta(minutes=2)),
        log=logging.LoggerAdapter(logging.getLogger("t")),
        trigger="startup",
    )
    result = await (await scanner(tmp_path)).scan(ctx)
    assert (result.state, result.message, ctx.unchanged) == ("ready", "successful scan: found 2 tags", True)


@pytest.mark.unit
@pytest.mark.parametrize(
    ("ago", "spec"),
    [
        (timedelta(minutes=11), {}),  # the interval elapsed
        (timedelta(minutes=2), {"exclusionList": ["^dev-"]}),  # the exclusion list changed
        (timedelta(minutes=2), {"image": "ghcr.io/team/other"}),  # the image changed
    ],
)
async def test_a_restart_scans_when_due_or_changed(
    tmp_path: Path, ago: timedelta, spec: dict[str, Any]
) -> None:
    obj = repository(ago, **spec)
    fresh = (await scanner(tmp_path))._fresh(
        obj, parse_image(obj.spec.image), await TagStore(LocalStore(tmp_path)).get("ns", "app")
    )
    assert fresh is False


@pytest.mark.unit
def test_revision_and_latest_tags() -> None:
    assert tags_revision(["b", "a"]) == tags_revision(["a", "b", "a"])
    assert tags_revision(["a"]) != tags_revision(["a", "b"])
    assert latest_tags([str(i) for i in range(12)]) == ["9", "8", "7", "6", "5", "4", "3", "2", "11", "10"]


@pytest.mark.unit
@pytest.mark.parametrize(
    ("retry_after", "attempt", "interval", "expected"),
    [
        (7.0, 1, 600.0, 7.0),  # the registry's Retry-After
        (7.0, 3, 600.0, 28.0),  # doubled while the registry keeps answering 429
        (60.0, 10, 300.0, 300.0),  # never beyond the interval…
        (900.0, 1, 300.0, 900.0),  # …unless the registry asks for longer
        (0.0, 1, 600.0, 1.0),
    ],
)
def test_rate_limit_backoff(retry_after: float, attempt: int, interval: float, expected: float) -> None:
    assert rate_limit_delay(retry_after, attempt, interval) == expected


class _Kube:
    """Kubernetes as the scanner sees it after a scan: one ImagePolicy that uses the repository."""

    async def list_objects(
        self, api_version: str, kind: str, namespace: str | None = None
    ) -> tuple[list[Any], str]:
        policy = {
            "metadata": {"name": "pol", "namespace": "ns"},
            "spec": {"imageRepositoryRef": {"name": "app"}},
        }
        return [policy], "1"


@dataclass
class _Bus:
    """A bus that is down until `up` is set; records what it accepted."""

    up: bool = False
    published: list[str] = field(default_factory=list)

    async def publish(self, payload: Any, *, msg_id: str | None = None) -> int:
        if not self.up:
            raise ConnectionError("nats: no servers available")
        self.published.append(str(msg_id))
        return len(self.published)


@pytest.mark.integration
async def test_a_failed_notification_is_retried(tmp_path: Path, registry: DockerRegistry) -> None:
    await asyncio.to_thread(push_image, registry.url, "notify/app", "1.0.0")
    bus = _Bus()
    scanner = ImageScanner(kube=_Kube(), bus=bus, tags=TagStore(LocalStore(tmp_path)))  # type: ignore[arg-type]
    obj = ImageRepository.model_validate(
        {
            "apiVersion": ImageRepository.api_version(),
            "kind": "ImageRepository",
            "metadata": {"name": "app", "namespace": "ns", "generation": 1},
            "spec": {"image": f"{registry.host}/notify/app", "interval": "1h", "insecure": True},
        }
    )
    log = logging.LoggerAdapter(logging.getLogger("t"))
    result = await scanner.scan(Context(obj=obj, log=log, trigger="created"))
    assert result.state == "failed" and "notifying ImagePolicies failed" in result.message
    assert obj.status.last_scan_result is None  # not recorded as scanned
    bus.up = True
    result = await scanner.scan(Context(obj=obj, log=log, trigger="retry"))
    assert result.message == "successful scan: found 1 tags"
    assert len(bus.published) == 1 and bus.published[0].startswith("ImagePolicy/ns/pol@scan-sha256:")
