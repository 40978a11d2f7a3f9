from __future__ import annotations

import pytest

from libs.common.api import meta
from libs.common.api.meta import (
    FINALIZER,
    READY,
    RECONCILE_REQUEST_ANNOTATION,
    RECONCILING,
    Condition,
    get_condition,
    is_ready,
    remove_condition,
    set_condition,
)
from libs.common.api.notification.provider import Provider
from libs.common.api.source.gitrepository import GitRepository
from tests.common.api.manifests import manifest

pytestmark = pytest.mark.unit


def test_constants_match_flux() -> None:
    assert (meta.READY, meta.RECONCILING, meta.STALLED) == ("Ready", "Reconciling", "Stalled")
    assert (meta.SUCCEEDED, meta.FAILED, meta.PROGRESSING) == ("Succeeded", "Failed", "Progressing")
    assert meta.PROGRESSING_WITH_RETRY == "ProgressingWithRetry"
    assert meta.DEPENDENCY_NOT_READY == "DependencyNotReady"
    assert RECONCILE_REQUEST_ANNOTATION == "reconcile.fluxcd.io/requestedAt"
    assert FINALIZER == "finalizers.fluxcd.io"


def test_set_condition_adds_and_replaces_keeping_transition_time_when_status_is_unchanged() -> None:
    conditions = set_condition(
        None, READY, "False", meta.PROGRESSING, "fetching", 1, now="2024-01-01T00:00:00Z"
    )
    conditions = set_condition(
        conditions, RECONCILING, "True", meta.PROGRESSING, "fetching", 1, now="2024-01-01T00:00:00Z"
    )
    assert [c.type for c in conditions] == [READY, RECONCILING]

    same_status = set_condition(
        conditions, READY, "False", meta.FAILED, "auth failed", 2, now="2024-01-01T00:05:00Z"
    )
    ready = get_condition(same_status, READY)
    assert ready is not None
    assert ready.last_transition_time == "2024-01-01T00:00:00Z"
    assert (ready.reason, ready.message, ready.observed_generation) == ("Failed", "auth failed", 2)
    assert [c.type for c in same_status] == [READY, RECONCILING], "order is kept"

    flipped = set_condition(
        same_status, READY, "True", meta.SUCCEEDED, "stored artifact", 2, now="2024-01-01T00:10:00Z"
    )
    ready = get_condition(flipped, READY)
    assert ready is not None and ready.last_transition_time == "2024-01-01T00:10:00Z"
    assert get_condition(conditions, READY) is not None
    assert conditions[0].status == "False", "the input list is not modified"

    assert [c.type for c in remove_condition(flipped, RECONCILING)] == [READY]
    assert get_condition(None, READY) is None


def test_set_condition_defaults_to_now_in_rfc3339() -> None:
    (condition,) = set_condition([], READY, "Unknown", meta.PROGRESSING, "")
    assert len(condition.last_transition_time) == len("2024-01-01T00:00:00Z")
    assert condition.last_transition_time.endswith("Z")


def test_condition_serializes_like_metav1() -> None:
    (condition,) = set_condition([], READY, "True", meta.SUCCEEDED, "ok", 3, now="2024-01-01T00:00:00Z")
    assert condition.model_dump(by_alias=True, exclude_none=True) == {
        "type": "Ready",
        "status": "True",
        "observedGeneration": 3,
        "lastTransitionTime": "2024-01-01T00:00:00Z",
        "reason": "Succeeded",
        "message": "ok",
    }
    with pytest.raises(ValueError, match="reason"):
        Condition.model_validate(
            {
                "type": "Ready",
                "status": "True",
                "reason": "not valid!",
                "message": "",
                "lastTransitionTime": "x",
            }
        )


def test_is_ready_needs_ready_true_for_the_current_generation() -> None:
    doc = manifest("GitRepository")
    doc["metadata"]["generation"] = 2
    obj = GitRepository.model_validate(doc)
    assert not is_ready(obj)
    obj.status.conditions = set_condition(None, READY, "True", meta.SUCCEEDED, "ok", 1)
    obj.status.observed_generation = 1
    assert not is_ready(obj), "stale observedGeneration"
    obj.status.observed_generation = 2
    assert is_ready(obj)
    assert obj.generation == 2
    assert obj.namespaced_name == "flux-system/flux-system"
    assert not obj.suspended
    assert is_ready(Provider.model_validate(manifest("Provider"))), "kinds without status are always ready"
