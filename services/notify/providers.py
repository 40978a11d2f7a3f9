"""Provider payloads and delivery, in the formats Flux's notification-controller sends.

- `generic`: Flux's event JSON (involvedObject, severity, timestamp, message, reason, metadata,
  reportingController, reportingInstance), header `Gotk-Component: <reportingController>`, plus
  any headers from the Secret's `headers` key (a YAML map).
- `generic-hmac`: the same, signed: `X-Signature: sha256=<hex HMAC-SHA256(body, token)>`.
- `slack`: Flux's attachment message (username `Flux` or `spec.username`, icon, `channel`,
  one attachment coloured `good`/`danger`, author `<kind>/<name>.<namespace>`, text = message,
  fields from metadata); with a Secret `token` it is a Bot token (`Authorization: Bearer`, and the
  address defaults to `chat.postMessage`).
- `msteams`: an Adaptive Card message as Flux posts to a Workflows webhook; an address on
  `*.webhook.office.com` (a legacy O365 connector) gets Flux's MessageCard instead.

Every other type is unsupported here: `UnsupportedProvider` names it. Delivery failures raise
`DeliveryError` with `retryable` (5xx, 408, 429, timeouts, connection errors) or not (other 4xx);
`deliver` retries the retryable ones in place first (after 0.5 s and 1 s).
Error texts never carry the address (a webhook URL is a credential) or the token.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import yaml

from libs.common.events import EventRecord

#: Provider types this service delivers to.
SUPPORTED_TYPES: tuple[str, ...] = ("generic", "generic-hmac", "slack", "msteams")

GOTK_COMPONENT_HEADER = "Gotk-Component"
SIGNATURE_HEADER = "X-Signature"
SLACK_ICON_URL = "https://avatars3.githubusercontent.com/u/52158677?s=200&v=4"
SLACK_DEFAULT_USERNAME = "Flux"
SLACK_POST_MESSAGE_URL = "https://slack.com/api/chat.postMessage"
MSTEAMS_CONNECTOR_HOST_SUFFIX = "webhook.office.com"
ADAPTIVE_CARD_VERSION = "1.4"
COMMIT_STATUS_KEY = "commit_status"
COMMIT_STATUS_UPDATE = "update"
DEFAULT_TIMEOUT = 15.0
#: Seconds between in-place attempts of one delivery before the record goes back to JetStream.
RETRY_DELAYS: tuple[float, ...] = (0.5, 1.0)


class UnsupportedProvider(Exception):
    """The Provider's type is not delivered by this version of Sluice."""


class DeliveryError(Exception):
    """Posting to a provider failed; `retryable` says whether trying again may help."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True)
class Target:
    """Where and how to post: the resolved address, credentials and options of one Provider."""

    type: str
    address: str
    token: str | None = None
    channel: str | None = None
    username: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout: float = DEFAULT_TIMEOUT


@dataclass(frozen=True)
class Request:
    """One HTTP POST: the body bytes and headers (the URL is the Target's)."""

    url: str
    body: bytes
    headers: dict[str, str]


def flux_event_json(event: EventRecord, metadata: Mapping[str, str]) -> dict[str, Any]:
    """Flux's `eventv1.Event` JSON for `event`, carrying the Alert-merged `metadata`."""
    ref = event.involved_object
    involved: dict[str, Any] = {
        "kind": ref.kind,
        "namespace": ref.namespace,
        "name": ref.name,
        "apiVersion": ref.api_version,
    }
    if ref.uid:
        involved["uid"] = ref.uid
    doc: dict[str, Any] = {
        "involvedObject": involved,
        "severity": event.severity,
        "timestamp": event.timestamp.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "message": event.message,
        "reason": event.reason,
    }
    if metadata:
        doc["metadata"] = dict(metadata)
    doc["reportingController"] = event.reporting_controller
    if event.reporting_instance:
        doc["reportingInstance"] = event.reporting_instance
    return doc


def object_title(event: EventRecord) -> str:
    """`<kind>/<name>.<namespace>` as Flux's chat notifiers title an event."""
    ref = event.involved_object
    return f"{ref.kind.lower()}/{ref.name}.{ref.namespace}"


def slack_payload(event: EventRecord, metadata: Mapping[str, str], target: Target) -> dict[str, Any]:
    payload: dict[str, Any] = {}
    if target.channel:
        payload["channel"] = target.channel
    payload["icon_url"] = SLACK_ICON_URL
    payload["username"] = target.username or SLACK_DEFAULT_USERNAME
    payload["attachments"] = [
        {
            "color": "danger" if event.severity == "error" else "good",
            "author_name": object_title(event),
            "text": event.message,
            "mrkdwn_in": ["text"],
            "fields": [{"title": k, "value": metadata[k], "short": False} for k in sorted(metadata)],
        }
    ]
    return payload


def msteams_uses_connector(address: str) -> bool:
    """Whether the address is a legacy Office 365 connector (MessageCard) rather than a Workflow."""
    host = urlsplit(address).hostname or ""
    return host.endswith(MSTEAMS_CONNECTOR_HOST_SUFFIX)


def msteams_payload(event: EventRecord, metadata: Mapping[str, str], target: Target) -> dict[str, Any]:
    title = object_title(event)
    if msteams_uses_connector(target.address):
        return {
            "@type": "MessageCard",
            "@context": "http://schema.org/extensions",
            "themeColor": "FF0000" if event.severity == "error" else "0076D7",
            "summary": title,
            "sections": [
                {
                    "activityTitle": event.message,
                    "activitySubtitle": title,
                    "facts": [{"name": k, "value": metadata[k]} for k in sorted(metadata)],
                }
            ],
        }
    message: dict[str, Any] = {"type": "TextBlock", "text": event.message, "wrap": True}
    if event.severity == "error":
        message["color"] = "attention"
    # The summary first, then the other keys in order.
    keys = sorted(metadata, key=lambda k: (k != "summary", k))
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "text": title, "size": "large", "weight": "bolder", "wrap": True},
        message,
    ]
    if keys:
        body.append({"type": "FactSet", "facts": [{"title": k, "value": metadata[k]} for k in keys]})
    return {
        "type": "message",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": ADAPTIVE_CARD_VERSION,
                    "body": body,
                },
            }
        ],
    }


