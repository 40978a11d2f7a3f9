"""Pure logic of notify: Flux's metadata merge, the provider payloads, receiver paths and verification."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from libs.common.api.notification.alert import Alert
from libs.common.api.notification.receiver import Receiver
from libs.common.events import EventRecord, ObjectRef
from services.notify.alerts import (
    DuplicateFilter,
    alert_problems,
    event_key,
    merge_metadata,
    message_passes,
    severity_passes,
)
from services.notify.providers import Target, build_request, sign
from services.notify.receivers import Refused, receiver_problems, verify, webhook_path

pytestmark = pytest.mark.unit

NS = "flux-system"


def event(
    message: str = "stored artifact for revision 'main@sha1:abc'",
    severity: str = "info",
    metadata: dict[str, str] | None = None,
) -> EventRecord:
    return EventRecord(
        involved_object=ObjectRef(
            api_version="source.toolkit.fluxcd.io/v1",
            kind="GitRepository",
            namespace=NS,
            name="podinfo",
            uid="u1",
        ),
        severity=severity,  # type: ignore[arg-type]
        timestamp=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        message=message,
        reason="NewArtifact",
        metadata=metadata or {},
        reporting_controller="sluice-source",
        reporting_instance="source-0",
    )


def alert(**spec: Any) -> Alert:
    body = {"providerRef": {"name": "p"}, "eventSources": [{"kind": "GitRepository", "name": "*"}], **spec}
    return Alert.model_validate(
        {
            "apiVersion": Alert.api_version(),
            "kind": "Alert",
            "metadata": {"name": "a", "namespace": NS},
            "spec": body,
        }
    )


def receiver(type_: str, **spec: Any) -> Receiver:
    body = {
        "type": type_,
        "secretRef": {"name": "token"},
        "resources": [{"kind": "GitRepository", "name": "podinfo"}],
        **spec,
    }
    return Receiver.model_validate(
        {
            "apiVersion": Receiver.api_version(),
            "kind": "Receiver",
            "metadata": {"name": "r", "namespace": NS},
            "spec": body,
        }
    )


def test_metadata_merge_follows_flux_order_and_reports_overrides() -> None:
    ev = event(
        metadata={
            "event.toolkit.fluxcd.io/team": "from-annotation",
            "event.toolkit.fluxcd.io/env": "dev",
            "source.toolkit.fluxcd.io/revision": "main@sha1:abc",
            "source.toolkit.fluxcd.io/env": "from-controller",
            "unrelated.example.com/x": "dropped",
        }
    )
    merged, conflicts = merge_metadata(
        ev, alert(eventMetadata={"team": "alert", "cluster": "prod"}, summary="sum")
    )
    assert merged == {
        "team": "alert",
        "env": "from-controller",
        "cluster": "prod",
        "summary": "sum",
        "revision": "main@sha1:abc",
    }
    assert sorted(conflicts) == ["env", "team"]


def test_filters_severity_lists_and_duplicates() -> None:
    assert severity_passes(alert(), "info") and severity_passes(alert(), "error")
    assert not severity_passes(alert(eventSeverity="error"), "info")
    a = alert(inclusionList=[r"^stored"], exclusionList=[r"sha1:dead"])
    assert message_passes(a, "stored artifact sha1:abc")
    assert not message_passes(a, "stored artifact sha1:dead")
    assert not message_passes(a, "fetch failed")
    assert alert_problems(alert(exclusionList=["("])) and not alert_problems(a)

    assert event_key(event()) == event_key(event())
    assert event_key(event()) != event_key(event(metadata={"source.toolkit.fluxcd.io/revision": "b"}))
    dupes = DuplicateFilter(60)
    assert dupes.claim("k") and not dupes.claim("k")
    dupes.release("k")
    assert dupes.claim("k")
    assert DuplicateFilter(0).claim("k")


def test_generic_and_hmac_payloads() -> None:
    meta = {"revision": "main@sha1:abc"}
    req = build_request(
        event(), meta, Target("generic-hmac", "http://sink/x", token="s3cret", headers={"X-A": "1"})
    )
    assert req is not None
    body = json.loads(req.body)
    assert body == {
        "involvedObject": {
            "kind": "GitRepository",
            "namespace": NS,
            "name": "podinfo",
            "apiVersion": "source.toolkit.fluxcd.io/v1",
            "uid": "u1",
        },
        "severity": "info",
        "timestamp": "2026-01-02T03:04:05Z",
        "message": "stored artifact for revision 'main@sha1:abc'",
        "reason": "NewArtifact",
        "metadata": meta,
        "reportingController": "sluice-source",
        "reportingInstance": "source-0",
    }
    assert req.headers["Gotk-Component"] == "sluice-source"
    assert req.headers["X-A"] == "1"
    expected = "sha256=" + hmac.new(b"s3cret", req.body, hashlib.sha256).hexdigest()
    assert req.headers["X-Signature"] == expected == sign(req.body, "s3cret")


def test_slack_and_msteams_payloads() -> None:
    meta = {"revision": "main@sha1:abc", "summary": "prod"}
    slack = build_request(
        event(severity="error"),
        meta,
        Target("slack", "http://sink/s", token="xoxb", channel="#ops", username="bot"),
    )
    assert slack is not None and slack.headers["Authorization"] == "Bearer xoxb"
    body = json.loads(slack.body)
    assert body["channel"] == "#ops" and body["username"] == "bot" and body["icon_url"].startswith("https://")
    (att,) = body["attachments"]
    assert att["color"] == "danger"
    assert att["author_name"] == "gitrepository/podinfo.flux-system"
    assert att["text"] == "stored artifact for revision 'main@sha1:abc'"
    assert att["fields"] == [
        {"title": "revision", "value": "main@sha1:abc", "short": False},
        {"title": "summary", "value": "prod", "short": False},
    ]

    teams = build_request(event(), meta, Target("msteams", "https://prod.azure.com/workflows/x"))
    assert teams is not None
    card = json.loads(teams.body)
    assert card["type"] == "message"
    content = card["attachments"][0]["content"]
    assert card["attachments"][0]["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert content["type"] == "AdaptiveCard" and content["version"] == "1.4"
    assert content["body"][0]["text"] == "gitrepository/podinfo.flux-system"
    assert content["body"][1]["text"] == "stored artifact for revision 'main@sha1:abc'"
    assert [f["title"] for f in content["body"][2]["facts"]] == ["summary", "revision"]

    legacy = build_request(
        event(severity="error"), meta, Target("msteams", "https://x.webhook.office.com/webhookb2/y")
    )
    assert legacy is not None
    connector = json.loads(legacy.body)
    assert connector["@type"] == "MessageCard" and connector["themeColor"] == "FF0000"
    assert connector["sections"][0]["activitySubtitle"] == "gitrepository/podinfo.flux-system"

    # Chat providers skip Git commit-status update events, as Flux's do.
    assert build_request(event(), {"commit_status": "update"}, Target("slack", "http://sink/s")) is None


def test_webhook_path_is_fluxs() -> None:
    expected = "/hook/" + hashlib.sha256(b"tokenrflux-system").hexdigest()
    assert webhook_path("token", "r", "flux-system") == expected


def _sig(algo: str, body: bytes, token: str = "tok") -> str:
    return f"{algo}=" + hmac.new(token.encode(), body, getattr(hashlib, algo)).hexdigest()


def test_receiver_verification_per_type() -> None:
    body = b'{"ref":"refs/heads/main"}'
    assert verify(receiver("generic"), "tok", {}, body) is None
    for algo in ("sha1", "sha256", "sha512"):
        verify(receiver("generic-hmac"), "tok", {"X-Signature": _sig(algo, body)}, body)
    for headers in ({}, {"X-Signature": _sig("sha256", body, "wrong")}, {"X-Signature": "md5=00"}):
        with pytest.raises(Refused) as bad:
            verify(receiver("generic-hmac"), "tok", headers, body)
        assert bad.value.status == 401

    gh = receiver("github", events=["push"])
    ok = {"X-Hub-Signature-256": _sig("sha256", body), "X-GitHub-Event": "Push"}
    assert verify(gh, "tok", ok, body) == "Push"
    assert (
        verify(gh, "tok", {"X-Hub-Signature": _sig("sha1", body), "X-GitHub-Event": "push"}, body) == "push"
    )
    assert verify(gh, "tok", {**ok, "X-GitHub-Event": "ping"}, body) == "ping"
    with pytest.raises(Refused) as filtered:
        verify(gh, "tok", {**ok, "X-GitHub-Event": "issues"}, body)
    assert filtered.value.status == 400
    with pytest.raises(Refused) as unsigned:
        verify(gh, "tok", {"X-Hub-Signature-256": _sig("sha256", b"other"), "X-GitHub-Event": "push"}, body)
    assert unsigned.value.status == 401

    verify(receiver("harbor"), "tok", {"Authorization": "tok"}, body)
    with pytest.raises(Refused) as harbor:
        verify(receiver("harbor"), "tok", {"Authorization": "nope"}, body)
    assert harbor.value.status == 401
    verify(receiver("dockerhub"), "tok", {}, body)
    with pytest.raises(Refused) as docker:
        verify(receiver("dockerhub"), "tok", {}, b"not json")
    assert docker.value.status == 400


def test_unsupported_receivers_are_named() -> None:
    assert receiver_problems(receiver("github")) is None
    problem = receiver_problems(receiver("gitlab"))
    assert problem is not None and problem[0] == "UnsupportedType" and "'gitlab'" in problem[1]
    problem = receiver_problems(receiver("generic", resourceFilter="true"))
    assert problem is not None and "spec.resourceFilter" in problem[1]
    problem = receiver_problems(receiver("generic", resources=[{"kind": "GitRepository", "name": "*"}]))
    assert problem is not None and "matchLabels" in problem[1]
