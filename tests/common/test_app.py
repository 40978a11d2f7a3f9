"""The service shell's shared per-app state."""

from __future__ import annotations

from typing import Any

import pytest

from libs.common.app import App

pytestmark = pytest.mark.unit


def test_shared_builds_one_instance_per_app_and_factory() -> None:
    built: list[str] = []

    def cache(app: App) -> dict[str, Any]:
        built.append(app.name)
        return {"owner": app.name}

    first = App("source", runtime=None, bus=None, kube=None)  # type: ignore[arg-type]
    second = App("source", runtime=None, bus=None, kube=None)  # type: ignore[arg-type]
    assert first.shared(cache) is first.shared(cache)
    assert first.shared(cache) is not second.shared(cache)
    assert built == ["source", "source"]
