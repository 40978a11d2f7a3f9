"""Alerts delivering event records to real webhook sinks: what each Provider type receives,
filtering, duplicate suppression, retries, and Providers Sluice cannot use yet."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime

import aiohttp
import pytest

from libs.common.bus import Delivery, Permanent, RetryLater
from libs.common.events import EventRecord, ObjectRef, envelope
from services.notify.alerts import MAX_DELIVER, AlertRouter, DuplicateFilter
from services.notify.tests.conftest import NS, Env
from tests.support import eventually

pytestmark = pytest.mark.integration

GIT_GV = "source.toolkit.fluxcd.io/v1"
GIT_GROUP = "source.toolkit.fluxcd.io"


def record(name: str, message: str, severity: str = "info", **metadata: str) -> EventRecord:
    return EventRecord(
        involved_object=ObjectRef(
            api_version=GIT_GV, kind="GitRepository", namespace=NS, name=name, uid="uid-1"
        ),
        severity=severity,  # type: ignore[arg-type]
        timestamp=datetime.now(UTC),
        message=message,
        reason="NewArtifact" if severity == "info" else "GitOperationFailed",
        metadata={f"{GIT_GROUP}/revision": "main@sha1:abc", **metadata},
        reporting_controller="sluice-source",
        reporting_instance="source-0",
    )


async def test_each_provider_type_gets_fluxs_payload_once(env: Env) -> None:
    sink = env.sink
    await env.gitrepository("podinfo", labels={"team": "web"})
    await env.gitrepository("other", labels={"team": "db"})
    await env.secret("hmac", {"address": f"{sink.url}/hmac", "token": "s3cret", "headers": "X-Team: web\n"})
    await env.provider("generic", type="generic", address=f"{sink.url}/generic")
    await env.provider(
        "hmac", type="generic-hmac", address="http://ignored.invalid/", secretRef={"name": "hmac"}
    )
    await env.provider("slack", type="slack", address=f"{sink.url}/slack", channel="#ops")
    await env.provider("teams", type="msteams", address=f"{sink.url}/teams")
    web_sources = [{"kind": "GitRepository", "name": "*", "matchLabels": {"team": "web"}}]
    await env.alert("generic", "generic", eventSources=web_sources, eventMetadata={"cluster": "prod"})
    await env.alert("hmac", "hmac", eventSources=web_sources, exclusionList=["^skip"])
    await env.alert(
        "slack", "slack", eventSources=[{"kind": "GitRepository", "name": "podinfo"}], summary="web"
    )
    await env.alert("teams", "teams", eventSources=web_sources, eventSeverity="error", inclusionList=["fail"])

    await env.alert("suspended", "generic", eventSources=web_sources, suspend=True, eventMetadata={"x": "y"})

    # The object's annotation `event.toolkit.fluxcd.io/summary` arrives as event metadata.
    first = record(
        "podinfo",
        "stored artifact for revision 'main@sha1:abc'",
        **{"event.toolkit.fluxcd.io/summary": "annotated"},
    )
    await env.bus.publish(first)
    await eventually(
        lambda: sink.at("/generic") and sink.at("/hmac") and sink.at("/slack"), what="deliveries"
    )

    (generic,) = sink.at("/generic")
    body = json.loads(generic.body)
    assert generic.headers["Gotk-Component"] == "sluice-source"
    assert body["involvedObject"] == {
        "kind": "GitRepository",
        "namespace": NS,
        "name": "podinfo",
        "apiVersion": GIT_GV,
        "uid": "uid-1",
    }
    assert body["message"] == "stored artifact for revision 'main@sha1:abc'"
    assert body["severity"] == "info" and body["reason"] == "NewArtifact"
    assert body["metadata"] == {"revision": "main@sha1:abc", "cluster": "prod", "summary": "annotated"}
    assert body["reportingController"] == "sluice-source"

    (signed,) = sink.at("/hmac")  # the Secret's address wins over spec.address
    expected = "sha256=" + hmac.new(b"s3cret", signed.body, hashlib.sha256).hexdigest()
    assert signed.headers["X-Signature"] == expected
    assert signed.headers["X-Team"] == "web"

    (slack,) = sink.at("/slack")
    payload = json.loads(slack.body)
    assert payload["channel"] == "#ops" and payload["username"] == "Flux"
    (attachment,) = payload["attachments"]
    assert attachment["color"] == "good"
    assert attachment["author_name"] == "gitrepository/podinfo.flux-system"
    assert {f["title"]: f["value"] for f in attachment["fields"]} == {
        "revision": "main@sha1:abc",
        "summary": "web",
    }
    # The Alert's summary overrode the annotation's: reported on the Alert, as Flux does.
    (conflict,) = await eventually(
        lambda: env.records("slack", "MetadataAppendFailed"), what="conflict event"
    )
    assert conflict.involved_object.kind == "Alert" and "summary" in conflict.message

    # The same event again within the window: nobody gets it twice. An error passes the teams
    # Alert (severity error + inclusionList), an excluded message skips the hmac one, and the
    # other object (team: db) matches only the name-based slack Alert — which it does not name.
    await env.bus.publish(first)
    await env.bus.publish(record("other", "fetch failed", severity="error"))
    await env.bus.publish(record("podinfo", "skip: fetch failed", severity="error"))
    await eventually(lambda: len(sink.at("/generic")) == 2, what="the error event at the generic sink")
    await eventually(lambda: sink.at("/teams"), what="the error event at the teams sink")
    (teams,) = sink.at("/teams")
    card = json.loads(teams.body)["attachments"][0]["content"]
    assert card["type"] == "AdaptiveCard"
    assert card["body"][0]["text"] == "gitrepository/podinfo.flux-system"
    assert card["body"][1] == {
        "type": "TextBlock",
        "text": "skip: fetch failed",
        "wrap": True,
        "color": "attention",
    }
    await eventually(lambda: len(sink.at("/slack")) == 2, what="the error event at the slack sink")
    assert json.loads(sink.at("/slack")[1].body)["attachments"][0]["color"] == "danger"
    assert len(sink.at("/hmac")) == 1
    # The suspended Alert (same Provider, metadata x=y) sent nothing.
    assert all("x" not in json.loads(r.body)["metadata"] for r in sink.at("/generic"))
    assert [json.loads(r.body)["message"] for r in sink.at("/generic")] == [
        "stored artifact for revision 'main@sha1:abc'",
        "skip: fetch failed",
    ]


async def test_server_errors_are_retried_and_unusable_providers_reported(env: Env) -> None:
    sink = env.sink
    sink.statuses = {"/flaky": [503, 500], "/refusing": [400]}
    await env.provider("flaky", type="generic", address=f"{sink.url}/flaky")
    await env.provider("refusing", type="generic", address=f"{sink.url}/refusing")
    await env.provider("chat", type="discord", address=f"{sink.url}/discord")
    sources = [{"kind": "GitRepository", "name": "*"}]
    await env.alert("flaky", "flaky", eventSources=sources)
    await env.alert("chat", "chat", eventSources=sources)
    await env.alert("refusing", "refusing", eventSources=sources)
    await env.secret("bot", {"token": "xoxb-1"})
    await env.provider(
        "bot", type="slack", address=f"{sink.url}/api", channel="#nope", secretRef={"name": "bot"}
    )
    await env.alert("bot", "bot", eventSources=sources)
    sink.bodies["/api"] = '{"ok": false, "error": "channel_not_found"}'

    await env.bus.publish(record("podinfo", "stored artifact for revision 'main@sha1:abc'"))
    await eventually(lambda: len(sink.at("/flaky")) == 3, what="two retries in place, then success")
    bodies = {r.body for r in sink.at("/flaky")}
    assert len(bodies) == 1  # the same event each time

    # A 4xx is not retried — not even when the record is redelivered for the flaky Provider — and
    # is reported on the Provider.
    assert len(sink.at("/refusing")) == 1
    (refused,) = await eventually(
        lambda: env.records("refusing", "NotificationDeliveryFailed"), what="the delivery failure event"
    )
    assert "HTTP 400" in refused.message and refused.involved_object.kind == "Provider"
    assert sink.url not in refused.message

    # A Slack Bot token is sent as a Bearer token; Slack's `ok: false` answer is a failure.
    (api,) = sink.at("/api")
    assert api.headers["Authorization"] == "Bearer xoxb-1"
    assert json.loads(api.body)["channel"] == "#nope"
    (slack_failed,) = await eventually(
        lambda: env.records("bot", "NotificationDeliveryFailed"), what="the Slack API failure event"
    )
    assert "channel_not_found" in slack_failed.message and "xoxb" not in slack_failed.message

    # discord is not delivered yet: an error event on the Provider names the type, nothing is posted.
    # The Provider itself is reported when reconciled, and every alert it drops is too.
    def drops() -> list[EventRecord]:
        return [e for e in env.records("chat", "UnsupportedProvider") if "dropped" in e.message]

    (dropped,) = await eventually(drops, what="the dropped-alert event")
    assert "GitRepository/flux-system/podinfo" in dropped.message
    assert "provider type 'discord' is not supported" in dropped.message
    assert dropped.involved_object.kind == "Provider" and dropped.severity == "error"
    stalled = await eventually(
        lambda: [e for e in env.records("chat", "UnsupportedProvider") if "dropped" not in e.message],
        what="the Provider's reconcile event",
    )
    assert "'discord'" in stalled[0].message
    assert not sink.at("/discord")


async def test_a_provider_still_failing_goes_back_to_jetstream_then_to_dead_letters(env: Env) -> None:
    """The handler's outcome for a Provider that stays down: RetryLater (JetStream redelivers),
    and on the last allowed delivery Permanent (the bus dead-letters it with the reason)."""
    sink = env.sink
    sink.statuses = {"/down": [503] * 6}
    await env.provider("down", type="generic", address=f"{sink.url}/down")
    await env.alert("down", "down", eventSources=[{"kind": "GitRepository", "name": "*"}])
    event = record("podinfo", "stored artifact for revision 'main@sha1:abc'")

    def delivery(num: int) -> Delivery:
        return Delivery(event.subject(), envelope(event, source="/test"), {}, num, 1, None)  # type: ignore[arg-type]

    async with aiohttp.ClientSession() as session:
        router = AlertRouter(env.kube, env.bus, session, DuplicateFilter(300.0))
        with pytest.raises(RetryLater) as retry:
            await router.handle(event, delivery(1))
        assert "HTTP 503" in str(retry.value) and sink.url not in str(retry.value)
        assert len(sink.at("/down")) == 3  # three attempts in place
        with pytest.raises(Permanent) as gave_up:
            await router.handle(event, delivery(MAX_DELIVER))
        assert f"gave up after {MAX_DELIVER} deliveries" in str(gave_up.value)
        assert len(sink.at("/down")) == 6
        # The sink is back: the next delivery of the same record goes through, once.
        await router.handle(event, delivery(2))
        await router.handle(event, delivery(3))
        assert len(sink.at("/down")) == 7
