"""The NATS JetStream bus — the only module that imports `nats`.

Publishing goes through JetStream with `Nats-Msg-Id` and a checked PubAck. Consuming uses durable
pull consumers shared by all replicas of a service (one filter subject each: nats-server 2.9
ignores multiple filters). One table maps what a handler did to the acknowledgement:

    handler returns            → ack
    handler raises RetryLater  → nak with the delay it asks for
    handler raises Permanent,
      or the payload is invalid → term, plus a dead-letter record with the reason
    any other exception        → nak with backoff; after max_deliver: term + dead letter

Handlers never ack themselves.
"""

from libs.common.bus.bus import (
    Bus,
    BusMetrics,
    Delivery,
    Handler,
    Lease,
    LockBusy,
    Permanent,
    PublishError,
    RetryLater,
    Stored,
    StreamMisconfigured,
    Subscription,
)
from libs.common.bus.inspect import ConsumerReport, StreamReport, stream_report

__all__ = [
    "Bus",
    "BusMetrics",
    "ConsumerReport",
    "Delivery",
    "Handler",
    "Lease",
    "LockBusy",
    "Permanent",
    "PublishError",
    "RetryLater",
    "Stored",
    "StreamMisconfigured",
    "StreamReport",
    "Subscription",
    "stream_report",
]
