"""Alerts: route `event` records to Providers, as Flux's notification-controller event server does.

For each event (durable consumer `notify-events` on `sluice.event.>`; `trace` events are never sent):
1. the Alerts are listed (all namespaces, or `SLUICE_WATCH_NAMESPACE`); suspended ones are skipped;
2. an Alert matches when one of its `eventSources` names the event's kind and namespace (default:
   the Alert's), its name (or `*`, then `matchLabels` against the object's labels, read once per
   event), and the severity passes `eventSeverity` (`info` passes info and error, `error` only
   error); then `inclusionList` (one must match the message) and `exclusionList` (none may);
3. metadata is merged as Flux does, low → high: the event's `event.toolkit.fluxcd.io/` keys
   (stripped), `eventMetadata`, `summary`, the keys prefixed with the object's API group (stripped);
   an overridden key is reported with a `MetadataAppendFailed` error event on the Alert;
4. duplicates — the same object, message and metadata within `SLUICE_DUPLICATE_WINDOW` (Flux: 5
   min) — are dropped, per Alert;
5. the Provider is read (its Secret's `address` wins over `spec.address`) and the event posted.

Outcome → acknowledgement: a 5xx/408/429/timeout/connection error is retried in place twice (after
0.5 s and 1 s), then → `RetryLater` (JetStream redelivers; providers that already got the event
are not sent it again); another 4xx → `Permanent`
(dead-lettered with the reason). A Provider that cannot be used (unsupported type or field, missing
Secret or address) drops the alert with a log line and an error event on the Provider naming why.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
from pydantic import ValidationError

from libs.common import names
from libs.common.api import meta
from libs.common.api.duration import parse_duration
from libs.common.api.notification.alert import Alert, CrossNamespaceObjectReference
from libs.common.api.notification.provider import Provider
from libs.common.bus import Bus, Delivery, Permanent, RetryLater
from libs.common.events import EventRecord, ObjectRef
from libs.common.events import subjects as subj
from libs.common.kube import Kube
from libs.common.runtime.redact import sanitize_message
from services.notify.providers import (
    DEFAULT_TIMEOUT,
    SLACK_POST_MESSAGE_URL,
    SUPPORTED_TYPES,
    DeliveryError,
    Target,
    build_request,
    deliver,
    parse_headers,
)

log = logging.getLogger("sluice.notify.alerts")

EVENTS_DURABLE = "notify-events"
#: Deliveries of one event record before a still-failing Provider makes it a dead letter.
MAX_DELIVER = 10
REDELIVERY_DELAY = 2.0
SUMMARY_KEY = "summary"
METADATA_APPEND_FAILED = "MetadataAppendFailed"
UNSUPPORTED_PROVIDER = "UnsupportedProvider"
UNSUPPORTED_FIELD = "UnsupportedField"
PROVIDER_UNUSABLE = "ProviderUnusable"
DELIVERY_FAILED = "NotificationDeliveryFailed"


def provider_problems(provider: Provider) -> list[str]:
    """Why this Provider cannot be used by Sluice yet (empty when it can)."""
    spec = provider.spec
    found = []
    if spec.type not in SUPPORTED_TYPES:
        found.append(
            f"provider type '{spec.type}' is not supported by Sluice yet (supported: {', '.join(SUPPORTED_TYPES)})"
        )
    if spec.cert_secret_ref is not None:
        found.append("spec.certSecretRef is not supported yet")
    if spec.proxy_secret_ref is not None or spec.proxy:
        found.append("proxies (spec.proxySecretRef, spec.proxy) are not supported yet")
    if spec.service_account_name:
        found.append("spec.serviceAccountName (workload identity) is not supported yet")
    return found


def alert_problems(alert: Alert) -> list[str]:
    """Regular expressions of the Alert that do not compile."""
    found = []
    for name, patterns in (
        ("inclusionList", alert.spec.inclusion_list),
        ("exclusionList", alert.spec.exclusion_list),
    ):
        for pattern in patterns or []:
            try:
                re.compile(pattern)
            except re.error as exc:
                found.append(f"spec.{name}: invalid regular expression {pattern!r}: {exc}")
    return found


def event_key(event: EventRecord) -> str:
    """Flux's duplicate key: the object, the message and the metadata."""
    ref = event.involved_object
    doc = [ref.kind, ref.namespace, ref.name, event.message, sorted(event.metadata.items())]
    return hashlib.sha256(json.dumps(doc).encode()).hexdigest()


def merge_metadata(event: EventRecord, alert: Alert) -> tuple[dict[str, str], list[str]]:
    """The metadata sent for `event` through `alert` (Flux's order), and the keys overridden."""
    merged: dict[str, str] = {}
    conflicts: list[str] = []

    def put(key: str, value: str) -> None:
        if key in merged and merged[key] != value and key not in conflicts:
            conflicts.append(key)
        merged[key] = value

    for key, value in sorted(event.metadata.items()):
        if key.startswith(meta.EVENT_ANNOTATION_PREFIX):
            put(key.removeprefix(meta.EVENT_ANNOTATION_PREFIX), value)
    for key, value in sorted((alert.spec.event_metadata or {}).items()):
        put(key, value)
    if alert.spec.summary:
        put(SUMMARY_KEY, alert.spec.summary)
    group = event.involved_object.api_version.split("/")[0] + "/"
    for key, value in sorted(event.metadata.items()):
        if key.startswith(group):
            put(key.removeprefix(group), value)
    return merged, conflicts


