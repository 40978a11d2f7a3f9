"""`sluice events`: follow Flux events (`sluice.event.>`) as they are published.

Human lines `<time> <severity> <Kind>/<namespace>/<name> <reason>: <message>` or `-o json` (one
EventRecord per line, Flux's event JSON). The NATS URL comes from `--nats`, `$SLUICE_NATS_URL` or
the `nats` entry of `.run/endpoints.json` written by `sluice up`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from libs.common import names
from libs.common.api.duration import parse_duration
from libs.common.bus import Bus
from libs.common.events import EventRecord

SUBJECT = f"{names.SUBJECT_PREFIX}.{names.EVENT_RECORD}.>"


class NoNats(LookupError):
    """No NATS URL was given and none could be found."""


def nats_url(explicit: str | None, state_dir: Path = Path(".run")) -> str:
    """`--nats`, else `$SLUICE_NATS_URL`, else `nats` from `<state_dir>/endpoints.json`.

    Credentials, when the server wants them, come from `$SLUICE_NATS_USER` and
    `$SLUICE_NATS_PASSWORD` (deploy/k8s's NATS has a read-only `cli` user)."""
    if explicit:
        return explicit
    if env := os.environ.get("SLUICE_NATS_URL"):
        return env
    endpoints = state_dir / "endpoints.json"
    try:
        url = json.loads(endpoints.read_text()).get("nats")
    except (OSError, ValueError, AttributeError):
        url = None
    if not url:
        raise NoNats(f"no NATS URL: pass --nats, set SLUICE_NATS_URL or run `sluice up` ({endpoints})")
    return str(url)


def matches(record: EventRecord, selector: str | None, namespace: str | None) -> bool:
    """`--for Kind/name` (kind case-insensitive) and the namespace scope (None: all)."""
    ref = record.involved_object
    if namespace is not None and ref.namespace != namespace:
        return False
    if not selector:
        return True
    kind, _, name = selector.partition("/")
    return ref.kind.lower() == kind.lower() and (not name or ref.name == name)


def human(record: EventRecord) -> str:
    ref = record.involved_object
    when = record.timestamp.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    message = record.message.replace("\n", " ")
    return f"{when} {record.severity} {ref.kind}/{ref.namespace}/{ref.name} {record.reason}: {message}"


async def follow(
    url: str,
    *,
    selector: str | None,
    namespace: str | None,
    output: str,
    since: datetime | None,
    count: int | None,
) -> int:
    bus = await Bus.connect(
        url,
        service="cli",
        connect_timeout=5.0,
        user=os.environ.get("SLUICE_NATS_USER") or None,
        password=os.environ.get("SLUICE_NATS_PASSWORD") or None,
    )
    seen = 0
    try:
        async with contextlib.aclosing(bus.follow(SUBJECT, EventRecord, since=since)) as stream:
            async for record, _time in stream:
                if not matches(record, selector, namespace):
                    continue
                if output == "json":
                    line = json.dumps(record.to_json_dict(), sort_keys=True)
                else:
                    line = human(record)
                print(line, flush=True)
                seen += 1
                if count is not None and seen >= count:
                    break
    finally:
        await bus.close()
    return 0


def events(
    nats: str | None,
    *,
    selector: str | None,
    namespace: str | None,
    output: str,
    since: str | None,
    count: int | None,
) -> int:
    try:
        url = nats_url(nats)
        start = datetime.now(UTC) - timedelta(seconds=parse_duration(since)) if since else None
    except (NoNats, ValueError) as exc:
        print(f"✗ {exc}", file=sys.stderr)
        return 1
    try:
        return asyncio.run(
            follow(url, selector=selector, namespace=namespace, output=output, since=start, count=count)
        )
    except KeyboardInterrupt:
        return 130
    except ConnectionError as exc:
        print(f"✗ {exc}", file=sys.stderr)
        return 1
