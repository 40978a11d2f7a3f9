"""A read-only look at the JetStream stream and its durable consumers, for `sluice check`.

Unlike `Bus.connect`, nothing here creates or changes anything: a missing stream is reported as
missing, because a health check that created what it checks would always pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import nats
import nats.errors
import nats.js.errors

from libs.common import names
from libs.common.runtime.redact import redact_url


@dataclass(frozen=True)
class ConsumerReport:
    """One durable consumer: what waits for it and whether someone is pulling."""

    name: str
    filter_subject: str
    num_pending: int
    """Messages in the stream not yet delivered to this consumer."""
    num_ack_pending: int
    """Delivered, not yet acknowledged (work in flight)."""
    num_redelivered: int
    num_waiting: int
    """Outstanding pull requests: > 0 means a service is fetching from it right now."""


@dataclass(frozen=True)
class StreamReport:
    """The stream (None fields when it does not exist) and its consumers, sorted by name."""

    name: str
    exists: bool
    server_version: str = ""
    messages: int = 0
    bytes: int = 0
    consumers: list[ConsumerReport] = field(default_factory=list)


async def stream_report(
    url: str,
    *,
    user: str | None = None,
    password: str | None = None,
    stream: str = names.STREAM_NAME,
    timeout: float = 5.0,
) -> StreamReport:
    """Connect once (no retries, no reconnects), read the stream and consumer info, disconnect.

    Raises ConnectionError, with the URL's credentials redacted, when NATS cannot be reached or
    refuses the credentials."""
    where = ",".join(redact_url(server) for server in url.split(","))
    errors: list[Exception] = []

    async def remember(exc: Exception) -> None:
        # nats-py prints every connection error with a traceback unless given a callback; keep
        # the cause (the exception `connect` raises is only "no servers available").
        errors.append(exc)

    try:
        nc = await nats.connect(
            url,
            name="sluice-check",
            user=user,
            password=password,
            inbox_prefix=f"_INBOX_{user}" if user else "_INBOX",  # as Bus.connect: its own replies
            connect_timeout=timeout,
            # One attempt per server: 0 would mean "retry forever" to nats-py.
            max_reconnect_attempts=1,
            reconnect_time_wait=0.1,
            allow_reconnect=False,
            error_cb=remember,
        )
    except Exception as exc:
        cause = errors[-1] if errors else exc
        raise ConnectionError(f"cannot reach NATS at {where}: {_reason(cause)}") from None
    version = _server_version(nc)
    try:
        js = nc.jetstream(timeout=timeout)
        try:
            info = await js.stream_info(stream)
        except nats.js.errors.NotFoundError:
            return StreamReport(name=stream, exists=False, server_version=version)
        consumers = await js.consumers_info(stream)
    except (nats.errors.Error, TimeoutError) as exc:
        # A subject the user may not publish to is refused asynchronously (the request itself
        # just times out): the refusal, when there was one, is the useful part.
        denied = [e for e in errors if "permissions violation" in str(e).lower()]
        reason = _reason(denied[-1]) if denied else _reason(exc)
        raise ConnectionError(f"NATS at {where} did not answer JetStream requests: {reason}") from None
    finally:
        await nc.close()
    return StreamReport(
        name=stream,
        exists=True,
        server_version=version,
        messages=int(info.state.messages),
        bytes=int(info.state.bytes),
        consumers=sorted((_consumer(c) for c in consumers), key=lambda c: c.name),
    )


def _server_version(nc: nats.NATS) -> str:
    """`2.10.22`, from the server's INFO; empty when it sent none we can read."""
    announced = nc.connected_server_version
    try:
        return f"{announced.major}.{announced.minor}.{announced.patch}"
    except (ValueError, TypeError):
        return ""


def _consumer(info: nats.js.api.ConsumerInfo) -> ConsumerReport:
    return ConsumerReport(
        name=str(info.name),
        filter_subject=str(info.config.filter_subject or ""),
        num_pending=int(info.num_pending or 0),
        num_ack_pending=int(info.num_ack_pending or 0),
        num_redelivered=int(info.num_redelivered or 0),
        num_waiting=int(info.num_waiting or 0),
    )


def _reason(exc: BaseException) -> str:
    """The error's own words, or its type when it has none (nats-py raises some bare)."""
    return str(exc).strip() or type(exc).__name__