def _json(doc: Mapping[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


def sign(body: bytes, token: str) -> str:
    """The `X-Signature` value of a generic-hmac delivery."""
    return "sha256=" + hmac.new(token.encode(), body, hashlib.sha256).hexdigest()


def build_request(event: EventRecord, metadata: Mapping[str, str], target: Target) -> Request | None:
    """The POST for `event` to `target`, or None when this type skips the event (Flux's chat
    providers skip Git commit-status update events)."""
    headers = {"Content-Type": "application/json"}
    if target.type in ("generic", "generic-hmac"):
        body = _json(flux_event_json(event, metadata))
        headers[GOTK_COMPONENT_HEADER] = event.reporting_controller
        headers.update(target.headers)
        if target.type == "generic-hmac":
            if not target.token:
                raise DeliveryError("generic-hmac provider needs a 'token' in its Secret", retryable=False)
            headers[SIGNATURE_HEADER] = sign(body, target.token)
        return Request(target.address, body, headers)
    if metadata.get(COMMIT_STATUS_KEY) == COMMIT_STATUS_UPDATE:
        return None
    if target.type == "slack":
        if target.token:
            headers["Authorization"] = f"Bearer {target.token}"
        return Request(target.address, _json(slack_payload(event, metadata, target)), headers)
    if target.type == "msteams":
        return Request(target.address, _json(msteams_payload(event, metadata, target)), headers)
    raise UnsupportedProvider(f"provider type '{target.type}' is not supported by Sluice yet")


def parse_headers(raw: bytes) -> dict[str, str]:
    """The Secret's `headers` key: a YAML map of header names to values."""
    doc = yaml.safe_load(raw.decode()) if raw.strip() else None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise ValueError("the Secret's 'headers' key must hold a YAML map of header names to values")
    return {str(k): str(v) for k, v in doc.items()}


async def post(
    session: aiohttp.ClientSession, request: Request, timeout: float, *, slack_api: bool = False
) -> None:
    """POST the request; raise DeliveryError (retryable or not) on any failure. `slack_api`: the
    answer is Slack's Web API JSON, whose `ok: false` is a failure."""
    try:
        async with session.post(
            request.url,
            data=request.body,
            headers=request.headers,
            timeout=aiohttp.ClientTimeout(total=timeout),
            allow_redirects=False,
        ) as resp:
            text = await resp.text(errors="replace")
            if resp.status >= 400:
                retryable = resp.status >= 500 or resp.status in (408, 429)
                raise DeliveryError(f"the provider answered HTTP {resp.status}", retryable=retryable)
            if resp.status >= 300:
                raise DeliveryError(f"the provider answered HTTP {resp.status} (a redirect)", retryable=False)
            if slack_api:
                _check_slack_api(text)
    except DeliveryError:
        raise
    except TimeoutError:
        raise DeliveryError(f"the provider did not answer within {timeout:g}s", retryable=True) from None
    except aiohttp.ClientError as exc:
        # The exception text may hold the URL (a credential): name only its class.
        raise DeliveryError(f"could not reach the provider ({type(exc).__name__})", retryable=True) from None


async def deliver(
    session: aiohttp.ClientSession,
    request: Request,
    timeout: float,
    *,
    slack_api: bool = False,
    delays: Sequence[float] = RETRY_DELAYS,
) -> None:
    """`post`, retried in place after each of `delays` while the failure is retryable (Flux's
    notifiers retry the same way); the last failure is raised."""
    for delay in (*delays, None):
        try:
            await post(session, request, timeout, slack_api=slack_api)
            return
        except DeliveryError as exc:
            if not exc.retryable or delay is None:
                raise
        await asyncio.sleep(delay)


def _check_slack_api(text: str) -> None:
    """Slack's Web API answers 200 with `{"ok": false, "error": …}` on failures."""
    if not text.startswith("{"):
        return
    try:
        doc = json.loads(text)
    except ValueError:
        return
    if isinstance(doc, dict) and doc.get("ok") is False:
        raise DeliveryError(
            f"the provider refused the message: {doc.get('error', 'unknown error')}", retryable=False
        )