def message_passes(alert: Alert, message: str) -> bool:
    include = alert.spec.inclusion_list
    if include and not any(re.search(p, message) for p in include):
        return False
    return not any(re.search(p, message) for p in alert.spec.exclusion_list or [])


def severity_passes(alert: Alert, severity: str) -> bool:
    return alert.spec.event_severity in ("info", severity)


def selector_matches(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


@dataclass
class DuplicateFilter:
    """Keys seen within the window. `claim` is atomic on the event loop; a failed delivery
    `release`s its key so the retry is not taken for a duplicate."""

    window: float
    _seen: dict[str, float] = field(default_factory=dict)

    def claim(self, key: str) -> bool:
        now = time.monotonic()
        if len(self._seen) > 10_000:
            self._seen = {k: t for k, t in self._seen.items() if t > now}
        expires = self._seen.get(key)
        if expires is not None and expires > now:
            return False
        self._seen[key] = now + self.window
        return True

    def release(self, key: str) -> None:
        self._seen.pop(key, None)


def _secret_value(secret: Mapping[str, Any], key: str) -> bytes | None:
    if key in (secret.get("stringData") or {}):
        return str(secret["stringData"][key]).encode()
    raw = (secret.get("data") or {}).get(key)
    if raw is None:
        return None
    try:
        return base64.b64decode(raw)
    except (ValueError, TypeError):
        return None


class ProviderUnusable(Exception):
    """The Provider cannot be posted to (reported on the Provider, the alert is dropped)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass
class AlertRouter:
    """The event consumer of one notify app."""

    kube: Kube
    bus: Bus
    session: aiohttp.ClientSession
    duplicates: DuplicateFilter
    namespace: str | None = None
    controller: str = "sluice-notify"

    def subscribe(self) -> None:
        self.bus.subscribe(
            EVENTS_DURABLE,
            subj.family_filter(names.EVENT_RECORD),
            EventRecord,
            self.handle,
            max_deliver=MAX_DELIVER,
        )

    async def _alerts(self) -> list[Alert]:
        items, _ = await self.kube.list_objects(Alert.api_version(), Alert.KIND, self.namespace)
        alerts = []
        for item in items:
            try:
                alert = Alert.model_validate(item)
            except ValidationError:
                continue  # the Alert's reconcile reports it (InvalidSpec)
            if not alert.suspended and not alert.metadata.deletion_timestamp and not alert_problems(alert):
                alerts.append(alert)
        return alerts

    async def handle(self, event: EventRecord, delivery: Delivery) -> None:
        if event.severity == "trace":
            return
        ref = event.involved_object
        labels: dict[str, str] | None = None

        async def object_labels() -> dict[str, str]:
            nonlocal labels
            if labels is None:
                obj = await self.kube.get(ref.api_version, ref.kind, ref.name, ref.namespace)
                labels = dict(((obj or {}).get("metadata") or {}).get("labels") or {})
            return labels

        async def source_matches(alert: Alert, source: CrossNamespaceObjectReference) -> bool:
            if ref.kind != source.kind or ref.namespace != (source.namespace or alert.namespace):
                return False
            if source.name == "*":
                return not source.match_labels or selector_matches(source.match_labels, await object_labels())
            return ref.name == source.name

        key = event_key(event)
        retry: list[str] = []
        refused: list[str] = []
        for alert in await self._alerts():
            if not severity_passes(alert, event.severity):
                continue
            if not any([await source_matches(alert, s) for s in alert.spec.event_sources]):
                continue
            if not message_passes(alert, event.message):
                continue
            claim = f"{alert.namespace}/{alert.name}|{key}"
            if not self.duplicates.claim(claim):
                log.debug("duplicate event for %s dropped by Alert %s/%s", ref, alert.namespace, alert.name)
                continue
            try:
                await self._send(event, alert)
            except DeliveryError as exc:
                where = f"Alert {alert.namespace}/{alert.name} → Provider {alert.spec.provider_ref.name}"
                message = sanitize_message(f"{where}: {exc}")
                if exc.retryable:
                    self.duplicates.release(claim)
                    retry.append(message)
                    log.warning("delivery of the event of %s failed, will retry: %s", ref, message)
                else:
                    refused.append(message)
                    log.error("delivery of the event of %s failed: %s", ref, message)
                    await self._report_provider(alert, DELIVERY_FAILED, message)
            except ProviderUnusable as exc:
                log.error("event of %s dropped for Alert %s/%s: %s", ref, alert.namespace, alert.name, exc)
                await self._report_provider(alert, exc.reason, f"event of {ref} dropped: {exc}")
            except BaseException:
                self.duplicates.release(claim)
                raise
        if retry and delivery.num_delivered < MAX_DELIVER:
            raise RetryLater("; ".join(retry), delay=REDELIVERY_DELAY)
        if retry:
            raise Permanent(
                f"gave up after {delivery.num_delivered} deliveries: " + "; ".join(retry + refused)
            )
        if refused:
            raise Permanent("; ".join(refused))

    async def _send(self, event: EventRecord, alert: Alert) -> None:
        metadata, conflicts = merge_metadata(event, alert)
        if conflicts:
            message = (
                f"metadata keys overridden for the event of {event.involved_object}: {', '.join(conflicts)}"
            )
            log.warning("Alert %s/%s: %s", alert.namespace, alert.name, message)
            await self._publish(
                ObjectRef(
                    api_version=alert.api_version(),
                    kind=alert.KIND,
                    namespace=alert.namespace,
                    name=alert.name,
                    uid=alert.metadata.uid,
                ),
                METADATA_APPEND_FAILED,
                message,
            )
        resolved = await self._target(alert)
        if resolved is None:
            log.info(
                "Provider %s/%s is suspended: event not sent", alert.namespace, alert.spec.provider_ref.name
            )
            return
        target, slack_api = resolved
        request = build_request(event, metadata, target)
        if request is None:
            return
        await deliver(self.session, request, target.timeout, slack_api=slack_api)
        log.info(
            "event of %s (%s) sent by Alert %s/%s to %s Provider %s",
            event.involved_object,
            event.reason,
            alert.namespace,
            alert.name,
            target.type,
            alert.spec.provider_ref.name,
        )

    async def _target(self, alert: Alert) -> tuple[Target, bool] | None:
        """The Provider's address and options, or None when it is suspended."""
        name = alert.spec.provider_ref.name
        raw = await self.kube.get(Provider.api_version(), Provider.KIND, name, alert.namespace)
        if raw is None:
            raise ProviderUnusable(PROVIDER_UNUSABLE, f"Provider {alert.namespace}/{name} not found")
        try:
            provider = Provider.model_validate(raw)
        except ValidationError as exc:
            raise ProviderUnusable(
                PROVIDER_UNUSABLE, f"Provider {alert.namespace}/{name} is invalid: {exc.error_count()} errors"
            ) from None
        if provider.suspended:
            return None
        problems = provider_problems(provider)
        if problems:
            reason = UNSUPPORTED_PROVIDER if provider.spec.type not in SUPPORTED_TYPES else UNSUPPORTED_FIELD
            raise ProviderUnusable(reason, "; ".join(problems))
        spec = provider.spec
        address, token, headers = spec.address or "", None, {}
        if spec.secret_ref is not None:
            secret = await self.kube.get("v1", "Secret", spec.secret_ref.name, alert.namespace)
            if secret is None:
                raise ProviderUnusable(
                    PROVIDER_UNUSABLE, f"Secret {alert.namespace}/{spec.secret_ref.name} not found"
                )
            value = _secret_value(secret, "address")
            if value:
                address = value.decode().strip()
            value = _secret_value(secret, "token")
            if value:
                token = value.decode().strip()
            value = _secret_value(secret, "headers")
            if value:
                try:
                    headers = parse_headers(value)
                except ValueError as exc:
                    raise ProviderUnusable(PROVIDER_UNUSABLE, str(exc)) from None
        if not address and spec.type == "slack" and token:
            address = SLACK_POST_MESSAGE_URL
        if not address:
            raise ProviderUnusable(
                PROVIDER_UNUSABLE, "no address: set spec.address or the 'address' key of its Secret"
            )
        timeout = DEFAULT_TIMEOUT
        if spec.timeout:
            with contextlib.suppress(ValueError):
                timeout = parse_duration(spec.timeout)
        target = Target(
            type=spec.type,
            address=address,
            token=token,
            channel=spec.channel,
            username=spec.username,
            headers=headers,
            timeout=timeout,
        )
        # Slack's Web API (Bot tokens) answers 200 with `ok: false` on failures; webhooks answer "ok".
        return target, spec.type == "slack"

    async def _report_provider(self, alert: Alert, reason: str, message: str) -> None:
        name = alert.spec.provider_ref.name
        ref = ObjectRef(
            api_version=Provider.api_version(), kind=Provider.KIND, namespace=alert.namespace, name=name
        )
        await self._publish(ref, reason, message)

    async def _publish(self, ref: ObjectRef, reason: str, message: str) -> None:
        record = EventRecord(
            involved_object=ref,
            severity="error",
            timestamp=datetime.now(UTC),
            message=sanitize_message(message),
            reason=reason,
            reporting_controller=self.controller,
            reporting_instance=self.bus.replica_id,
        )
        try:
            await self.bus.publish(record)
        except Exception as exc:
            log.warning("could not publish event %s: %s", reason, exc)
