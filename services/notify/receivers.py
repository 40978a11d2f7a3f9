"""Receivers: webhooks that make Sluice reconcile resources at once, as Flux's receiver server does.

Reconcile (per Receiver): the type and fields must be supported (else Stalled, naming them); the
token is read from `spec.secretRef` (key `token`; missing → Ready=False `TokenNotFound`); the
path `/hook/` + hex sha256(token + name + namespace) goes to `status.webhookPath`, and Ready says
"Receiver initialized for path: /hook/…". The interval (default 10m) re-reads the Secret.

Serving (`POST /hook/<digest>` on `SLUICE_RECEIVER_ADDR`): the path is looked up in an index of
the Receivers' `status.webhookPath` (refreshed from the API on a miss, at most once a second, and
every `SLUICE_RECEIVER_INDEX_REFRESH` seconds); the Receiver is then read afresh:
unknown path (or a token changed since) → 404; suspended or not Ready → 503; verification per
type fails → 401 (a body a type needs but cannot parse → 400); an event type `events` does not
list → 400; GitHub's `ping` → 200 and nothing else. A valid call resolves `resources` (by name,
or `*` + `matchLabels`), sets `reconcile.fluxcd.io/requestedAt` on each (merge patch) and
publishes a `reconcile.request` (reason `receiver`) for each → 200, or 500 naming what failed.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from libs.common.api import meta
from libs.common.api.notification.receiver import Receiver, ReceiverResource
from libs.common.api.registry import UnknownKind, storage_version
from libs.common.bus import Bus
from libs.common.events import ObjectRef, ReconcileRequest
from libs.common.kube import Kube, KubeError
from libs.common.reconcile import Context, Reconciler, Result, request_msg_id
from libs.common.runtime.redact import sanitize_message

log = logging.getLogger("sluice.notify.receivers")

#: Receiver types this service verifies and serves.
SUPPORTED_TYPES: tuple[str, ...] = ("generic", "generic-hmac", "github", "dockerhub", "harbor")
HOOK_PREFIX = "/hook/"
TOKEN_KEY = "token"
TOKEN_NOT_FOUND = "TokenNotFound"
UNSUPPORTED_TYPE = "UnsupportedType"
UNSUPPORTED_FIELD = "UnsupportedField"
INVALID_RESOURCES = "InvalidResources"
SIGNATURE_HEADER = "X-Signature"
GITHUB_SIGNATURE_256 = "X-Hub-Signature-256"
GITHUB_SIGNATURE_1 = "X-Hub-Signature"
GITHUB_EVENT_HEADER = "X-GitHub-Event"
GITHUB_PING = "ping"
FIELD_MANAGER = "sluice-notify"
_HMAC_ALGORITHMS = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha512": hashlib.sha512}
MISS_REFRESH_INTERVAL = 1.0


def webhook_path(token: str, name: str, namespace: str) -> str:
    """Flux's receiver path: `/hook/` + hex sha256(token + name + namespace)."""
    return HOOK_PREFIX + hashlib.sha256((token + name + namespace).encode()).hexdigest()


def receiver_problems(obj: Receiver) -> tuple[str, str] | None:
    """(reason, message) when this Receiver asks for what Sluice cannot do yet."""
    spec = obj.spec
    if spec.type not in SUPPORTED_TYPES:
        return (
            UNSUPPORTED_TYPE,
            f"receiver type '{spec.type}' is not supported by Sluice yet (supported: {', '.join(SUPPORTED_TYPES)})",
        )
    fields = []
    if spec.resource_filter:
        fields.append("spec.resourceFilter (CEL)")
    for i, res in enumerate(spec.resources):
        if res.filter:
            fields.append(f"spec.resources[{i}].filter (CEL)")
    if fields:
        return UNSUPPORTED_FIELD, f"not supported by Sluice yet: {', '.join(fields)}"
    bad = []
    for i, res in enumerate(spec.resources):
        if res.name == "*" and not res.match_labels:
            bad.append(f"spec.resources[{i}]: matchLabels must be set when name is '*'")
        try:
            storage_version(res.kind)
        except UnknownKind:
            bad.append(f"spec.resources[{i}]: kind {res.kind} is not served by Sluice")
    if bad:
        return INVALID_RESOURCES, "; ".join(bad)
    return None


def secret_value(secret: Mapping[str, Any], key: str) -> str | None:
    if key in (secret.get("stringData") or {}):
        return str(secret["stringData"][key])
    raw = (secret.get("data") or {}).get(key)
    if raw is None:
        return None
    try:
        return base64.b64decode(raw).decode()
    except (ValueError, TypeError):
        return None


def _hmac_ok(header: str | None, body: bytes, token: str, allowed: tuple[str, ...]) -> bool:
    """`<algo>=<hex>` equals the HMAC of `body` with `token` (constant-time)."""
    if not header:
        return False
    algo, sep, digest = header.strip().partition("=")
    algo = algo.lower()
    if not sep or algo not in allowed:
        return False
    expected = hmac.new(token.encode(), body, _HMAC_ALGORITHMS[algo]).hexdigest()
    return hmac.compare_digest(expected, digest.strip().lower())


class Refused(Exception):
    """A webhook call that is answered with `status` and changes nothing."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def verify(receiver: Receiver, token: str, headers: Mapping[str, str], body: bytes) -> str | None:
    """Check the call for the Receiver's type; returns the event type (github) or None.
    Raises Refused (401 bad credentials, 400 unusable body or an event type not listed)."""
    kind = receiver.spec.type
    event: str | None = None
    if kind == "generic-hmac":
        if not _hmac_ok(headers.get(SIGNATURE_HEADER), body, token, ("sha1", "sha256", "sha512")):
            raise Refused(401, "invalid or missing X-Signature")
    elif kind == "github":
        header256 = headers.get(GITHUB_SIGNATURE_256)
        ok = (
            _hmac_ok(header256, body, token, ("sha256",))
            if header256
            else _hmac_ok(headers.get(GITHUB_SIGNATURE_1), body, token, ("sha1",))
        )
        if not ok:
            raise Refused(401, "invalid or missing X-Hub-Signature-256")
        event = (headers.get(GITHUB_EVENT_HEADER) or "").strip()
        allowed = receiver.spec.events or []
        if event.lower() != GITHUB_PING and allowed and event.lower() not in {e.lower() for e in allowed}:
            raise Refused(400, f"the GitHub event '{event}' is not in spec.events")
    elif kind == "harbor":
        if not hmac.compare_digest((headers.get("Authorization") or "").encode(), token.encode()):
            raise Refused(401, "invalid or missing Authorization")
    elif kind == "dockerhub":
        try:
            json.loads(body)
        except ValueError:
            raise Refused(400, "the body is not a Docker Hub JSON payload") from None
    return event


@dataclass
class ReceiverServer:
    """The Receiver reconciler and the webhook endpoint of one notify app."""

    kube: Kube
    bus: Bus
    namespace: str | None = None
    index: dict[str, tuple[str, str]] = field(default_factory=dict)
    _last_refresh: float = 0.0
    _refresh_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    # --- reconcile ------------------------------------------------------------------------------

    def reconciler(self) -> Reconciler[Receiver]:
        return Reconciler(kind=Receiver, steps=[self.check_spec, self.init_path], finalize=[self.forget])

    async def check_spec(self, ctx: Context[Receiver]) -> Result | None:
        problem = receiver_problems(ctx.obj)
        if problem is not None:
            self._drop(ctx.obj.namespace, ctx.obj.name)
            return Result.stall(*problem)
        return None

    async def init_path(self, ctx: Context[Receiver]) -> Result | None:
        obj = ctx.obj
        ref = obj.spec.secret_ref
        assert ref is not None  # the model requires it for every non-OIDC type
        secret = await self.kube.get("v1", "Secret", ref.name, obj.namespace)
        token = secret_value(secret, TOKEN_KEY) if secret is not None else None
        if not token:
            self._drop(obj.namespace, obj.name)
            missing = "not found" if secret is None else f"has no '{TOKEN_KEY}' key"
            return Result.failed(
                TOKEN_NOT_FOUND,
                f"unable to read token from secret '{obj.namespace}/{ref.name}': the Secret {missing}",
                after=30.0,
            )
        path = webhook_path(token, obj.name, obj.namespace)
        ctx.status.webhook_path = path
        self._drop(obj.namespace, obj.name)
        self.index[path] = (obj.namespace, obj.name)
        return Result.ready(f"Receiver initialized for path: {path}")

    async def forget(self, ctx: Context[Receiver]) -> Result | None:
        self._drop(ctx.obj.namespace, ctx.obj.name)
        return None

    def _drop(self, namespace: str, name: str) -> None:
        for path in [p for p, key in self.index.items() if key == (namespace, name)]:
            del self.index[path]

    async def refresh(self) -> None:
        """Rebuild the path index from the Receivers' status (what every replica serves)."""
        async with self._refresh_lock:
            items, _ = await self.kube.list_objects(Receiver.api_version(), Receiver.KIND, self.namespace)
            index = {}
            for item in items:
                path = (item.get("status") or {}).get("webhookPath")
                md = item.get("metadata") or {}
                if path:
                    index[path] = (md.get("namespace", ""), md.get("name", ""))
            self.index = index
            self._last_refresh = time.monotonic()

    async def refresh_forever(self, period: float) -> None:
        while True:
            await asyncio.sleep(period)
            try:
                await self.refresh()
            except Exception as exc:
                log.warning("refreshing the receiver index failed: %s", sanitize_message(str(exc)))

    async def _lookup(self, path: str) -> tuple[str, str] | None:
        found = self.index.get(path)
        if found is None and time.monotonic() - self._last_refresh >= MISS_REFRESH_INTERVAL:
            await self.refresh()
            found = self.index.get(path)
        return found

    # --- serving --------------------------------------------------------------------------------

    def web_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post(HOOK_PREFIX + "{digest}", self.hook)
        return app

    async def hook(self, request: web.Request) -> web.Response:
        path = HOOK_PREFIX + request.match_info["digest"]
        try:
            message = await self._handle(path, request)
        except Refused as exc:
            # The digest is the only credential of a generic receiver: log just its start.
            log.info("webhook %s… refused (%d): %s", path[: len(HOOK_PREFIX) + 12], exc.status, exc)
            return web.json_response({"error": str(exc)}, status=exc.status)
        return web.json_response({"message": message}, status=200)

    async def _handle(self, path: str, request: web.Request) -> str:
        found = await self._lookup(path)
        if found is None:
            raise Refused(404, "no Receiver is served at this path")
        namespace, name = found
        raw = await self.kube.get(Receiver.api_version(), Receiver.KIND, name, namespace)
        if raw is None:
            raise Refused(404, "no Receiver is served at this path")
        try:
            receiver = Receiver.model_validate(raw)
        except ValidationError:
            raise Refused(503, f"Receiver {namespace}/{name} is not ready") from None
        if receiver.status.webhook_path != path:
            raise Refused(404, "no Receiver is served at this path")
        if receiver.suspended:
            raise Refused(503, f"Receiver {namespace}/{name} is suspended")
        ready = meta.get_condition(receiver.get_conditions(), meta.READY)
        if ready is None or ready.status != meta.CONDITION_TRUE or receiver_problems(receiver):
            raise Refused(503, f"Receiver {namespace}/{name} is not ready")
        ref = receiver.spec.secret_ref
        secret = await self.kube.get("v1", "Secret", ref.name, namespace) if ref else None
        token = secret_value(secret, TOKEN_KEY) if secret is not None else None
        if not token or webhook_path(token, name, namespace) != path:
            # The token changed (or went away) since the path was published: the old path is dead.
            raise Refused(404, "no Receiver is served at this path")
        body = await request.read()
        event = verify(receiver, token, request.headers, body)
        if event is not None and event.lower() == GITHUB_PING:
            return f"Receiver {namespace}/{name}: ping accepted"
        targets, errors = await self._resolve(receiver)
        requested_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        done = 0
        for target in targets:
            try:
                await self._request(target, requested_at)
                done += 1
            except Exception as exc:
                errors.append(f"{target}: {sanitize_message(str(exc)) or type(exc).__name__}")
        log.info(
            "webhook for Receiver %s/%s: %d resource(s) requested%s",
            namespace,
            name,
            done,
            f"; failures: {'; '.join(errors)}" if errors else "",
        )
        if errors:
            raise Refused(500, "; ".join(errors))
        return f"Receiver {namespace}/{name}: reconcile requested for {len(targets)} resource(s)"

    async def _resolve(self, receiver: Receiver) -> tuple[list[ObjectRef], list[str]]:
        targets: list[ObjectRef] = []
        errors: list[str] = []
        for res in receiver.spec.resources:
            try:
                targets.extend(await self._resolve_one(receiver, res))
            except (KubeError, LookupError) as exc:
                errors.append(f"{res.kind}/{res.name}: {sanitize_message(str(exc))}")
        return targets, errors

    async def _resolve_one(self, receiver: Receiver, res: ReceiverResource) -> list[ObjectRef]:
        namespace = res.namespace or receiver.namespace
        api_version = res.api_version or storage_version(res.kind).api_version()
        if res.name != "*":
            obj = await self.kube.get(api_version, res.kind, res.name, namespace)
            if obj is None:
                raise LookupError(f"{res.kind} {namespace}/{res.name} not found")
            return [self._ref(api_version, res.kind, obj)]
        selector = ",".join(f"{k}={v}" for k, v in sorted((res.match_labels or {}).items()))
        items, _ = await self.kube.list_objects(api_version, res.kind, namespace, label_selector=selector)
        return [self._ref(api_version, res.kind, obj) for obj in items]

    @staticmethod
    def _ref(api_version: str, kind: str, obj: Mapping[str, Any]) -> ObjectRef:
        md = obj.get("metadata") or {}
        return ObjectRef(
            api_version=api_version, kind=kind, namespace=md["namespace"], name=md["name"], uid=md.get("uid")
        )

    async def _request(self, ref: ObjectRef, requested_at: str) -> None:
        """Annotate the object as Flux does and publish the reconcile request."""
        patch = {"metadata": {"annotations": {meta.RECONCILE_REQUEST_ANNOTATION: requested_at}}}
        patched = await self.kube.patch(
            ref.api_version, ref.kind, ref.name, patch, namespace=ref.namespace, field_manager=FIELD_MANAGER
        )
        generation = (patched.get("metadata") or {}).get("generation")
        payload = ReconcileRequest(
            object=ref, reason="receiver", generation=generation, requested_at=requested_at
        )
        # The same id the owner's watcher derives from the new requestedAt, so the two requests are
        # one message: the owner reconciles once, inside this webhook call's trace.
        await self.bus.publish(payload, msg_id=request_msg_id(ref.key, generation, requested_at, False))
